//! The int8 pointwise (1x1) convolution's arithmetic: the matrix products that are most of a quantized MobileNet's
//! time, done in 8-bit integers as onnxruntime does. Convolutions of any other kernel size, stride or padding run
//! the same matrix product over their im2col matrix ([`super::im2col`]): a ResNet's or a VGG's 3x3 convolutions.
//!
//! In a QDQ model a pointwise convolution reads activations that are fake-quantized (`(q - zp) * s`, q in 0..=255)
//! and weights that are `k * s_w[o]` with k in -128..=127. So `sum_i w[o][i] * x[i][p]` equals
//! `s * s_w[o] * sum_i k[o][i] * (q[i][p] - zp)`, an exact integer sum. Each call quantizes its f32 input back to
//! the codes q (exact: the values are on the grid) while packing it into 16-pixel x 4-channel panels, multiplies,
//! and runs the epilogue (scale, bias, clip, fake quantization of the output) on each 16-pixel block while it is in
//! registers. The result differs from a float evaluation only by that evaluation's own rounding (and rarely by one
//! quantization step after it), as onnxruntime's does. The portable loop here is the reference; the plug-ins
//! run (x86-64 VNNI's `vpdpbusd`, 64 products an instruction; AVX2's exact f32 sums; Arm's `sdot`; WebAssembly's
//! `i32x4.dot_i16x8_s`), each giving its sums bit for bit.

use super::epilogue::{Dest, Epilogue, Output, Source};
use super::im2col::im2col;
use super::parallel;
use super::plane::Geometry;
use super::quant::{clamp, FakeQuant, QuantizeU8, ROUND};
use std::ops::Range;
use std::sync::{Arc, OnceLock};

/// The im2col matrix of a windowed convolution is built and multiplied a tile of pixels at a time, of at most this
/// many bytes (a 3x3 convolution of 64 channels: 576 rows, 1792 pixels), so that the scratch a thread keeps stays
/// small. 256 KB tiles cost 2-4% on ResNet18, DenseNet121 and InceptionV3; these are within noise of no tiling
/// (BENCHMARKS.md, session 17).
const TILE_BYTES: usize = 1024 * 1024;

/// Pixels per panel (one 512-bit vector of i32 accumulators).
pub(crate) const PIXELS: usize = 16;
/// Output channels per micro-kernel call.
pub(crate) const ROWS: usize = 8;

#[derive(Debug, Clone)]
pub struct QPointwise {
    /// The matrix product's depth: input channels of a 1x1 convolution, or the im2col matrix's rows.
    pub(crate) in_channels: usize,
    pub(crate) out_channels: usize,
    pub(crate) pixels: usize,
    pub(crate) out_shape: Vec<usize>,
    /// Input activations are `(q - zero_point) * scale`; `inv_scale` recovers q.
    pub(crate) inv_scale: f32,
    pub(crate) zero_point: i32,
    /// `k[o][i]`, each row padded with zeros to `k4 * 4` values, rows padded with zeros to a multiple of `ROWS`.
    pub(crate) weights: Arc<Vec<i8>>,
    pub(crate) k4: usize,
    /// `sum_i k[o][i]`: times the zero point, each accumulator's correction ([`QPointwise::correction`]); the
    /// aarch64 kernel also adds `128 *` it back after shifting its codes to i8.
    pub(crate) row_sums: Arc<Vec<i32>>,
    /// The weights as f32 integers, rows padded with zeros to a multiple of a plug-in's rows: made on the first call
    /// of a plug-in that multiplies in f32 ([`QPointwise::wide_weights`]; the AVX2 one), shared by this op's copies.
    pub(crate) wide: Arc<OnceLock<Vec<f32>>>,
    /// `scale * s_w[o]`.
    pub(crate) scales: Arc<Vec<f32>>,
    pub(crate) bias: Arc<Vec<f32>>,
    pub(crate) clip: Option<(f32, f32)>,
    pub(crate) fake_quant: Option<FakeQuant>,
    /// The output as u8 codes of the fake quantization's grid (its zero point here), not f32 values: for a
    /// convolution that alone reads it and takes codes ([`crate::backend::cpu::handover`]).
    pub(crate) codes_out: Option<i32>,
    /// The input as u8 codes of its grid (`zero_point`), not f32 values: from a convolution that writes them for
    /// this one alone ([`crate::backend::cpu::handover`]). Packing them is then copying them.
    pub(crate) codes_in: bool,
    /// A convolution other than 1x1 with unit stride and no padding: its geometry, and the matrix product runs
    /// over its im2col matrix (`in_channels` rows: channels x kernel taps, rounded up to a multiple of 4).
    pub(crate) window: Option<Geometry>,
    /// Elements between two output channels' rows: `pixels`, or the whole output's pixels for the matrix product of
    /// one tile of a windowed convolution's pixels ([`QPointwise::with_gemm_input`]).
    pub(crate) out_stride: usize,
}

impl PartialEq for QPointwise {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for QPointwise {}

impl QPointwise {
    /// The convolution of `[in_channels][pixels]` inputs on the grid `(scale, zero_point)` by float weights
    /// `[out_channels][in_channels]` that are int8 times a scale per row, into `out_shape`; `None` when a row is
    /// not on any int8 grid or the grid is not a u8 one.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        in_channels: usize,
        out_channels: usize,
        pixels: usize,
        out_shape: Vec<usize>,
        weights: &[f32],
        (scale, zero_point): (f32, i32),
        bias: Vec<f32>,
        clip: Option<(f32, f32)>,
        fake_quant: Option<FakeQuant>,
    ) -> Option<QPointwise> {
        if !(0..=255).contains(&zero_point)
            || !(scale > 0.0)
            || weights.len() != out_channels * in_channels
            || bias.len() != out_channels
        {
            return None;
        }
        // Rows padded to k4 * 4 values, and to a multiple of the kernel's ROWS, with zero weights (their outputs
        // are never stored).
        let k4 = in_channels.div_ceil(4);
        let mut padded = vec![0i8; out_channels.div_ceil(ROWS) * ROWS * k4 * 4];
        let w_scales = int8_rows(weights, out_channels, k4 * 4, &mut padded)?;
        let row_sums =
            padded.chunks(k4 * 4).take(out_channels).map(|row| row.iter().map(|k| *k as i32).sum()).collect();
        Some(QPointwise {
            in_channels,
            out_channels,
            pixels,
            out_shape,
            inv_scale: 1.0 / scale,
            zero_point,
            weights: Arc::new(padded),
            k4,
            row_sums: Arc::new(row_sums),
            wide: Arc::default(),
            scales: Arc::new(w_scales.iter().map(|s| s * scale).collect()),
            bias: Arc::new(bias),
            clip,
            fake_quant,
            codes_out: None,
            codes_in: false,
            window: None,
            out_stride: pixels,
        })
    }

    /// This convolution, made by [`QPointwise::new`] with `in_channels` the channels x kernel taps of `geometry`
    /// and its `[O][C][kh][kw]` weights, as a convolution of that geometry: its matrix product runs over the input's
    /// im2col matrix, whose rows are padded to the multiple of 4 the weights are padded to (so that the plug-ins
    /// pack whole groups of 4 rows).
    pub(crate) fn windowed(self, geometry: Geometry) -> QPointwise {
        assert_eq!(self.in_channels, geometry.channels * geometry.kernel[0] * geometry.kernel[1]);
        QPointwise { in_channels: self.k4 * 4, window: Some(geometry), ..self }
    }

    /// Values the input holds.
    pub(crate) fn input_len(&self) -> usize {
        match &self.window {
            Some(g) => g.channels * g.in_hw[0] * g.in_hw[1],
            None => self.in_channels * self.pixels,
        }
    }

    /// Runs `gemm(op, input, first pixel)` for the matrix product: once, on `x` itself, for a 1x1 convolution;
    /// for a windowed one, once per tile of output pixels, on the tile's im2col matrix of u8 codes (the input
    /// quantized to codes first, unless it is codes) and a copy of this op for those pixels, whose output rows start
    /// at that first pixel and keep the whole output's stride. Tiles keep the matrix near the cache: whole, it can
    /// be 29 MB (VGG16's second convolution), written and read back from memory.
    pub(crate) fn with_gemm_input(&self, x: Source, mut gemm: impl FnMut(&QPointwise, Source, usize)) {
        let Some(g) = &self.window else { return gemm(self, x, 0) };
        let grid = (1.0 / self.inv_scale, self.zero_point);
        // Pixels per tile: a multiple of 32 (two blocks per thread's range) whose matrix fits TILE_BYTES.
        let tile = (TILE_BYTES / self.in_channels / 32 * 32).max(32).min(self.pixels);
        let codes_len = if matches!(x, Source::Values(_)) { self.input_len() } else { 0 };
        parallel::with_matrix_bytes(self.in_channels * tile + codes_len, |scratch| {
            let (matrix, codes) = scratch.split_at_mut(self.in_channels * tile);
            let codes: &[u8] = match x {
                Source::Codes(x, _) => x,
                Source::Values(x) => {
                    // The vectorised QuantizeLinear: the same codes as `code`, value by value.
                    QuantizeU8::new(self.inv_scale, self.zero_point as u8).apply(x, codes);
                    codes
                }
            };
            // One copy of this op for the tiles (the last one's pixels set anew).
            let mut part = QPointwise { pixels: tile, window: None, ..self.clone() };
            for p0 in (0..self.pixels).step_by(tile) {
                part.pixels = tile.min(self.pixels - p0);
                let matrix = &mut matrix[..self.in_channels * part.pixels];
                im2col(g, codes, self.zero_point as u8, self.in_channels, p0..p0 + part.pixels, matrix);
                gemm(&part, Source::Codes(matrix, grid), p0);
            }
        })
    }

    /// What output channel `o`'s accumulator has in excess of the true sum: `zero_point * sum_i k[o][i]` (the sums
    /// multiply the input's codes, not the codes less the zero point).
    #[inline(always)]
    pub(crate) fn correction(&self, o: usize) -> i32 {
        self.zero_point * self.row_sums[o]
    }

    /// The epilogue of one output channel's block: `(acc - correction) as f32 * scale + bias`, then `epilogue`
    /// (clip, fake quant), into `out` (values or codes).
    #[inline(always)]
    pub(crate) fn finish<T: Output>(&self, o: usize, acc: &[i32; PIXELS], epilogue: &Epilogue, out: &mut [T]) {
        let (corr, scale, bias) = (self.correction(o), self.scales[o], self.bias[o]);
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
    pub(crate) fn code_at(&self, x: Source, i: usize, p: usize) -> u8 {
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
    pub(crate) fn code(&self, x: f32) -> u8 {
        let v = clamp(x * self.inv_scale, -self.zero_point as f32, 255.0 - self.zero_point as f32);
        (((v + ROUND) - ROUND) as i32 + self.zero_point) as u8
    }

    /// Packs the 16-pixel blocks `blocks` of `[in_channels][pixels]` f32 into `packed`: panels
    /// `[pixel block][k4][16 pixels][4 channels]` of u8 codes (zeros beyond the last pixel and channel).
    pub(crate) fn pack_portable(&self, x: Source, blocks: Range<usize>, packed: &mut [u8]) {
        packed.fill(0);
        for i in 0..self.in_channels {
            for p in blocks.start * PIXELS..(blocks.end * PIXELS).min(self.pixels) {
                packed[((p / PIXELS - blocks.start) * self.k4 + i / 4) * PIXELS * 4 + (p % PIXELS) * 4 + i % 4] =
                    self.code_at(x, i, p);
            }
        }
    }

    /// The weights `[rows][k4 * 4]` as f32 (exact: integers), the rows padded with zeros to a multiple of `rows`;
    /// made once per convolution, on its first call. `rows` must be the same on every call.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn wide_weights(&self, rows: usize) -> &[f32] {
        let wide = self.wide.get_or_init(|| {
            let depth = self.k4 * 4;
            let mut wide = vec![0f32; self.out_channels.div_ceil(rows) * rows * depth];
            let n = self.out_channels * depth;
            wide[..n].iter_mut().zip(&self.weights[..n]).for_each(|(w, k)| *w = *k as f32);
            wide
        });
        assert_eq!(wide.len(), self.out_channels.div_ceil(rows) * rows * self.k4 * 4, "one plug-in's rows");
        wide
    }

    /// Bytes of `blocks` 16-pixel blocks of packed input: `[pixel block][k4][16 pixels][4 channels]`.
    pub(crate) fn packed_len(&self, blocks: usize) -> usize {
        blocks * self.k4 * PIXELS * 4
    }

    /// The reference: plain integer loops over packed panels (the tests' reference for the plug-ins).
    #[cfg(test)]
    pub(crate) fn run_portable<T: Output>(&self, x: Source, out: &mut [T]) {
        self.with_gemm_input(x, |op, x, p0| op.gemm_portable(x, &mut out[p0..]))
    }

    /// [`QPointwise::run_portable`]'s matrix product, on its `[in_channels][pixels]` input.
    fn gemm_portable<T: Output>(&self, x: Source, out: &mut [T]) {
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
                let row = o * self.out_stride + p0;
                self.finish(o, &acc, &epilogue, &mut out[row..row + n]);
            }
        }
    }
}

impl QPointwise {
    /// Runs an int8 plug-in over the pixels split between the call's threads, in ranges of a multiple of `align`
    /// 16-pixel blocks: `kernel(blocks, packed, out)` packs those blocks into its thread's own scratch `packed` and
    /// writes every output channel's pixels of them through `out`, the whole `[out_channels][pixels]` output. No
    /// thread waits for a shared packing, each reads only the panels it packed, and no two write the same element.
    #[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
    pub(crate) fn split_pixels<T: Output>(
        &self,
        out: &mut [T],
        align: usize,
        kernel: impl Fn(Range<usize>, &mut [u8], *mut T) + Sync,
    ) {
        self.split_pixels_unpacked(out, align, |blocks, out| {
            parallel::with_bytes(self.packed_len(blocks.len()), |packed| kernel(blocks, packed, out))
        })
    }

    /// As [`QPointwise::split_pixels`], for a plug-in that keeps its own scratch: `kernel(blocks, out)`.
    #[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
    pub(crate) fn split_pixels_unpacked<T: Output>(
        &self,
        out: &mut [T],
        align: usize,
        kernel: impl Fn(Range<usize>, *mut T) + Sync,
    ) {
        assert!(self.out_stride >= self.pixels && out.len() >= (self.out_channels - 1) * self.out_stride + self.pixels);
        assert!(!T::CODES || self.fake_quant.is_some(), "codes of a fake-quantized output only");
        let out = Disjoint(out.as_mut_ptr());
        parallel::for_each_range(self.pixels.div_ceil(PIXELS), align, |blocks| kernel(blocks, out.get()))
    }
}

/// The output, shared by the threads that write disjoint pixel ranges of it.
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
struct Disjoint<T>(*mut T);
// SAFETY: the threads sharing it write disjoint elements (see `QPointwise::split_pixels`).
unsafe impl<T> Sync for Disjoint<T> {}

impl<T> Disjoint<T> {
    #[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
    /// (A method, so that closures capture the whole `Sync` wrapper, not its raw pointer field.)
    fn get(&self) -> *mut T {
        self.0
    }
}

/// The portable matrix product, as [`super::Kernels`] holds it (on one thread: it is the reference, where no plug-in runs
/// our int8 convolutions are not swapped in).
pub(crate) fn portable(op: &QPointwise, x: Source, out: Dest) {
    match out {
        Dest::Values(out) => op.gemm_portable(x, out),
        Dest::Codes(out) => op.gemm_portable(x, out),
    }
}

/// Rows `k * s` with every k in -128..=127: writes row r's integers to `out[r * stride..]` and returns the row
/// scales (to four ulps per weight); `None` as soon as a row is not on any int8 grid.
pub(crate) fn int8_rows(w: &[f32], rows: usize, stride: usize, out: &mut [i8]) -> Option<Vec<f32>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::table::Kernels;

    /// The int8 plug-ins this CPU runs, as tables holding each (the chosen one and, on x86-64 with AVX-512 VNNI, the
    /// AVX2 one too), each reported as run or not (and demanded where `SNAKEID_REQUIRE_ISA` lists its flags).
    fn int8_plug_ins() -> Vec<Kernels> {
        let with = |f: fn(&QPointwise, Source, Dest)| Kernels { qpointwise: f, ..Kernels::portable() };
        let mut ran = vec![];
        #[cfg(target_arch = "x86_64")]
        {
            let isa = crate::kernels::isa();
            let vnni = &["avx512f", "avx512bw", "avx512_vnni"];
            if crate::kernels::plug_in_ran("int8 convolutions (AVX-512 VNNI)", vnni, isa.avx512_vnni()) {
                ran.push(with(crate::kernels::x86_64::qpointwise::plugged));
            }
            if crate::kernels::plug_in_ran("int8 convolutions (AVX2 + FMA)", &["avx2", "fma"], isa.avx2_fma()) {
                ran.push(with(crate::kernels::x86_64::avx2::qpointwise::plugged));
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let (name, flags): (&str, &[&str]) = if cfg!(target_arch = "aarch64") {
                ("int8 convolutions (dot product)", &["asimddp"])
            } else if cfg!(target_arch = "wasm32") {
                ("int8 convolutions (SIMD128)", &["simd128"]) // chosen when the module is built
            } else {
                ("int8 convolutions (none on this architecture)", &["no such flag"])
            };
            let chosen = crate::kernels::kernels();
            if crate::kernels::plug_in_ran(name, flags, chosen.int8_pointwise) {
                ran.push(with(chosen.qpointwise));
            }
        }
        ran
    }
    use crate::kernels::parallel::with_threads;
    use crate::kernels::plane::Geometry;

    fn op(in_channels: usize, out_channels: usize, pixels: usize, seed: u32) -> (QPointwise, Vec<f32>) {
        let mut s = seed;
        let mut rnd = move || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            s >> 8
        };
        let (scale, zero_point) = (0.05f32, 7i32);
        let x: Vec<f32> =
            (0..in_channels * pixels).map(|_| ((rnd() % 256) as i32 - zero_point) as f32 * scale).collect();
        let k4 = in_channels.div_ceil(4);
        let mut weights = vec![0i8; out_channels.div_ceil(ROWS) * ROWS * k4 * 4];
        let mut row_sums = vec![];
        for o in 0..out_channels {
            let mut sum = 0;
            for i in 0..in_channels {
                let k = (rnd() % 256) as i32 - 128;
                weights[o * k4 * 4 + i] = k as i8;
                sum += k;
            }
            row_sums.push(sum);
        }
        let op = QPointwise {
            in_channels,
            out_channels,
            pixels,
            out_shape: vec![out_channels, pixels],
            inv_scale: 1.0 / scale,
            zero_point,
            weights: Arc::new(weights),
            k4,
            row_sums: Arc::new(row_sums),
            wide: Arc::default(),
            scales: Arc::new((0..out_channels).map(|o| 0.001 * (o + 1) as f32).collect()),
            bias: Arc::new((0..out_channels).map(|o| o as f32 * 0.1 - 1.0).collect()),
            clip: Some((-3.0, 6.0)),
            fake_quant: None,
            codes_out: None,
            codes_in: false,
            window: None,
            out_stride: pixels,
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
    fn the_int8_plug_ins_equal_the_portable_kernel_bit_for_bit() {
        // (None where the portable loop is the only int8 kernel.)
        for kernels in int8_plug_ins() {
            int8_plug_in_equals_the_portable_kernel(&kernels);
        }
    }

    fn int8_plug_in_equals_the_portable_kernel(kernels: &Kernels) {
        // Channel counts that are and are not multiples of 4, pixel counts below, at and across 16-pixel panels,
        // output channels that are and are not multiples of the kernel's 8 rows; 960 channels of 200 pixels make
        // several of the AVX2 plug-in's tiles of packed blocks, the last one partial.
        for (i, o, p) in [
            (16, 16, 12544),
            (24, 144, 3136),
            (96, 24, 49),
            (6, 9, 15),
            (32, 13, 17),
            (960, 8, 1),
            (600, 7, 40),
            (960, 9, 200),
        ] {
            let (mut op, x) = op(i, o, p, (i * o + p) as u32);
            // Half the cases also fake-quantize their output (on a grid with exact ties among the values).
            if p % 2 == 1 {
                op.fake_quant = Some(FakeQuant::new(1.0 / 0.0625, 100, 0.0625, 100));
            }
            let (mut fast, mut slow) = (vec![0f32; o * p], vec![1f32; o * p]);
            op.run_portable(Source::Values(&x), &mut slow);
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            // On one thread, and on three (pixel ranges split at every kind of boundary).
            kernels.qpointwise(&op, Source::Values(&x), &mut fast);
            assert_eq!(bits(&fast), bits(&slow), "{i}x{o}x{p}");
            fast.fill(0.0);
            with_threads(3, || kernels.qpointwise(&op, Source::Values(&x), &mut fast));
            assert_eq!(bits(&fast), bits(&slow), "{i}x{o}x{p}, 3 threads");
            // Reading the input as codes: the same bits.
            let codes: Vec<u8> = x.iter().map(|&v| op.code(v)).collect();
            let reads_codes = op.with_codes_in((1.0 / op.inv_scale, op.zero_point)).unwrap();
            assert!(
                op.with_codes_in((1.01 / op.inv_scale, op.zero_point)).is_none()
                    && op.with_codes_in((1.0 / op.inv_scale, op.zero_point + 1)).is_none()
            );
            let grid = (1.0 / op.inv_scale, op.zero_point);
            let (mut fast, mut portable) = (vec![0f32; o * p], vec![1f32; o * p]);
            kernels.qpointwise(&reads_codes, Source::Codes(&codes, grid), &mut fast);
            reads_codes.run_portable(Source::Codes(&codes, grid), &mut portable);
            assert_eq!((bits(&fast), bits(&portable)), (bits(&slow), bits(&slow)), "{i}x{o}x{p}: codes in");
            // Writing codes instead: each one, dequantized, is the value written otherwise, bit for bit.
            let Some((op, (scale, zero_point))) = op.with_codes_out() else { continue };
            let (mut fast, mut slow) = (vec![0u8; o * p], vec![1u8; o * p]);
            op.run_portable(Source::Values(&x), &mut slow);
            kernels.qpointwise(&op, Source::Values(&x), &mut fast);
            let values = |codes: &[u8]| {
                codes.iter().map(|&c| ((c as i32 - zero_point) as f32 * scale).to_bits()).collect::<Vec<_>>()
            };
            assert_eq!(values(&slow), bits(&slow_values(&op, &x)), "{i}x{o}x{p}: portable codes");
            assert_eq!(fast, slow, "{i}x{o}x{p}: codes");
            fast.fill(0);
            with_threads(3, || kernels.qpointwise(&op, Source::Values(&x), &mut fast));
            assert_eq!(fast, slow, "{i}x{o}x{p}: codes, 3 threads");
        }
    }

    /// Sums far past 2^24 (1,000 channels of code 255 times weight -128, and of code 255 times 127) are exact: the AVX2
    /// plug-in sums in f32 a chunk at a time, where every partial sum is an integer f32 holds.
    #[test]
    fn sums_past_two_to_the_24_are_exact() {
        for kernels in int8_plug_ins() {
            for k in [-128i8, 127] {
                let (mut op, _) = op(1000, 9, 20, 5);
                let w = Arc::make_mut(&mut op.weights);
                w.iter_mut().enumerate().for_each(|(i, w)| *w = if i % (op.k4 * 4) < 1000 { k } else { 0 });
                op.row_sums = Arc::new(vec![k as i32 * 1000; 9]);
                op.clip = None;
                let x = vec![(255 - op.zero_point) as f32 / op.inv_scale; 1000 * 20];
                let (mut fast, mut slow) = (vec![0f32; 9 * 20], vec![1f32; 9 * 20]);
                op.run_portable(Source::Values(&x), &mut slow);
                kernels.qpointwise(&op, Source::Values(&x), &mut fast);
                let sum = 255 * k as i64 * 1000;
                assert!(sum.abs() > 1 << 24);
                let expected = ((sum - (op.zero_point * op.row_sums[0]) as i64) as f32) * op.scales[0] + op.bias[0];
                assert_eq!(slow[0], expected, "the portable sum");
                assert_eq!(fast, slow, "weights {k}");
            }
        }
    }

    /// A convolution of `geometry` built as the graph builds it ([`QPointwise::new`] on float weights that are int8
    /// times a scale per output channel, then [`QPointwise::windowed`]), and an input on its grid.
    fn windowed_op(g: &Geometry, out_channels: usize, seed: u32) -> (QPointwise, Vec<f32>, Vec<f32>) {
        let mut s = seed;
        let mut rnd = move || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            s >> 8
        };
        let (scale, zero_point) = (0.05f32, 9i32);
        let taps = g.channels * g.kernel[0] * g.kernel[1];
        let x: Vec<f32> = (0..g.channels * g.in_hw[0] * g.in_hw[1])
            .map(|_| ((rnd() % 256) as i32 - zero_point) as f32 * scale)
            .collect();
        // Each row reaches 127 (its first weight), so that its scale is row max / 127.
        let k = |i: usize, r: u32| if i % taps == 0 { 127 } else { (r % 255) as i32 - 127 };
        let w: Vec<f32> = (0..out_channels * taps).map(|i| k(i, rnd()) as f32 * 0.01 * (1 + i / taps) as f32).collect();
        let bias = (0..out_channels).map(|o| o as f32 * 0.1 - 1.0).collect();
        let pixels = g.out_hw[0] * g.out_hw[1];
        let op = QPointwise::new(
            taps,
            out_channels,
            pixels,
            vec![1, out_channels, g.out_hw[0], g.out_hw[1]],
            &w,
            (scale, zero_point),
            bias,
            Some((0.0, 6.0)),
            None,
        )
        .unwrap();
        (op.windowed(g.clone()), x, w)
    }

    /// The im2col route computes the convolution's definition (in f64: sums of products over the window, zeros
    /// outside the input, bias, clip) to f32 rounding.
    #[test]
    fn a_windowed_convolution_is_the_convolutions_definition() {
        // Small, and large enough for two tiles of pixels (the last one partial).
        for (c, in_hw) in [(3, [9, 10]), (8, [239, 259])] {
            let g = Geometry::new(c, in_hw, [3, 3], [2, 2], [1, 1], [1, 0]).unwrap();
            let (op, x, w) = windowed_op(&g, 5, 3);
            assert_eq!(op.in_channels, (c * 9).div_ceil(4) * 4);
            if c == 8 {
                assert!(op.in_channels * op.pixels > TILE_BYTES, "one tile only");
            }
            let mut got = vec![0f32; 5 * op.pixels];
            op.run_portable(Source::Values(&x), &mut got);
            let ([ih, iw], [oh, ow]) = (g.in_hw, g.out_hw);
            for o in 0..5 {
                for (oy, ox) in (0..oh).flat_map(|y| (0..ow).map(move |x| (y, x))) {
                    let mut acc = op.bias[o] as f64;
                    for (ci, ky, kx) in
                        (0..c).flat_map(|c| (0..3).flat_map(move |ky| (0..3).map(move |kx| (c, ky, kx))))
                    {
                        let (iy, ix) = ((oy * 2 + ky) as isize - 1, (ox * 2 + kx) as isize - 1);
                        if iy >= 0 && ix >= 0 && (iy as usize) < ih && (ix as usize) < iw {
                            acc += w[o * c * 9 + ci * 9 + ky * 3 + kx] as f64
                                * x[(ci * ih + iy as usize) * iw + ix as usize] as f64;
                        }
                    }
                    let r = (acc as f32).clamp(0.0, 6.0);
                    let g = got[o * oh * ow + oy * ow + ox];
                    assert!((g - r).abs() <= 1e-4 * r.abs().max(1.0), "channel {o} ({oy}, {ox}): {g} vs {r}");
                }
            }
        }
    }

    /// The plug-in's matrix product over the im2col matrix equals the portable one bit for bit: 3x3 with unit and
    /// double stride, a 7x7 stem on 3 channels (147 taps, not a multiple of 4), a strided 1x1 shortcut, a 3x3 over
    /// several tiles of pixels; values or codes in, values or codes out, one thread or three.
    #[test]
    fn windowed_convolutions_equal_the_portable_kernel_bit_for_bit() {
        for kernels in int8_plug_ins() {
            windowed_plug_in_equals_the_portable_kernel(&kernels);
        }
    }

    fn windowed_plug_in_equals_the_portable_kernel(kernels: &Kernels) {
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        // The last one is large enough for several tiles of pixels, the last one partial.
        let shapes = [
            (16, [14, 14], 3, 1, 1, 24),
            (8, [15, 13], 3, 2, 1, 16),
            (3, [20, 20], 7, 2, 3, 12),
            (12, [9, 9], 1, 2, 0, 9),
            (8, [161, 159], 3, 1, 1, 16),
        ];
        assert!(72 * 161 * 159 > TILE_BYTES, "one tile only");
        for (c, in_hw, k, s, p, o) in shapes {
            let g = Geometry::new(c, in_hw, [k, k], [s, s], [p, p], [p, p]).unwrap();
            let (mut op, x, _) = windowed_op(&g, o, (c * k + o) as u32);
            op.fake_quant = Some(FakeQuant::new(1.0 / 0.0625, 100, 0.0625, 100));
            let n = o * op.pixels;
            let (mut fast, mut slow) = (vec![0f32; n], vec![1f32; n]);
            op.run_portable(Source::Values(&x), &mut slow);
            kernels.qpointwise(&op, Source::Values(&x), &mut fast);
            assert_eq!(bits(&fast), bits(&slow), "{g}");
            fast.fill(0.0);
            with_threads(3, || kernels.qpointwise(&op, Source::Values(&x), &mut fast));
            assert_eq!(bits(&fast), bits(&slow), "{g}: 3 threads");
            let grid = (1.0 / op.inv_scale, op.zero_point);
            let codes: Vec<u8> = x.iter().map(|&v| op.code(v)).collect();
            let reads_codes = op.with_codes_in(grid).unwrap();
            fast.fill(0.0);
            kernels.qpointwise(&reads_codes, Source::Codes(&codes, grid), &mut fast);
            assert_eq!(bits(&fast), bits(&slow), "{g}: codes in");
            let (writes_codes, _) = op.with_codes_out().unwrap();
            let (mut fast, mut slow) = (vec![0u8; n], vec![1u8; n]);
            writes_codes.run_portable(Source::Values(&x), &mut slow);
            kernels.qpointwise(&writes_codes, Source::Values(&x), &mut fast);
            assert_eq!(fast, slow, "{g}: codes out");
        }
    }
}
