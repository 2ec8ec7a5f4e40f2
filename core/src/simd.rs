//! Element-wise loops compiled for the widest vector unit the CPU has, chosen at run time, and what our tract
//! operators (quantization, depthwise and int8 pointwise convolution) share: the NaN-free clamp, the rounding
//! constant, and the evaluation of an f32 input into a fresh output tensor.

/// 1.5 * 2^23: adding and subtracting it rounds an f32 of magnitude < 2^22 to an integer, half to even.
pub(crate) const ROUND: f32 = 12_582_912.0;

/// Evaluates an operator whose input is f32: `fill(input values, output values)` into a fresh tensor of `shape`.
pub(crate) fn eval_f32_into<T: tract_onnx::prelude::Datum>(
    input: &tract_onnx::prelude::TValue,
    shape: &[usize],
    fill: impl FnOnce(&[f32], &mut [T]),
) -> tract_onnx::prelude::TractResult<tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>> {
    eval_into(input, shape, fill)
}

/// [`eval_f32_into`] for an input of any element type `I`.
pub(crate) fn eval_into<I: tract_onnx::prelude::Datum, T: tract_onnx::prelude::Datum>(
    input: &tract_onnx::prelude::TValue,
    shape: &[usize],
    fill: impl FnOnce(&[I], &mut [T]),
) -> tract_onnx::prelude::TractResult<tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>> {
    use tract_onnx::prelude::*;
    let input = input.try_as_plain_ram()?;
    let xs = input.as_slice::<I>()?;
    // SAFETY: every caller's `fill` writes every output value.
    let mut out = unsafe { Tensor::uninitialized::<T>(shape)? };
    {
        let mut plain = out.try_as_plain_ram_mut()?;
        fill(xs, plain.as_slice_mut::<T>()?);
    }
    Ok(tvec!(out.into_tvalue()))
}

/// What our convolutions write: f32 values, or u8 codes of their output's fake quantization grid, for a reader that
/// takes codes ([`crate::handover`]).
pub(crate) trait Output: tract_onnx::prelude::Datum + Copy {
    /// Whether these are codes (for the x86-64 kernels).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    const CODES: bool;
    /// A block's outputs from its values before the epilogue (`pre`, changed; at least as long as `out`).
    fn finish(pre: &mut [f32], epilogue: &Epilogue, zero_point: i32, out: &mut [Self]);
}

impl Output for f32 {
    const CODES: bool = false;
    #[inline(always)]
    fn finish(pre: &mut [f32], epilogue: &Epilogue, _: i32, out: &mut [f32]) {
        epilogue.apply(pre);
        out.copy_from_slice(&pre[..out.len()]);
    }
}

impl Output for u8 {
    const CODES: bool = true;
    #[inline(always)]
    fn finish(pre: &mut [f32], epilogue: &Epilogue, zero_point: i32, out: &mut [u8]) {
        let mut codes = [0u8; 16];
        for (pre, out) in pre.chunks_mut(16).zip(out.chunks_mut(16)) {
            epilogue.codes(pre, zero_point, &mut codes[..pre.len()]);
            out.copy_from_slice(&codes[..out.len()]);
        }
    }
}

/// `v` clamped to `[lo, hi]`, NaN to `lo`. Written as comparisons (not `f32::max`/`min`, whose NaN rules cost a
/// compare and blend per vector) so that it compiles to plain `maxps`/`minps`.
#[inline(always)]
pub(crate) fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v > lo { v } else { lo };
    if v < hi {
        v
    } else {
        hi
    }
}

/// Our convolutions' epilogue: clip, then fake quantization, on blocks of accumulated outputs. Made once per call
/// (the clip folded into the quantization's clamp where it can be, [`crate::fakequant::FakeQuant::after_clip`]),
/// applied to every block: portable here, broadcast into registers by [`avx512::Epilogue`] and the int8 kernel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epilogue {
    /// The clip left to run on its own (none when folded), and the fake quantization's constants
    /// ([`crate::fakequant::FakeQuant::params`]'s layout).
    pub clip: Option<(f32, f32)>,
    pub fake_quant: Option<[f32; 5]>,
}

impl Epilogue {
    pub(crate) fn new(clip: Option<(f32, f32)>, fake_quant: Option<&crate::fakequant::FakeQuant>) -> Epilogue {
        match fake_quant {
            Some(fq) => {
                let (clip, params) = fq.after_clip(clip);
                Epilogue { clip, fake_quant: Some(params) }
            }
            None => Epilogue { clip, fake_quant: None },
        }
    }

    /// The clip left to run on its own, if any, in place.
    #[inline(always)]
    fn clip(&self, block: &mut [f32]) {
        if let Some((lo, hi)) = self.clip {
            block.iter_mut().for_each(|v| *v = clamp(*v, lo, hi));
        }
    }

    /// On one block of outputs, in place (portable).
    #[inline(always)]
    pub(crate) fn apply(&self, block: &mut [f32]) {
        self.clip(block);
        if let Some(params) = self.fake_quant {
            crate::fakequant::FakeQuant::apply_params(block, params);
        }
    }

    /// On one block of outputs of a fake-quantized epilogue (the block itself clipped in place): their u8 codes on
    /// the grid of zero point `zero_point` ([`crate::fakequant::FakeQuant::grid`]) into `codes` — whose values
    /// times the grid's scale are exactly what [`Epilogue::apply`] gives. Without a fake quantization: none.
    #[inline(always)]
    pub(crate) fn codes(&self, block: &mut [f32], zero_point: i32, codes: &mut [u8]) {
        self.clip(block);
        if let Some(params) = self.fake_quant {
            for (c, v) in codes.iter_mut().zip(block.iter()) {
                *c = (crate::fakequant::FakeQuant::level(*v, params) as i32 + zero_point) as u8;
            }
        }
    }
}

/// Defines `$name`, which runs `$portable` (an `#[inline(always)]` loop) compiled for the widest vector unit this
/// CPU has: AVX-512, AVX2 with FMA, or the build's baseline. Rust never contracts `a * b + c` and `mul_add` is
/// one rounding everywhere, so every variant computes the same bits.
macro_rules! simd_dispatch {
    ($(#[$doc:meta])* $ty_self:ty, $name:ident => $portable:ident ( $($arg:ident : $ty:ty),* )) => {
        $(#[$doc])*
        pub fn $name(&self, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512(op: &$ty_self, $($arg: $ty),*) {
                    op.$portable($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2(op: &$ty_self, $($arg: $ty),*) {
                    op.$portable($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the feature the function was compiled for.
                    return unsafe { avx512(self, $($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: as above.
                    return unsafe { avx2(self, $($arg),*) };
                }
            }
            self.$portable($($arg),*)
        }
    };
}

pub(crate) use simd_dispatch;

/// Whether the CPU has AVX2 (for code compiled with `#[target_feature(enable = "avx2")]`).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// Whether `f32::mul_add` is a machine instruction here (not a call into libm): x86-64 CPUs with FMA, and every
/// AArch64 CPU.
pub(crate) fn has_fast_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    let fast = std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    let fast = cfg!(target_arch = "aarch64");
    fast
}

/// The epilogue steps of our AVX-512 kernels on one register of 16 outputs: [`clamp`] and
/// [`crate::fakequant::FakeQuant`]'s arithmetic, the same operations in the same order as the portable loops.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use std::arch::x86_64::*;

    /// [`super::Epilogue`] as vectors: the clip bounds and fake quantization parameters broadcast once.
    pub(crate) struct Epilogue {
        clip: Option<(__m512, __m512)>,
        fake_quant: Option<[__m512; 5]>,
        round: __m512,
    }

    impl Epilogue {
        #[inline(always)]
        pub(crate) unsafe fn new(clip: Option<(f32, f32)>, fake_quant: Option<&crate::fakequant::FakeQuant>) -> Epilogue {
            let portable = super::Epilogue::new(clip, fake_quant);
            Epilogue {
                clip: portable.clip.map(|(lo, hi)| (_mm512_set1_ps(lo), _mm512_set1_ps(hi))),
                fake_quant: portable.fake_quant.map(|p| p.map(|v| _mm512_set1_ps(v))),
                round: _mm512_set1_ps(super::ROUND),
            }
        }

        /// [`super::Epilogue::codes`] of one register: the clip, then the fake quantization's level plus
        /// `zero_point`, as i32 lanes in 0..=255 (zeros without a fake quantization).
        #[inline(always)]
        pub(crate) unsafe fn code(&self, mut v: __m512, zero_point: __m512i) -> __m512i {
            if let Some((lo, hi)) = self.clip {
                v = clamp(v, lo, hi);
            }
            match self.fake_quant {
                Some(params) => _mm512_add_epi32(_mm512_cvtps_epi32(level(v, params, self.round)), zero_point),
                None => _mm512_setzero_si512(),
            }
        }

        #[inline(always)]
        pub(crate) unsafe fn apply(&self, mut v: __m512) -> __m512 {
            if let Some((lo, hi)) = self.clip {
                v = clamp(v, lo, hi);
            }
            if let Some(params) = self.fake_quant {
                v = fake_quant(v, params, self.round);
            }
            v
        }
    }

    /// [`super::clamp`]: `max(v, lo)` is `v > lo ? v : lo` and `min(v, hi)` is `v < hi ? v : hi`, as `maxps`/`minps`.
    #[inline(always)]
    pub(crate) unsafe fn clamp(v: __m512, lo: __m512, hi: __m512) -> __m512 {
        _mm512_min_ps(_mm512_max_ps(v, lo), hi)
    }

    /// Fake quantization with `FakeQuant::params()` broadcast (`[1/scale_q, lo, hi, ROUND - offset, scale_dq]`)
    /// and [`super::ROUND`] broadcast: quantize, clamp, round half to even and shift, dequantize.
    #[inline(always)]
    pub(crate) unsafe fn fake_quant(v: __m512, params: [__m512; 5], round: __m512) -> __m512 {
        _mm512_mul_ps(level(v, params, round), params[4])
    }

    /// [`crate::fakequant::FakeQuant::level`]: quantize, clamp, round half to even and shift (the level, before
    /// [`fake_quant`]'s multiplication by the scale).
    #[inline(always)]
    pub(crate) unsafe fn level(v: __m512, [inv, lo, hi, shift, _]: [__m512; 5], round: __m512) -> __m512 {
        let v = clamp(_mm512_mul_ps(v, inv), lo, hi);
        _mm512_sub_ps(_mm512_add_ps(v, round), shift)
    }
}
