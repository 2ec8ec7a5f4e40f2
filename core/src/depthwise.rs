//! Our depthwise convolution for tract: f32, channels first, any kernel size, padding and stride (no dilation),
//! with the clip (ReLU/ReLU6) and activation fake-quantization that follow it fused in.
//!
//! tract's own DepthWiseConv walks its taps through a generic zone scanner, then a separate pass clips and a third
//! quantizes: about 8 ms of the default MobileNetV2's 19 ms. Here each channel is copied once into a zero-padded
//! plane (split into column phases when strided, so every tap reads a contiguous row), each output row is
//! accumulated tap by tap in a small buffer that stays in L1, and the epilogue (clip, fake quantization) runs on
//! that buffer before it is stored. [`swap_in`] replaces tract's Conv nodes by this op before tract optimises.

use crate::fakequant::FakeQuant;
use crate::simd::{clamp, eval_into, Output};
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Extra values at the end of the padded plane, so that a block of 16 lanes may overhang the last row.
pub(crate) const SLACK: usize = 16;

/// Geometry of one convolution over `[1, C, H, W]` or `[C, H, W]`, and its zero-padded, column-phase-split input
/// planes (one per input channel), which the stem convolution ([`crate::stem`]) reads too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub channels: usize,
    pub in_hw: [usize; 2],
    pub out_hw: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Zeros before (top, left) and after (bottom, right) the input.
    pub pad_before: [usize; 2],
    pub pad_after: [usize; 2],
}

impl std::fmt::Display for Geometry {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let g = self;
        write!(f, "{} channels {:?} -> {:?}, kernel {:?} stride {:?} pad {:?}/{:?}", g.channels, g.in_hw, g.out_hw, g.kernel, g.stride, g.pad_before, g.pad_after)
    }
}

impl Geometry {
    /// The geometry of a convolution with these parameters, with its output size; `None` when the padded input is
    /// smaller than the kernel.
    pub fn new(channels: usize, in_hw: [usize; 2], kernel: [usize; 2], stride: [usize; 2], pad_before: [usize; 2], pad_after: [usize; 2]) -> Option<Geometry> {
        let padded = [in_hw[0] + pad_before[0] + pad_after[0], in_hw[1] + pad_before[1] + pad_after[1]];
        if padded[0] < kernel[0] || padded[1] < kernel[1] {
            return None;
        }
        let out_hw = [(padded[0] - kernel[0]) / stride[0] + 1, (padded[1] - kernel[1]) / stride[1] + 1];
        Some(Geometry { channels, in_hw, out_hw, kernel, stride, pad_before, pad_after })
    }

    /// Width of one column phase of the padded plane (the padded width split `stride` ways).
    fn phase_width(&self) -> usize {
        (self.in_hw[1] + self.pad_before[1] + self.pad_after[1]).div_ceil(self.stride[1])
    }

    fn padded_height(&self) -> usize {
        self.in_hw[0] + self.pad_before[0] + self.pad_after[0]
    }

    /// Values in one channel's padded plane, all its column phases.
    pub fn channel_plane_len(&self) -> usize {
        self.stride[1] * self.padded_height() * self.phase_width()
    }

    /// Plane values between the starts of two output rows.
    pub fn row_step(&self) -> usize {
        self.phase_width() * self.stride[0]
    }

    /// One past the last plane value that a pass over every output row in blocks of 16 loads, for taps starting at
    /// `tap_start`: a block starts before its row's end and overhangs it by at most 15 values (read from the next
    /// row, the next plane or the SLACK).
    pub fn last_load(&self, tap_start: &[usize]) -> usize {
        let [oh, ow] = self.out_hw;
        (oh - 1) * self.row_step() + tap_start.iter().max().unwrap_or(&0) + ow.div_ceil(16) * 16
    }

    /// Where tap (ky, kx) of output row y reads in a channel's plane: `tap_start[ky * kw + kx] + y * row_step`.
    pub fn tap_start(&self) -> Vec<usize> {
        let ([kh, kw], sw, ph, pw) = (self.kernel, self.stride[1], self.padded_height(), self.phase_width());
        (0..kh * kw).map(|t| ((t % kw % sw) * ph + t / kw) * pw + (t % kw) / sw).collect()
    }

    /// Copies one channel `src` (`ih x iw`) into its zero-padded plane, each value through `f`: column phase p holds
    /// padded columns p, p + sw, p + 2 sw, ... (the padding itself stays zero: only the interior is ever written).
    #[inline(always)]
    pub fn fill_plane_with<T: Copy>(&self, src: &[T], plane: &mut [f32], f: impl Fn(T) -> f32) {
        let g = self;
        let (iw, sw) = (g.in_hw[1], g.stride[1]);
        let (pw, ph) = (g.phase_width(), g.padded_height());
        for (r, row) in src.chunks_exact(iw).enumerate() {
            let r = r + g.pad_before[0];
            if sw == 1 {
                let start = r * pw + g.pad_before[1];
                for (dst, v) in plane[start..start + iw].iter_mut().zip(row) {
                    *dst = f(*v);
                }
            } else if sw == 2 {
                // Column j goes to phase (j + pad_left) % 2 at (j + pad_left) / 2: split the row in pairs.
                let pl = g.pad_before[1];
                let (even, odd) = plane.split_at_mut(ph * pw);
                let (even, odd) = (&mut even[r * pw..(r + 1) * pw], &mut odd[r * pw..(r + 1) * pw]);
                let mut j = 0;
                if pl % 2 == 1 {
                    odd[pl / 2] = f(row[0]);
                    j = 1;
                }
                let k0 = (j + pl) / 2;
                let pairs = row[j..].chunks_exact(2);
                let rest = pairs.remainder();
                let n = (iw - j) / 2;
                for ((pair, e), o) in pairs.zip(&mut even[k0..k0 + n]).zip(&mut odd[k0..k0 + n]) {
                    *e = f(pair[0]);
                    *o = f(pair[1]);
                }
                if let [last] = rest {
                    even[k0 + n] = f(*last);
                }
            } else {
                // Phase p takes input columns j with (j + pad_left) % sw == p, starting at k = (j + pad_left) / sw.
                for p in 0..sw {
                    let first = (p + sw - g.pad_before[1] % sw) % sw;
                    if first >= iw {
                        continue;
                    }
                    let k0 = (first + g.pad_before[1]) / sw;
                    let start = (p * ph + r) * pw + k0;
                    for (dst, v) in plane[start..start + pw - k0].iter_mut().zip(row[first..].iter().step_by(sw)) {
                        *dst = f(*v);
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Depthwise {
    geometry: Geometry,
    /// `[C][kh * kw]`.
    weights: Arc<Vec<f32>>,
    bias: Arc<Vec<f32>>,
    /// A clip of the input (the Max/Min after the previous operator, when only this convolution reads it), applied
    /// while the input is copied into the padded plane: the padding stays zero, as the convolution pads the
    /// clipped values.
    input_clip: Option<(f32, f32)>,
    clip: Option<(f32, f32)>,
    fake_quant: Option<FakeQuant>,
    /// The input as u8 codes of this grid `(scale, zero point)`, not f32 values: from an int8 pointwise
    /// convolution that writes them for this convolution alone ([`crate::handover`]).
    codes_in: Option<(f32, i32)>,
    /// The output as u8 codes of its fake quantization's grid (its zero point here), for an int8 pointwise
    /// convolution that alone reads it ([`crate::handover`]).
    codes_out: Option<i32>,
}

/// A depthwise convolution's input: f32 values, or u8 codes `q` of the values `(q - zero point) * scale`.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    Values(&'a [f32]),
    Codes(&'a [u8], (f32, i32)),
}

impl<'a> Source<'a> {
    /// Its elements `range`.
    fn slice(self, range: std::ops::Range<usize>) -> Source<'a> {
        match self {
            Source::Values(x) => Source::Values(&x[range]),
            Source::Codes(x, grid) => Source::Codes(&x[range], grid),
        }
    }
}

/// Clip bounds compared by their bits (NaN-safe, as `Eq` needs).
pub(crate) fn bits(clip: Option<(f32, f32)>) -> Option<(u32, u32)> {
    clip.map(|(a, b)| (a.to_bits(), b.to_bits()))
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
    /// Convolves channels `first..` of the tensor: `input` and `output` hold those channels (channels first,
    /// batch 1), as many as `output` has room for. `plane` is zeroed scratch of [`Self::plane_len`] values.
    pub(crate) fn run<T: Output>(&self, input: Source, output: &mut [T], first: usize, plane: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU has AVX-512 F, BW and VL.
            return unsafe { avx512::run(self, input, output, first, plane) };
        }
        self.run_auto(input, output, first, plane)
    }

    /// [`Self::run`] without explicit vector code, compiled for the widest vector unit this CPU has (as
    /// [`crate::simd::simd_dispatch`] does, for any output type).
    fn run_auto<T: Output>(&self, input: Source, output: &mut [T], first: usize, plane: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            fn avx512<T: Output>(op: &Depthwise, input: Source, output: &mut [T], first: usize, plane: &mut [f32]) {
                op.run_portable(input, output, first, plane)
            }
            #[target_feature(enable = "avx2,fma")]
            fn avx2<T: Output>(op: &Depthwise, input: Source, output: &mut [T], first: usize, plane: &mut [f32]) {
                op.run_portable(input, output, first, plane)
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has the feature the function was compiled for.
                return unsafe { avx512(self, input, output, first, plane) };
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: as above.
                return unsafe { avx2(self, input, output, first, plane) };
            }
        }
        self.run_portable(input, output, first, plane)
    }

    /// Length of the zeroed scratch `run` needs for its padded plane.
    fn plane_len(&self) -> usize {
        self.geometry.channel_plane_len() + SLACK
    }

    /// Copies one channel `src` into its zero-padded plane ([`Geometry::fill_plane_with`]), codes dequantized,
    /// clipped when the input clip says.
    #[inline(always)]
    fn fill_plane(&self, src: Source, plane: &mut [f32]) {
        let (lo, hi) = self.input_clip.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let clip = self.input_clip.is_some();
        match src {
            Source::Values(x) if clip => self.geometry.fill_plane_with(x, plane, |v| clamp(v, lo, hi)),
            Source::Values(x) => self.geometry.fill_plane_with(x, plane, |v| v),
            Source::Codes(x, (scale, zero_point)) => self.geometry.fill_plane_with(x, plane, |q| {
                let v = (q as i32 - zero_point) as f32 * scale;
                if clip { clamp(v, lo, hi) } else { v }
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

    /// [`Self::run`] over the output channels split between the call's threads.
    fn run_chunks<T: Output>(&self, xs: Source, out: &mut [T]) {
        let g = &self.geometry;
        let (in_len, out_len) = (g.in_hw[0] * g.in_hw[1], g.out_hw[0] * g.out_hw[1]);
        crate::parallel::for_each_chunk(out, out_len, 1, |first, chunk| {
            let n = chunk.len() / out_len;
            crate::parallel::with_zeroed_floats(self.plane_len(), |plane| self.run(xs.slice(first * in_len..(first + n) * in_len), chunk, first, plane))
        })
    }

    #[inline(always)]
    fn run_portable<T: Output>(&self, input: Source, output: &mut [T], first: usize, plane: &mut [f32]) {
        let g = &self.geometry;
        let ([ih, iw], [oh, ow], [kh, kw]) = (g.in_hw, g.out_hw, g.kernel);
        // Clip, then fake quantization, on a block of accumulated outputs while it is still in registers.
        let epilogue = crate::simd::Epilogue::new(self.clip, self.fake_quant.as_ref());
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

    /// The fake quantization fused into this convolution's output, if any.
    pub fn fake_quant(&self) -> Option<&FakeQuant> {
        self.fake_quant.as_ref()
    }

    fn output_shape(&self, input_rank: usize) -> TVec<usize> {
        let g = &self.geometry;
        let mut shape: TVec<usize> = tvec![g.channels, g.out_hw[0], g.out_hw[1]];
        if input_rank == 4 {
            shape.insert(0, 1);
        }
        shape
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
                a[l] += wv * src[l];
            }
        }
        let n = if x + N <= out.len() { N } else { width - x };
        epilogue(&mut a, &mut out[x..x + n]);
        x += N;
    }
}

/// The same computation as [`Depthwise::run_portable`] (same operations in the same order, so the same bits),
/// written with AVX-512 intrinsics: two output rows per pass, 16 outputs per register, the epilogue on the
/// accumulators, masked stores at row ends (no overhang into the next row).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Depthwise, Geometry, Output, Source};
    use crate::simd::avx512::Epilogue;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn run<T: Output>(op: &Depthwise, input: Source, output: &mut [T], first: usize, plane: &mut [f32]) {
        let g = &op.geometry;
        let ([ih, iw], [oh, ow], [kh, kw]) = (g.in_hw, g.out_hw, g.kernel);
        let (row_step, taps) = (g.row_step(), kh * kw);
        let tap_start = g.tap_start();
        let epilogue = Epilogue::new(op.clip, op.fake_quant.as_ref());
        let zero_point = _mm512_set1_epi32(op.codes_out.unwrap_or(0));
        // Every load stays inside `plane`.
        assert!(g.last_load(&tap_start) <= plane.len(), "depthwise plane too short");
        // 3x3 kernels (every depthwise convolution of MobileNet-like models): the taps and broadcast weights in
        // fixed-size arrays, so that the tap loop is unrolled and the weights stay in registers.
        let tap_start_3x3: Option<[usize; 9]> = tap_start.as_slice().try_into().ok();
        // The input clip and the codes' grid, broadcast once.
        let (lo, hi) = op.input_clip.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let (clip, lo, hi) = (op.input_clip.is_some(), _mm512_set1_ps(lo), _mm512_set1_ps(hi));
        let clip = |v| if clip { crate::simd::avx512::clamp(v, lo, hi) } else { v };
        let (scale, codes_zero_point) = match input {
            Source::Codes(_, (scale, zero_point)) => (scale, zero_point),
            Source::Values(_) => (1.0, 0),
        };
        let (scale, codes_zero_point) = (_mm512_set1_ps(scale), _mm512_set1_epi32(codes_zero_point));
        for c in 0..output.len() / (oh * ow) {
            match input.slice(c * ih * iw..(c + 1) * ih * iw) {
                // Strides beyond 2 (no model we know has them): the portable fill.
                src if g.stride[1] > 2 => op.fill_plane(src, plane),
                Source::Values(x) => fill_plane(g, |i, n| _mm512_maskz_loadu_ps(mask(n), x[i..i + n].as_ptr()), plane, clip),
                Source::Codes(x, _) => {
                    let load = |i, n| _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(bytes16(x, i, n)), codes_zero_point)), scale);
                    fill_plane(g, load, plane, clip)
                }
            }
            let w = &op.weights[(first + c) * taps..(first + c + 1) * taps];
            let bias = _mm512_set1_ps(op.bias[first + c]);
            let out = &mut output[c * oh * ow..(c + 1) * oh * ow];
            match tap_start_3x3 {
                Some(starts) => {
                    let wv: [__m512; 9] = std::array::from_fn(|t| _mm512_set1_ps(w[t]));
                    let channel = Channel { plane, row_step, ow, weights: &wv, tap_start: &starts, bias, epilogue: &epilogue, zero_point };
                    channel.run(oh, out);
                }
                None => {
                    let wv: Vec<__m512> = w.iter().map(|v| _mm512_set1_ps(*v)).collect();
                    let channel = Channel { plane, row_step, ow, weights: &wv, tap_start: &tap_start, bias, epilogue: &epilogue, zero_point };
                    channel.run(oh, out);
                }
            }
        }
    }

    /// A mask of the first `n` (at most 16) lanes.
    fn mask(n: usize) -> u16 {
        ((1u32 << n.min(16)) - 1) as u16
    }

    /// Codes `i..i + n` of `x` (n at most 16) in a vector's first bytes, zeros after them.
    #[inline(always)]
    unsafe fn bytes16(x: &[u8], i: usize, n: usize) -> __m128i {
        _mm_maskz_loadu_epi8(mask(n), x[i..i + n].as_ptr() as *const i8)
    }

    /// [`Geometry::fill_plane_with`] in vectors, for a stride of 1 or 2: `load(i, n)` gives the channel's values
    /// `i..i + n` (n at most 16, lanes after them ignored), which go through `f` into each row of the plane 16 at a
    /// time (32 when split into two column phases), with masked stores at the row's end. The same values; the
    /// padding stays as it was. Filled value by value, a small plane took as long to fill as to convolve (the
    /// 14x14 and 7x7 planes of MobileNetV2's last blocks).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn fill_plane(g: &Geometry, load: impl Fn(usize, usize) -> __m512, plane: &mut [f32], f: impl Fn(__m512) -> __m512) {
        let ([ih, iw], sw) = (g.in_hw, g.stride[1]);
        assert!(sw <= 2 && plane.len() >= g.channel_plane_len(), "depthwise plane too short, or a stride beyond 2");
        let (pw, ph, [top, left]) = (g.phase_width(), g.padded_height(), g.pad_before);
        let plane = plane.as_mut_ptr();
        if sw == 1 {
            for r in 0..ih {
                let d = plane.add((r + top) * pw + left);
                for j in (0..iw).step_by(16) {
                    let n = (iw - j).min(16);
                    _mm512_mask_storeu_ps(d.add(j), mask(n), f(load(r * iw + j, n)));
                }
            }
            return;
        }
        // Column j goes to phase (j + left) % 2 at (j + left) / 2: the even columns of a row to one phase from
        // left / 2 on, the odd ones to the other from (left + 1) / 2 on.
        let (even_idx, odd_idx) = (_mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31));
        let (even_phase, odd_phase) = (left % 2, (left + 1) % 2);
        for r in 0..ih {
            let even = plane.add((even_phase * ph + r + top) * pw + left / 2);
            let odd = plane.add((odd_phase * ph + r + top) * pw + (left + 1) / 2);
            for j in (0..iw).step_by(32) {
                let n = iw - j;
                let lo = load(r * iw + j, n.min(16));
                let hi = if n > 16 { load(r * iw + j + 16, (n - 16).min(16)) } else { _mm512_setzero_ps() };
                let (e, o) = (_mm512_permutex2var_ps(lo, even_idx, hi), _mm512_permutex2var_ps(lo, odd_idx, hi));
                _mm512_mask_storeu_ps(even.add(j / 2), mask(n.div_ceil(2)), f(e));
                _mm512_mask_storeu_ps(odd.add(j / 2), mask(n / 2), f(o));
            }
        }
    }

    /// One channel's convolution: its padded plane, broadcast weights and bias, and where each tap reads.
    struct Channel<'a> {
        plane: &'a [f32],
        /// Plane values between the starts of two output rows.
        row_step: usize,
        ow: usize,
        weights: &'a [__m512],
        tap_start: &'a [usize],
        bias: __m512,
        epilogue: &'a Epilogue,
        /// Of the output codes, when it writes codes.
        zero_point: __m512i,
    }

    impl Channel<'_> {
        /// All `oh` output rows into `out` (the channel's `oh x ow` values), two at a time.
        #[inline(always)]
        unsafe fn run<T: Output>(&self, oh: usize, out: &mut [T]) {
            let mut y = 0;
            while y + 2 <= oh {
                self.rows::<2, T>(y, out);
                y += 2;
            }
            if y < oh {
                self.rows::<1, T>(y, out);
            }
        }

        /// Output rows `y..y + R`, in blocks of 16.
        #[inline(always)]
        unsafe fn rows<const R: usize, T: Output>(&self, y: usize, out: &mut [T]) {
            let (base, ow) = (self.plane.as_ptr(), self.ow);
            let mut x = 0;
            while x < ow {
                let mut acc = [self.bias; R];
                for (wv, start) in self.weights.iter().zip(self.tap_start) {
                    let wv = *wv;
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let src = _mm512_loadu_ps(base.add((y + r) * self.row_step + start + x));
                        *acc = _mm512_add_ps(*acc, _mm512_mul_ps(wv, src));
                    }
                }
                let width = (ow - x).min(16);
                let mask = ((1u32 << width) - 1) as u16;
                for (r, acc) in acc.iter().enumerate() {
                    let dst = out.as_mut_ptr().add((y + r) * ow + x);
                    if T::CODES {
                        _mm512_mask_cvtusepi32_storeu_epi8(dst as *mut i8, mask, self.epilogue.code(*acc, self.zero_point));
                    } else {
                        _mm512_mask_storeu_ps(dst as *mut f32, mask, self.epilogue.apply(*acc));
                    }
                }
                x += 16;
            }
        }
    }
}

impl Op for Depthwise {
    fn name(&self) -> StaticName {
        "SnakeidDepthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{}, input clip {:?}, clip {:?}, fake quant {}", self.geometry, self.input_clip, self.clip, self.fake_quant.is_some())])
    }

    op_as_typed_op!();
}

impl EvalOp for Depthwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let g = &self.geometry;
        ensure!(inputs[0].len() == g.channels * g.in_hw[0] * g.in_hw[1], "SnakeidDepthwise: input of {} values", inputs[0].len());
        let shape = self.output_shape(inputs[0].rank());
        match (self.codes_in, self.codes_out) {
            (None, None) => eval_into::<f32, f32>(&inputs[0], &shape, |xs, out| self.run_chunks(Source::Values(xs), out)),
            (None, Some(_)) => eval_into::<f32, u8>(&inputs[0], &shape, |xs, out| self.run_chunks(Source::Values(xs), out)),
            (Some(grid), None) => eval_into::<u8, f32>(&inputs[0], &shape, |xs, out| self.run_chunks(Source::Codes(xs, grid), out)),
            (Some(grid), Some(_)) => eval_into::<u8, u8>(&inputs[0], &shape, |xs, out| self.run_chunks(Source::Codes(xs, grid), out)),
        }
    }
}

impl TypedOp for Depthwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let takes = if self.codes_in.is_some() { u8::datum_type() } else { f32::datum_type() };
        ensure!(inputs[0].datum_type == takes, "SnakeidDepthwise takes {takes:?}");
        let shape = self.output_shape(inputs[0].rank());
        Ok(tvec!(if self.codes_out.is_some() { u8::fact(shape) } else { f32::fact(shape) }))
    }

    as_op!();
}

/// The depthwise geometry of a tract Conv node, if it is one we run: f32, groups = input = output channels,
/// channels first with batch 1, concrete shape, explicit or no padding, no dilation, constant weights and bias.
/// A 2-D float Conv that our convolution operators can replace: no quantization parameters, an OIHW kernel given
/// as an input with the bias, unit dilations, explicit (or no) padding, no zero-sized kernel or stride.
pub(crate) struct PlainConv<'a> {
    pub conv: &'a Conv,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad_before: [usize; 2],
    pub pad_after: [usize; 2],
}

/// `node` as a [`PlainConv`], when it is one.
pub(crate) fn plain_conv(node: &TypedNode) -> Option<PlainConv<'_>> {
    let conv = node.op_as::<Conv>()?;
    let spec = &conv.pool_spec;
    if conv.q_params.is_some() || conv.kernel_fmt != KernelFormat::OIHW || node.inputs.len() != 3 || spec.kernel_shape.len() != 2 {
        return None;
    }
    if spec.dilations.as_ref().is_some_and(|d| d.iter().any(|d| *d != 1)) {
        return None;
    }
    let (pad_before, pad_after) = match &spec.padding {
        PaddingSpec::Valid => ([0, 0], [0, 0]),
        PaddingSpec::Explicit(b, a) if b.len() == 2 && a.len() == 2 => ([b[0], b[1]], [a[0], a[1]]),
        _ => return None,
    };
    let kernel = [spec.kernel_shape[0], spec.kernel_shape[1]];
    let stride = spec.strides.as_ref().map(|s| [s[0], s[1]]).unwrap_or([1, 1]);
    if stride.contains(&0) || kernel.contains(&0) {
        return None;
    }
    Some(PlainConv { conv, kernel, stride, pad_before, pad_after })
}

/// A Conv's input as channels and height x width, when it is f32, batch 1, channels first, of concrete shape.
pub(crate) fn f32_input(model: &TypedModel, node: &TypedNode, conv: &Conv) -> Option<(usize, [usize; 2])> {
    let fact = model.outlet_fact(node.inputs[0]).ok()?;
    let shape: Vec<usize> = fact.shape.as_concrete()?.to_vec();
    let (c, in_hw) = match (conv.pool_spec.data_format, shape.as_slice()) {
        (DataFormat::NCHW, [1, c, h, w]) | (DataFormat::CHW, [c, h, w]) => (*c, [*h, *w]),
        _ => return None,
    };
    (fact.datum_type == f32::datum_type()).then_some((c, in_hw))
}

fn depthwise_of(model: &TypedModel, node: &TypedNode) -> Option<(Geometry, Vec<f32>, Vec<f32>)> {
    let PlainConv { conv, kernel, stride, pad_before, pad_after } = plain_conv(node)?;
    let spec = &conv.pool_spec;
    if conv.group != spec.input_channels || conv.group != spec.output_channels {
        return None;
    }
    let (c, in_hw) = f32_input(model, node, conv)?;
    if c != conv.group {
        return None;
    }
    let geometry = Geometry::new(c, in_hw, kernel, stride, pad_before, pad_after)?;
    let konst = |i: usize| crate::epilogue::constant_f32(model, node.inputs[i]);
    let (weights, bias) = (konst(1)?, konst(2)?);
    let bias = match bias.len() {
        1 => vec![bias[0]; c],
        n if n == c => bias,
        _ => return None,
    };
    if weights.len() != c * kernel[0] * kernel[1] {
        return None;
    }
    Some((geometry, weights, bias))
}

/// Replaces every depthwise Conv of a typed or decluttered model (and the Max/Min clip, QuantizeLinear and
/// DequantizeLinear that follow it, when each is the previous one's only consumer) by one [`Depthwise`].
/// Returns how many it replaced.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    let mut swapped = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some((geometry, weights, bias)) = depthwise_of(model, node) else { continue };
        let Some(tail) = crate::epilogue::tail_after(model, id) else { continue };
        let (source, input_clip) = match crate::epilogue::clip_before(model, node.inputs[0]) {
            Some((source, bounds)) => (source, Some(bounds)),
            None => (node.inputs[0], None),
        };
        let op = Depthwise { geometry, weights: Arc::new(weights), bias: Arc::new(bias), input_clip, clip: tail.clip, fake_quant: tail.fake_quant, codes_in: None, codes_out: None };
        let mut patch = TypedModelPatch::default();
        let tap = patch.tap_model(model, source)?;
        let out = patch.wire_node(format!("{}.snakeid_depthwise", model.node(id).name), op, &[tap])?[0];
        patch.shunt_outside(model, OutletId::new(tail.last, 0), out)?;
        patch.apply(model)?;
        swapped += 1;
    }
    model.compact()?;
    Ok(swapped)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn explicit_vector_code_gives_the_portable_bits() {
        let mut seed = 777u32;
        let mut rnd = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearU8};
        let fq = FakeQuant::new(&QuantizeLinearU8 { scale: 1.0 / 0.02, zero_point: 3 }, &DequantizeLinearF32 { scale: 0.02, zero_point: 3 });
        // Rows shorter and longer than a vector (and than two, the split into column phases), odd and even left
        // padding, and a stride of 3 (per-value copies).
        for (kernel, stride, pad, in_hw) in [
            ([3, 3], [1, 1], 1, [28, 28]),
            ([3, 3], [2, 2], 1, [15, 9]),
            ([5, 5], [2, 2], 2, [14, 14]),
            ([3, 3], [1, 1], 1, [7, 7]),
            ([3, 3], [2, 2], 1, [6, 71]),
            ([3, 3], [2, 2], 0, [5, 64]),
            ([3, 3], [1, 1], 1, [3, 37]),
            ([3, 3], [3, 3], 1, [10, 40]),
        ] {
            let padded = [in_hw[0] + 2 * pad, in_hw[1] + 2 * pad];
            let out_hw = [(padded[0] - kernel[0]) / stride[0] + 1, (padded[1] - kernel[1]) / stride[1] + 1];
            let g = Geometry { channels: 5, in_hw, out_hw, kernel, stride, pad_before: [pad; 2], pad_after: [pad; 2] };
            let x: Vec<f32> = (0..5 * in_hw[0] * in_hw[1]).map(|_| rnd() * 4.0).collect();
            let w: Vec<f32> = (0..5 * kernel[0] * kernel[1]).map(|_| rnd()).collect();
            let b: Vec<f32> = (0..5).map(|_| rnd()).collect();
            let cases = [(Some((0.0, 6.0)), Some(fq.clone()), None), (None, None, None), (Some((0.0, 0.3)), None, Some((0.0, 1.5)))];
            for (clip, fake_quant, input_clip) in cases {
                let op = Depthwise { geometry: g.clone(), weights: Arc::new(w.clone()), bias: Arc::new(b.clone()), input_clip, clip, fake_quant, codes_in: None, codes_out: None };
                let mut fast = vec![0f32; 5 * out_hw[0] * out_hw[1]];
                op.run(Source::Values(&x), &mut fast, 0, &mut vec![0.0; op.plane_len()]);
                let mut portable = vec![0f32; fast.len()];
                op.run_portable(Source::Values(&x), &mut portable, 0, &mut vec![0.0; op.plane_len()]);
                let portable_values = portable.clone();
                let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fast), bits(&portable), "kernel {kernel:?} stride {stride:?} in {in_hw:?}");
                // The same input as u8 codes: the values they stand for give the same bits, both ways.
                let grid = (0.05f32, 100);
                let codes: Vec<u8> = x.iter().map(|v| ((v / grid.0).round() as i32 + grid.1).clamp(0, 255) as u8).collect();
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
                        from_codes.run(Source::Codes(&codes, grid), &mut got, 0, scratch);
                    }
                    assert_eq!(bits(&got), bits(&want), "codes, portable {portable}: kernel {kernel:?} stride {stride:?} in {in_hw:?}");
                }
                // Writing codes: each one, dequantized, is the value written otherwise, bit for bit.
                let Some((writes_codes, (scale, zero_point))) = op.with_codes_out() else { continue };
                for portable in [false, true] {
                    let mut codes = vec![7u8; fast.len()];
                    let scratch = &mut vec![0.0; op.plane_len()];
                    if portable {
                        writes_codes.run_portable(Source::Values(&x), &mut codes, 0, scratch);
                    } else {
                        writes_codes.run(Source::Values(&x), &mut codes, 0, scratch);
                    }
                    let values: Vec<f32> = codes.iter().map(|&q| (q as i32 - zero_point) as f32 * scale).collect();
                    assert_eq!(bits(&values), bits(&portable_values), "codes out, portable {portable}: kernel {kernel:?} stride {stride:?} in {in_hw:?}");
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
            let op = Depthwise { geometry: g.clone(), weights: Arc::new(w.clone()), bias: Arc::new(b.clone()), input_clip: None, clip: Some((0.0, 0.2)), fake_quant: None, codes_in: None, codes_out: None };
            let mut got = vec![0f32; 3 * out_hw[0] * out_hw[1]];
            op.run(Source::Values(&x), &mut got, 0, &mut vec![0.0; op.plane_len()]);
            let want = reference(&g, &x, &w, &b);
            for (i, (g, r)) in got.iter().zip(&want).enumerate() {
                let r = r.clamp(0.0, 0.2);
                assert!((g - r).abs() <= 1e-6, "kernel {kernel:?} stride {stride:?} at {i}: {g} vs {r}");
            }
        }
    }
}
