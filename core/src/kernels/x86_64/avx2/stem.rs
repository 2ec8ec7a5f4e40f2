//! The stem convolution for 27 taps (3 channels, 3x3) with AVX2 and FMA: blocks of 16 outputs in two registers, each
//! output channel's fused multiply-adds over the block's taps (loaded from L1 per channel: AVX2's 16 registers do not
//! hold 27 inputs, as AVX-512's 32 do), the epilogue in registers, partial stores at row ends. The same operations in
//! the same order as [`Stem::run_portable`] (one fused multiply-add per tap), so the same bits.

use super::depthwise::store;
use super::epilogue::Epilogue;
use crate::kernels::stem::Stem;
use std::arch::x86_64::*;

/// The stem convolution as the kernels' table holds it: the AVX2 kernel for 27 taps, the portable loop for others.
pub(crate) fn plugged(op: &Stem, plane: &[f32], output: &mut [f32], first: usize) {
    let taps = op.tap_start();
    // Every block's loads stay inside `plane`.
    assert!(op.geometry.last_load(&taps) <= plane.len(), "stem plane too short");
    match <[usize; 27]>::try_from(taps.as_slice()) {
        // SAFETY: plugged in (x86_64::plug) only where the CPU has AVX2 and FMA; the plane holds every load (above).
        Ok(taps) => unsafe { run(op, &taps, plane, output, first) },
        Err(_) => op.run_auto(plane, output, first, &taps),
    }
}

/// Output channels `first..` into `output`, as [`Stem::run_auto`] says, for the taps `taps`.
///
/// # Safety
/// The CPU must have AVX2 and FMA, and `plane` must hold every block's loads
/// ([`crate::kernels::plane::Geometry::last_load`]).
#[target_feature(enable = "avx2,fma")]
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
                let width = (ow - x).min(16);
                for (o, w) in weights.chunks_exact(27).enumerate() {
                    let mut acc = [_mm256_set1_ps(bias[o]); 2];
                    for t in 0..27 {
                        let wv = _mm256_set1_ps(w[t]);
                        for (b, acc) in acc.iter_mut().enumerate() {
                            *acc = _mm256_fmadd_ps(wv, _mm256_loadu_ps(base.add(taps[t] + 8 * b)), *acc);
                        }
                    }
                    let dst = output.as_mut_ptr().add((o * oh + y) * ow + x);
                    store(dst, epilogue.apply(acc[0]), width.min(8));
                    store(dst.add(8), epilogue.apply(acc[1]), width.saturating_sub(8));
                }
                x += 16;
            }
        }
    }
}
