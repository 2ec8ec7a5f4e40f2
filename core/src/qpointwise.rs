//! Our int8 pointwise (1x1) convolution for tract, for CPUs with AVX-512 VNNI: the matrix products that are most
//! of a quantized MobileNet's time, done in 8-bit integers as onnxruntime does, instead of tract's f32 products of
//! dequantized values.
//!
//! In a QDQ model a pointwise convolution reads activations that are fake-quantized (`(q - zp) * s`, q in 0..=255)
//! and weights that are `k * s_w[o]` with k in -128..=127. So `sum_i w[o][i] * x[i][p]` equals
//! `s * s_w[o] * sum_i k[o][i] * (q[i][p] - zp)` — an exact integer sum, which `vpdpbusd` computes 64 products at
//! a time. Each call quantizes its f32 input back to the codes q (exact: the values are on the grid) while packing
//! it into 16-pixel x 4-channel panels, multiplies, and runs the epilogue (scale, bias, clip, fake quantization of
//! the output) on each 16-pixel block while it is in registers. The result differs from tract's f32 evaluation
//! only by that evaluation's own rounding (and rarely by one quantization step after it), as onnxruntime's does.
//!
//! [`swap_in`] replaces tract's 1x1 Conv (typed model) or EinSum + bias Add (decluttered model), with the clip and
//! QuantizeLinear → DequantizeLinear after it, by this op, only where the CPU has the instructions and the weights
//! are exactly int8.

use crate::depthwise::{plain_conv, Depthwise, PlainConv, Source};
use crate::epilogue::{constant, only_successor, other_constant, tail_after};
use crate::fakequant::FakeQuant;
use crate::simd::{clamp, eval_into, Epilogue, Output, ROUND};
use std::ops::Range;
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math::Add;
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::ops::quant::DequantizeLinearF32;

/// Pixels per panel (one 512-bit vector of i32 accumulators).
const PIXELS: usize = 16;
/// Output channels per micro-kernel call.
const ROWS: usize = 8;

#[derive(Debug, Clone)]
pub struct QPointwise {
    in_channels: usize,
    out_channels: usize,
    pixels: usize,
    out_shape: TVec<usize>,
    /// Input activations are `(q - zero_point) * scale`; `inv_scale` recovers q.
    inv_scale: f32,
    zero_point: i32,
    /// `k[o][i]`, each row padded with zeros to `k4 * 4` values, rows padded with zeros to a multiple of `ROWS`.
    weights: Arc<Vec<i8>>,
    k4: usize,
    /// `zero_point * sum_i k[o][i]`, subtracted from each accumulator.
    correction: Arc<Vec<i32>>,
    /// `scale * s_w[o]`.
    scales: Arc<Vec<f32>>,
    bias: Arc<Vec<f32>>,
    clip: Option<(f32, f32)>,
    fake_quant: Option<FakeQuant>,
    /// The output as u8 codes of the fake quantization's grid (its zero point here), not f32 values: for a
    /// convolution that alone reads it and takes codes ([`crate::handover`]).
    codes_out: Option<i32>,
    /// The input as u8 codes of its grid (`zero_point`), not f32 values: from a convolution that writes them for
    /// this one alone ([`crate::handover`]). Packing them is then copying them.
    codes_in: bool,
}

impl PartialEq for QPointwise {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for QPointwise {}

impl QPointwise {
    /// The epilogue of one output channel's block: `(acc - correction) as f32 * scale + bias`, then `epilogue`
    /// (clip, fake quant), into `out` (values or codes).
    #[inline(always)]
    fn finish<T: Output>(&self, o: usize, acc: &[i32; PIXELS], epilogue: &Epilogue, out: &mut [T]) {
        let (corr, scale, bias) = (self.correction[o], self.scales[o], self.bias[o]);
        let mut pre = [0f32; PIXELS];
        for l in 0..PIXELS {
            pre[l] = (acc[l] - corr) as f32 * scale + bias;
        }
        T::finish(&mut pre, epilogue, self.codes_out.unwrap_or(0), out);
    }

    /// This convolution reading u8 codes of the grid `(scale, zero point)`; `None` when that is not its input's
    /// grid (quantizing the values the codes stand for would not give the codes back), or it reads codes already.
    pub(crate) fn with_codes_in(&self, (scale, zero_point): (f32, i32)) -> Option<QPointwise> {
        // |q - zero point| <= 255: a relative error below 1e-6 moves (q - zero point) * scale / s by < 0.001.
        let same_grid = zero_point == self.zero_point && (scale * self.inv_scale - 1.0).abs() < 1e-6;
        (!self.codes_in && same_grid).then(|| QPointwise { codes_in: true, ..self.clone() })
    }

    /// The input's code at channel `i`, pixel `p`.
    #[inline(always)]
    fn code_at(&self, x: Source, i: usize, p: usize) -> u8 {
        match x {
            Source::Values(x) => self.code(x[i * self.pixels + p]),
            Source::Codes(x, _) => x[i * self.pixels + p],
        }
    }

    /// This convolution writing u8 codes of its output's grid, and that grid `(scale, zero point)`; `None` without
    /// a fake-quantized output, or when it writes codes already.
    pub(crate) fn with_codes_out(&self) -> Option<(QPointwise, (f32, i32))> {
        let grid = self.fake_quant.as_ref()?.grid();
        self.codes_out.is_none().then(|| (QPointwise { codes_out: Some(grid.1), ..self.clone() }, grid))
    }

    /// The u8 code of an input value: `round_half_even(x / scale) + zero_point`, clamped to 0..=255.
    #[inline(always)]
    fn code(&self, x: f32) -> u8 {
        let v = clamp(x * self.inv_scale, -self.zero_point as f32, 255.0 - self.zero_point as f32);
        (((v + ROUND) - ROUND) as i32 + self.zero_point) as u8
    }

    /// Packs the 16-pixel blocks `blocks` of `[in_channels][pixels]` f32 into `packed`: panels
    /// `[pixel block][k4][16 pixels][4 channels]` of u8 codes (zeros beyond the last pixel and channel).
    fn pack_portable(&self, x: Source, blocks: Range<usize>, packed: &mut [u8]) {
        packed.fill(0);
        for i in 0..self.in_channels {
            for p in blocks.start * PIXELS..(blocks.end * PIXELS).min(self.pixels) {
                packed[((p / PIXELS - blocks.start) * self.k4 + i / 4) * PIXELS * 4 + (p % PIXELS) * 4 + i % 4] = self.code_at(x, i, p);
            }
        }
    }

    /// Bytes of `blocks` 16-pixel blocks of packed input: `[pixel block][k4][16 pixels][4 channels]`.
    fn packed_len(&self, blocks: usize) -> usize {
        blocks * self.k4 * PIXELS * 4
    }

    /// The reference: plain integer loops over packed panels (used by the tests, and where no fast kernel runs).
    fn run_portable<T: Output>(&self, x: Source, out: &mut [T]) {
        let blocks = self.pixels.div_ceil(PIXELS);
        let mut packed = vec![0u8; self.packed_len(blocks)];
        self.pack_portable(x, 0..blocks, &mut packed);
        let panel = self.k4 * PIXELS * 4;
        let epilogue = Epilogue::new(self.clip, self.fake_quant.as_ref());
        for (block, panel) in packed.chunks_exact(panel).enumerate() {
            for o in 0..self.out_channels {
                let w = &self.weights[o * self.k4 * 4..(o + 1) * self.k4 * 4];
                let mut acc = [0i32; PIXELS];
                for (k, lanes) in panel.chunks_exact(PIXELS * 4).enumerate() {
                    for (l, a) in acc.iter_mut().enumerate() {
                        for j in 0..4 {
                            *a += lanes[l * 4 + j] as i32 * w[k * 4 + j] as i32;
                        }
                    }
                }
                let p0 = block * PIXELS;
                let n = PIXELS.min(self.pixels - p0);
                self.finish(o, &acc, &epilogue, &mut out[o * self.pixels + p0..o * self.pixels + p0 + n]);
            }
        }
    }

    /// Splits the pixels over the call's threads: each quantizes and packs its own pixel blocks into its own
    /// scratch and computes every output channel for them (no thread waits for a shared packing, and each reads
    /// only the panels it packed).
    fn run<T: Output>(&self, x: Source, out: &mut [T]) {
        #[cfg(target_arch = "x86_64")]
        if has_vnni() {
            assert_eq!(out.len(), self.out_channels * self.pixels);
            assert!(!T::CODES || self.fake_quant.is_some(), "codes of a fake-quantized output only");
            let out = OutPtr(out.as_mut_ptr() as *mut u8);
            // Ranges of an even number of blocks: the kernel takes them two at a time.
            return crate::parallel::for_each_range(self.pixels.div_ceil(PIXELS), 2, |blocks| {
                crate::parallel::with_bytes(self.packed_len(blocks.len()), |packed| {
                    // SAFETY: the CPU has the features the kernels are compiled for; `out` holds every output
                    // channel's row of pixels, and each thread writes only its own pixels of each row.
                    unsafe {
                        vnni::pack(self, x, blocks.clone(), packed);
                        vnni::gemm::<T>(self, packed, blocks, out.get());
                    }
                })
            });
        }
        self.run_portable(x, out)
    }
}

/// The output, shared by the threads that write disjoint pixel ranges of it (in the x86-64 kernel).
#[cfg(target_arch = "x86_64")]
struct OutPtr(*mut u8);
// SAFETY: the threads sharing it write disjoint elements (see `QPointwise::run`).
#[cfg(target_arch = "x86_64")]
unsafe impl Sync for OutPtr {}

#[cfg(target_arch = "x86_64")]
impl OutPtr {
    /// (A method, so that closures capture the whole `Sync` wrapper, not its raw pointer field.)
    fn get(&self) -> *mut u8 {
        self.0
    }
}

/// Whether this CPU runs the fast kernel (AVX-512 F, BW and VNNI).
pub fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::{Epilogue, Output, QPointwise, Source, PIXELS, ROUND, ROWS};
    use crate::simd::avx512 as simd;
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// Quantizes and packs four channel rows x 16 pixels into one 64-byte panel entry.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn pack_block(rows: [*const f32; 4], inv: __m512, zp: __m512i, hi: __m512i, dst: *mut u8) {
        let code = |p: *const f32| {
            let q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(p), inv)), zp);
            _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(q, _mm512_setzero_si512()), hi))
        };
        interleave([code(rows[0]), code(rows[1]), code(rows[2]), code(rows[3])], dst);
    }

    /// Packs four channel rows x 16 pixels of codes into one 64-byte panel entry.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn pack_codes(rows: [*const u8; 4], dst: *mut u8) {
        interleave(rows.map(|r| _mm_loadu_si128(r as *const __m128i)), dst);
    }

    /// Four rows of 16 codes as 16 pixels x 4 channels.
    #[inline(always)]
    unsafe fn interleave([r0, r1, r2, r3]: [__m128i; 4], dst: *mut u8) {
        let (t0, t1) = (_mm_unpacklo_epi8(r0, r1), _mm_unpackhi_epi8(r0, r1));
        let (t2, t3) = (_mm_unpacklo_epi8(r2, r3), _mm_unpackhi_epi8(r2, r3));
        _mm_storeu_si128(dst as *mut __m128i, _mm_unpacklo_epi16(t0, t2));
        _mm_storeu_si128(dst.add(16) as *mut __m128i, _mm_unpackhi_epi16(t0, t2));
        _mm_storeu_si128(dst.add(32) as *mut __m128i, _mm_unpacklo_epi16(t1, t3));
        _mm_storeu_si128(dst.add(48) as *mut __m128i, _mm_unpackhi_epi16(t1, t3));
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn pack(op: &QPointwise, x: Source, blocks: Range<usize>, packed: &mut [u8]) {
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
                    Source::Values(x) => pack_block([0, 1, 2, 3].map(|j| x[at(j)..at(j) + PIXELS].as_ptr()), inv, zp, hi, dst),
                    Source::Codes(x, _) => pack_codes([0, 1, 2, 3].map(|j| x[at(j)..at(j) + PIXELS].as_ptr()), dst),
                }
            }
            for p in full * PIXELS..(blocks.end * PIXELS).min(pixels) {
                for j in 0..4 {
                    packed[((p / PIXELS - b0) * k4 + g) * PIXELS * 4 + (p % PIXELS) * 4 + j] = op.code_at(x, g * 4 + j, p);
                }
            }
        }
    }

    /// `ROWS` output channels from `o0` over `NP` consecutive 16-pixel panels from pixel `p0`: `ROWS x NP`
    /// accumulators, each weight broadcast feeding `NP` dot products (weight rows are padded to a multiple of
    /// `ROWS`), then the epilogue in registers — the same operations in the same order as
    /// [`QPointwise::finish`] — stored straight into `out` (f32 values, or u8 codes when `CODES`). `FQ` says
    /// whether the output is fake-quantized. The clip runs only where it is not folded into the fake quantization
    /// ([`crate::fakequant::FakeQuant::after_clip`]).
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
                *x = _mm512_loadu_si512(panels.add(n * panel_len + k * PIXELS * 4) as *const _);
            }
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let wv = _mm512_set1_epi32(*w.add((o0 + r) * k4 + k));
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
                        (_mm512_set1_epi32(op.correction[o]), _mm512_set1_ps(op.scales[o]), _mm512_set1_ps(op.bias[o]));
                    for n in 0..NP {
                        let mut v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[$r][n], corr));
                        v = _mm512_add_ps(_mm512_mul_ps(v, scale), bias);
                        if clip.is_some() {
                            v = simd::clamp(v, clip_lo, clip_hi);
                        }
                        let p = p0 + n * PIXELS;
                        let width = PIXELS.min(op.pixels - p);
                        let mask = ((1u32 << width) - 1) as u16;
                        if CODES {
                            // The level (an integer) plus the zero point: the code, 0..=255.
                            let code = _mm512_add_epi32(_mm512_cvtps_epi32(simd::level(v, fq, round)), zero_point);
                            _mm512_mask_cvtusepi32_storeu_epi8(out.add(o * op.pixels + p) as *mut i8, mask, code);
                            continue;
                        }
                        if FQ {
                            v = simd::fake_quant(v, fq, round);
                        }
                        let dst = (out as *mut f32).add(o * op.pixels + p);
                        if width == PIXELS {
                            _mm512_storeu_ps(dst, v);
                        } else {
                            _mm512_mask_storeu_ps(dst, mask, v);
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
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn gemm<T: Output>(op: &QPointwise, packed: &[u8], blocks: Range<usize>, out: *mut u8) {
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

impl Op for QPointwise {
    fn name(&self) -> StaticName {
        "SnakeidQPointwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} -> {} channels, {} pixels, input zero point {}, clip {:?}, fake quant {}",
            self.in_channels,
            self.out_channels,
            self.pixels,
            self.zero_point,
            self.clip,
            self.fake_quant.is_some()
        ) + if self.codes_in { ", u8 codes in" } else { "" }
            + if self.codes_out.is_some() { ", u8 codes out" } else { "" }])
    }

    op_as_typed_op!();
}

impl EvalOp for QPointwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs[0].len() == self.in_channels * self.pixels, "SnakeidQPointwise: input of {} values", inputs[0].len());
        let grid = (1.0 / self.inv_scale, self.zero_point);
        match (self.codes_in, self.codes_out) {
            (false, None) => eval_into::<f32, f32>(&inputs[0], &self.out_shape, |xs, out| self.run(Source::Values(xs), out)),
            (false, Some(_)) => eval_into::<f32, u8>(&inputs[0], &self.out_shape, |xs, out| self.run(Source::Values(xs), out)),
            (true, None) => eval_into::<u8, f32>(&inputs[0], &self.out_shape, |xs, out| self.run(Source::Codes(xs, grid), out)),
            (true, Some(_)) => eval_into::<u8, u8>(&inputs[0], &self.out_shape, |xs, out| self.run(Source::Codes(xs, grid), out)),
        }
    }
}

impl TypedOp for QPointwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let takes = if self.codes_in { u8::datum_type() } else { f32::datum_type() };
        ensure!(inputs[0].datum_type == takes, "SnakeidQPointwise takes {takes:?}");
        Ok(tvec!(match self.codes_out {
            Some(_) => u8::fact(self.out_shape.clone()),
            None => f32::fact(self.out_shape.clone()),
        }))
    }

    as_op!();
}

/// `(scale, zero point)` of an f32 tensor known to be fake-quantized: the output of a DequantizeLinear of u8 codes,
/// or of our depthwise or pointwise convolution with fake quantization fused in.
fn activation_grid(model: &TypedModel, outlet: OutletId) -> Option<(f32, i32)> {
    let node = model.node(outlet.node);
    if let Some(dq) = node.op_as::<DequantizeLinearF32>() {
        // Whatever made the u8 codes (a QuantizeLinear, or tract's lookup table for Q → DQ → Q).
        let u8_codes = model.outlet_fact(node.inputs[0]).ok()?.datum_type == u8::datum_type();
        return u8_codes.then_some((dq.scale, dq.zero_point));
    }
    let fused = match (node.op_as::<Depthwise>(), node.op_as::<QPointwise>()) {
        (Some(dw), _) => dw.fake_quant(),
        (_, Some(pw)) => pw.fake_quant.as_ref(),
        _ => None,
    };
    fused.map(FakeQuant::grid)
}

/// Rows `k * s` with every k in -128..=127: writes row r's integers to `out[r * stride..]` and returns the row
/// scales (to four ulps per weight); `None` as soon as a row is not on any int8 grid.
fn int8_rows(w: &[f32], rows: usize, stride: usize, out: &mut [i8]) -> Option<Vec<f32>> {
    let cols = w.len() / rows;
    // |v| as bits: for numbers, the same order as the values (a NaN is larger than all, and then fits no grid).
    let amax = |v: &[f32]| f32::from_bits(v.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff)));
    // Per-channel scales come from the row's largest magnitude; a per-tensor scale from the whole tensor's (found
    // only when a row needs it: float weights are given up on within their first row).
    let mut amax_all = None;
    let mut scales = Vec::with_capacity(rows);
    for (row, out) in w.chunks_exact(cols).zip(out.chunks_mut(stride)) {
        let out = &mut out[..cols];
        let row_max = amax(row);
        if row_max == 0.0 {
            out.fill(0);
            scales.push(0.0);
            continue;
        }
        // The check `k * s ≈ v` decides; k comes from a multiplication by 1/s and the rounding trick (|v / s| is at
        // most 128 for every candidate), which give the same k as `(v / s).round()` whenever the check passes, at
        // a fraction of the cost of a division and a libm call per weight.
        let mut fits = |s: f32| -> bool {
            let (inv, round_bits) = (1.0 / s, ROUND.to_bits() as i32);
            // In chunks, so that float weights (not on any grid) are given up after the first chunk.
            for (chunk, out) in row.chunks(64).zip(out.chunks_mut(64)) {
                let mut all = true;
                for (o, &v) in out.iter_mut().zip(chunk) {
                    let k = (v * inv + ROUND) - ROUND;
                    // `&`, not `&&`: no branch per weight, so the loop vectorises.
                    all &= ((k * s - v).abs() <= 4.0 * f32::EPSILON * v.abs()) & (k >= -128.0) & (k <= 127.0);
                    // The integer from the bits of k + ROUND (exact while |k| < 2^22; garbage beyond, then discarded).
                    *o = ((k + ROUND).to_bits() as i32 - round_bits) as i8;
                }
                if !all {
                    return false;
                }
            }
            true
        };
        let s = [row_max / 127.0, row_max / 128.0].into_iter().find(|s| fits(*s));
        let s = match s {
            Some(s) => s,
            None => {
                let all = *amax_all.get_or_insert_with(|| amax(w));
                [all / 127.0, all / 128.0].into_iter().find(|s| fits(*s))?
            }
        };
        scales.push(s);
    }
    Some(scales)
}

/// Replaces every eligible pointwise convolution of a typed or decluttered model by a [`QPointwise`] (only when
/// [`has_vnni`]). Returns how many it replaced.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    if !has_vnni() {
        return Ok(0);
    }
    let mut swapped = 0;
    for id in model.eval_order()? {
        let Some((op, last, source)) = pointwise_of(model, id) else { continue };
        let mut patch = TypedModelPatch::default();
        let tap = patch.tap_model(model, source)?;
        let out = patch.wire_node(format!("{}.snakeid_qpointwise", model.node(id).name), op, &[tap])?[0];
        patch.shunt_outside(model, OutletId::new(last, 0), out)?;
        patch.apply(model)?;
        swapped += 1;
    }
    model.compact()?;
    Ok(swapped)
}

/// What a pointwise convolution node is made of, in either form.
struct Parts {
    source: OutletId,
    /// `[O, I]` or `[O, I, 1, 1]`.
    weights: Arc<Tensor>,
    /// Per output channel (or one value), when the node itself adds it.
    bias: Option<Arc<Tensor>>,
    /// The last node covered so far (the node itself).
    last: usize,
}

/// tract's ONNX `Conv` before declutter: 1x1, one group, unit strides, no padding, NCHW with a batch of one.
fn conv_parts(model: &TypedModel, id: usize) -> Option<Parts> {
    let node = model.node(id);
    let PlainConv { conv, kernel, stride, pad_before, pad_after } = plain_conv(node)?;
    if conv.group != 1 || conv.pool_spec.data_format != DataFormat::NCHW || kernel != [1, 1] || stride != [1, 1] || pad_before != [0, 0] || pad_after != [0, 0] {
        return None;
    }
    let in_shape: Vec<usize> = model.outlet_fact(node.inputs[0]).ok()?.shape.as_concrete()?.to_vec();
    if in_shape.len() != 4 || in_shape[0] != 1 {
        return None;
    }
    Some(Parts { source: node.inputs[0], weights: constant(model, node.inputs[1])?, bias: Some(constant(model, node.inputs[2])?), last: id })
}

/// The decluttered form: an EinSum `[N]IHW,OI->[N]OHW`, or the classifier's Gemm on a pooled `[I, 1, 1]` input
/// (tract writes it `kba,nk->mn`).
fn einsum_parts(model: &TypedModel, id: usize) -> Option<Parts> {
    let node = model.node(id);
    let einsum = node.op_as::<EinSum>()?;
    let expr = einsum.axes.to_string();
    let classifier = expr == "kba,nk->mn";
    if einsum.q_params.is_some() || !(classifier || matches!(expr.as_str(), "IHW,OI->OHW" | "NIHW,OI->OHW" | "NIHW,OI->NOHW")) {
        return None;
    }
    let in_shape: Vec<usize> = model.outlet_fact(node.inputs[0]).ok()?.shape.as_concrete()?.to_vec();
    if (in_shape.len() == 4 && in_shape[0] != 1) || in_shape.len() < 3 || (classifier && in_shape[1..] != [1, 1]) {
        return None;
    }
    Some(Parts { source: node.inputs[0], weights: model.outlet_fact(node.inputs[1]).ok()?.konst.clone()?, bias: None, last: id })
}

/// A pointwise convolution over a fake-quantized input with int8 weights, and the clip and Q → DQ that follow it:
/// the op, the last node it replaces, and its input. Two forms: tract's ONNX `Conv` before declutter (1x1,
/// bias as its third input), and after declutter an EinSum and the bias Add that follows it.
fn pointwise_of(model: &TypedModel, id: usize) -> Option<(QPointwise, usize, OutletId)> {
    let Parts { source, weights, mut bias, mut last } = conv_parts(model, id).or_else(|| einsum_parts(model, id))?;
    let in_shape: Vec<usize> = model.outlet_fact(source).ok()?.shape.as_concrete()?.to_vec();
    let (in_channels, pixels) = (in_shape[in_shape.len() - 3], in_shape[in_shape.len() - 2] * in_shape[in_shape.len() - 1]);
    let (out_channels, cols) = match weights.shape() {
        [o, i] | [o, i, 1, 1] => (*o, *i),
        _ => return None,
    };
    if cols != in_channels || weights.datum_type() != f32::datum_type() {
        return None;
    }
    let (scale, zero_point) = activation_grid(model, source)?;
    if !(0..=255).contains(&zero_point) || !(scale > 0.0) {
        return None;
    }
    // Rows padded to k4 * 4 values, and to a multiple of the kernel's ROWS, with zero weights (their outputs are
    // never stored).
    let k4 = in_channels.div_ceil(4);
    let mut padded = vec![0i8; out_channels.div_ceil(ROWS) * ROWS * k4 * 4];
    let w_scales = int8_rows(weights.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?, out_channels, k4 * 4, &mut padded)?;
    let out_shape: TVec<usize> = model.outlet_fact(OutletId::new(id, 0)).ok()?.shape.as_concrete()?.into();

    // The decluttered form's bias: an Add of a constant with one value per output channel.
    if bias.is_none() {
        if let Some(add_id) = only_successor(model, last) {
            let add = model.node(add_id);
            if add.op_as::<TypedBinOp>().is_some_and(|b| b.0.is::<Add>()) {
                let b = other_constant(model, add, last)?;
                let per_channel = b.len() == out_channels && b.shape().iter().filter(|d| **d != 1).count() <= 1;
                if b.datum_type() == f32::datum_type() && (per_channel || b.len() == 1) {
                    bias = Some(b);
                    last = add_id;
                }
            }
        }
    }
    let bias = match bias {
        Some(b) if b.datum_type() == f32::datum_type() => {
            let v = b.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?.to_vec();
            match v.len() {
                1 => vec![v[0]; out_channels],
                n if n == out_channels => v,
                _ => return None,
            }
        }
        Some(_) => return None,
        None => vec![0f32; out_channels],
    };
    let tail = tail_after(model, last)?;
    let correction = padded.chunks(k4 * 4).take(out_channels).map(|row| zero_point * row.iter().map(|k| *k as i32).sum::<i32>()).collect();
    let op = QPointwise {
        in_channels,
        out_channels,
        pixels,
        out_shape,
        inv_scale: 1.0 / scale,
        zero_point,
        weights: Arc::new(padded),
        k4,
        correction: Arc::new(correction),
        scales: Arc::new(w_scales.iter().map(|s| s * scale).collect()),
        bias: Arc::new(bias),
        clip: tail.clip,
        fake_quant: tail.fake_quant,
        codes_out: None,
        codes_in: false,
    };
    Some((op, tail.last, source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_linalg::multithread::{multithread_tract_scope, Executor};
    use tract_onnx::tract_core::ops::quant::QuantizeLinearU8;

    fn op(in_channels: usize, out_channels: usize, pixels: usize, seed: u32) -> (QPointwise, Vec<f32>) {
        let mut s = seed;
        let mut rnd = move || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            s >> 8
        };
        let (scale, zero_point) = (0.05f32, 7i32);
        let x: Vec<f32> = (0..in_channels * pixels).map(|_| ((rnd() % 256) as i32 - zero_point) as f32 * scale).collect();
        let k4 = in_channels.div_ceil(4);
        let mut weights = vec![0i8; out_channels.div_ceil(ROWS) * ROWS * k4 * 4];
        let mut correction = vec![];
        for o in 0..out_channels {
            let mut sum = 0;
            for i in 0..in_channels {
                let k = (rnd() % 256) as i32 - 128;
                weights[o * k4 * 4 + i] = k as i8;
                sum += k;
            }
            correction.push(zero_point * sum);
        }
        let op = QPointwise {
            in_channels,
            out_channels,
            pixels,
            out_shape: tvec![out_channels, pixels],
            inv_scale: 1.0 / scale,
            zero_point,
            weights: Arc::new(weights),
            k4,
            correction: Arc::new(correction),
            scales: Arc::new((0..out_channels).map(|o| 0.001 * (o + 1) as f32).collect()),
            bias: Arc::new((0..out_channels).map(|o| o as f32 * 0.1 - 1.0).collect()),
            clip: Some((-3.0, 6.0)),
            fake_quant: None,
            codes_out: None,
            codes_in: false,
        };
        (op, x)
    }

    /// The definition in f64: sum of dequantized products, then bias and clip.
    fn reference(op: &QPointwise, x: &[f32], w_of: impl Fn(usize, usize) -> f64) -> Vec<f32> {
        let mut out = vec![0f32; op.out_channels * op.pixels];
        for o in 0..op.out_channels {
            for p in 0..op.pixels {
                let mut acc = 0f64;
                for i in 0..op.in_channels {
                    acc += w_of(o, i) * x[i * op.pixels + p] as f64;
                }
                out[o * op.pixels + p] = ((acc + op.bias[o] as f64) as f32).clamp(-3.0, 6.0);
            }
        }
        out
    }

    #[test]
    fn integer_product_matches_the_float_definition() {
        let (op, x) = op(24, 10, 37, 1);
        let scale = 0.05f64;
        let w_of = |o: usize, i: usize| op.weights[o * op.k4 * 4 + i] as f64 * op.scales[o] as f64 / scale;
        let mut got = vec![0f32; 10 * 37];
        op.run_portable(Source::Values(&x), &mut got);
        for (g, r) in got.iter().zip(reference(&op, &x, w_of)) {
            assert!((g - r).abs() <= 1e-4 * r.abs().max(1.0), "{g} vs {r}");
        }
    }

    /// The portable kernel's f32 values of an op that writes codes.
    fn slow_values(op: &QPointwise, x: &[f32]) -> Vec<f32> {
        let mut values = vec![0f32; op.out_channels * op.pixels];
        QPointwise { codes_out: None, ..op.clone() }.run_portable(Source::Values(x), &mut values);
        values
    }

    #[test]
    fn vnni_kernel_equals_the_portable_one_bit_for_bit() {
        if !has_vnni() {
            eprintln!("no AVX-512 VNNI on this CPU: the fast kernel is not used here, nothing to compare");
            return;
        }
        // Channel counts that are and are not multiples of 4, pixel counts below, at and across 16-pixel panels,
        // output channels that are and are not multiples of the kernel's 8 rows.
        for (i, o, p) in [(16, 16, 12544), (24, 144, 3136), (96, 24, 49), (6, 9, 15), (32, 13, 17), (960, 8, 1)] {
            let (mut op, x) = op(i, o, p, (i * o + p) as u32);
            // Half the cases also fake-quantize their output (on a grid with exact ties among the values).
            if p % 2 == 1 {
                let (q, dq) = (QuantizeLinearU8 { scale: 1.0 / 0.0625, zero_point: 100 }, DequantizeLinearF32 { scale: 0.0625, zero_point: 100 });
                op.fake_quant = Some(FakeQuant::new(&q, &dq));
            }
            let (mut fast, mut slow) = (vec![0f32; o * p], vec![1f32; o * p]);
            op.run_portable(Source::Values(&x), &mut slow);
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            // On one thread, and on three (pixel ranges split at every kind of boundary).
            op.run(Source::Values(&x), &mut fast);
            assert_eq!(bits(&fast), bits(&slow), "{i}x{o}x{p}");
            fast.fill(0.0);
            multithread_tract_scope(Executor::multithread(3), || op.run(Source::Values(&x), &mut fast));
            assert_eq!(bits(&fast), bits(&slow), "{i}x{o}x{p}, 3 threads");
            // Reading the input as codes: the same bits.
            let codes: Vec<u8> = x.iter().map(|&v| op.code(v)).collect();
            let reads_codes = op.with_codes_in((1.0 / op.inv_scale, op.zero_point)).unwrap();
            assert!(op.with_codes_in((1.01 / op.inv_scale, op.zero_point)).is_none() && op.with_codes_in((1.0 / op.inv_scale, op.zero_point + 1)).is_none());
            let grid = (1.0 / op.inv_scale, op.zero_point);
            let (mut fast, mut portable) = (vec![0f32; o * p], vec![1f32; o * p]);
            reads_codes.run(Source::Codes(&codes, grid), &mut fast);
            reads_codes.run_portable(Source::Codes(&codes, grid), &mut portable);
            assert_eq!((bits(&fast), bits(&portable)), (bits(&slow), bits(&slow)), "{i}x{o}x{p}: codes in");
            // Writing codes instead: each one, dequantized, is the value written otherwise, bit for bit.
            let Some((op, (scale, zero_point))) = op.with_codes_out() else { continue };
            let (mut fast, mut slow) = (vec![0u8; o * p], vec![1u8; o * p]);
            op.run_portable(Source::Values(&x), &mut slow);
            op.run(Source::Values(&x), &mut fast);
            let values = |codes: &[u8]| codes.iter().map(|&c| ((c as i32 - zero_point) as f32 * scale).to_bits()).collect::<Vec<_>>();
            assert_eq!(values(&slow), bits(&slow_values(&op, &x)), "{i}x{o}x{p}: portable codes");
            assert_eq!(fast, slow, "{i}x{o}x{p}: codes");
            fast.fill(0);
            multithread_tract_scope(Executor::multithread(3), || op.run(Source::Values(&x), &mut fast));
            assert_eq!(fast, slow, "{i}x{o}x{p}: codes, 3 threads");
        }
    }
}
