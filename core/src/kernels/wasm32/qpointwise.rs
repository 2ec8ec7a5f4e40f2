//! The int8 pointwise convolution on WebAssembly SIMD: `i32x4.dot_i16x8_s` multiplies 8 pairs of i16 and adds them
//! two by two into 4 i32 lanes. Each 16-pixel block's u8 codes are packed pixel by pixel as i16 (channels
//! contiguous, padded with zeros to a multiple of 8), and each call widens the int8 weights to i16 once: plain
//! loads in the inner loop, which were 12% faster than widening loads there. Products of u8 and i8 and their
//! pairwise sums fit in i32, so the sums are exact and the same as the portable kernel's, and the epilogue is the
//! portable one: the same outputs, bit for bit (`kernels::qpointwise`'s tests, run in WebAssembly by
//! `tests/wasm/run.sh`).

use crate::kernels::epilogue::{Dest, Epilogue, Output, Source};
use crate::kernels::qpointwise::{QPointwise, PIXELS};
use std::arch::wasm32::*;

/// Output channels per pass, and pixels: 4 x 2 accumulators, 2 inputs and a weight vector within V8's 16 x86-64
/// vector registers (2 x 4, 3 x 2 and 4 x 1 measured 7-10% slower in Node.js 20).
const ROWS: usize = 4;
const COLS: usize = 2;

/// [`run`] as the kernels' table holds it.
pub(super) fn plugged(op: &QPointwise, x: Source, out: Dest) {
    match out {
        Dest::Values(out) => run(op, x, out),
        Dest::Codes(out) => run(op, x, out),
    }
}

/// The convolution, on the calling thread (browsers run our wasm on one).
fn run<T: Output>(op: &QPointwise, x: Source, out: &mut [T]) {
    // Rows of weights widened to i16 and padded with zeros to a multiple of 8 (the panel rows are 4): a whole
    // 8-weight load for every step, at the cost of copying the weights once per call.
    let (k8, stride) = ((op.k4 * 4).div_ceil(8) * 8, op.k4 * 4);
    let rows = op.out_channels.div_ceil(ROWS) * ROWS;
    let mut w = vec![0i16; rows * k8];
    for (dst, src) in w.chunks_exact_mut(k8).zip(op.weights.chunks_exact(stride)) {
        dst[..stride].iter_mut().zip(src).for_each(|(d, s)| *d = *s as i16);
    }
    let mut packed = vec![0i16; PIXELS * k8];
    let epilogue = Epilogue::new(op.clip, op.fake_quant.as_ref());
    for block in 0..op.pixels.div_ceil(PIXELS) {
        let (p0, n) = (block * PIXELS, PIXELS.min(op.pixels - block * PIXELS));
        pack(op, x, p0, n, k8, &mut packed);
        for o in (0..op.out_channels).step_by(ROWS) {
            let acc = sums(&packed, &w[o * k8..(o + ROWS) * k8], k8);
            for (r, acc) in acc.iter().enumerate().take(op.out_channels - o) {
                let row = (o + r) * op.out_stride + p0;
                op.finish(o + r, acc, &epilogue, &mut out[row..row + n]);
            }
        }
    }
}

/// Packs pixels `p0..p0 + n` of the input as u8 codes widened to i16, pixel by pixel (`k8` per pixel, channels
/// past the last left zero), reading each channel's row of pixels in order.
fn pack(op: &QPointwise, x: Source, p0: usize, n: usize, k8: usize, packed: &mut [i16]) {
    let pixels = op.pixels;
    match x {
        Source::Values(x) => {
            for (i, row) in x.chunks_exact(pixels).enumerate() {
                for (l, &v) in row[p0..p0 + n].iter().enumerate() {
                    packed[l * k8 + i] = op.code(v) as i16;
                }
            }
        }
        Source::Codes(x, _) => {
            for (i, row) in x.chunks_exact(pixels).enumerate() {
                for (l, &q) in row[p0..p0 + n].iter().enumerate() {
                    packed[l * k8 + i] = q as i16;
                }
            }
        }
    }
}

/// The integer sums of `ROWS` output channels (weights `w`, `k8` per row) over the 16 packed pixels.
fn sums(packed: &[i16], w: &[i16], k8: usize) -> [[i32; PIXELS]; ROWS] {
    assert!(packed.len() >= PIXELS * k8 && w.len() >= ROWS * k8 && k8 % 8 == 0);
    let mut out = [[0i32; PIXELS]; ROWS];
    for p in (0..PIXELS).step_by(COLS) {
        let mut acc = [[i32x4_splat(0); COLS]; ROWS];
        for k in (0..k8).step_by(8) {
            // SAFETY: pixels `p..p + COLS` (at most 16) of `k8` codes each are in `packed`, `ROWS` rows of `k8`
            // weights in `w`, and `k + 8 <= k8` (asserted).
            unsafe {
                let xs: [v128; COLS] =
                    std::array::from_fn(|c| v128_load(packed.as_ptr().add((p + c) * k8 + k) as *const v128));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let w = v128_load(w.as_ptr().add(r * k8 + k) as *const v128);
                    for c in 0..COLS {
                        acc[c] = i32x4_add(acc[c], i32x4_dot_i16x8(xs[c], w));
                    }
                }
            }
        }
        for r in 0..ROWS {
            for c in 0..COLS {
                let a = acc[r][c];
                out[r][p + c] = i32x4_extract_lane::<0>(a)
                    + i32x4_extract_lane::<1>(a)
                    + i32x4_extract_lane::<2>(a)
                    + i32x4_extract_lane::<3>(a);
            }
        }
    }
    out
}
