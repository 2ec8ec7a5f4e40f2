//! The stem convolution for 27 taps (3 channels, 3x3) with AVX-512 F intrinsics: a block's 27 inputs loaded once
//! into registers, then each output channel's fused multiply-adds over them (the same operations in the same order
//! as [`Stem::run_portable`], so the same bits), masked stores at row ends.

use crate::kernels::stem::Stem;
use crate::kernels::x86_64::epilogue::Epilogue;
use std::arch::x86_64::*;

/// The stem convolution as the kernels' table holds it: the AVX-512 kernel for 27 taps, the portable loop for
/// others.
pub(super) fn plugged(op: &Stem, plane: &[f32], output: &mut [f32], first: usize) {
    let taps = op.tap_start();
    // Every block's loads stay inside `plane`.
    assert!(op.geometry.last_load(&taps) <= plane.len(), "stem plane too short");
    match <[usize; 27]>::try_from(taps.as_slice()) {
        // SAFETY: plugged in (super::plug) only where the CPU has AVX-512 F; the plane holds every load (above).
        Ok(taps) => unsafe { run(op, &taps, plane, output, first) },
        Err(_) => op.run_auto(plane, output, first, &taps),
    }
}

/// Output channels `first..` into `output`, as [`Stem::run_auto`] says, for the taps `taps`.
///
/// # Safety
/// The CPU must have AVX-512 F, and `plane` must hold every block's loads ([`crate::kernels::plane::Geometry::last_load`]).
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn run(op: &Stem, taps: &[usize; 27], plane: &[f32], output: &mut [f32], first: usize) {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe {
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
