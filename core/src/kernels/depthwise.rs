//! The depthwise convolution's arithmetic: f32, channels first, any kernel size, padding and stride (no
//! dilation), with the clip (ReLU/ReLU6) and fake quantization that follow it fused into the epilogue; its input
//! and output f32 values or u8 codes.
//!
//! Each channel is copied once into a zero-padded plane ([`super::plane`]), each output row is accumulated tap by
//! tap in a small buffer that stays in L1, and the epilogue runs on that buffer before it is stored.

use super::epilogue::{bits, Dest, Epilogue, Output, Source};
use super::isa::multiversion;
use super::plane::{Geometry, SLACK};
use super::quant::{clamp, FakeQuant};
use std::sync::Arc;

/// Whether each tap is one fused multiply-add: on AArch64, as tract-linalg's own depthwise kernel there (`vfmaq_f32`),
/// a multiply then an add elsewhere, as its x86-64 and WebAssembly kernels; so that ours computes tract's values on
/// every ISA we ship, and each plug-in its portable loop's.
pub(crate) const FUSED: bool = cfg!(target_arch = "aarch64");

#[derive(Debug, Clone)]
pub struct Depthwise {
    pub(crate) geometry: Geometry,
    /// `[C][kh * kw]`.
    pub(crate) weights: Arc<Vec<f32>>,
    pub(crate) bias: Arc<Vec<f32>>,
    /// A clip of the input (the Max/Min after the previous operator, when only this convolution reads it), applied
    /// while the input is copied into the padded plane: the padding stays zero, as the convolution pads the
    /// clipped values.
    pub(crate) input_clip: Option<(f32, f32)>,
    pub(crate) clip: Option<(f32, f32)>,
    pub(crate) fake_quant: Option<FakeQuant>,
    /// The input as u8 codes of this grid `(scale, zero point)`, not f32 values: from an int8 pointwise
    /// convolution that writes them for this convolution alone ([`crate::backend::cpu::handover`]).
    pub(crate) codes_in: Option<(f32, i32)>,
    /// The output as u8 codes of its fake quantization's grid (its zero point here), for an int8 pointwise
    /// convolution that alone reads it ([`crate::backend::cpu::handover`]).
    pub(crate) codes_out: Option<i32>,
}

impl PartialEq for Depthwise {
    fn eq(&self, other: &Self) -> bool {
        self.geometry == other.geometry
            && self.weights == other.weights
            && self.bias == other.bias
            && bits(self.input_clip) == bits(other.input_clip)
            && bits(self.clip) == bits(other.clip)
            && self.fake_quant == other.fake_quant
            && self.codes_in.map(|(s, z)| (s.to_bits(), z)) == other.codes_in.map(|(s, z)| (s.to_bits(), z))
            && self.codes_out == other.codes_out
    }
}

impl Eq for Depthwise {}

impl Depthwise {
    multiversion!(
        /// Convolves channels `first..` of the tensor: `input` and `output` hold those channels (channels first,
        /// batch 1), as many as `output` has room for. `plane` is zeroed scratch of [`Self::plane_len`] values.
        Depthwise, fn run_auto<T: Output> => run_portable(input: Source, output: &mut [T], first: usize, plane: &mut [f32]));

    /// Length of the zeroed scratch `run` needs for its padded plane.
    pub(crate) fn plane_len(&self) -> usize {
        self.geometry.channel_plane_len() + SLACK
    }

    /// Copies one channel `src` into its zero-padded plane ([`Geometry::fill_plane_with`]), codes dequantized,
    /// clipped when the input clip says.
    #[inline(always)]
    pub(crate) fn fill_plane(&self, src: Source, plane: &mut [f32]) {
        let (lo, hi) = self.input_clip.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let clip = self.input_clip.is_some();
        match src {
            Source::Values(x) if clip => self.geometry.fill_plane_with(x, plane, |v| clamp(v, lo, hi)),
            Source::Values(x) => self.geometry.fill_plane_with(x, plane, |v| v),
            Source::Codes(x, (scale, zero_point)) => self.geometry.fill_plane_with(x, plane, |q| {
                let v = (q as i32 - zero_point) as f32 * scale;
                if clip {
                    clamp(v, lo, hi)
                } else {
                    v
                }
            }),
        }
    }

    /// This convolution reading u8 codes of the grid `(scale, zero point)`; `None` when it reads codes already.
    pub(crate) fn with_codes_in(&self, grid: (f32, i32)) -> Option<Depthwise> {
        self.codes_in.is_none().then(|| Depthwise { codes_in: Some(grid), ..self.clone() })
    }

    /// This convolution writing u8 codes of its output's grid, and that grid `(scale, zero point)`; `None`
    /// without a fake-quantized output, or when it writes codes already.
    pub(crate) fn with_codes_out(&self) -> Option<(Depthwise, (f32, i32))> {
        let grid = self.fake_quant.as_ref()?.grid();
        self.codes_out.is_none().then(|| (Depthwise { codes_out: Some(grid.1), ..self.clone() }, grid))
    }

    #[inline(always)]
    pub(crate) fn run_portable<T: Output>(&self, input: Source, output: &mut [T], first: usize, plane: &mut [f32]) {
        let g = &self.geometry;
        let ([ih, iw], [oh, ow], [kh, kw]) = (g.in_hw, g.out_hw, g.kernel);
        // Clip, then fake quantization, on a block of accumulated outputs while it is still in registers.
        let epilogue = Epilogue::new(self.clip, self.fake_quant.as_ref());
        let zero_point = self.codes_out.unwrap_or(0);
        let epilogue = |block: &mut [f32], out: &mut [T]| T::finish(block, &epilogue, zero_point, out);
        let tap_start = self.geometry.tap_start();
        for c in 0..output.len() / (oh * ow) {
            self.fill_plane(input.slice(c * ih * iw..(c + 1) * ih * iw), plane);
            let w = &self.weights[(first + c) * kh * kw..(first + c + 1) * kh * kw];
            for y in 0..oh {
                let row_offset = y * g.row_step();
                // Everything from this output row to the end of the tensor: a block that overhangs the row spills
                // into the next one, which is computed (and overwritten) later.
                let out_row = &mut output[(c * oh + y) * ow..];
                if ow >= 16 {
                    accumulate::<16, T>(out_row, ow, self.bias[first + c], w, &tap_start, row_offset, plane, &epilogue);
                } else {
                    accumulate::<8, T>(out_row, ow, self.bias[first + c], w, &tap_start, row_offset, plane, &epilogue);
                }
            }
        }
    }
}

/// The portable kernel, as [`super::Kernels`] holds it.
pub(crate) fn portable(op: &Depthwise, input: Source, output: Dest, first: usize, plane: &mut [f32]) {
    match output {
        Dest::Values(out) => op.run_auto(input, out, first, plane),
        Dest::Codes(out) => op.run_auto(input, out, first, plane),
    }
}

/// Computes one output row of `width` columns in blocks of `N`, each accumulated over all taps in registers,
/// then runs `epilogue` on the block and stores it into `out` (the row and everything after it). The last block
/// may overhang the row: it reads the plane's `SLACK`, and its extra lanes land in the next row (computed later)
/// unless the tensor ends there.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn accumulate<const N: usize, T>(
    out: &mut [T],
    width: usize,
    bias: f32,
    weights: &[f32],
    tap_start: &[usize],
    row_offset: usize,
    plane: &[f32],
    epilogue: &impl Fn(&mut [f32], &mut [T]),
) {
    let mut x = 0;
    while x < width {
        let mut a = [bias; N];
        for (wv, start) in weights.iter().zip(tap_start) {
            let src = &plane[row_offset + start + x..row_offset + start + x + N];
            for l in 0..N {
                a[l] = if FUSED { wv.mul_add(src[l], a[l]) } else { a[l] + wv * src[l] };
            }
        }
        let n = if x + N <= out.len() { N } else { width - x };
        epilogue(&mut a, &mut out[x..x + n]);
        x += N;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This CPU's kernel (a plug-in where it has one).
    fn this_cpus<T: Output>(op: &Depthwise, x: Source, out: &mut [T], first: usize, plane: &mut [f32]) {
        (crate::kernels::kernels().depthwise)(op, x, T::dest(out), first, plane)
    }

    /// Direct definition: out[c][y][x] = b[c] + sum over taps of w * x_padded[y*s + ky][x*s + kx].
    fn reference(g: &Geometry, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
        let ([ih, iw], [oh, ow], [kh, kw], [sh, sw]) = (g.in_hw, g.out_hw, g.kernel, g.stride);
        let mut out = vec![0f32; g.channels * oh * ow];
        for c in 0..g.channels {
            for y in 0..oh {
                for xo in 0..ow {
                    let mut acc = b[c];
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let r = (y * sh + ky) as isize - g.pad_before[0] as isize;
                            let col = (xo * sw + kx) as isize - g.pad_before[1] as isize;
                            if r >= 0 && col >= 0 && (r as usize) < ih && (col as usize) < iw {
                                acc += w[(c * kh + ky) * kw + kx] * x[(c * ih + r as usize) * iw + col as usize];
                            }
                        }
                    }
                    out[(c * oh + y) * ow + xo] = acc;
                }
            }
        }
        out
    }

    type Kernel = fn(&Depthwise, Source, Dest, usize, &mut [f32]);

    /// The kernels to hold to the portable loop's bits: this CPU's table (its plug-in where it has one; else the
    /// auto-vectorised loop, compared with itself), and on x86-64 the AVX2 plug-in too where AVX-512's took its place.
    fn kernels_to_check() -> Vec<Kernel> {
        #[allow(unused_mut)]
        let mut kernels: Vec<Kernel> = vec![crate::kernels::kernels().depthwise];
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernels::plug_in_ran;
            let isa = crate::kernels::isa();
            let avx512 =
                plug_in_ran("depthwise (AVX-512 F/BW/VL)", &["avx512f", "avx512bw", "avx512vl"], isa.avx512_bw_vl());
            if plug_in_ran("depthwise (AVX2)", &["avx2", "fma"], isa.avx2_fma()) && avx512 {
                kernels.push(crate::kernels::x86_64::avx2::depthwise::plugged);
            }
        }
        kernels
    }

    #[test]
    fn explicit_vector_code_gives_the_portable_bits() {
        for dw in kernels_to_check() {
            explicit_vector_code_of(dw);
        }
    }

    /// `kernel` on `op`, into `out` of either output type.
    fn with<T: Output>(dw: Kernel, op: &Depthwise, x: Source, out: &mut [T], first: usize, plane: &mut [f32]) {
        dw(op, x, T::dest(out), first, plane)
    }

    fn explicit_vector_code_of(dw: Kernel) {
        let mut seed = 777u32;
        let mut rnd = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let fq = FakeQuant::new(1.0 / 0.02, 3, 0.02, 3);
        // Rows shorter and longer than a vector (and than two, the split into column phases), odd and even left
        // padding, and a stride of 3 (per-value copies).
        for (kernel, stride, pad, in_hw) in [
            ([3, 3], [1, 1], 1, [28, 28]),
            ([3, 3], [2, 2], 1, [15, 9]),
            ([5, 5], [2, 2], 2, [14, 14]),
            ([3, 3], [1, 1], 1, [7, 7]),
            ([3, 3], [2, 2], 1, [6, 71]),
            ([3, 3], [2, 2], 0, [5, 64]),
            ([3, 3], [2, 2], 0, [6, 19]),
            ([3, 3], [1, 1], 1, [4, 12]),
            ([3, 3], [1, 1], 1, [3, 37]),
            ([3, 3], [3, 3], 1, [10, 40]),
            ([3, 3], [2, 2], 1, [9, 16]),
            ([3, 3], [2, 2], 1, [5, 17]),
        ] {
            let padded = [in_hw[0] + 2 * pad, in_hw[1] + 2 * pad];
            let out_hw = [(padded[0] - kernel[0]) / stride[0] + 1, (padded[1] - kernel[1]) / stride[1] + 1];
            let g = Geometry { channels: 5, in_hw, out_hw, kernel, stride, pad_before: [pad; 2], pad_after: [pad; 2] };
            let x: Vec<f32> = (0..5 * in_hw[0] * in_hw[1]).map(|_| rnd() * 4.0).collect();
            let w: Vec<f32> = (0..5 * kernel[0] * kernel[1]).map(|_| rnd()).collect();
            let b: Vec<f32> = (0..5).map(|_| rnd()).collect();
            let cases = [
                (Some((0.0, 6.0)), Some(fq.clone()), None),
                (None, None, None),
                (Some((0.0, 0.3)), None, Some((0.0, 1.5))),
            ];
            for (clip, fake_quant, input_clip) in cases {
                let op = Depthwise {
                    geometry: g.clone(),
                    weights: Arc::new(w.clone()),
                    bias: Arc::new(b.clone()),
                    input_clip,
                    clip,
                    fake_quant,
                    codes_in: None,
                    codes_out: None,
                };
                let mut fast = vec![0f32; 5 * out_hw[0] * out_hw[1]];
                with(dw, &op, Source::Values(&x), &mut fast, 0, &mut vec![0.0; op.plane_len()]);
                let mut portable = vec![0f32; fast.len()];
                op.run_portable(Source::Values(&x), &mut portable, 0, &mut vec![0.0; op.plane_len()]);
                let portable_values = portable.clone();
                let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fast), bits(&portable), "kernel {kernel:?} stride {stride:?} in {in_hw:?}");
                // The same input as u8 codes: the values they stand for give the same bits, both ways.
                let grid = (0.05f32, 100);
                let codes: Vec<u8> =
                    x.iter().map(|v| ((v / grid.0).round() as i32 + grid.1).clamp(0, 255) as u8).collect();
                let values: Vec<f32> = codes.iter().map(|&q| (q as i32 - grid.1) as f32 * grid.0).collect();
                let mut want = vec![0f32; fast.len()];
                op.run_portable(Source::Values(&values), &mut want, 0, &mut vec![0.0; op.plane_len()]);
                let from_codes = op.with_codes_in(grid).unwrap();
                for portable in [false, true] {
                    let mut got = vec![1f32; fast.len()];
                    let scratch = &mut vec![0.0; op.plane_len()];
                    if portable {
                        from_codes.run_portable(Source::Codes(&codes, grid), &mut got, 0, scratch);
                    } else {
                        with(dw, &from_codes, Source::Codes(&codes, grid), &mut got, 0, scratch);
                    }
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "codes, portable {portable}: kernel {kernel:?} stride {stride:?} in {in_hw:?}"
                    );
                }
                // Writing codes: each one, dequantized, is the value written otherwise, bit for bit.
                let Some((writes_codes, (scale, zero_point))) = op.with_codes_out() else { continue };
                for portable in [false, true] {
                    let mut codes = vec![7u8; fast.len()];
                    let scratch = &mut vec![0.0; op.plane_len()];
                    if portable {
                        writes_codes.run_portable(Source::Values(&x), &mut codes, 0, scratch);
                    } else {
                        with(dw, &writes_codes, Source::Values(&x), &mut codes, 0, scratch);
                    }
                    let values: Vec<f32> = codes.iter().map(|&q| (q as i32 - zero_point) as f32 * scale).collect();
                    assert_eq!(
                        bits(&values),
                        bits(&portable_values),
                        "codes out, portable {portable}: kernel {kernel:?} stride {stride:?} in {in_hw:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn matches_the_definition_for_kernels_strides_and_paddings() {
        let mut seed = 12345u32;
        let mut rnd = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for (kernel, stride, pad_before, pad_after, in_hw) in [
            ([3, 3], [1, 1], [1, 1], [1, 1], [9, 11]),
            ([3, 3], [2, 2], [1, 1], [1, 1], [9, 11]),
            ([3, 3], [2, 2], [0, 0], [1, 1], [8, 8]),
            ([5, 5], [2, 2], [2, 2], [2, 2], [13, 7]),
            ([5, 5], [1, 1], [2, 2], [2, 2], [5, 5]),
            ([3, 1], [1, 3], [0, 2], [0, 1], [6, 10]),
        ] {
            let padded = [in_hw[0] + pad_before[0] + pad_after[0], in_hw[1] + pad_before[1] + pad_after[1]];
            let out_hw = [(padded[0] - kernel[0]) / stride[0] + 1, (padded[1] - kernel[1]) / stride[1] + 1];
            let g = Geometry { channels: 3, in_hw, out_hw, kernel, stride, pad_before, pad_after };
            let x: Vec<f32> = (0..3 * in_hw[0] * in_hw[1]).map(|_| rnd()).collect();
            let w: Vec<f32> = (0..3 * kernel[0] * kernel[1]).map(|_| rnd()).collect();
            let b: Vec<f32> = (0..3).map(|_| rnd()).collect();
            let op = Depthwise {
                geometry: g.clone(),
                weights: Arc::new(w.clone()),
                bias: Arc::new(b.clone()),
                input_clip: None,
                clip: Some((0.0, 0.2)),
                fake_quant: None,
                codes_in: None,
                codes_out: None,
            };
            let mut got = vec![0f32; 3 * out_hw[0] * out_hw[1]];
            this_cpus(&op, Source::Values(&x), &mut got, 0, &mut vec![0.0; op.plane_len()]);
            let want = reference(&g, &x, &w, &b);
            for (i, (g, r)) in got.iter().zip(&want).enumerate() {
                let r = r.clamp(0.0, 0.2);
                assert!((g - r).abs() <= 1e-6, "kernel {kernel:?} stride {stride:?} at {i}: {g} vs {r}");
            }
        }
    }
}
