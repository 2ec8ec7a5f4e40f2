//! The int8 pointwise convolution with AVX-512 VNNI: `vpdpbusd` multiplies 64 u8 x i8 pairs and adds them into
//! 16 i32 accumulators in one instruction. The same integer sums and the same epilogue operations in the same
//! order as [`QPointwise::run_portable`], so the same bits.

use crate::kernels::epilogue::{Dest, Epilogue, Output, Source};
use crate::kernels::qpointwise::{QPointwise, PIXELS, ROWS};
use crate::kernels::quant::ROUND;
use crate::kernels::x86_64::epilogue as simd;
use std::arch::x86_64::*;
use std::ops::Range;

/// [`run`] as the kernels' table holds it.
pub(crate) fn plugged(op: &QPointwise, x: Source, out: Dest) {
    // SAFETY: plugged in (super::plug) only where the CPU has AVX-512 F, BW and VNNI.
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
/// The CPU must have AVX-512 F, BW and VNNI.
pub(crate) unsafe fn run<T: Output>(op: &QPointwise, x: Source, out: &mut [T]) {
    // Ranges of an even number of blocks: the kernel takes them two at a time.
    op.split_pixels(out, 2, |blocks, packed, out| {
        // SAFETY: the CPU has the features the kernels are compiled for (the caller's promise); `out` holds every
        // output channel's row of pixels, and this thread writes only its own pixels of each row.
        unsafe {
            pack(op, x, blocks.clone(), packed);
            gemm::<T>(op, packed, blocks, out as *mut u8);
        }
    })
}

/// Quantizes and packs four channel rows x 16 pixels into one 64-byte panel entry.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI; each row holds 16 readable values and `dst` 64 writable bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn pack_block(rows: [*const f32; 4], inv: __m512, zp: __m512i, hi: __m512i, dst: *mut u8) {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe {
        let code = |p: *const f32| {
            let q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(p), inv)), zp);
            _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(q, _mm512_setzero_si512()), hi))
        };
        interleave([code(rows[0]), code(rows[1]), code(rows[2]), code(rows[3])], dst);
    }
}

/// Packs four channel rows x 16 pixels of codes into one 64-byte panel entry.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI; each row holds 16 readable codes and `dst` 64 writable bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn pack_codes(rows: [*const u8; 4], dst: *mut u8) {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe {
        interleave(rows.map(|r| _mm_loadu_si128(r as *const __m128i)), dst);
    }
}

/// Four rows of 16 codes as 16 pixels x 4 channels.
///
/// # Safety
/// The CPU must have SSE2; `dst` holds 64 writable bytes.
#[inline(always)]
unsafe fn interleave([r0, r1, r2, r3]: [__m128i; 4], dst: *mut u8) {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe {
        let (t0, t1) = (_mm_unpacklo_epi8(r0, r1), _mm_unpackhi_epi8(r0, r1));
        let (t2, t3) = (_mm_unpacklo_epi8(r2, r3), _mm_unpackhi_epi8(r2, r3));
        _mm_storeu_si128(dst as *mut __m128i, _mm_unpacklo_epi16(t0, t2));
        _mm_storeu_si128(dst.add(16) as *mut __m128i, _mm_unpackhi_epi16(t0, t2));
        _mm_storeu_si128(dst.add(32) as *mut __m128i, _mm_unpacklo_epi16(t1, t3));
        _mm_storeu_si128(dst.add(48) as *mut __m128i, _mm_unpackhi_epi16(t1, t3));
    }
}

/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI; `packed` holds [`QPointwise::packed_len`] of the blocks.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(crate) unsafe fn pack(op: &QPointwise, x: Source, blocks: Range<usize>, packed: &mut [u8]) {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe {
        let (pixels, k4, b0) = (op.pixels, op.k4, blocks.start);
        if op.in_channels % 4 != 0 || pixels < PIXELS {
            return op.pack_portable(x, blocks, packed);
        }
        // Full blocks are written whole; a partial last block has lanes no pixel writes: zero it first.
        let full = (pixels / PIXELS).clamp(b0, blocks.end);
        packed[(full - b0) * k4 * PIXELS * 4..].fill(0);
        let inv = _mm512_set1_ps(op.inv_scale);
        let (zp, hi) = (_mm512_set1_epi32(op.zero_point), _mm512_set1_epi32(255));
        for g in 0..k4 {
            for b in b0..full {
                let dst = packed.as_mut_ptr().add(((b - b0) * k4 + g) * PIXELS * 4);
                let at = |j: usize| (g * 4 + j) * pixels + b * PIXELS;
                match x {
                    Source::Values(x) => {
                        pack_block([0, 1, 2, 3].map(|j| x[at(j)..at(j) + PIXELS].as_ptr()), inv, zp, hi, dst)
                    }
                    Source::Codes(x, _) => pack_codes([0, 1, 2, 3].map(|j| x[at(j)..at(j) + PIXELS].as_ptr()), dst),
                }
            }
            for p in full * PIXELS..(blocks.end * PIXELS).min(pixels) {
                for j in 0..4 {
                    packed[((p / PIXELS - b0) * k4 + g) * PIXELS * 4 + (p % PIXELS) * 4 + j] =
                        op.code_at(x, g * 4 + j, p);
                }
            }
        }
    }
}

/// `ROWS` output channels from `o0` over `NP` consecutive 16-pixel panels from pixel `p0`: `ROWS x NP`
/// accumulators, each weight broadcast feeding `NP` dot products (weight rows are padded to a multiple of
/// `ROWS`), then the epilogue in registers — the same operations in the same order as
/// [`QPointwise::finish`] — stored straight into `out` (f32 values, or u8 codes when `CODES`). `FQ` says
/// whether the output is fake-quantized. The clip runs only where it is not folded into the fake quantization
/// ([`crate::kernels::quant::FakeQuant::after_clip`]).
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI; `panels` holds `NP` packed panels, and `out` the whole
/// `[out_channels][pixels]` output of the element type `CODES` says.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn kernel<const NP: usize, const FQ: bool, const CODES: bool>(
    op: &QPointwise,
    panels: *const u8,
    o0: usize,
    p0: usize,
    out: *mut u8,
) {
    let k4 = op.k4;
    let panel_len = k4 * PIXELS * 4;
    let mut acc = [[_mm512_setzero_si512(); NP]; ROWS];
    let w = op.weights.as_ptr() as *const i32;
    for k in 0..k4 {
        let mut xv = [_mm512_setzero_si512(); NP];
        for (n, x) in xv.iter_mut().enumerate() {
            // SAFETY: `panels` holds `NP` panels of `k4 * PIXELS * 4` bytes (the contract above): 64 bytes in.
            *x = unsafe { _mm512_loadu_si512(panels.add(n * panel_len + k * PIXELS * 4) as *const _) };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: weight rows are padded to a multiple of ROWS (`o0 + r` is one), `k4` groups of 4 each.
            let wv = _mm512_set1_epi32(unsafe { *w.add((o0 + r) * k4 + k) });
            for n in 0..NP {
                acc_r[n] = _mm512_dpbusd_epi32(acc_r[n], xv[n], wv);
            }
        }
    }
    // The clip folded into the fake quantization's clamp where it can be.
    let Epilogue { clip, fake_quant } = Epilogue::new(op.clip, op.fake_quant.as_ref());
    let fq = fake_quant.unwrap_or([0.0; 5]);
    let (clip_lo, clip_hi) = clip.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
    let (clip_lo, clip_hi) = (_mm512_set1_ps(clip_lo), _mm512_set1_ps(clip_hi));
    let fq = fq.map(|v| _mm512_set1_ps(v));
    let round = _mm512_set1_ps(ROUND);
    let zero_point = _mm512_set1_epi32(op.codes_out.unwrap_or(0));
    let rows = (op.out_channels - o0).min(ROWS);
    // One expansion per row, so that every accumulator index is a constant and the array lives in registers
    // (a loop over the rows was left rolled by the compiler, which then kept the accumulators on the stack).
    macro_rules! finish_row {
        ($($r:literal)*) => {$(
            if $r < rows {
                let o = o0 + $r;
                let (corr, scale, bias) =
                    (_mm512_set1_epi32(op.correction(o)), _mm512_set1_ps(op.scales[o]), _mm512_set1_ps(op.bias[o]));
                for n in 0..NP {
                    let mut v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[$r][n], corr));
                    v = _mm512_add_ps(_mm512_mul_ps(v, scale), bias);
                    if clip.is_some() {
                        // SAFETY: the CPU has AVX-512 F (the contract above), all these helpers need.
                        v = unsafe { simd::clamp(v, clip_lo, clip_hi) };
                    }
                    let p = p0 + n * PIXELS;
                    let width = PIXELS.min(op.pixels - p);
                    let mask = ((1u32 << width) - 1) as u16;
                    if CODES {
                        // The level (an integer) plus the zero point: the code, 0..=255.
                        // SAFETY: AVX-512 F; `out` holds `[out_channels][pixels]` codes and `mask` keeps the
                        // store inside this row's `pixels`.
                        unsafe {
                            let code = _mm512_add_epi32(_mm512_cvtps_epi32(simd::level(v, fq, round)), zero_point);
                            _mm512_mask_cvtusepi32_storeu_epi8(out.add(o * op.out_stride + p) as *mut i8, mask, code);
                        }
                        continue;
                    }
                    if FQ {
                        // SAFETY: AVX-512 F.
                        v = unsafe { simd::fake_quant(v, fq, round) };
                    }
                    // SAFETY: `out` holds `[out_channels][pixels]` f32 values; a partial block's store is masked to
                    // this row's `pixels`.
                    unsafe {
                        let dst = (out as *mut f32).add(o * op.out_stride + p);
                        if width == PIXELS {
                            _mm512_storeu_ps(dst, v);
                        } else {
                            _mm512_mask_storeu_ps(dst, mask, v);
                        }
                    }
                }
            }
        )*};
    }
    const _: () = assert!(ROWS == 8, "finish_row! lists the rows");
    finish_row!(0 1 2 3 4 5 6 7);
}

/// Every output channel for the pixel blocks `blocks`, from their packed panels, into `out` (`[out_channels]
/// [pixels]`; only these pixels of each row are written).
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI; `packed` holds the blocks' panels, and `out` the whole
/// `[out_channels][pixels]` output of `T`s.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(crate) unsafe fn gemm<T: Output>(op: &QPointwise, packed: &[u8], blocks: Range<usize>, out: *mut u8) {
    // SAFETY: the caller keeps this function's contract (its `# Safety`).
    unsafe {
        let panel_len = op.k4 * PIXELS * 4;
        let mut block = blocks.start;
        while block < blocks.end {
            let panels = packed.as_ptr().add((block - blocks.start) * panel_len);
            let two = block + 2 <= blocks.end;
            for o0 in (0..op.out_channels).step_by(ROWS) {
                match (two, op.fake_quant.is_some(), T::CODES) {
                    (true, _, true) => kernel::<2, true, true>(op, panels, o0, block * PIXELS, out),
                    (false, _, true) => kernel::<1, true, true>(op, panels, o0, block * PIXELS, out),
                    (true, true, false) => kernel::<2, true, false>(op, panels, o0, block * PIXELS, out),
                    (true, false, false) => kernel::<2, false, false>(op, panels, o0, block * PIXELS, out),
                    (false, true, false) => kernel::<1, true, false>(op, panels, o0, block * PIXELS, out),
                    (false, false, false) => kernel::<1, false, false>(op, panels, o0, block * PIXELS, out),
                }
            }
            block += if two { 2 } else { 1 };
        }
    }
}
