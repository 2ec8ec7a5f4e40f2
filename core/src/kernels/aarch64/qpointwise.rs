//! The int8 pointwise convolution with the Armv8.2 dot-product extension: `sdot` multiplies 16 pairs of i8 and adds
//! them four by four into 4 i32 lanes. The input's u8 codes are packed in the portable kernel's layout (16 pixels x
//! 4 channels per panel entry, interleaved by `st4`) and shifted to i8 (`q - 128`, so that signed products hold
//! them); each output channel adds `128 * sum of its weights` back, which makes the sums exactly the portable
//! kernel's, and the epilogue runs the portable one's operations in the same order on NEON registers: the same
//! outputs, bit for bit.

use crate::kernels::aarch64::epilogue::NeonEpilogue;
use crate::kernels::epilogue::{Dest, Epilogue, Output, Source};
use crate::kernels::qpointwise::{QPointwise, PIXELS};
use std::arch::aarch64::*;
use std::ops::Range;

/// Output channels per pass: 4 channels x 16 pixels are 16 accumulator registers, with 4 for the inputs and 4
/// for the weights (of 32).
const ROWS: usize = 4;

/// [`run`] as the kernels' table holds it.
pub(super) fn plugged(op: &QPointwise, x: Source, out: Dest) {
    // SAFETY: plugged in (super::plug) only where the CPU has the dot-product extension.
    unsafe {
        match out {
            Dest::Values(out) => run(op, x, out),
            Dest::Codes(out) => run(op, x, out),
        }
    }
}

/// The convolution, the pixels split over the call's threads ([`QPointwise::split_pixels`]).
///
/// # Safety
/// The CPU must have the dot-product extension.
unsafe fn run<T: Output>(op: &QPointwise, x: Source, out: &mut [T]) {
    op.split_pixels(out, 1, |blocks, packed, out| {
        pack(op, x, blocks.clone(), packed);
        // SAFETY: the CPU has the extension (the caller's promise); `out` holds every output channel's row of
        // pixels, and this thread writes only its own pixels of each row.
        unsafe { gemm(op, packed, blocks, out) }
    })
}

/// Packs the pixel blocks `blocks` of the input into `packed` in [`QPointwise::pack_portable`]'s layout, each code
/// shifted to i8 (`q ^ 0x80`): four channel rows of 16 pixels at a time, quantized (the portable `code`'s
/// operations: multiply, clamp with NaN to the lower bound, round half to even) or copied, and interleaved by `st4`.
/// Channel counts not a multiple of 4 and the partial last block take the portable code, value by value.
fn pack(op: &QPointwise, x: Source, blocks: Range<usize>, packed: &mut [u8]) {
    let (pixels, k4, b0) = (op.pixels, op.k4, blocks.start);
    if op.in_channels % 4 != 0 || pixels < PIXELS {
        op.pack_portable(x, blocks, packed);
        packed.iter_mut().for_each(|q| *q ^= 0x80);
        return;
    }
    let full = (pixels / PIXELS).clamp(b0, blocks.end);
    assert!(packed.len() >= blocks.len() * k4 * PIXELS * 4);
    let zp = op.zero_point;
    // SAFETY: NEON is part of every AArch64 CPU; every load is a whole block of 16 pixels of 4 channel rows (full
    // blocks only, and 4 divides the channels), every store one 64-byte panel entry of `packed` (asserted).
    unsafe {
        let (inv, lo, hi) = (vdupq_n_f32(op.inv_scale), vdupq_n_f32(-zp as f32), vdupq_n_f32(255.0 - zp as f32));
        let shift = vdupq_n_s32(zp - 128);
        let quad = |p: *const f32| {
            vaddq_s32(vcvtnq_s32_f32(vminq_f32(vmaxnmq_f32(vmulq_f32(vld1q_f32(p), inv), lo), hi)), shift)
        };
        let row = |p: *const f32| {
            let low = vcombine_s16(vmovn_s32(quad(p)), vmovn_s32(quad(p.add(4))));
            let high = vcombine_s16(vmovn_s32(quad(p.add(8))), vmovn_s32(quad(p.add(12))));
            vcombine_s8(vmovn_s16(low), vmovn_s16(high))
        };
        let flip = vdupq_n_u8(0x80);
        for g in 0..k4 {
            for b in b0..full {
                let dst = packed.as_mut_ptr().add(((b - b0) * k4 + g) * PIXELS * 4) as *mut i8;
                let at = |j: usize| (g * 4 + j) * pixels + b * PIXELS;
                let rows = match x {
                    Source::Values(x) => int8x16x4_t(
                        row(x[at(0)..][..16].as_ptr()),
                        row(x[at(1)..][..16].as_ptr()),
                        row(x[at(2)..][..16].as_ptr()),
                        row(x[at(3)..][..16].as_ptr()),
                    ),
                    Source::Codes(x, _) => {
                        let codes = |j| vreinterpretq_s8_u8(veorq_u8(vld1q_u8(x[at(j)..][..16].as_ptr()), flip));
                        int8x16x4_t(codes(0), codes(1), codes(2), codes(3))
                    }
                };
                vst4q_s8(dst, rows);
            }
        }
    }
    // The partial last block, value by value (lanes past the last pixel are never stored: left as they are).
    for g in 0..k4 {
        for p in full * PIXELS..(blocks.end * PIXELS).min(pixels) {
            for j in 0..4 {
                packed[((p / PIXELS - b0) * k4 + g) * PIXELS * 4 + (p % PIXELS) * 4 + j] =
                    op.code_at(x, g * 4 + j, p) ^ 0x80;
            }
        }
    }
}

/// `acc += sdot(x, w)`: each of acc's 4 lanes gains the dot product of 4 bytes of `x` with the same 4 of `w`; with a
/// lane, with the 4 bytes of `w`'s 32-bit lane `lane` in every lane. (The intrinsics are not stable yet.) Inside an
/// `unsafe` block of a function compiled with `dotprod`; register operands only.
macro_rules! sdot {
    ($acc:expr, $x:expr, $w:expr) => {
        std::arch::asm!("sdot {acc:v}.4s, {x:v}.16b, {w:v}.16b", acc = inout(vreg) $acc, x = in(vreg) $x, w = in(vreg) $w, options(pure, nomem, nostack))
    };
    ($acc:expr, $x:expr, $w:expr, $lane:expr) => {
        std::arch::asm!("sdot {acc:v}.4s, {x:v}.16b, {w:v}.4b[{lane}]", acc = inout(vreg) $acc, x = in(vreg) $x, w = in(vreg) $w, lane = const $lane, options(pure, nomem, nostack))
    };
}

/// Every output channel for the pixel blocks `blocks`, from their packed (shifted) panels, into `out` (`[out_channels]
/// [pixels]`; only these pixels of each row are written): [`ROWS`] channels at a time over every block ([`Tile`]).
///
/// # Safety
/// The CPU must have the dot-product extension; `packed` holds the blocks' panels and `out` the whole output.
#[target_feature(enable = "dotprod")]
unsafe fn gemm<T: Output>(op: &QPointwise, packed: &[u8], blocks: Range<usize>, out: *mut T) {
    let k4 = op.k4;
    let panel_len = k4 * PIXELS * 4;
    assert!(
        packed.len() >= blocks.len() * panel_len && op.weights.len() >= op.out_channels.next_multiple_of(ROWS) * k4 * 4
    );
    let epilogue = NeonEpilogue::new(Epilogue::new(op.clip, op.fake_quant.as_ref()), op.codes_out.unwrap_or(0));
    for o0 in (0..op.out_channels).step_by(ROWS) {
        let tile = Tile::new(op, o0, &epilogue);
        for block in blocks.clone() {
            // SAFETY: the panel is inside `packed` (asserted); the block's pixels of the tile's rows are this call's
            // (the caller's promise).
            unsafe {
                let panel = packed.as_ptr().add((block - blocks.start) * panel_len) as *const i8;
                let (p0, n) = (block * PIXELS, PIXELS.min(op.pixels - block * PIXELS));
                // A partial last block multiplies only the registers of pixels it has: 1 pixel of 49, say.
                match n.div_ceil(4) {
                    4 => tile.block::<4, T>(panel, out, p0, n),
                    3 => tile.block::<3, T>(panel, out, p0, n),
                    2 => tile.block::<2, T>(panel, out, p0, n),
                    _ => tile.block::<1, T>(panel, out, p0, n),
                }
            }
        }
    }
}

/// [`ROWS`] output channels from `o0` on: where their weights start, each one's sums' starting value
/// (`128 * sum of its weights - correction`: the shift added back, then the portable kernel's correction, the same
/// integers), scale and bias broadcast, and the epilogue.
struct Tile<'a> {
    op: &'a QPointwise,
    o0: usize,
    weights: *const i8,
    start: [i32; ROWS],
    scale: [float32x4_t; ROWS],
    bias: [float32x4_t; ROWS],
    epilogue: &'a NeonEpilogue,
}

impl<'a> Tile<'a> {
    fn new(op: &'a QPointwise, o0: usize, epilogue: &'a NeonEpilogue) -> Tile<'a> {
        let k4 = op.k4;
        // Rows past the last channel repeat it (their outputs are never stored).
        let o = |r: usize| (o0 + r).min(op.out_channels - 1);
        // SAFETY: NEON is part of every AArch64 CPU.
        unsafe {
            Tile {
                op,
                o0,
                // Rows are padded with zero weights to a multiple of 8 (see QPointwise::new): 4 rows are always there.
                weights: op.weights[o0 * k4 * 4..].as_ptr(),
                start: std::array::from_fn(|r| 128 * op.row_sums[o(r)] - op.correction(o(r))),
                scale: std::array::from_fn(|r| vdupq_n_f32(op.scales[o(r)])),
                bias: std::array::from_fn(|r| vdupq_n_f32(op.bias[o(r)])),
                epilogue,
            }
        }
    }

    /// The tile's outputs for one block of pixels `p0..p0 + n` (n <= 4 x Q), from its packed panel: `Q` registers
    /// of 4 pixels per channel, four input-channel groups at a time, each channel's 16 weight bytes of them one
    /// register that `sdot` takes a group of by lane; then the epilogue in registers.
    ///
    /// # Safety
    /// The CPU must have the dot-product extension; `panel` is the block's whole panel, and `out` holds pixels
    /// `p0..p0 + n` of the tile's rows (at the op's output row stride).
    #[inline(always)]
    unsafe fn block<const Q: usize, T: Output>(&self, panel: *const i8, out: *mut T, p0: usize, n: usize) {
        // SAFETY: the caller keeps this function's contract (its `# Safety`).
        unsafe {
            let (k4, w) = (self.op.k4, self.weights);
            let mut acc: [[int32x4_t; Q]; ROWS] = self.start.map(|s| [vdupq_n_s32(s); Q]);
            let xs = |k: usize| -> [int8x16_t; Q] { std::array::from_fn(|q| vld1q_s8(panel.add(k * 64 + q * 16))) };
            let mut k = 0;
            while k + 4 <= k4 {
                let ws: [int8x16_t; ROWS] = std::array::from_fn(|r| vld1q_s8(w.add((r * k4 + k) * 4)));
                macro_rules! step {
                    ($lane:literal) => {
                        let x = xs(k + $lane);
                        for (acc, wv) in acc.iter_mut().zip(ws) {
                            for (a, x) in acc.iter_mut().zip(x) {
                                sdot!(*a, x, wv, $lane);
                            }
                        }
                    };
                }
                step!(0);
                step!(1);
                step!(2);
                step!(3);
                k += 4;
            }
            for k in k..k4 {
                let x = xs(k);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let wv = vreinterpretq_s8_s32(vdupq_n_s32(std::ptr::read_unaligned(
                        w.add((r * k4 + k) * 4) as *const i32
                    )));
                    for (a, x) in acc.iter_mut().zip(x) {
                        sdot!(*a, x, wv);
                    }
                }
            }
            // The epilogue's constants as local values and its rows written out: stores through `out` may alias
            // anything behind a reference, so that read through `self` they were loaded again for every row, and a
            // loop over the rows kept the sums on the stack.
            let (epilogue, scale, bias, stride) = (*self.epilogue, self.scale, self.bias, self.op.out_stride);
            let rows = self.op.out_channels - self.o0;
            let out = out.add(self.o0 * stride + p0);
            macro_rules! finish {
                ($r:literal) => {
                    if $r < rows {
                        // (acc - correction) as f32 * scale + bias, as the portable kernel's.
                        let values = acc[$r].map(|a| vaddq_f32(vmulq_f32(vcvtq_f32_s32(a), scale[$r]), bias[$r]));
                        epilogue.store(values, out.add($r * stride), n);
                    }
                };
            }
            const { assert!(ROWS == 4) };
            finish!(0);
            finish!(1);
            finish!(2);
            finish!(3);
        }
    }
}
