//! Our epilogue (clip, then fake quantization) on AVX-512 registers of 16 outputs: the same operations in the same
//! order as the portable [`crate::kernels::epilogue::Epilogue`].

use crate::kernels::quant::{FakeQuant, ROUND};
use std::arch::x86_64::*;

/// [`crate::kernels::epilogue::Epilogue`] as vectors: the clip bounds and fake quantization parameters broadcast once.
pub(crate) struct Epilogue {
    clip: Option<(__m512, __m512)>,
    fake_quant: Option<[__m512; 5]>,
    round: __m512,
}

impl Epilogue {
    /// # Safety
    /// The CPU must have AVX-512 F.
    #[inline(always)]
    pub(crate) unsafe fn new(clip: Option<(f32, f32)>, fake_quant: Option<&FakeQuant>) -> Epilogue {
        // SAFETY: the caller keeps this function's contract (its `# Safety`).
        unsafe {
            let portable = crate::kernels::epilogue::Epilogue::new(clip, fake_quant);
            Epilogue {
                clip: portable.clip.map(|(lo, hi)| (_mm512_set1_ps(lo), _mm512_set1_ps(hi))),
                fake_quant: portable.fake_quant.map(|p| p.map(|v| _mm512_set1_ps(v))),
                round: _mm512_set1_ps(ROUND),
            }
        }
    }

    /// [`crate::kernels::epilogue::Epilogue::codes`] of one register: the clip, then the fake quantization's level plus
    /// `zero_point`, as i32 lanes in 0..=255 (zeros without a fake quantization).
    ///
    /// # Safety
    /// The CPU must have AVX-512 F.
    #[inline(always)]
    pub(crate) unsafe fn code(&self, mut v: __m512, zero_point: __m512i) -> __m512i {
        // SAFETY: the caller keeps this function's contract (its `# Safety`).
        unsafe {
            if let Some((lo, hi)) = self.clip {
                v = clamp(v, lo, hi);
            }
            match self.fake_quant {
                Some(params) => _mm512_add_epi32(_mm512_cvtps_epi32(level(v, params, self.round)), zero_point),
                None => _mm512_setzero_si512(),
            }
        }
    }

    /// # Safety
    /// The CPU must have AVX-512 F.
    #[inline(always)]
    pub(crate) unsafe fn apply(&self, mut v: __m512) -> __m512 {
        // SAFETY: the caller keeps this function's contract (its `# Safety`).
        unsafe {
            if let Some((lo, hi)) = self.clip {
                v = clamp(v, lo, hi);
            }
            if let Some(params) = self.fake_quant {
                v = fake_quant(v, params, self.round);
            }
            v
        }
    }
}

/// [`crate::kernels::quant::clamp`]: `max(v, lo)` is `v > lo ? v : lo` and `min(v, hi)` is `v < hi ? v : hi`, as `maxps`/`minps`.
///
/// # Safety
/// The CPU must have AVX-512 F.
#[inline(always)]
pub(crate) unsafe fn clamp(v: __m512, lo: __m512, hi: __m512) -> __m512 {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe { _mm512_min_ps(_mm512_max_ps(v, lo), hi) }
}

/// Fake quantization with `FakeQuant::params()` broadcast (`[1/scale_q, lo, hi, ROUND - offset, scale_dq]`)
/// and [`ROUND`] broadcast: quantize, clamp, round half to even and shift, dequantize.
///
/// # Safety
/// The CPU must have AVX-512 F.
#[inline(always)]
pub(crate) unsafe fn fake_quant(v: __m512, params: [__m512; 5], round: __m512) -> __m512 {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe { _mm512_mul_ps(level(v, params, round), params[4]) }
}

/// [`FakeQuant::level`]: quantize, clamp, round half to even and shift (the level, before
/// [`fake_quant`]'s multiplication by the scale).
///
/// # Safety
/// The CPU must have AVX-512 F.
#[inline(always)]
pub(crate) unsafe fn level(v: __m512, [inv, lo, hi, shift, _]: [__m512; 5], round: __m512) -> __m512 {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe {
        let v = clamp(_mm512_mul_ps(v, inv), lo, hi);
        _mm512_sub_ps(_mm512_add_ps(v, round), shift)
    }
}
