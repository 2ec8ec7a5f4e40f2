//! Our epilogue (clip, then fake quantization) on AVX2 registers of 8 outputs: the same operations in the same order
//! as the portable [`crate::kernels::epilogue::Epilogue`] (and the AVX-512 one, at half the width).

use crate::kernels::quant::{FakeQuant, ROUND};
use std::arch::x86_64::*;

/// [`crate::kernels::epilogue::Epilogue`] as vectors: the clip bounds and fake quantization parameters broadcast once.
pub(crate) struct Epilogue {
    clip: Option<(__m256, __m256)>,
    fake_quant: Option<[__m256; 5]>,
    round: __m256,
}

impl Epilogue {
    /// # Safety
    /// The CPU must have AVX.
    #[inline(always)]
    pub(crate) unsafe fn new(clip: Option<(f32, f32)>, fake_quant: Option<&FakeQuant>) -> Epilogue {
        // SAFETY: the caller keeps this function's contract (its `# Safety`).
        unsafe {
            let portable = crate::kernels::epilogue::Epilogue::new(clip, fake_quant);
            Epilogue {
                clip: portable.clip.map(|(lo, hi)| (_mm256_set1_ps(lo), _mm256_set1_ps(hi))),
                fake_quant: portable.fake_quant.map(|p| p.map(|v| _mm256_set1_ps(v))),
                round: _mm256_set1_ps(ROUND),
            }
        }
    }

    /// [`crate::kernels::epilogue::Epilogue::codes`] of one register: the clip, then the fake quantization's level plus
    /// `zero_point`, as i32 lanes in 0..=255 (zeros without a fake quantization).
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[inline(always)]
    pub(crate) unsafe fn code(&self, mut v: __m256, zero_point: __m256i) -> __m256i {
        // SAFETY: the caller keeps this function's contract (its `# Safety`).
        unsafe {
            if let Some((lo, hi)) = self.clip {
                v = clamp(v, lo, hi);
            }
            match self.fake_quant {
                Some(params) => _mm256_add_epi32(_mm256_cvtps_epi32(level(v, params, self.round)), zero_point),
                None => _mm256_setzero_si256(),
            }
        }
    }

    /// # Safety
    /// The CPU must have AVX.
    #[inline(always)]
    pub(crate) unsafe fn apply(&self, mut v: __m256) -> __m256 {
        // SAFETY: the caller keeps this function's contract (its `# Safety`).
        unsafe {
            if let Some((lo, hi)) = self.clip {
                v = clamp(v, lo, hi);
            }
            if let Some(params) = self.fake_quant {
                v = _mm256_mul_ps(level(v, params, self.round), params[4]);
            }
            v
        }
    }
}

/// [`crate::kernels::quant::clamp`]: `max(v, lo)` is `v > lo ? v : lo` and `min(v, hi)` is `v < hi ? v : hi`, as
/// `vmaxps`/`vminps`.
///
/// # Safety
/// The CPU must have AVX.
#[inline(always)]
pub(crate) unsafe fn clamp(v: __m256, lo: __m256, hi: __m256) -> __m256 {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe { _mm256_min_ps(_mm256_max_ps(v, lo), hi) }
}

/// [`FakeQuant::level`]: quantize, clamp, round half to even and shift (the level, before the multiplication by the
/// scale), with `FakeQuant::params()` broadcast (`[1/scale_q, lo, hi, ROUND - offset, scale_dq]`).
///
/// # Safety
/// The CPU must have AVX.
#[inline(always)]
unsafe fn level(v: __m256, [inv, lo, hi, shift, _]: [__m256; 5], round: __m256) -> __m256 {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe {
        let v = clamp(_mm256_mul_ps(v, inv), lo, hi);
        _mm256_sub_ps(_mm256_add_ps(v, round), shift)
    }
}
