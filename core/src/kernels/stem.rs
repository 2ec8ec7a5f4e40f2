//! The stem convolution's arithmetic: a dense f32 convolution with a spatial kernel over few input channels (an
//! image model's first layer: 3 colour planes in, 3x3 stride 2 out to 32 channels in MobileNetV2), with the clip
//! and fake quantization after it fused into the epilogue.
//!
//! The input channels are copied once into zero-padded planes ([`super::plane`], so every tap reads a contiguous
//! row), and each block of 16 outputs of a row is accumulated over all taps for every output channel in turn, the
//! taps' inputs loaded once per block.

use super::epilogue::{bits, Epilogue};
use super::isa::multiversion;
use super::plane::{Geometry, SLACK};
use super::quant::FakeQuant;
use std::sync::Arc;

/// At most this many taps (input channels x kernel height x kernel width): a block's inputs then fit in vector
/// registers, and larger convolutions are matrix products worth tract's packing.
pub(crate) const MAX_TAPS: usize = 32;

#[derive(Debug, Clone)]
pub struct Stem {
    /// The input's geometry: `channels` is the number of input channels.
    pub(crate) geometry: Geometry,
    pub(crate) out_channels: usize,
    /// `[O][C * kh * kw]`.
    pub(crate) weights: Arc<Vec<f32>>,
    pub(crate) bias: Arc<Vec<f32>>,
    pub(crate) clip: Option<(f32, f32)>,
    pub(crate) fake_quant: Option<FakeQuant>,
}

impl PartialEq for Stem {
    fn eq(&self, other: &Self) -> bool {
        self.geometry == other.geometry
            && self.out_channels == other.out_channels
            && self.weights == other.weights
            && self.bias == other.bias
            && bits(self.clip) == bits(other.clip)
            && self.fake_quant == other.fake_quant
    }
}

impl Eq for Stem {}

impl Stem {
    multiversion!(
        /// Output channels `first..` of the convolution into `output` (those channels, all rows, as many as it has
        /// room for), from `plane`, the input as [`Stem::fill`] wrote it, for the taps [`Stem::tap_start`] gives.
        Stem, fn run_auto => run_portable(plane: &[f32], output: &mut [f32], first: usize, taps: &[usize]));

    /// Values in the zeroed scratch the input planes need: one padded plane per input channel, and SLACK for a
    /// block that overhangs the last row.
    pub(crate) fn plane_len(&self) -> usize {
        self.geometry.channels * self.geometry.channel_plane_len() + SLACK
    }

    /// Where tap t (input channel, then kernel row, then column) of output row y reads: `start[t] + y * row_step`.
    pub(crate) fn tap_start(&self) -> Vec<usize> {
        let per_channel = self.geometry.tap_start();
        let len = self.geometry.channel_plane_len();
        (0..self.geometry.channels).flat_map(|c| per_channel.iter().map(move |t| c * len + t)).collect()
    }

    /// Copies the input (`C x ih x iw`) into its zero-padded planes (zeroed scratch of [`Stem::plane_len`]).
    pub(crate) fn fill(&self, input: &[f32], plane: &mut [f32]) {
        let g = &self.geometry;
        let (len, in_len) = (g.channel_plane_len(), g.in_hw[0] * g.in_hw[1]);
        for (src, dst) in input.chunks_exact(in_len).zip(plane.chunks_exact_mut(len)) {
            g.fill_plane_with(src, dst, |v| v);
        }
    }

    #[inline(always)]
    pub(crate) fn run_portable(&self, plane: &[f32], output: &mut [f32], first: usize, taps: &[usize]) {
        let [oh, ow] = self.geometry.out_hw;
        let step = self.geometry.row_step();
        let epilogue = Epilogue::new(self.clip, self.fake_quant.as_ref());
        for y in 0..oh {
            for x in (0..ow).step_by(16) {
                let width = (ow - x).min(16);
                for (o, out) in output.chunks_exact_mut(oh * ow).enumerate() {
                    let w = &self.weights[(first + o) * taps.len()..(first + o + 1) * taps.len()];
                    let mut acc = [self.bias[first + o]; 16];
                    for (wv, start) in w.iter().zip(taps) {
                        let src = &plane[y * step + start + x..][..16];
                        for l in 0..16 {
                            acc[l] = wv.mul_add(src[l], acc[l]);
                        }
                    }
                    epilogue.apply(&mut acc);
                    out[y * ow + x..][..width].copy_from_slice(&acc[..width]);
                }
            }
        }
    }
}

/// The portable kernel, as [`super::Kernels`] holds it.
pub(crate) fn portable(op: &Stem, plane: &[f32], output: &mut [f32], first: usize) {
    let taps = op.tap_start();
    // Every block's loads stay inside `plane`.
    assert!(op.geometry.last_load(&taps) <= plane.len(), "stem plane too short");
    op.run_auto(plane, output, first, &taps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(seed: &mut u32, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((*seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * scale
            })
            .collect()
    }

    /// Direct definition: out[o][y][x] = b[o] + sum over c, ky, kx of w * x_padded[c][y*s + ky][x*s + kx].
    fn reference(op: &Stem, x: &[f32]) -> Vec<f32> {
        let g = &op.geometry;
        let ([ih, iw], [oh, ow], [kh, kw], [sh, sw]) = (g.in_hw, g.out_hw, g.kernel, g.stride);
        let mut out = vec![0f32; op.out_channels * oh * ow];
        for o in 0..op.out_channels {
            for y in 0..oh {
                for xo in 0..ow {
                    let mut acc = op.bias[o] as f64;
                    for c in 0..g.channels {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let r = (y * sh + ky) as isize - g.pad_before[0] as isize;
                                let col = (xo * sw + kx) as isize - g.pad_before[1] as isize;
                                if r >= 0 && col >= 0 && (r as usize) < ih && (col as usize) < iw {
                                    let w = op.weights[((o * g.channels + c) * kh + ky) * kw + kx] as f64;
                                    acc += w * x[(c * ih + r as usize) * iw + col as usize] as f64;
                                }
                            }
                        }
                    }
                    out[(o * oh + y) * ow + xo] = acc as f32;
                }
            }
        }
        out
    }

    fn stem(
        seed: &mut u32,
        channels: usize,
        out_channels: usize,
        in_hw: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [[usize; 2]; 2],
    ) -> Stem {
        let geometry = Geometry::new(channels, in_hw, kernel, stride, pad[0], pad[1]).unwrap();
        let weights = random(seed, out_channels * channels * kernel[0] * kernel[1], 1.0);
        let bias = random(seed, out_channels, 1.0);
        Stem { geometry, out_channels, weights: Arc::new(weights), bias: Arc::new(bias), clip: None, fake_quant: None }
    }

    type Kernel = fn(&Stem, &[f32], &mut [f32], usize);

    fn convolve(op: &Stem, x: &[f32], portable: bool) -> Vec<f32> {
        let kernel: Kernel = if portable {
            |op, plane, out, first| op.run_portable(plane, out, first, &op.tap_start())
        } else {
            crate::kernels::kernels().stem
        };
        convolve_with(op, x, kernel)
    }

    fn convolve_with(op: &Stem, x: &[f32], kernel: Kernel) -> Vec<f32> {
        let mut plane = vec![0f32; op.plane_len()];
        op.fill(x, &mut plane);
        let [oh, ow] = op.geometry.out_hw;
        let mut out = vec![0f32; op.out_channels * oh * ow];
        // Two halves of the output channels, as two threads would compute them.
        let half = op.out_channels / 2 * oh * ow;
        let (a, b) = out.split_at_mut(half);
        for (chunk, first) in [(a, 0), (b, op.out_channels / 2)] {
            kernel(op, &plane, chunk, first);
        }
        out
    }

    #[test]
    fn matches_the_definition_for_kernels_strides_and_paddings() {
        let mut seed = 4242u32;
        for (c, o, in_hw, kernel, stride, pad) in [
            (3, 32, [224, 224], [3, 3], [2, 2], [[1, 1], [1, 1]]),
            (3, 8, [17, 23], [3, 3], [2, 2], [[0, 0], [1, 1]]),
            (3, 6, [9, 40], [3, 3], [1, 1], [[1, 1], [1, 1]]),
            (1, 4, [15, 15], [5, 5], [2, 2], [[2, 2], [2, 2]]),
            (2, 5, [10, 7], [3, 1], [1, 3], [[0, 2], [0, 1]]),
        ] {
            let op = stem(&mut seed, c, o, in_hw, kernel, stride, pad);
            let x = random(&mut seed, c * in_hw[0] * in_hw[1], 4.0);
            let (got, want) = (convolve(&op, &x, false), reference(&op, &x));
            for (i, (g, r)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - r).abs() <= 1e-5 * (1.0 + r.abs()),
                    "{c}->{o} kernel {kernel:?} stride {stride:?} at {i}: {g} vs {r}"
                );
            }
        }
    }

    /// The kernels to hold to the portable loop's bits: this CPU's table (its plug-in where it has one; else the
    /// auto-vectorised loop, compared with itself), and on x86-64 the AVX2 plug-in too where AVX-512's took its place.
    fn kernels_to_check() -> Vec<Kernel> {
        #[allow(unused_mut)]
        let mut kernels: Vec<Kernel> = vec![crate::kernels::kernels().stem];
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernels::plug_in_ran;
            let isa = crate::kernels::isa();
            let avx512 = plug_in_ran("stem (AVX-512 F)", &["avx512f"], isa.avx512f);
            if plug_in_ran("stem (AVX2)", &["avx2", "fma"], isa.avx2_fma()) && avx512 {
                kernels.push(crate::kernels::x86_64::avx2::stem::plugged);
            }
        }
        kernels
    }

    #[test]
    fn explicit_vector_code_gives_the_portable_bits() {
        for kernel in kernels_to_check() {
            explicit_vector_code_of(kernel);
        }
    }

    fn explicit_vector_code_of(kernel: Kernel) {
        let fq = FakeQuant::new(1.0 / 0.02, 3, 0.02, 3);
        let mut seed = 99u32;
        for in_hw in [[224, 224], [31, 45], [8, 3]] {
            for (clip, fake_quant) in [(None, None), (Some((0.0, 6.0)), None), (Some((0.0, 6.0)), Some(fq.clone()))] {
                let mut op = stem(&mut seed, 3, 10, in_hw, [3, 3], [2, 2], [[1, 1], [1, 1]]);
                (op.clip, op.fake_quant) = (clip, fake_quant);
                let x = random(&mut seed, 3 * in_hw[0] * in_hw[1], 4.0);
                let bits = |v: Vec<f32>| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(convolve_with(&op, &x, kernel)), bits(convolve(&op, &x, true)), "{in_hw:?}");
            }
        }
    }
}
