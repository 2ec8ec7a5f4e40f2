//! The int8 pointwise convolution with AVX2 and FMA, exact: AVX2 has no exact 8-bit dot product (`vpmaddubsw`
//! saturates its i16 pair sums, which is why onnxruntime's AVX2 int8 path can overflow), and `vpmaddwd` on i16 does
//! 16 products in two instructions (with the add). A fused multiply-add on f32 does 8 in one: products of a u8 code
//! and an int8 weight, and sums of up to [`CHUNK`] of them, are integers below 2^24, which f32 holds exactly, so
//! each chunk's f32 sum is the exact integer sum; chunks are added as i32. The sums are then the portable kernel's,
//! and the epilogue runs its operations in the same order: the same outputs, bit for bit.
//!
//! Each 16-pixel block of the input is packed as f32 codes `[k][16 pixels]` (quantized from values with the portable
//! `code`'s operations, or widened from u8 codes); weights are widened to f32 once per convolution
//! ([`QPointwise::wide_weights`]). The micro-kernel is 6 output channels x 16 pixels: 12 accumulators, 2 input and
//! 1 broadcast weight register of AVX2's 16.

use super::depthwise::{store, store_codes};
use super::epilogue::Epilogue;
use crate::kernels::epilogue::{Dest, Output, Source};
use crate::kernels::parallel;
use crate::kernels::qpointwise::{QPointwise, PIXELS};
use crate::kernels::quant::ROUND;
use std::arch::x86_64::*;

/// Output channels per micro-kernel call ([`QPointwise::wide_weights`] pads its rows to a multiple of it).
pub(crate) const ROWS: usize = 6;

/// Products summed in f32 before the sum moves to i32: `512 * 255 * 128 < 2^24`, so every partial sum is an integer
/// that f32 holds exactly.
const CHUNK: usize = 512;
const _: () = assert!(CHUNK * 255 * 128 < 1 << 24);

/// [`run`] as the kernels' table holds it.
pub(crate) fn plugged(op: &QPointwise, x: Source, out: Dest) {
    // SAFETY: plugged in (x86_64::plug) only where the CPU has AVX2 and FMA.
    unsafe {
        match out {
            Dest::Values(out) => run(op, x, out),
            Dest::Codes(out) => run(op, x, out),
        }
    }
}

/// Bytes of packed panels a thread keeps at once: a tile of blocks within a 2-core AMD EPYC's 512 KB L2, swept once
/// per 6 output channels, whose weights stay in L1. (One block at a time, the whole weight matrix was read again per
/// block: 1.2 MB of f32 for MobileNetV2's 960 -> 320 convolution, from L3.)
const TILE_BYTES: usize = 256 * 1024;

/// The convolution, the pixels split over the call's threads ([`QPointwise::split_pixels_unpacked`]), each thread
/// packing a tile of blocks into its own scratch, then sweeping it for every 6 output channels.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
unsafe fn run<T: Output>(op: &QPointwise, x: Source, out: &mut [T]) {
    let weights = op.wide_weights(ROWS);
    let block_len = op.k4 * 4 * PIXELS;
    let tile = (TILE_BYTES / (block_len * 4)).max(1);
    op.split_pixels_unpacked(out, 1, |blocks, out| {
        let tile = tile.min(blocks.len());
        parallel::with_zeroed_floats(tile * block_len, |panels| {
            for b0 in blocks.clone().step_by(tile) {
                let panels = &mut panels[..tile.min(blocks.end - b0) * block_len];
                // SAFETY: the CPU has AVX2 and FMA (the caller's promise); `out` holds every output channel's row of
                // pixels, and this thread writes only its own blocks.
                unsafe { sweep::<T>(op, weights, x, b0, panels, out as *mut u8) }
            }
        })
    })
}

/// Packs the blocks from `b0` into `panels` (one block's `k4 * 4 * 16` values each), then computes every output
/// channel of them, 6 channels at a time, with the epilogue's constants broadcast once per tile.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `weights` is [`QPointwise::wide_weights`] for [`ROWS`], and `out` the whole
/// `[out_channels][pixels]` output of `T`s.
#[target_feature(enable = "avx2,fma")]
unsafe fn sweep<T: Output>(op: &QPointwise, weights: &[f32], x: Source, b0: usize, panels: &mut [f32], out: *mut u8) {
    let block_len = op.k4 * 4 * PIXELS;
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe {
        for (b, panel) in panels.chunks_exact_mut(block_len).enumerate() {
            pack(op, x, b0 + b, panel);
        }
        let epilogue = Epilogue::new(op.clip, op.fake_quant.as_ref());
        let zero_point = _mm256_set1_epi32(op.codes_out.unwrap_or(0));
        for o0 in (0..op.out_channels).step_by(ROWS) {
            for (b, panel) in panels.chunks_exact(block_len).enumerate() {
                kernel::<T>(op, weights, panel, o0, (b0 + b) * PIXELS, &epilogue, zero_point, out);
            }
        }
    }
}

/// Packs pixel block `block` of the input into `panel` as f32 codes, `[channel][16 pixels]`; channels past the
/// input's are left as they are (their weights are zero), and so are a partial block's lanes past the last pixel
/// (their outputs are never stored).
///
/// # Safety
/// The CPU must have AVX2 and FMA; `panel` holds `k4 * 4 * 16` values.
#[target_feature(enable = "avx2,fma")]
unsafe fn pack(op: &QPointwise, x: Source, block: usize, panel: &mut [f32]) {
    let (pixels, p0) = (op.pixels, block * PIXELS);
    let n = PIXELS.min(pixels - p0);
    assert!(panel.len() >= op.k4 * 4 * PIXELS);
    if n < PIXELS {
        for i in 0..op.in_channels {
            for l in 0..n {
                panel[i * PIXELS + l] = op.code_at(x, i, p0 + l) as f32;
            }
        }
        return;
    }
    // SAFETY: every load is 16 values or codes of one channel's row, inside the input (a full block); every store
    // 16 floats of `panel` (asserted).
    unsafe {
        match x {
            Source::Values(x) => {
                // The portable `code`: multiply, clamp (NaN to the lower bound, as vmaxps with the bound second),
                // round half to even, add the zero point (exact on these small integers).
                let zp = op.zero_point as f32;
                let (inv, lo, hi) = (_mm256_set1_ps(op.inv_scale), _mm256_set1_ps(-zp), _mm256_set1_ps(255.0 - zp));
                let (round, zp) = (_mm256_set1_ps(ROUND), _mm256_set1_ps(zp));
                for i in 0..op.in_channels {
                    let src = x[i * pixels + p0..][..PIXELS].as_ptr();
                    for h in 0..2 {
                        let v =
                            _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(src.add(8 * h)), inv), lo), hi);
                        let code = _mm256_add_ps(_mm256_sub_ps(_mm256_add_ps(v, round), round), zp);
                        _mm256_storeu_ps(panel.as_mut_ptr().add(i * PIXELS + 8 * h), code);
                    }
                }
            }
            Source::Codes(x, _) => {
                for i in 0..op.in_channels {
                    let src = x[i * pixels + p0..][..PIXELS].as_ptr();
                    let codes = _mm_loadu_si128(src as *const __m128i);
                    let (low, high) = (_mm256_cvtepu8_epi32(codes), _mm256_cvtepu8_epi32(_mm_srli_si128(codes, 8)));
                    _mm256_storeu_ps(panel.as_mut_ptr().add(i * PIXELS), _mm256_cvtepi32_ps(low));
                    _mm256_storeu_ps(panel.as_mut_ptr().add(i * PIXELS + 8), _mm256_cvtepi32_ps(high));
                }
            }
        }
    }
}

/// Output channels `o0..o0 + ROWS` (those that exist) for the 16 pixels from `p0`, from the packed `panel`: the
/// exact integer sums (f32 within a chunk, i32 across chunks), then the portable epilogue's operations (`epilogue`,
/// and the output's `zero_point` for codes), stored into `out` (f32 values, or u8 codes when `T` is codes).
///
/// # Safety
/// The CPU must have AVX2 and FMA; `weights` is [`QPointwise::wide_weights`] for [`ROWS`], `panel` one packed block,
/// and `out` the whole `[out_channels][pixels]` output of `T`s.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel<T: Output>(
    op: &QPointwise,
    weights: &[f32],
    panel: &[f32],
    o0: usize,
    p0: usize,
    epilogue: &Epilogue,
    zero_point: __m256i,
    out: *mut u8,
) {
    let depth = op.k4 * 4;
    assert!(weights.len() >= (o0 + ROWS) * depth && panel.len() >= depth * PIXELS);
    let mut sums = [[_mm256_setzero_si256(); 2]; ROWS];
    for k0 in (0..depth).step_by(CHUNK) {
        let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
        for k in k0..(k0 + CHUNK).min(depth) {
            // SAFETY: `k < depth`: the panel's row k and each row's weight k exist (asserted).
            unsafe {
                let x = [
                    _mm256_loadu_ps(panel.as_ptr().add(k * PIXELS)),
                    _mm256_loadu_ps(panel.as_ptr().add(k * PIXELS + 8)),
                ];
                for (r, acc) in acc.iter_mut().enumerate() {
                    let w = _mm256_broadcast_ss(&*weights.as_ptr().add((o0 + r) * depth + k));
                    acc[0] = _mm256_fmadd_ps(w, x[0], acc[0]);
                    acc[1] = _mm256_fmadd_ps(w, x[1], acc[1]);
                }
            }
        }
        for (sums, acc) in sums.iter_mut().zip(&acc) {
            for h in 0..2 {
                sums[h] = _mm256_add_epi32(sums[h], _mm256_cvtps_epi32(acc[h]));
            }
        }
    }
    let width = PIXELS.min(op.pixels - p0);
    for (r, sums) in sums.iter().enumerate().take(op.out_channels - o0) {
        let o = o0 + r;
        let (corr, scale, bias) =
            (_mm256_set1_epi32(op.correction(o)), _mm256_set1_ps(op.scales[o]), _mm256_set1_ps(op.bias[o]));
        for (h, &sum) in sums.iter().enumerate() {
            let v = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(sum, corr)), scale), bias);
            let (at, n) = (o * op.out_stride + p0 + 8 * h, width.saturating_sub(8 * h).min(8));
            // SAFETY: `out` holds `[out_channels][pixels]` outputs; the stores write this row's `n` pixels from `at`.
            unsafe {
                if T::CODES {
                    store_codes(out.add(at), epilogue.code(v, zero_point), n);
                } else {
                    store((out as *mut f32).add(at), epilogue.apply(v), n);
                }
            }
        }
    }
}
