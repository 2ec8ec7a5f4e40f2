//! The depthwise convolution with NEON: two output rows per pass, 16 outputs per block as four registers of 4
//! lanes (8 as two for narrow rows), each tap one fused multiply-add (as the portable loop on AArch64,
//! [`crate::kernels::depthwise::FUSED`]), the epilogue in registers, and the padded plane filled with vector loads.
//! The same operations in the same order as [`Depthwise::run_portable`], so the same bits.

use crate::kernels::aarch64::epilogue::{clamp, NeonEpilogue};
use crate::kernels::depthwise::Depthwise;
use crate::kernels::epilogue::{Dest, Epilogue, Output, Source};
use crate::kernels::plane::Geometry;
use std::arch::aarch64::*;

/// [`run`] as the kernels' table holds it.
pub(super) fn plugged(op: &Depthwise, input: Source, output: Dest, first: usize, plane: &mut [f32]) {
    match output {
        Dest::Values(out) => run(op, input, out, first, plane),
        Dest::Codes(out) => run(op, input, out, first, plane),
    }
}

/// Output channels `first..` of the convolution into `output`, as [`Depthwise::run_auto`] says.
fn run<T: Output>(op: &Depthwise, input: Source, output: &mut [T], first: usize, plane: &mut [f32]) {
    let g = &op.geometry;
    let ([ih, iw], [oh, ow], [kh, kw]) = (g.in_hw, g.out_hw, g.kernel);
    let taps = kh * kw;
    let tap_start = g.tap_start();
    // Every load stays inside `plane`.
    assert!(g.last_load(&tap_start) <= plane.len(), "depthwise plane too short");
    let epilogue = NeonEpilogue::new(Epilogue::new(op.clip, op.fake_quant.as_ref()), op.codes_out.unwrap_or(0));
    // Each channel's weights broadcast, in one buffer for all the channels.
    let mut wv: Vec<float32x4_t> = Vec::with_capacity(taps);
    for c in 0..output.len() / (oh * ow) {
        match input.slice(c * ih * iw..(c + 1) * ih * iw) {
            // Strides beyond 2 (no model we know has them): the portable fill.
            src if g.stride[1] > 2 => op.fill_plane(src, plane),
            src => fill_plane(op, src, plane),
        }
        wv.clear();
        // SAFETY: NEON is part of every AArch64 CPU.
        let bias = unsafe {
            wv.extend(op.weights[(first + c) * taps..(first + c + 1) * taps].iter().map(|v| vdupq_n_f32(*v)));
            vdupq_n_f32(op.bias[first + c])
        };
        // The channel's rows and everything after them: a row of one block may overhang into what comes later.
        let out = &mut output[c * oh * ow..];
        let channel = Channel { plane, geometry: g, weights: &wv, tap_start: &tap_start, bias, epilogue: &epilogue };
        // SAFETY: `out` starts with the channel's oh x ow outputs, and the plane holds every load (asserted).
        unsafe { channel.run(oh, out) }
    }
}

/// [`Depthwise::fill_plane`] with vector loads for strides 1 and 2 (a stride-2 row split into its two column phases
/// by `uzp1`/`uzp2`): the same values; the padding stays as it was.
fn fill_plane(op: &Depthwise, src: Source, plane: &mut [f32]) {
    let g = &op.geometry;
    let len = g.in_hw[0] * g.in_hw[1];
    if g.in_hw[1] < 8 {
        return op.fill_plane(src, plane);
    }
    match (src, op.input_clip) {
        (Source::Values(x), None) => fill_rows(g, plane, values(x, len), |v| v),
        (Source::Values(x), Some(clip)) => fill_rows(g, plane, values(x, len), clipped(clip)),
        (Source::Codes(x, grid), None) => fill_rows(g, plane, codes(x, len, grid), |v| v),
        (Source::Codes(x, grid), Some(clip)) => fill_rows(g, plane, codes(x, len, grid), clipped(clip)),
    }
}

/// Loads of 8 values `i..i + 8` of the channel `x` (`len` of them), for `i + 8 <= len`.
#[inline(always)]
fn values(x: &[f32], len: usize) -> impl Fn(usize) -> [float32x4_t; 2] + '_ {
    assert!(x.len() >= len);
    move |i| {
        debug_assert!(i + 8 <= len);
        // SAFETY: NEON is part of every AArch64 CPU; `i + 8 <= len <= x.len()` (fill_rows' loads).
        unsafe { [vld1q_f32(x.as_ptr().add(i)), vld1q_f32(x.as_ptr().add(i + 4))] }
    }
}

/// Loads of the values of 8 codes `i..i + 8` of the channel `x` (`len` of them) on the grid `(scale, zero point)`:
/// `(q - zero point) as f32 * scale`, as [`Depthwise::fill_plane`]; for `i + 8 <= len`.
#[inline(always)]
fn codes(x: &[u8], len: usize, (scale, zero_point): (f32, i32)) -> impl Fn(usize) -> [float32x4_t; 2] + '_ {
    assert!(x.len() >= len && (0..=255).contains(&zero_point), "codes too short, or a zero point not a u8");
    move |i| {
        debug_assert!(i + 8 <= len);
        // SAFETY: NEON is part of every AArch64 CPU; `i + 8 <= len <= x.len()` (fill_rows' loads).
        unsafe { eight_codes(x.as_ptr().add(i), scale, zero_point) }
    }
}

/// The values of the 8 codes at `p`: `(q - zero point) as f32 * scale`.
///
/// # Safety
/// `p` points to 8 readable bytes; `zero_point` is in 0..=255.
#[inline(always)]
unsafe fn eight_codes(p: *const u8, scale: f32, zero_point: i32) -> [float32x4_t; 2] {
    // SAFETY: NEON is part of every AArch64 CPU; the load is the caller's promise.
    unsafe {
        // q - zero point by a widening subtraction: u8 - u8 wraps in u16, and read as i16 it is the difference
        // (within ±255); then widened to i32, converted and scaled.
        let (s, z) = (vdupq_n_f32(scale), vdup_n_u8(zero_point as u8));
        let diff = vreinterpretq_s16_u16(vsubl_u8(vld1_u8(p), z));
        let value = |d: int32x4_t| vmulq_f32(vcvtq_f32_s32(d), s);
        [value(vmovl_s16(vget_low_s16(diff))), value(vmovl_high_s16(diff))]
    }
}

/// The input clip `(lo, hi)` on 4 lanes.
#[inline(always)]
fn clipped((lo, hi): (f32, f32)) -> impl Fn(float32x4_t) -> float32x4_t {
    // SAFETY: NEON is part of every AArch64 CPU.
    let (lo, hi) = unsafe { (vdupq_n_f32(lo), vdupq_n_f32(hi)) };
    move |v| clamp(v, lo, hi)
}

/// The rows of one channel's plane for a stride of 1 or 2 and rows of at least 8 values, from `eight(i)`, the
/// channel's values `i..i + 8`, each through `f`. A row's last block overlaps the one before it (the same values
/// written twice).
#[inline(always)]
fn fill_rows(
    g: &Geometry,
    plane: &mut [f32],
    eight: impl Fn(usize) -> [float32x4_t; 2],
    f: impl Fn(float32x4_t) -> float32x4_t,
) {
    let ([ih, iw], sw) = (g.in_hw, g.stride[1]);
    let (pw, ph, [top, left]) = (g.phase_width(), g.padded_height(), g.pad_before);
    assert!(
        sw <= 2 && iw >= 8 && plane.len() >= g.channel_plane_len(),
        "depthwise plane too short, a stride beyond 2 or rows under 8"
    );
    // SAFETY: NEON is part of every AArch64 CPU; every store is columns of row r + top of a phase of the plane
    // (asserted long enough) below that phase's width; every load 8 values of a row (`j + 8 <= iw`).
    unsafe {
        let plane = plane.as_mut_ptr();
        for r in 0..ih {
            if sw == 1 {
                let d = plane.add((r + top) * pw + left);
                let store = |j: usize| {
                    let [a, b] = eight(r * iw + j);
                    vst1q_f32(d.add(j), f(a));
                    vst1q_f32(d.add(j + 4), f(b));
                };
                (0..iw - 7).step_by(8).for_each(store);
                if iw % 8 != 0 {
                    store(iw - 8);
                }
                continue;
            }
            // Even column j goes to phase left % 2 at (j + left) / 2 = j / 2 + left / 2, odd column j + 1 to the
            // other phase at j / 2 + (left + 1) / 2.
            let even = plane.add(((left % 2) * ph + r + top) * pw + left / 2);
            let odd = plane.add((((left + 1) % 2) * ph + r + top) * pw + (left + 1) / 2);
            let store = |j: usize| {
                let [a, b] = eight(r * iw + j);
                vst1q_f32(even.add(j / 2), f(vuzp1q_f32(a, b)));
                vst1q_f32(odd.add(j / 2), f(vuzp2q_f32(a, b)));
            };
            (0..iw - 7).step_by(8).for_each(store);
            // The last block starts at an even column; an odd width's last column (even) is its own store.
            match iw % 8 {
                0 => {}
                rest if rest % 2 == 0 => store(iw - 8),
                _ => {
                    store(iw - 9);
                    let [_, b] = eight(r * iw + iw - 8);
                    vst1q_lane_f32::<3>(even.add((iw - 1) / 2), f(b));
                }
            }
        }
    }
}

/// One channel's convolution: its padded plane and geometry, broadcast weights and bias, and where each tap reads.
struct Channel<'a> {
    plane: &'a [f32],
    geometry: &'a Geometry,
    weights: &'a [float32x4_t],
    tap_start: &'a [usize],
    bias: float32x4_t,
    epilogue: &'a NeonEpilogue,
}

impl Channel<'_> {
    /// All `oh` output rows into `out` (the channel's `oh x ow` values, then whatever follows them), two at a time,
    /// in blocks of 8 outputs for rows of at most 8, else of 16; 3x3 kernels of stride 1 or 2 through
    /// [`Channel::rows_3x3`], others through [`Channel::rows`].
    ///
    /// # Safety
    /// `out` starts with the channel's `oh x ow` outputs, and the plane holds every load ([`Geometry::last_load`]).
    #[inline(always)]
    unsafe fn run<T: Output>(&self, oh: usize, out: &mut [T]) {
        // SAFETY: the caller keeps this function's contract (its `# Safety`).
        unsafe {
            let g = self.geometry;
            match (g.kernel, g.stride, g.out_hw[1] <= 8) {
                ([3, 3], [1, 1], true) => self.all_rows::<1, 2, T>(oh, out),
                ([3, 3], [1, 1], false) => self.all_rows::<1, 4, T>(oh, out),
                ([3, 3], [2, 2], true) => self.all_rows::<2, 2, T>(oh, out),
                ([3, 3], [2, 2], false) => self.all_rows::<2, 4, T>(oh, out),
                (_, _, true) => self.all_rows::<0, 2, T>(oh, out),
                (_, _, false) => self.all_rows::<0, 4, T>(oh, out),
            }
        }
    }

    /// [`Channel::run`] with blocks of `Q` registers, through [`Channel::rows_3x3`] for stride `S` (1 or 2) or
    /// [`Channel::rows`] (`S` 0).
    ///
    /// # Safety
    /// As [`Channel::run`].
    #[inline(always)]
    unsafe fn all_rows<const S: usize, const Q: usize, T: Output>(&self, oh: usize, out: &mut [T]) {
        // SAFETY: the caller keeps this function's contract (its `# Safety`).
        unsafe {
            let mut y = 0;
            while y + 2 <= oh {
                match S {
                    0 => self.rows::<2, Q, T>(y, out),
                    _ => self.rows_3x3::<S, 2, Q, T>(y, out),
                }
                y += 2;
            }
            if y < oh {
                match S {
                    0 => self.rows::<1, Q, T>(y, out),
                    _ => self.rows_3x3::<S, 1, Q, T>(y, out),
                }
            }
        }
    }

    /// Output rows `y..y + R` in blocks of `4 x Q`, each block's sums from `sums(x0)` (its first column), then the
    /// epilogue. No block is stored in part, which cost a `memcpy` each: a row longer than a block ends with a
    /// block that overlaps the one before it (the same outputs computed again, the same bits), and a row of one
    /// block stores it whole, its overhang landing on outputs stored after it: the next row's (in a pass, row y + 1
    /// is stored after row y) or the next channel's. Only an overhang past `out`'s end is stored in part.
    ///
    /// # Safety
    /// `out` starts with the channel's outputs, at least to the end of row `y + R - 1`.
    #[inline(always)]
    unsafe fn blocks<const R: usize, const Q: usize, T: Output>(
        &self,
        y: usize,
        out: &mut [T],
        sums: impl Fn(usize) -> [[float32x4_t; Q]; R],
    ) {
        // SAFETY: the caller keeps this function's contract (its `# Safety`).
        unsafe {
            let (ow, width) = (self.geometry.out_hw[1], 4 * Q);
            let last = ow.saturating_sub(width);
            let mut x = 0;
            loop {
                let x0 = x.min(last);
                for (r, acc) in sums(x0).iter().enumerate() {
                    let at = (y + r) * ow + x0;
                    let n = if ow < width { width.min(out.len() - at) } else { width };
                    self.epilogue.store(*acc, out.as_mut_ptr().add(at), n);
                }
                if x0 == last {
                    break;
                }
                x += width;
            }
        }
    }

    /// Output rows `y..y + R`: bias, then `acc + w * x` fused, tap by tap ([`Channel::blocks`]).
    ///
    /// # Safety
    /// As [`Channel::run`], for rows `y..y + R` of the channel.
    #[inline(always)]
    unsafe fn rows<const R: usize, const Q: usize, T: Output>(&self, y: usize, out: &mut [T]) {
        // SAFETY: the caller keeps this function's contract (its `# Safety`).
        unsafe {
            let (base, row_step) = (self.plane.as_ptr(), self.geometry.row_step());
            self.blocks::<R, Q, T>(y, out, |x0| {
                let mut acc = [[self.bias; Q]; R];
                for (wv, start) in self.weights.iter().zip(self.tap_start) {
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let src = base.add((y + r) * row_step + start + x0);
                        for (q, acc) in acc.iter_mut().enumerate() {
                            *acc = vfmaq_f32(*acc, *wv, vld1q_f32(src.add(q * 4)));
                        }
                    }
                }
                acc
            })
        }
    }

    /// [`Channel::rows`] for a 3x3 kernel of stride `S` (1 or 2): tap (ky, kx) reads plane row `(y + r) S + ky` of
    /// column phase `kx % S` at column `kx / S` ([`Geometry::tap_start`]), so each tap's address is a row's
    /// plus a constant (stride 1) or one of two offsets (stride 2), where the general loop loads each tap's start
    /// and adds it. The same taps in the same order: the same bits.
    ///
    /// # Safety
    /// As [`Channel::rows`].
    #[inline(always)]
    unsafe fn rows_3x3<const S: usize, const R: usize, const Q: usize, T: Output>(&self, y: usize, out: &mut [T]) {
        // SAFETY: the caller keeps this function's contract (its `# Safety`).
        unsafe {
            let g = self.geometry;
            let (base, pw) = (self.plane.as_ptr(), g.phase_width());
            let phase = g.padded_height() * pw;
            let w: [float32x4_t; 9] = self.weights.try_into().expect("3x3 weights");
            self.blocks::<R, Q, T>(y, out, |x0| {
                let mut acc = [[self.bias; Q]; R];
                for ky in 0..3 {
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let row = base.add(((y + r) * S + ky) * pw + x0);
                        for kx in 0..3 {
                            let src = row.add(if S == 1 { kx } else { (kx % 2) * phase + kx / 2 });
                            for (q, acc) in acc.iter_mut().enumerate() {
                                *acc = vfmaq_f32(*acc, w[ky * 3 + kx], vld1q_f32(src.add(q * 4)));
                            }
                        }
                    }
                }
                acc
            })
        }
    }
}
