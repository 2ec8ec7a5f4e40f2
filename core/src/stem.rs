//! Our stem convolution for tract: a dense f32 convolution with a spatial kernel over few input channels (an image
//! model's first layer: 3 colour planes in, 3x3 stride 2 out to 32 channels in MobileNetV2), with the clip and
//! fake quantization after it fused in.
//!
//! tract runs it as an im2col matrix product of 27-value rows: 1.3 ms, a quarter of the default model's
//! inference on one thread, and slower on two. Here the input channels are copied once into zero-padded planes
//! split into column phases (as [`crate::depthwise`] does, so every tap reads a contiguous row), and each block of
//! 16 outputs of a row is accumulated over all taps for every output channel in turn, the taps' inputs loaded
//! once per block. [`swap_in`] replaces tract's Conv nodes by this op before tract optimises.

use crate::depthwise::{bits, f32_input, plain_conv, Geometry, PlainConv, SLACK};
use crate::fakequant::FakeQuant;
use crate::simd::{eval_f32_into, simd_dispatch};
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// At most this many taps (input channels x kernel height x kernel width): a block's inputs then fit in vector
/// registers, and larger convolutions are matrix products worth tract's packing.
const MAX_TAPS: usize = 32;

#[derive(Debug, Clone)]
pub struct Stem {
    /// The input's geometry: `channels` is the number of input channels.
    geometry: Geometry,
    out_channels: usize,
    /// `[O][C * kh * kw]`.
    weights: Arc<Vec<f32>>,
    bias: Arc<Vec<f32>>,
    clip: Option<(f32, f32)>,
    fake_quant: Option<FakeQuant>,
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
    /// Output channels `first..` of the convolution into `output` (those channels, all rows, as many as it has
    /// room for), from `plane`, the input as [`Stem::fill`] wrote it.
    pub fn run(&self, plane: &[f32], output: &mut [f32], first: usize) {
        let taps = self.tap_start();
        // Every block's loads stay inside `plane`.
        assert!(self.geometry.last_load(&taps) <= plane.len(), "stem plane too short");
        #[cfg(target_arch = "x86_64")]
        if let Ok(taps) = <[usize; 27]>::try_from(taps.as_slice()) {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512 F; the plane holds every block's loads (checked above).
                return unsafe { avx512::run(self, &taps, plane, output, first) };
            }
        }
        self.run_auto(plane, output, first, &taps)
    }

    simd_dispatch!(
        /// [`Self::run`] without explicit vector code, compiled for the widest vector unit this CPU has.
        Stem, run_auto => run_portable(plane: &[f32], output: &mut [f32], first: usize, taps: &[usize]));

    /// Values in the zeroed scratch the input planes need: one padded plane per input channel, and SLACK for a
    /// block that overhangs the last row.
    pub fn plane_len(&self) -> usize {
        self.geometry.channels * self.geometry.channel_plane_len() + SLACK
    }

    /// Where tap t (input channel, then kernel row, then column) of output row y reads: `start[t] + y * row_step`.
    fn tap_start(&self) -> Vec<usize> {
        let per_channel = self.geometry.tap_start();
        let len = self.geometry.channel_plane_len();
        (0..self.geometry.channels).flat_map(|c| per_channel.iter().map(move |t| c * len + t)).collect()
    }

    /// Copies the input (`C x ih x iw`) into its zero-padded planes (zeroed scratch of [`Stem::plane_len`]).
    pub fn fill(&self, input: &[f32], plane: &mut [f32]) {
        let g = &self.geometry;
        let (len, in_len) = (g.channel_plane_len(), g.in_hw[0] * g.in_hw[1]);
        for (src, dst) in input.chunks_exact(in_len).zip(plane.chunks_exact_mut(len)) {
            g.fill_plane_with(src, dst, |v| v);
        }
    }

    #[inline(always)]
    fn run_portable(&self, plane: &[f32], output: &mut [f32], first: usize, taps: &[usize]) {
        let [oh, ow] = self.geometry.out_hw;
        let step = self.geometry.row_step();
        let epilogue = crate::simd::Epilogue::new(self.clip, self.fake_quant.as_ref());
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

    fn output_shape(&self, input_rank: usize) -> TVec<usize> {
        let [oh, ow] = self.geometry.out_hw;
        let mut shape: TVec<usize> = tvec![self.out_channels, oh, ow];
        if input_rank == 4 {
            shape.insert(0, 1);
        }
        shape
    }
}

/// [`Stem::run_portable`] for 27 taps (3 channels, 3x3), with AVX-512 intrinsics: a block's 27 inputs loaded once
/// into registers, then each output channel's fused multiply-adds over them (same operations in the same order,
/// so the same bits), masked stores at row ends.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Stem;
    use crate::simd::avx512::Epilogue;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn run(op: &Stem, taps: &[usize; 27], plane: &[f32], output: &mut [f32], first: usize) {
        let [oh, ow] = op.geometry.out_hw;
        let step = op.geometry.row_step();
        let epilogue = Epilogue::new(op.clip, op.fake_quant.as_ref());
        let n = output.len() / (oh * ow);
        let (weights, bias) = (&op.weights[first * 27..(first + n) * 27], &op.bias[first..first + n]);
        for y in 0..oh {
            let mut x = 0;
            while x < ow {
                let base = plane.as_ptr().add(y * step + x);
                let inputs: [__m512; 27] = std::array::from_fn(|t| _mm512_loadu_ps(base.add(taps[t])));
                let mask = ((1u32 << (ow - x).min(16)) - 1) as u16;
                for (o, w) in weights.chunks_exact(27).enumerate() {
                    let mut acc = _mm512_set1_ps(bias[o]);
                    for t in 0..27 {
                        acc = _mm512_fmadd_ps(_mm512_set1_ps(w[t]), inputs[t], acc);
                    }
                    _mm512_mask_storeu_ps(output.as_mut_ptr().add((o * oh + y) * ow + x), mask, epilogue.apply(acc));
                }
                x += 16;
            }
        }
    }
}

impl Op for Stem {
    fn name(&self) -> StaticName {
        "SnakeidStem".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{} in, {} out, clip {:?}, fake quant {}", self.geometry, self.out_channels, self.clip, self.fake_quant.is_some())])
    }

    op_as_typed_op!();
}

impl EvalOp for Stem {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let g = &self.geometry;
        ensure!(inputs[0].len() == g.channels * g.in_hw[0] * g.in_hw[1], "SnakeidStem: input of {} values", inputs[0].len());
        let out_len = g.out_hw[0] * g.out_hw[1];
        eval_f32_into::<f32>(&inputs[0], &self.output_shape(inputs[0].rank()), |xs, out| {
            // Output channels split over threads, each filling its own copy of the (small) input planes.
            crate::parallel::for_each_chunk(out, out_len, 1, |first, chunk| {
                crate::parallel::with_zeroed_floats(self.plane_len(), |plane| {
                    self.fill(xs, plane);
                    self.run(plane, chunk, first)
                })
            })
        })
    }
}

impl TypedOp for Stem {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type(), "SnakeidStem takes f32");
        Ok(tvec!(f32::fact(self.output_shape(inputs[0].rank()))))
    }

    as_op!();
}

/// The stem convolution a tract Conv node is, if it is one we run: a [`PlainConv`] with one group, a kernel larger
/// than 1x1, at most [`MAX_TAPS`] taps, an f32 channels-first input of batch 1, constant weights and bias.
fn stem_of(model: &TypedModel, node: &TypedNode) -> Option<Stem> {
    let PlainConv { conv, kernel, stride, pad_before, pad_after } = plain_conv(node)?;
    let (c, in_hw) = f32_input(model, node, conv)?;
    let taps = c * kernel[0] * kernel[1];
    if conv.group != 1 || kernel == [1, 1] || taps > MAX_TAPS {
        return None;
    }
    let geometry = Geometry::new(c, in_hw, kernel, stride, pad_before, pad_after)?;
    let out_channels = conv.pool_spec.output_channels;
    let weights = crate::epilogue::constant_f32(model, node.inputs[1])?;
    let bias = match crate::epilogue::constant_f32(model, node.inputs[2])? {
        b if b.len() == 1 => vec![b[0]; out_channels],
        b if b.len() == out_channels => b,
        _ => return None,
    };
    if weights.len() != out_channels * taps {
        return None;
    }
    Some(Stem { geometry, out_channels, weights: Arc::new(weights), bias: Arc::new(bias), clip: None, fake_quant: None })
}

/// Replaces every stem convolution of a typed or decluttered model (and the Max/Min clip, QuantizeLinear and
/// DequantizeLinear that follow it, when each is the previous one's only consumer) by one [`Stem`]. Returns how
/// many it replaced.
/// None on CPUs without a fused multiply-add instruction: the sums are fused multiply-adds, which libm would
/// compute there, slowly.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    if !crate::simd::has_fast_fma() {
        return Ok(0);
    }
    let mut swapped = 0;
    for id in model.eval_order()? {
        let Some(mut op) = stem_of(model, model.node(id)) else { continue };
        let Some(tail) = crate::epilogue::tail_after(model, id) else { continue };
        (op.clip, op.fake_quant) = (tail.clip, tail.fake_quant);
        let mut patch = TypedModelPatch::default();
        let tap = patch.tap_model(model, model.node(id).inputs[0])?;
        let out = patch.wire_node(format!("{}.snakeid_stem", model.node(id).name), op, &[tap])?[0];
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

    fn stem(seed: &mut u32, channels: usize, out_channels: usize, in_hw: [usize; 2], kernel: [usize; 2], stride: [usize; 2], pad: [[usize; 2]; 2]) -> Stem {
        let geometry = Geometry::new(channels, in_hw, kernel, stride, pad[0], pad[1]).unwrap();
        let weights = random(seed, out_channels * channels * kernel[0] * kernel[1], 1.0);
        let bias = random(seed, out_channels, 1.0);
        Stem { geometry, out_channels, weights: Arc::new(weights), bias: Arc::new(bias), clip: None, fake_quant: None }
    }

    fn convolve(op: &Stem, x: &[f32], portable: bool) -> Vec<f32> {
        let mut plane = vec![0f32; op.plane_len()];
        op.fill(x, &mut plane);
        let [oh, ow] = op.geometry.out_hw;
        let mut out = vec![0f32; op.out_channels * oh * ow];
        // Two halves of the output channels, as two threads would compute them.
        let half = op.out_channels / 2 * oh * ow;
        let (a, b) = out.split_at_mut(half);
        for (chunk, first) in [(a, 0), (b, op.out_channels / 2)] {
            if portable {
                op.run_portable(&plane, chunk, first, &op.tap_start());
            } else {
                op.run(&plane, chunk, first);
            }
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
                assert!((g - r).abs() <= 1e-5 * (1.0 + r.abs()), "{c}->{o} kernel {kernel:?} stride {stride:?} at {i}: {g} vs {r}");
            }
        }
    }

    #[test]
    fn explicit_vector_code_gives_the_portable_bits() {
        use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearU8};
        let fq = FakeQuant::new(&QuantizeLinearU8 { scale: 1.0 / 0.02, zero_point: 3 }, &DequantizeLinearF32 { scale: 0.02, zero_point: 3 });
        let mut seed = 99u32;
        for in_hw in [[224, 224], [31, 45], [8, 3]] {
            for (clip, fake_quant) in [(None, None), (Some((0.0, 6.0)), None), (Some((0.0, 6.0)), Some(fq.clone()))] {
                let mut op = stem(&mut seed, 3, 10, in_hw, [3, 3], [2, 2], [[1, 1], [1, 1]]);
                (op.clip, op.fake_quant) = (clip, fake_quant);
                let x = random(&mut seed, 3 * in_hw[0] * in_hw[1], 4.0);
                let bits = |v: Vec<f32>| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(convolve(&op, &x, false)), bits(convolve(&op, &x, true)), "{in_hw:?}");
            }
        }
    }
}
