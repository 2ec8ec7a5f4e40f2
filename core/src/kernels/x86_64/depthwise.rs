//! The depthwise convolution with AVX-512 intrinsics (F, BW and VL): two output rows per pass, 16 outputs per
//! register, the epilogue on the accumulators, masked stores at row ends (no overhang into the next row). The
//! same operations in the same order as [`Depthwise::run_portable`], so the same bits.

use crate::kernels::depthwise::Depthwise;
use crate::kernels::epilogue::{Dest, Output, Source};
use crate::kernels::plane::Geometry;
use crate::kernels::x86_64::epilogue::Epilogue;
use std::arch::x86_64::*;

/// [`run`] as the kernels' table holds it.
pub(super) fn plugged(op: &Depthwise, input: Source, output: Dest, first: usize, plane: &mut [f32]) {
    // SAFETY: plugged in (super::plug) only where the CPU has AVX-512 F, BW and VL.
    unsafe {
        match output {
            Dest::Values(out) => run(op, input, out, first, plane),
            Dest::Codes(out) => run(op, input, out, first, plane),
        }
    }
}

/// Output channels `first..` of the convolution into `output`, as [`Depthwise::run_auto`] says.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(crate) unsafe fn run<T: Output>(op: &Depthwise, input: Source, output: &mut [T], first: usize, plane: &mut [f32]) {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe {
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
        let clip = |v| if clip { crate::kernels::x86_64::epilogue::clamp(v, lo, hi) } else { v };
        let (scale, codes_zero_point) = match input {
            Source::Codes(_, (scale, zero_point)) => (scale, zero_point),
            Source::Values(_) => (1.0, 0),
        };
        let (scale, codes_zero_point) = (_mm512_set1_ps(scale), _mm512_set1_epi32(codes_zero_point));
        for c in 0..output.len() / (oh * ow) {
            match input.slice(c * ih * iw..(c + 1) * ih * iw) {
                // Strides beyond 2 (no model we know has them): the portable fill.
                src if g.stride[1] > 2 => op.fill_plane(src, plane),
                Source::Values(x) => {
                    fill_plane(g, |i, n| _mm512_maskz_loadu_ps(mask(n), x[i..i + n].as_ptr()), plane, clip)
                }
                Source::Codes(x, _) => {
                    let load = |i, n| {
                        _mm512_mul_ps(
                            _mm512_cvtepi32_ps(_mm512_sub_epi32(
                                _mm512_cvtepu8_epi32(bytes16(x, i, n)),
                                codes_zero_point,
                            )),
                            scale,
                        )
                    };
                    fill_plane(g, load, plane, clip)
                }
            }
            let w = &op.weights[(first + c) * taps..(first + c + 1) * taps];
            let bias = _mm512_set1_ps(op.bias[first + c]);
            let out = &mut output[c * oh * ow..(c + 1) * oh * ow];
            match tap_start_3x3 {
                Some(starts) => {
                    let wv: [__m512; 9] = std::array::from_fn(|t| _mm512_set1_ps(w[t]));
                    let channel = Channel {
                        plane,
                        row_step,
                        ow,
                        weights: &wv,
                        tap_start: &starts,
                        bias,
                        epilogue: &epilogue,
                        zero_point,
                    };
                    channel.run(oh, out);
                }
                None => {
                    let wv: Vec<__m512> = w.iter().map(|v| _mm512_set1_ps(*v)).collect();
                    let channel = Channel {
                        plane,
                        row_step,
                        ow,
                        weights: &wv,
                        tap_start: &tap_start,
                        bias,
                        epilogue: &epilogue,
                        zero_point,
                    };
                    channel.run(oh, out);
                }
            }
        }
    }
}

/// A mask of the first `n` (at most 16) lanes.
fn mask(n: usize) -> u16 {
    ((1u32 << n.min(16)) - 1) as u16
}

/// Codes `i..i + n` of `x` (n at most 16) in a vector's first bytes, zeros after them.
///
/// # Safety
/// The CPU must have AVX-512 BW and VL.
#[inline(always)]
unsafe fn bytes16(x: &[u8], i: usize, n: usize) -> __m128i {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe { _mm_maskz_loadu_epi8(mask(n), x[i..i + n].as_ptr() as *const i8) }
}

/// [`Geometry::fill_plane_with`] in vectors, for a stride of 1 or 2: `load(i, n)` gives the channel's values
/// `i..i + n` (n at most 16, lanes after them ignored), which go through `f` into each row of the plane 16 at a
/// time (32 when split into two column phases), with masked stores at the row's end. The same values; the
/// padding stays as it was. Filled value by value, a small plane took as long to fill as to convolve (the
/// 14x14 and 7x7 planes of MobileNetV2's last blocks).
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn fill_plane(
    g: &Geometry,
    load: impl Fn(usize, usize) -> __m512,
    plane: &mut [f32],
    f: impl Fn(__m512) -> __m512,
) {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe {
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
        let (even_idx, odd_idx) = (
            _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30),
            _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31),
        );
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
    ///
    /// # Safety
    /// The CPU must have AVX-512 F; `out` holds the channel's `oh x ow` outputs and the plane every load (checked by
    /// the caller against [`Geometry::last_load`]).
    #[inline(always)]
    unsafe fn run<T: Output>(&self, oh: usize, out: &mut [T]) {
        // SAFETY: the caller keeps this function's contract (its `# Safety`).
        unsafe {
            let mut y = 0;
            while y + 2 <= oh {
                self.rows::<2, T>(y, out);
                y += 2;
            }
            if y < oh {
                self.rows::<1, T>(y, out);
            }
        }
    }

    /// Output rows `y..y + R`, in blocks of 16.
    ///
    /// # Safety
    /// As [`Channel::run`], for rows `y..y + R` of the channel.
    #[inline(always)]
    unsafe fn rows<const R: usize, T: Output>(&self, y: usize, out: &mut [T]) {
        // SAFETY: the caller keeps this function's contract (its `# Safety`).
        unsafe {
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
                        _mm512_mask_cvtusepi32_storeu_epi8(
                            dst as *mut i8,
                            mask,
                            self.epilogue.code(*acc, self.zero_point),
                        );
                    } else {
                        _mm512_mask_storeu_ps(dst as *mut f32, mask, self.epilogue.apply(*acc));
                    }
                }
                x += 16;
            }
        }
    }
}
