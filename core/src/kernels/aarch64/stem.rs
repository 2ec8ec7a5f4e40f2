//! The stem convolution with NEON: blocks of 4 output channels x 16 pixels (16 accumulator registers), each tap's
//! 16 inputs loaded once for the 4 channels and multiplied by each channel's weight from one register (`fmla` by
//! lane, fused as the portable loop's `mul_add`): the same operations in the same order as [`Stem::run_portable`],
//! so the same bits. Channels past the last whole 4 take the portable loop.

use crate::kernels::aarch64::epilogue::NeonEpilogue;
use crate::kernels::epilogue::Epilogue;
use crate::kernels::stem::Stem;
use std::arch::aarch64::*;

/// Output channels per block.
const CHANNELS: usize = 4;

/// The stem convolution as the kernels' table holds it.
pub(super) fn plugged(op: &Stem, plane: &[f32], output: &mut [f32], first: usize) {
    let taps = op.tap_start();
    // Every block's loads stay inside `plane`.
    assert!(op.geometry.last_load(&taps) <= plane.len(), "stem plane too short");
    let [oh, ow] = op.geometry.out_hw;
    let whole = output.len() / (oh * ow) / CHANNELS * CHANNELS;
    let (blocks, rest) = output.split_at_mut(whole * oh * ow);
    for (b, out) in blocks.chunks_exact_mut(CHANNELS * oh * ow).enumerate() {
        run(op, &taps, plane, out, first + b * CHANNELS);
    }
    if !rest.is_empty() {
        op.run_auto(plane, rest, first + whole, &taps);
    }
}

/// Output channels `first..first + 4` into `out`, from the planes' taps `taps`.
fn run(op: &Stem, taps: &[usize], plane: &[f32], out: &mut [f32], first: usize) {
    let [oh, ow] = op.geometry.out_hw;
    let step = op.geometry.row_step();
    let n = taps.len();
    // The 4 channels' weights of each tap side by side.
    let weights: Vec<f32> = (0..n).flat_map(|t| (0..CHANNELS).map(move |i| op.weights[(first + i) * n + t])).collect();
    let epilogue = NeonEpilogue::new(Epilogue::new(op.clip, op.fake_quant.as_ref()), 0);
    assert!(out.len() == CHANNELS * oh * ow);
    // SAFETY: NEON is part of every AArch64 CPU; each load is a block of 16 plane values of a tap (the caller
    // checked `last_load`) or a tap's 4 weights; each store the block's outputs of a channel's row (n clipped).
    unsafe {
        let bias: [float32x4_t; CHANNELS] = std::array::from_fn(|i| vdupq_n_f32(op.bias[first + i]));
        for y in 0..oh {
            for x in (0..ow).step_by(16) {
                let base = plane.as_ptr().add(y * step + x);
                let mut acc: [[float32x4_t; 4]; CHANNELS] = bias.map(|b| [b; 4]);
                for (t, start) in taps.iter().enumerate() {
                    let src = base.add(*start);
                    let xs: [float32x4_t; 4] = std::array::from_fn(|q| vld1q_f32(src.add(q * 4)));
                    let w = vld1q_f32(weights.as_ptr().add(t * CHANNELS));
                    for q in 0..4 {
                        acc[0][q] = vfmaq_laneq_f32::<0>(acc[0][q], xs[q], w);
                        acc[1][q] = vfmaq_laneq_f32::<1>(acc[1][q], xs[q], w);
                        acc[2][q] = vfmaq_laneq_f32::<2>(acc[2][q], xs[q], w);
                        acc[3][q] = vfmaq_laneq_f32::<3>(acc[3][q], xs[q], w);
                    }
                }
                for (i, acc) in acc.iter().enumerate() {
                    epilogue.store(*acc, out.as_mut_ptr().add((i * oh + y) * ow + x), (ow - x).min(16));
                }
            }
        }
    }
}
