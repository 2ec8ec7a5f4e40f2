//! Our epilogue (clip, then fake quantization) on NEON registers, 16 outputs as four of 4 lanes: the same
//! operations in the same order as the portable [`crate::kernels::epilogue::Epilogue`], and the stores of a block's
//! values or u8 codes.

use crate::kernels::epilogue::{Epilogue, Output};
use crate::kernels::quant::ROUND;
use std::arch::aarch64::*;

/// [`Epilogue`] broadcast into registers: the clip left after folding, the fake quantization's constants
/// ([`crate::kernels::quant::FakeQuant::params`]' layout), and the integers its rounded levels are shifted by: its
/// `offset` (for values) and `offset` plus the output codes' zero point (for codes).
#[derive(Clone, Copy)]
pub(crate) struct NeonEpilogue {
    clip: Option<(float32x4_t, float32x4_t)>,
    fake_quant: Option<[float32x4_t; 5]>,
    offset: int32x4_t,
    code_offset: int32x4_t,
}

impl NeonEpilogue {
    pub(crate) fn new(e: Epilogue, zero_point: i32) -> NeonEpilogue {
        // SAFETY: NEON is part of every AArch64 CPU.
        unsafe {
            // params[3] is ROUND - offset, offset an integer (zero points' difference): exact both ways.
            let offset = e.fake_quant.map_or(0, |p| (ROUND - p[3]) as i32);
            NeonEpilogue {
                clip: e.clip.map(|(lo, hi)| (vdupq_n_f32(lo), vdupq_n_f32(hi))),
                fake_quant: e.fake_quant.map(|p| p.map(|v| vdupq_n_f32(v))),
                offset: vdupq_n_s32(offset),
                code_offset: vdupq_n_s32(offset + zero_point),
            }
        }
    }

    /// The epilogue on a block of `Q` registers (4 x Q values, Q from 1 to 4), the first `n` stored at `out` as
    /// values or codes: whole (Q 2 or 4), or through a buffer (`memcpy`) when `n` is short of the block or Q odd.
    ///
    /// # Safety
    /// `out` holds `n` writable outputs.
    #[inline(always)]
    pub(crate) unsafe fn store<const Q: usize, T: Output>(&self, values: [float32x4_t; Q], out: *mut T, n: usize) {
        // SAFETY: the caller keeps this function's contract (its `# Safety`).
        unsafe {
            if Q != 2 && Q != 4 {
                let padded = std::array::from_fn(|q| if q < Q { values[q] } else { vdupq_n_f32(0.0) });
                return self.store::<4, T>(padded, out, n.min(4 * Q));
            }
            if n == 4 * Q {
                self.store_whole(values, out);
            } else {
                let mut lanes = [T::default(); 16];
                self.store_whole(values, lanes.as_mut_ptr());
                std::ptr::copy_nonoverlapping(lanes.as_ptr(), out, n);
            }
        }
    }

    /// The epilogue on a block of `Q` registers (Q 2 or 4: [`NeonEpilogue::store`] pads the others), all stored at
    /// `out`.
    ///
    /// # Safety
    /// `out` holds 4 x Q writable outputs.
    #[inline(always)]
    unsafe fn store_whole<const Q: usize, T: Output>(&self, values: [float32x4_t; Q], out: *mut T) {
        // SAFETY: NEON is part of every AArch64 CPU; the stores are the caller's promise.
        unsafe {
            let values = match self.clip {
                Some((lo, hi)) => values.map(|v| clamp(v, lo, hi)),
                None => values,
            };
            if T::CODES {
                let params = self.fake_quant.expect("codes of a fake-quantized output only");
                let codes = values.map(|v| vaddq_s32(self.rounded(v, params), self.code_offset));
                let low = vcombine_u16(vqmovun_s32(codes[0]), vqmovun_s32(codes[1]));
                if Q == 2 {
                    vst1_u8(out as *mut u8, vqmovn_u16(low));
                } else {
                    let high = vcombine_u16(vqmovun_s32(codes[2]), vqmovun_s32(codes[3]));
                    vst1q_u8(out as *mut u8, vcombine_u8(vqmovn_u16(low), vqmovn_u16(high)));
                }
            } else {
                let values = match self.fake_quant {
                    Some(params) => values
                        .map(|v| vmulq_f32(vcvtq_f32_s32(vaddq_s32(self.rounded(v, params), self.offset)), params[4])),
                    None => values,
                };
                for (q, v) in values.iter().enumerate() {
                    vst1q_f32((out as *mut f32).add(q * 4), *v);
                }
            }
        }
    }

    /// The fake quantization's level ([`crate::kernels::quant::FakeQuant::level`]) less its offset, as integers:
    /// `clamp(x * inv, lo, hi)` rounded half to even by `fcvtns`. The portable `(c + ROUND) - (ROUND - offset)` is
    /// exactly that integer plus the offset (|c| <= 255: adding ROUND rounds it half to even, and the rest is exact),
    /// so adding the offset as an integer gives its bits in two instructions where it takes four. The clamp is
    /// `fmaxnm` then `fminnm`, two instructions where [`clamp`] takes four: they differ from it only in the sign of
    /// a zero (both take NaN to `lo`), which rounding erases.
    #[inline(always)]
    fn rounded(&self, v: float32x4_t, [inv, lo, hi, _, _]: [float32x4_t; 5]) -> int32x4_t {
        // SAFETY: NEON is part of every AArch64 CPU.
        unsafe { vcvtnq_s32_f32(vminnmq_f32(vmaxnmq_f32(vmulq_f32(v, inv), lo), hi)) }
    }
}

/// [`crate::kernels::quant::clamp`] on 4 lanes: `v > lo ? v : lo`, then `v < hi ? v : hi` (NaN to `lo`), as
/// comparisons and selects (NEON's max and min differ from it on NaN and signed zeros).
#[inline(always)]
pub(crate) fn clamp(v: float32x4_t, lo: float32x4_t, hi: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is part of every AArch64 CPU.
    unsafe {
        let v = vbslq_f32(vcgtq_f32(v, lo), v, lo);
        vbslq_f32(vcltq_f32(v, hi), v, hi)
    }
}
