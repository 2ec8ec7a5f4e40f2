//! The depthwise convolution with AVX2: two output rows per pass, 8 or 16 outputs per row (one or two registers of
//! 8), the epilogue on the accumulators, partial stores at row ends (no overhang into the next row). The same
//! operations in the same order as [`Depthwise::run_portable`] (a multiply, then an add: no fused multiply-add on
//! x86-64, as tract's kernels there), so the same bits. The AVX-512 kernel's structure at half the width.

use super::epilogue::{clamp, Epilogue};
use crate::kernels::depthwise::Depthwise;
use crate::kernels::epilogue::{Dest, Output, Source};
use crate::kernels::plane::Geometry;
use std::arch::x86_64::*;

/// [`run`] as the kernels' table holds it.
pub(crate) fn plugged(op: &Depthwise, input: Source, output: Dest, first: usize, plane: &mut [f32]) {
    // SAFETY: plugged in (x86_64::plug) only where the CPU has AVX2 and FMA.
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
/// The CPU must have AVX2.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn run<T: Output>(op: &Depthwise, input: Source, output: &mut [T], first: usize, plane: &mut [f32]) {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe {
        let g = &op.geometry;
        let ([ih, iw], [oh, ow], [kh, kw]) = (g.in_hw, g.out_hw, g.kernel);
        let (row_step, taps) = (g.row_step(), kh * kw);
        let tap_start = g.tap_start();
        let epilogue = Epilogue::new(op.clip, op.fake_quant.as_ref());
        let zero_point = _mm256_set1_epi32(op.codes_out.unwrap_or(0));
        // Every load stays inside `plane` (blocks of 16, as `last_load` counts them).
        assert!(g.last_load(&tap_start) <= plane.len(), "depthwise plane too short");
        // 3x3 kernels (every depthwise convolution of MobileNet-like models): the taps and broadcast weights in
        // fixed-size arrays, so that the tap loop is unrolled and the weights stay in registers.
        let tap_start_3x3: Option<[usize; 9]> = tap_start.as_slice().try_into().ok();
        // The input clip and the codes' grid, broadcast once.
        let (lo, hi) = op.input_clip.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let (clip, lo, hi) = (op.input_clip.is_some(), _mm256_set1_ps(lo), _mm256_set1_ps(hi));
        let clip = |v| if clip { clamp(v, lo, hi) } else { v };
        let (scale, codes_zero_point) = match input {
            Source::Codes(_, (scale, zero_point)) => (scale, zero_point),
            Source::Values(_) => (1.0, 0),
        };
        let (scale, codes_zero_point) = (_mm256_set1_ps(scale), _mm256_set1_epi32(codes_zero_point));
        for c in 0..output.len() / (oh * ow) {
            match input.slice(c * ih * iw..(c + 1) * ih * iw) {
                // Strides beyond 2 (no model we know has them): the portable fill.
                src if g.stride[1] > 2 => op.fill_plane(src, plane),
                Source::Values(x) => fill_plane(g, |i, n| load(&x[i..i + n]), plane, clip),
                Source::Codes(x, _) => {
                    let load = |i, n| {
                        let q = _mm256_sub_epi32(_mm256_cvtepu8_epi32(bytes8(&x[i..i + n])), codes_zero_point);
                        _mm256_mul_ps(_mm256_cvtepi32_ps(q), scale)
                    };
                    fill_plane(g, load, plane, clip)
                }
            }
            let w = &op.weights[(first + c) * taps..(first + c + 1) * taps];
            let bias = _mm256_set1_ps(op.bias[first + c]);
            let out = &mut output[c * oh * ow..(c + 1) * oh * ow];
            match tap_start_3x3 {
                Some(starts) => {
                    let wv: [__m256; 9] = std::array::from_fn(|t| _mm256_set1_ps(w[t]));
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
                    let wv: Vec<__m256> = w.iter().map(|v| _mm256_set1_ps(*v)).collect();
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

/// The mask of the first `n` (at most 8) lanes, for `vmaskmovps`.
///
/// # Safety
/// The CPU must have AVX.
#[inline(always)]
unsafe fn mask(n: usize) -> __m256i {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe {
        let n = _mm256_set1_epi32(n.min(8) as i32);
        _mm256_cmpgt_epi32(n, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
    }
}

/// `x` (at most 8 values) in a register's first lanes, zeros after them; lanes past `x` are never read.
///
/// # Safety
/// The CPU must have AVX.
#[inline(always)]
unsafe fn load(x: &[f32]) -> __m256 {
    // SAFETY: the caller keeps this function's contract (its `# Safety`); a masked load reads only its lanes.
    unsafe {
        if x.len() >= 8 {
            _mm256_loadu_ps(x.as_ptr())
        } else {
            _mm256_maskload_ps(x.as_ptr(), mask(x.len()))
        }
    }
}

/// The first `n` (at most 8) lanes of `v` into `dst`; nothing after them is written.
///
/// # Safety
/// The CPU must have AVX; `dst` holds `n` writable values.
#[inline(always)]
pub(super) unsafe fn store(dst: *mut f32, v: __m256, n: usize) {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe {
        if n >= 8 {
            _mm256_storeu_ps(dst, v);
        } else if n > 0 {
            _mm256_maskstore_ps(dst, mask(n), v);
        }
    }
}

/// Codes `x` (at most 8) in a vector's first bytes, zeros after them.
///
/// # Safety
/// The CPU must have SSE2.
#[inline(always)]
unsafe fn bytes8(x: &[u8]) -> __m128i {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe {
        if x.len() >= 8 {
            _mm_loadl_epi64(x.as_ptr() as *const __m128i)
        } else {
            let mut b = [0u8; 8];
            b[..x.len()].copy_from_slice(x);
            _mm_loadl_epi64(b.as_ptr() as *const __m128i)
        }
    }
}

/// The first `n` (at most 8) of the i32 lanes of `codes` (each in 0..=255) into `dst` as bytes.
///
/// # Safety
/// The CPU must have AVX2; `dst` holds `n` writable bytes.
#[inline(always)]
pub(super) unsafe fn store_codes(dst: *mut u8, codes: __m256i, n: usize) {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe {
        let words = _mm_packus_epi32(_mm256_castsi256_si128(codes), _mm256_extracti128_si256(codes, 1));
        let bytes = _mm_packus_epi16(words, words);
        if n >= 8 {
            _mm_storel_epi64(dst as *mut __m128i, bytes);
        } else if n > 0 {
            let mut b = [0u8; 16];
            _mm_storeu_si128(b.as_mut_ptr() as *mut __m128i, bytes);
            std::ptr::copy_nonoverlapping(b.as_ptr(), dst, n);
        }
    }
}

/// [`Geometry::fill_plane_with`] in vectors, for a stride of 1 or 2: `load(i, n)` gives the channel's values
/// `i..i + n` (n at most 8, lanes after them ignored), which go through `f` into each row of the plane 8 at a time
/// (16 when split into two column phases), with partial stores at the row's end. The same values; the padding
/// stays as it was.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2,fma")]
unsafe fn fill_plane(
    g: &Geometry,
    load: impl Fn(usize, usize) -> __m256,
    plane: &mut [f32],
    f: impl Fn(__m256) -> __m256,
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
                for j in (0..iw).step_by(8) {
                    let n = (iw - j).min(8);
                    store(d.add(j), f(load(r * iw + j, n)), n);
                }
            }
            return;
        }
        // Column j goes to phase (j + left) % 2 at (j + left) / 2: the even columns of a row to one phase from
        // left / 2 on, the odd ones to the other from (left + 1) / 2 on. 16 values in two registers: `shufps` takes
        // the even (odd) lanes of each 128-bit half, `vpermpd` puts the halves in order.
        let (even_phase, odd_phase) = (left % 2, (left + 1) % 2);
        for r in 0..ih {
            let even = plane.add((even_phase * ph + r + top) * pw + left / 2);
            let odd = plane.add((odd_phase * ph + r + top) * pw + (left + 1) / 2);
            for j in (0..iw).step_by(16) {
                let n = iw - j;
                let lo = load(r * iw + j, n.min(8));
                let hi = if n > 8 { load(r * iw + j + 8, (n - 8).min(8)) } else { _mm256_setzero_ps() };
                let in_order =
                    |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)));
                let (e, o) = (
                    in_order(_mm256_shuffle_ps::<0b10_00_10_00>(lo, hi)),
                    in_order(_mm256_shuffle_ps::<0b11_01_11_01>(lo, hi)),
                );
                store(even.add(j / 2), f(e), n.div_ceil(2).min(8));
                store(odd.add(j / 2), f(o), (n / 2).min(8));
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
    weights: &'a [__m256],
    tap_start: &'a [usize],
    bias: __m256,
    epilogue: &'a Epilogue,
    /// Of the output codes, when it writes codes.
    zero_point: __m256i,
}

impl Channel<'_> {
    /// All `oh` output rows into `out` (the channel's `oh x ow` values), two at a time, in blocks of 16 outputs (8
    /// for rows of at most 8, the 7x7 planes of MobileNet's last blocks).
    ///
    /// # Safety
    /// The CPU must have AVX2; `out` holds the channel's `oh x ow` outputs and the plane every load (checked by the
    /// caller against [`Geometry::last_load`]).
    #[inline(always)]
    unsafe fn run<T: Output>(&self, oh: usize, out: &mut [T]) {
        // SAFETY: the caller keeps this function's contract (its `# Safety`).
        unsafe {
            let mut y = 0;
            if self.ow <= 8 {
                while y + 2 <= oh {
                    self.rows::<2, 1, T>(y, out);
                    y += 2;
                }
                if y < oh {
                    self.rows::<1, 1, T>(y, out);
                }
                return;
            }
            while y + 2 <= oh {
                self.rows::<2, 2, T>(y, out);
                y += 2;
            }
            if y < oh {
                self.rows::<1, 2, T>(y, out);
            }
        }
    }

    /// Output rows `y..y + R`, in blocks of `B` registers of 8.
    ///
    /// # Safety
    /// As [`Channel::run`], for rows `y..y + R` of the channel.
    #[inline(always)]
    unsafe fn rows<const R: usize, const B: usize, T: Output>(&self, y: usize, out: &mut [T]) {
        // SAFETY: the caller keeps this function's contract (its `# Safety`).
        unsafe {
            let (base, ow) = (self.plane.as_ptr(), self.ow);
            let mut x = 0;
            while x < ow {
                let mut acc = [[self.bias; B]; R];
                for (wv, start) in self.weights.iter().zip(self.tap_start) {
                    let wv = *wv;
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let src = base.add((y + r) * self.row_step + start + x);
                        for (b, acc) in acc.iter_mut().enumerate() {
                            *acc = _mm256_add_ps(*acc, _mm256_mul_ps(wv, _mm256_loadu_ps(src.add(8 * b))));
                        }
                    }
                }
                let width = (ow - x).min(8 * B);
                for (r, acc) in acc.iter().enumerate() {
                    for (b, acc) in acc.iter().enumerate() {
                        let (at, n) = ((y + r) * ow + x + 8 * b, width.saturating_sub(8 * b).min(8));
                        if T::CODES {
                            store_codes(
                                out.as_mut_ptr().add(at) as *mut u8,
                                self.epilogue.code(*acc, self.zero_point),
                                n,
                            );
                        } else {
                            store(out.as_mut_ptr().add(at) as *mut f32, self.epilogue.apply(*acc), n);
                        }
                    }
                }
                x += 8 * B;
            }
        }
    }
}
