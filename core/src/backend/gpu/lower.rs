//! From tract's decluttered graph to a GPU plan: each node becomes a GPU operation (convolution, matrix product,
//! element-wise, reduction, pooling, padding/subsampling), an alias of its input (reshapes), part of the epilogue of
//! the operation before it (bias, per-channel affine, ReLU/Clip, quantize/dequantize), or a CPU fallback run by tract.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::format_err;
use tract_onnx::tract_core::ops::array::{Pad, PadMode};
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, MaxPool, PoolSpec, SumPool};
use tract_onnx::tract_core::ops::downsample::Downsample;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::nn::{DataFormat, Reduce, Reducer, RmsNorm};
use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearU8};

use super::device::Kernel;

/// What follows a kernel's main computation, applied to each output value (see `shaders/common.wgsl`).
#[derive(Debug, Clone)]
pub struct Epilogue {
    /// Per-channel data: channel of flat index i = (i / div) % len. (1, 1) when scalar.
    pub div: usize,
    pub len: usize,
    pub mul: Vec<f32>,
    pub add: Vec<f32>,
    pub affine: bool,
    pub lo: f32,
    pub hi: f32,
    pub fq: Fq,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fq {
    None,
    /// QuantizeLinear then DequantizeLinear: `(round(clamp(v * inv, lo, hi)) + off) * scale`.
    FakeQuant {
        inv: f32,
        lo: f32,
        hi: f32,
        off: f32,
        scale: f32,
    },
    /// QuantizeLinear alone (u8 held as f32): `round(clamp(v * inv, lo, hi)) + zp`.
    Quantize {
        inv: f32,
        lo: f32,
        hi: f32,
        zp: f32,
    },
}

impl Epilogue {
    pub fn identity() -> Self {
        Epilogue {
            div: 1,
            len: 1,
            mul: vec![1.0],
            add: vec![0.0],
            affine: false,
            lo: -f32::MAX,
            hi: f32::MAX,
            fq: Fq::None,
        }
    }

    /// A per-channel epilogue (a convolution's bias).
    pub fn channels(div: usize, bias: Vec<f32>) -> Self {
        let len = bias.len();
        Epilogue { div, len, mul: vec![1.0; len], add: bias, affine: true, ..Self::identity() }
    }

    /// The twelve leading uniform words of every kernel; `chan_off` is where `mul` starts in the `chan` buffer.
    pub fn words(&self, chan_off: usize) -> Vec<u32> {
        let (mode, a, b, c, d, e) = match self.fq {
            Fq::None => (0, 0.0, 0.0, 0.0, 0.0, 0.0),
            Fq::FakeQuant { inv, lo, hi, off, scale } => (1, inv, lo, hi, off, scale),
            Fq::Quantize { inv, lo, hi, zp } => (2, inv, lo, hi, zp, 1.0),
        };
        vec![
            self.div as u32,
            self.len as u32,
            chan_off as u32,
            self.affine as u32,
            self.lo.to_bits(),
            self.hi.to_bits(),
            mode,
            f32::to_bits(a),
            f32::to_bits(b),
            f32::to_bits(c),
            f32::to_bits(d),
            f32::to_bits(e),
        ]
    }

    /// `mul` then `add`, as laid out in `chan`.
    pub fn chan(&self) -> Vec<f32> {
        self.mul.iter().chain(&self.add).copied().collect()
    }

    fn clamped(&self) -> bool {
        self.lo != -f32::MAX || self.hi != f32::MAX || self.fq != Fq::None
    }

    /// Folds a per-channel (or scalar) `v * m + a` in; `false` when it does not fit (different channel axis,
    /// or a clamp or quantization already applied).
    fn affine(&mut self, axis: Option<(usize, usize)>, m: &[f32], a: &[f32]) -> bool {
        if self.clamped() {
            return false;
        }
        if let Some((div, len)) = axis {
            if self.len == 1 {
                self.div = div;
                self.len = len;
                self.mul = vec![self.mul[0]; len];
                self.add = vec![self.add[0]; len];
            } else if (self.div, self.len) != (div, len) {
                return false;
            }
        }
        let pick = |v: &[f32], i: usize| if v.len() == 1 { v[0] } else { v[i] };
        for i in 0..self.len {
            self.mul[i] *= pick(m, i);
            self.add[i] = self.add[i] * pick(m, i) + pick(a, i);
        }
        self.affine = true;
        true
    }
}

/// Typed weights for the convolution kernels.
#[derive(Debug, Clone)]
pub enum Weights {
    F32(Vec<f32>),
    /// f16, two per word (low half first).
    F16(Vec<u32>),
    /// 8-bit packed four per word, a scale and zero point per output channel: `w = (q - zero_point[o]) * scale[o]`.
    Int8 {
        packed: Vec<u32>,
        scales: Vec<f32>,
        zero_points: Vec<f32>,
    },
}

/// One GPU dispatch, described (buffers come later).
#[derive(Debug, Clone)]
pub struct GpuOp {
    pub kernel: Kernel,
    /// Data inputs (activations or constants), in binding order.
    pub inputs: Vec<OutletId>,
    pub weights: Option<Weights>,
    /// Kernel-specific uniform words after the epilogue's twelve.
    pub params: Vec<u32>,
    /// `chan` data before the epilogue's (weight scales).
    pub chan_prefix: Vec<f32>,
    /// `chan` data after the epilogue's (a lookup table).
    pub chan_suffix: Vec<f32>,
    pub epilogue: Epilogue,
    /// Output values; the dispatch grid follows from it.
    pub out_len: usize,
    pub grid: Grid,
}

impl GpuOp {
    /// Bytes of the largest buffer this dispatch binds: its weights, a constant input or its output.
    pub fn largest_binding(&self, model: &TypedModel) -> TractResult<usize> {
        let weights = match &self.weights {
            None => 0,
            Some(Weights::F32(w)) => w.len() * 4,
            Some(Weights::F16(w)) | Some(Weights::Int8 { packed: w, .. }) => w.len() * 4,
        };
        let mut most = weights.max(self.out_len * 4);
        for &i in &self.inputs {
            if let Some(k) = &model.outlet_fact(i)?.konst {
                most = most.max(k.len() * 4);
            }
        }
        Ok(most)
    }

    /// An op without weights or per-channel data, starting with an identity epilogue.
    fn plain(kernel: Kernel, inputs: Vec<OutletId>, params: Vec<u32>, out_len: usize, grid: Grid) -> Self {
        GpuOp {
            kernel,
            inputs,
            weights: None,
            params,
            chan_prefix: vec![],
            chan_suffix: vec![],
            epilogue: Epilogue::identity(),
            out_len,
            grid,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Grid {
    /// One invocation per value, 64 per workgroup.
    Flat(usize),
    /// One workgroup per row.
    Rows(usize),
    /// (n tiles, m tiles) of 64x64.
    Tiles(usize, usize),
}

#[derive(Debug, Clone)]
pub enum Lowered {
    Source,
    Const,
    /// Same buffer as the input (reshapes, unit axes).
    Alias(OutletId),
    /// Absorbed by the epilogue of the op producing `OutletId`; same buffer.
    Fused(OutletId),
    Gpu(Box<GpuOp>),
    /// Run by tract on the CPU.
    Cpu,
}

fn shape(model: &TypedModel, o: OutletId) -> TractResult<Vec<usize>> {
    let fact = model.outlet_fact(o)?;
    fact.shape.as_concrete().map(|s| s.to_vec()).ok_or_else(|| format_err!("symbolic shape"))
}

fn konst(model: &TypedModel, o: OutletId) -> Option<Arc<Tensor>> {
    model.outlet_fact(o).ok().and_then(|f| f.konst.clone())
}

/// A tensor's values as f32 (u8 and other types cast).
pub(super) fn f32s(t: &Tensor) -> TractResult<Vec<f32>> {
    Ok(t.cast_to::<f32>()?.to_plain_array_view::<f32>()?.iter().copied().collect())
}

/// Storable on the GPU: f32, or u8 held as f32.
fn gpu_dt(model: &TypedModel, o: OutletId) -> bool {
    model.outlet_fact(o).map(|f| f.datum_type == f32::datum_type() || f.datum_type == u8::datum_type()).unwrap_or(false)
}

/// If `c` broadcasts against `s` along at most one axis: `Some(None)` for a scalar, `Some(Some((div, len)))` for a
/// per-channel constant.
fn channel_axis(c: &[usize], s: &[usize]) -> Option<Option<(usize, usize)>> {
    if c.len() > s.len() {
        return None;
    }
    let pad = s.len() - c.len();
    let mut axis = None;
    for (i, &d) in c.iter().enumerate() {
        if d == 1 {
            continue;
        }
        if d != s[pad + i] || axis.is_some() {
            return None;
        }
        axis = Some(pad + i);
    }
    Some(axis.map(|a| (s[a + 1..].iter().product(), s[a])))
}

/// Pads a shape on the left to rank 4.
fn rank4(s: &[usize]) -> Option<[usize; 4]> {
    if s.len() > 4 {
        return None;
    }
    let mut r = [1; 4];
    r[4 - s.len()..].copy_from_slice(s);
    Some(r)
}

/// Contiguous strides of `s` broadcast to `out` (0 where `s` has 1 and `out` does not), rank 4.
fn broadcast_strides(s: &[usize], out: &[usize; 4]) -> Option<[u32; 4]> {
    let s = rank4(s)?;
    let mut strides = [0u32; 4];
    let mut acc = 1usize;
    for i in (0..4).rev() {
        if s[i] != out[i] && s[i] != 1 {
            return None;
        }
        strides[i] = if s[i] == 1 && out[i] != 1 { 0 } else { acc as u32 };
        acc *= s[i];
    }
    Some(strides)
}

/// Spatial geometry of a 2-D pooling or convolution over `[C, H, W]` (or `[1, C, H, W]`).
struct Geometry {
    c: usize,
    hin: usize,
    win: usize,
    hout: usize,
    wout: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    dh: usize,
    dw: usize,
}

fn geometry(spec: &PoolSpec, input: &[usize], output: &[usize]) -> Option<Geometry> {
    let (c, hin, win) = match (spec.data_format, input) {
        (DataFormat::NCHW, [1, c, h, w]) | (DataFormat::CHW, [c, h, w]) => (*c, *h, *w),
        _ => return None,
    };
    let (hout, wout) = match output {
        [1, _, h, w] | [_, h, w] => (*h, *w),
        _ => return None,
    };
    if spec.kernel_shape.len() != 2 {
        return None;
    }
    let pads = spec.computed_padding(&[hin, win]);
    let strides = spec.strides.clone().unwrap_or_else(|| tvec!(1, 1));
    let dil = spec.dilations.clone().unwrap_or_else(|| tvec!(1, 1));
    Some(Geometry {
        c,
        hin,
        win,
        hout,
        wout,
        kh: spec.kernel_shape[0],
        kw: spec.kernel_shape[1],
        sh: strides[0],
        sw: strides[1],
        ph: pads[0].pad_before,
        pw: pads[1].pad_before,
        dh: dil[0],
        dw: dil[1],
    })
}

/// 8-bit when every output channel is `(q - zero_point) * scale` with q in 0..=255, to within two f32 ulps: weights
/// that went through symmetric (int8) or asymmetric (uint8) quantization, whose scale and zero point are recovered
/// from the row's range; f32 otherwise.
pub fn pack_weights(w: &[f32], rows: usize) -> Weights {
    let cols = w.len() / rows.max(1);
    // The integers k = w / s of a row when they all are (to four ulps) and span at most 256 values.
    let ints = |row: &[f32], s: f32| -> Option<Vec<i32>> {
        let k: Option<Vec<i32>> = row
            .iter()
            .map(|&v| {
                let k = (v / s).round();
                ((k * s - v).abs() <= 4.0 * f32::EPSILON * v.abs() && k.abs() <= 255.0).then_some(k as i32)
            })
            .collect();
        k.filter(|k| k.iter().max().unwrap_or(&0) - k.iter().min().unwrap_or(&0) <= 255)
    };
    // Scales to try: symmetric and asymmetric ranges, and fractions of the smallest non-zero magnitude.
    let candidates = |v: &[f32]| -> Vec<f32> {
        let amax = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let (lo, hi) = v.iter().fold((0f32, 0f32), |(l, h), &x| (l.min(x), h.max(x)));
        let amin = v.iter().filter(|x| **x != 0.0).fold(f32::MAX, |m, x| m.min(x.abs()));
        let mut c = vec![(hi - lo) / 255.0, amax / 127.0, amax / 128.0];
        if amin < f32::MAX {
            c.extend((1..=4).map(|d| amin / d as f32));
        }
        c.retain(|s| s.is_finite() && *s > 0.0);
        c
    };
    let whole = candidates(w);
    let mut q = Vec::with_capacity(w.len());
    let (mut scales, mut zero_points) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    for row in w.chunks(cols.max(1)) {
        if row.iter().all(|v| *v == 0.0) {
            q.extend(std::iter::repeat_n(0u8, row.len()));
            scales.push(1.0);
            zero_points.push(0.0);
            continue;
        }
        let Some((s, k)) =
            candidates(row).into_iter().chain(whole.iter().copied()).find_map(|s| ints(row, s).map(|k| (s, k)))
        else {
            return Weights::F32(w.to_vec());
        };
        let (kmin, kmax) = (*k.iter().min().unwrap(), *k.iter().max().unwrap());
        let zp = if kmin >= -128 && kmax <= 127 { 128 } else { -kmin };
        q.extend(k.iter().map(|&v| (v + zp) as u8));
        scales.push(s);
        zero_points.push(zp as f32);
    }
    let mut packed = vec![0u32; q.len().div_ceil(4)];
    for (i, v) in q.iter().enumerate() {
        packed[i / 4] |= (*v as u32) << ((i % 4) * 8);
    }
    Weights::Int8 { packed, scales, zero_points }
}

/// Float weights rounded to f16 and packed two per word.
fn to_f16(w: &[f32]) -> Weights {
    let h: Vec<u16> = w.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
    Weights::F16(h.chunks(2).map(|p| p[0] as u32 | (*p.get(1).unwrap_or(&0) as u32) << 16).collect())
}

fn weight_prefix(w: &Weights) -> Vec<f32> {
    match w {
        Weights::F32(_) | Weights::F16(_) => vec![],
        Weights::Int8 { scales, zero_points, .. } => scales.iter().chain(zero_points).copied().collect(),
    }
}

#[allow(clippy::too_many_arguments)]
fn conv_op(
    x: OutletId,
    w: Vec<f32>,
    bias: Vec<f32>,
    g: &Geometry,
    cout: usize,
    group: usize,
    pointwise: bool,
    f16: bool,
) -> GpuOp {
    let cin_pg = g.c / group;
    let k = cin_pg * g.kh * g.kw;
    let n = g.hout * g.wout;
    let weights = match pack_weights(&w, cout) {
        Weights::F32(w) if f16 => to_f16(&w),
        other => other,
    };
    let int8 = matches!(weights, Weights::Int8 { .. });
    let f16 = matches!(weights, Weights::F16(_));
    let chan_prefix = weight_prefix(&weights);
    let kernel = if group == 1 { Kernel::ConvGemm { int8, f16, pointwise } } else { Kernel::ConvDirect { int8, f16 } };
    let grid = if group == 1 { Grid::Tiles(n.div_ceil(64), cout.div_ceil(64)) } else { Grid::Flat(cout * n) };
    let params = [
        g.c,
        g.hin,
        g.win,
        cout,
        g.hout,
        g.wout,
        g.kh,
        g.kw,
        g.sh,
        g.sw,
        g.ph,
        g.pw,
        g.dh,
        g.dw,
        k,
        n,
        cin_pg,
        cout / group,
        0,
        0,
    ]
    .iter()
    .map(|&v| v as u32)
    .collect();
    GpuOp {
        kernel,
        inputs: vec![x],
        weights: Some(weights),
        params,
        chan_prefix,
        chan_suffix: vec![],
        epilogue: Epilogue::channels(n, bias),
        out_len: cout * n,
        grid,
    }
}

fn lower_conv(model: &TypedModel, node: &TypedNode, op: &Conv, f16: bool) -> TractResult<Option<GpuOp>> {
    if op.q_params.is_some() || op.kernel_fmt != KernelFormat::OIHW || node.inputs.len() != 3 {
        return Ok(None);
    }
    let (Some(w), Some(b)) = (konst(model, node.inputs[1]), konst(model, node.inputs[2])) else { return Ok(None) };
    let (input, output) = (shape(model, node.inputs[0])?, shape(model, node.id.into())?);
    let Some(g) = geometry(&op.pool_spec, &input, &output) else { return Ok(None) };
    let cout = op.pool_spec.output_channels;
    if w.shape() != [cout, g.c / op.group, g.kh, g.kw] {
        return Ok(None);
    }
    let bias = f32s(&b)?;
    let bias = if bias.len() == 1 { vec![bias[0]; cout] } else { bias };
    if bias.len() != cout {
        return Ok(None);
    }
    let pointwise = g.kh == 1
        && g.kw == 1
        && g.sh == 1
        && g.sw == 1
        && g.ph == 0
        && g.pw == 0
        && g.hin == g.hout
        && g.win == g.wout;
    Ok(Some(conv_op(node.inputs[0], f32s(&w)?, bias, &g, cout, op.group, pointwise, f16)))
}

/// Matrix products `Y[o, p] = sum_k W[o, k] X[k, p]` with constant weights, as tract writes 1x1 convolutions and
/// Gemm: one contracted axis, one weight-only axis, and the activation's other axes kept in order.
fn lower_einsum(model: &TypedModel, node: &TypedNode, op: &EinSum, f16: bool) -> TractResult<Option<GpuOp>> {
    if node.inputs.len() != 2 || op.q_params.is_some() || op.operating_dt != f32::datum_type() {
        return Ok(None);
    }
    let (xi, wi) = match (konst(model, node.inputs[0]), konst(model, node.inputs[1])) {
        (None, Some(_)) => (0, 1),
        (Some(_), None) => (1, 0),
        _ => return Ok(None),
    };
    let w = konst(model, node.inputs[wi]).unwrap();
    let xs = shape(model, node.inputs[xi])?;
    let ys = shape(model, node.id.into())?;
    let ws = w.shape().to_vec();
    let (mut k, mut o, mut p) = (None, None, vec![]);
    for axis in op.axes.iter_all_axes() {
        let (ax, aw, ay) = (&axis.inputs[xi], &axis.inputs[wi], &axis.outputs[0]);
        if ax.len() > 1 || aw.len() > 1 || ay.len() > 1 {
            return Ok(None);
        }
        let size =
            ax.first().map(|&i| xs[i]).or(aw.first().map(|&i| ws[i])).or(ay.first().map(|&i| ys[i])).unwrap_or(1);
        if size == 1 {
            continue;
        }
        match (ax.first(), aw.first(), ay.first()) {
            (Some(&x), Some(&w), None) if k.is_none() => k = Some((x, w, size)),
            (None, Some(&w), Some(&y)) if o.is_none() => o = Some((w, y, size)),
            (Some(&x), None, Some(&y)) => p.push((x, y, size)),
            _ => return Ok(None),
        }
    }
    let Some((kx, kw, ksize)) = k else { return Ok(None) };
    let (ow, oy, osize) = o.unwrap_or((usize::MAX, usize::MAX, 1));
    // Memory layouts: X is [K, P...], Y is [O, P...], P axes in the same order in both.
    let mut by_x = p.clone();
    by_x.sort_by_key(|a| a.0);
    let mut by_y = p.clone();
    by_y.sort_by_key(|a| a.1);
    if by_x.iter().map(|a| a.2).ne(by_y.iter().map(|a| a.2)) || by_x.iter().zip(&by_y).any(|(a, b)| a.0 != b.0) {
        return Ok(None);
    }
    if p.iter().any(|a| a.0 < kx || (osize > 1 && a.1 < oy)) {
        return Ok(None);
    }
    let psize: usize = p.iter().map(|a| a.2).product();
    let wv = f32s(&w)?;
    // Weights as [O, K] row-major.
    let wok = if osize == 1 || ow < kw {
        wv
    } else {
        let mut t = vec![0f32; wv.len()];
        for kk in 0..ksize {
            for oo in 0..osize {
                t[oo * ksize + kk] = wv[kk * osize + oo];
            }
        }
        t
    };
    let g = Geometry {
        c: ksize,
        hin: psize,
        win: 1,
        hout: psize,
        wout: 1,
        kh: 1,
        kw: 1,
        sh: 1,
        sw: 1,
        ph: 0,
        pw: 0,
        dh: 1,
        dw: 1,
    };
    Ok(Some(conv_op(node.inputs[xi], wok, vec![0.0; osize], &g, osize, 1, true, f16)))
}

fn binary_code(name: &str) -> Option<u32> {
    Some(match name {
        "Add" => 0,
        "Sub" => 1,
        "Mul" => 2,
        "Div" => 3,
        "Max" => 4,
        "Min" => 5,
        _ => return None,
    })
}

fn lower_binary(model: &TypedModel, node: &TypedNode, code: u32) -> TractResult<Option<GpuOp>> {
    let out = shape(model, node.id.into())?;
    let Some(o4) = rank4(&out) else { return Ok(None) };
    let (Some(sa), Some(sb)) = (
        broadcast_strides(&shape(model, node.inputs[0])?, &o4),
        broadcast_strides(&shape(model, node.inputs[1])?, &o4),
    ) else {
        return Ok(None);
    };
    let n: usize = out.iter().product();
    let mut params = vec![n as u32, code, o4[1] as u32, o4[2] as u32, o4[3] as u32];
    params.extend(sa);
    params.extend(sb);
    params.extend([0, 0, 0]);
    Ok(Some(GpuOp::plain(Kernel::Binary, node.inputs.to_vec(), params, n, Grid::Flat(n))))
}

fn unary(x: OutletId, n: usize, pre: u32, pa: f32, pb: f32, lut: Vec<f32>) -> GpuOp {
    // lut_off is filled in when `chan` is laid out (after the epilogue's data).
    let params = vec![n as u32, pre, pa.to_bits(), pb.to_bits(), 0, 0, 0, 0];
    GpuOp { chan_suffix: lut, ..GpuOp::plain(Kernel::Unary, vec![x], params, n, Grid::Flat(n)) }
}

fn rows(x: OutletId, rows: usize, len: usize, mode: u32, eps: f32, out_len: usize) -> GpuOp {
    GpuOp::plain(Kernel::Rows, vec![x], vec![rows as u32, len as u32, mode, eps.to_bits()], out_len, Grid::Rows(rows))
}

/// Reductions over trailing axes: `Some((rows, len))`.
fn trailing(s: &[usize], axes: &[usize]) -> Option<(usize, usize)> {
    let first = s.len().checked_sub(axes.len())?;
    let mut sorted = axes.to_vec();
    sorted.sort_unstable();
    if sorted.iter().enumerate().any(|(i, &a)| a != first + i) {
        return None;
    }
    Some((s[..first].iter().product(), s[first..].iter().product()))
}

fn lower_pool(model: &TypedModel, node: &TypedNode, spec: &PoolSpec, mode: u32) -> TractResult<Option<GpuOp>> {
    let (input, output) = (shape(model, node.inputs[0])?, shape(model, node.id.into())?);
    let Some(g) = geometry(spec, &input, &output) else { return Ok(None) };
    let n = g.c * g.hout * g.wout;
    let params =
        [g.c, g.hin, g.win, g.hout, g.wout, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, mode as usize, 0, 0]
            .iter()
            .map(|&v| v as u32)
            .collect();
    Ok(Some(GpuOp::plain(Kernel::Pool, vec![node.inputs[0]], params, n, Grid::Flat(n))))
}

fn gather(
    x: OutletId,
    input: &[usize],
    output: &[usize],
    stride: [usize; 4],
    offset: [i32; 4],
    fill: f32,
) -> Option<GpuOp> {
    let (i4, o4) = (rank4(input)?, rank4(output)?);
    let n: usize = output.iter().product();
    let mut params = vec![n as u32, o4[1] as u32, o4[2] as u32, o4[3] as u32];
    params.extend(i4.iter().map(|&v| v as u32));
    params.extend(stride.iter().map(|&v| v as u32));
    params.extend(offset.iter().map(|&v| v as u32));
    params.extend([fill.to_bits(), 0, 0, 0]);
    Some(GpuOp::plain(Kernel::Gather, vec![x], params, n, Grid::Flat(n)))
}

/// One node alone (no fusion): a GPU op, an alias, or `None` for the CPU.
fn lower_node(model: &TypedModel, node: &TypedNode, f16: bool) -> TractResult<Option<Lowered>> {
    let out: OutletId = node.id.into();
    if node.outputs.len() != 1 || !gpu_dt(model, out) || node.inputs.iter().any(|&i| !gpu_dt(model, i)) {
        return Ok(None);
    }
    let s = shape(model, out)?;
    let n: usize = s.iter().product();
    let op = &node.op;
    let gpu = |g: Option<GpuOp>| g.map(|g| Lowered::Gpu(Box::new(g)));
    if let Some(op) = op.downcast_ref::<AxisOp>() {
        // Reshapes and unit axes keep the row-major order of the data: the same buffer.
        return Ok(match op {
            AxisOp::Move(..) => None,
            _ => Some(Lowered::Alias(node.inputs[0])),
        });
    }
    if let Some(op) = op.downcast_ref::<Conv>() {
        return Ok(gpu(lower_conv(model, node, op, f16)?));
    }
    if let Some(op) = op.downcast_ref::<EinSum>() {
        return Ok(gpu(lower_einsum(model, node, op, f16)?));
    }
    if let Some(op) = op.downcast_ref::<TypedBinOp>() {
        if op.1.is_some() || model.outlet_fact(out)?.datum_type != f32::datum_type() {
            return Ok(None);
        }
        return match binary_code(&op.0.name()) {
            Some(code) => Ok(gpu(lower_binary(model, node, code)?)),
            None => Ok(None),
        };
    }
    if let Some(op) = op.downcast_ref::<ElementWiseOp>() {
        return Ok(gpu(lower_element_wise(model, node, op, n)?));
    }
    if let Some(op) = op.downcast_ref::<DequantizeLinearF32>() {
        return Ok(gpu(Some(unary(node.inputs[0], n, 1, op.zero_point as f32, op.scale, vec![]))));
    }
    if let Some(op) = op.downcast_ref::<Reduce>() {
        let input = shape(model, node.inputs[0])?;
        let mode = match op.reducer {
            Reducer::Sum => 0,
            Reducer::Max => 2,
            _ => return Ok(None),
        };
        let axes: Vec<usize> = op.axes.to_vec();
        return Ok(
            trailing(&input, &axes).map(|(r, l)| Lowered::Gpu(Box::new(rows(node.inputs[0], r, l, mode, 0.0, n))))
        );
    }
    if let Some(op) = op.downcast_ref::<RmsNorm>() {
        let eps = op.eps.cast_to_scalar::<f32>()?;
        return Ok(trailing(&s, &[op.axis]).map(|(r, l)| Lowered::Gpu(Box::new(rows(node.inputs[0], r, l, 3, eps, n)))));
    }
    if let Some(op) = op.downcast_ref::<MaxPool>() {
        if op.with_index_outputs.is_some() {
            return Ok(None);
        }
        return Ok(gpu(lower_pool(model, node, &op.pool_spec, 0)?));
    }
    if let Some(op) = op.downcast_ref::<SumPool>() {
        let mode = if !op.normalize {
            3
        } else if op.count_include_pad {
            1
        } else {
            2
        };
        return Ok(gpu(lower_pool(model, node, &op.pool_spec, mode)?));
    }
    if let Some(op) = op.downcast_ref::<Pad>() {
        return Ok(gpu(lower_pad(model, node, op, &s)?));
    }
    if let Some(op) = op.downcast_ref::<Downsample>() {
        return Ok(gpu(lower_downsample(model, node, op, &s)?));
    }
    Ok(None)
}

/// An element-wise function of `n` values: quantization to u8, a u8 -> u8 table, or a sigmoid.
fn lower_element_wise(
    model: &TypedModel,
    node: &TypedNode,
    op: &ElementWiseOp,
    n: usize,
) -> TractResult<Option<GpuOp>> {
    let out: OutletId = node.id.into();
    if let Some(q) = op.0.downcast_ref::<QuantizeLinearU8>() {
        let zq = q.zero_point as f32;
        let mut g = unary(node.inputs[0], n, 0, 0.0, 0.0, vec![]);
        g.epilogue.fq = Fq::Quantize { inv: q.scale, lo: -zq, hi: 255.0 - zq, zp: zq };
        return Ok(Some(g));
    }
    let input_dt = model.outlet_fact(node.inputs[0])?.datum_type;
    if input_dt == u8::datum_type() && model.outlet_fact(out)?.datum_type == u8::datum_type() {
        // A u8 -> u8 function (tract's LookupTable): tabulate it by running it on all 256 values.
        let all = tensor1(&(0..=255u8).collect::<Vec<u8>>());
        let Some(table) = node.op.eval_out_of_plan(tvec!(all.into_tvalue()))? else { return Ok(None) };
        let lut: Vec<f32> = table[0].to_plain_array_view::<u8>()?.iter().map(|&v| v as f32).collect();
        return Ok(Some(unary(node.inputs[0], n, 2, 0.0, 0.0, lut)));
    }
    if op.0.name() == "Sigmoid" && input_dt == f32::datum_type() {
        return Ok(Some(unary(node.inputs[0], n, 3, 0.0, 0.0, vec![])));
    }
    Ok(None)
}

/// A constant padding of up to four axes, as a gather from the input.
fn lower_pad(model: &TypedModel, node: &TypedNode, op: &Pad, s: &[usize]) -> TractResult<Option<GpuOp>> {
    let PadMode::Constant(fill) = &op.mode else { return Ok(None) };
    let input = shape(model, node.inputs[0])?;
    if input.len() > 4 {
        return Ok(None);
    }
    let mut off = [0i32; 4];
    for (i, p) in op.pads.iter().enumerate() {
        off[4 - input.len() + i] = -(p.0 as i32);
    }
    Ok(gather(node.inputs[0], &input, s, [1; 4], off, fill.cast_to_scalar::<f32>()?))
}

/// One axis of up to four subsampled, as a gather from the input.
fn lower_downsample(model: &TypedModel, node: &TypedNode, op: &Downsample, s: &[usize]) -> TractResult<Option<GpuOp>> {
    let input = shape(model, node.inputs[0])?;
    if op.stride <= 0 || input.len() > 4 {
        return Ok(None);
    }
    let (mut st, mut off) = ([1usize; 4], [0i32; 4]);
    st[4 - input.len() + op.axis] = op.stride as usize;
    off[4 - input.len() + op.axis] = op.modulo as i32;
    Ok(gather(node.inputs[0], &input, s, st, off, 0.0))
}

/// Tries to fold `node` (whose only data input is the value `x`, of shape `xs`) into `epi`.
fn absorb(model: &TypedModel, node: &TypedNode, x: OutletId, xs: &[usize], epi: &mut Epilogue) -> TractResult<bool> {
    let op = &node.op;
    if let Some(q) = op.downcast_ref::<ElementWiseOp>().and_then(|e| e.0.downcast_ref::<QuantizeLinearU8>()) {
        if epi.fq != Fq::None {
            return Ok(false);
        }
        let zq = q.zero_point as f32;
        epi.fq = Fq::Quantize { inv: q.scale, lo: -zq, hi: 255.0 - zq, zp: zq };
        return Ok(true);
    }
    if let Some(dq) = op.downcast_ref::<DequantizeLinearF32>() {
        return Ok(match epi.fq {
            Fq::Quantize { inv, lo, hi, zp } => {
                epi.fq = Fq::FakeQuant { inv, lo, hi, off: zp - dq.zero_point as f32, scale: dq.scale };
                true
            }
            _ => false,
        });
    }
    let Some(bin) = op.downcast_ref::<TypedBinOp>() else { return Ok(false) };
    if bin.1.is_some() || model.outlet_fact(node.id.into())?.datum_type != f32::datum_type() {
        return Ok(false);
    }
    let name = bin.0.name();
    let (c_at, other) = if node.inputs[0] == x { (1, node.inputs[1]) } else { (0, node.inputs[0]) };
    if other == x || node.inputs[1 - c_at] != x {
        return Ok(false);
    }
    let Some(c) = konst(model, other) else { return Ok(false) };
    if c.datum_type() != f32::datum_type() || shape(model, node.id.into())? != xs {
        return Ok(false);
    }
    let Some(axis) = channel_axis(c.shape(), xs) else { return Ok(false) };
    let cv = f32s(&c)?;
    Ok(match (&*name, c_at) {
        ("Add", _) => epi.affine(axis, &[1.0], &cv),
        ("Sub", 1) => epi.affine(axis, &[1.0], &cv.iter().map(|v| -v).collect::<Vec<_>>()),
        ("Mul", _) => epi.affine(axis, &cv, &[0.0]),
        ("Max" | "Min", _) if axis.is_none() && epi.fq == Fq::None => {
            if name == "Max" {
                epi.lo = epi.lo.max(cv[0]);
            } else {
                epi.hi = epi.hi.min(cv[0]);
            }
            epi.lo <= epi.hi
        }
        _ => false,
    })
}

/// GroupNorm as tract writes it: `m = sum(x) * (1/L)`, `d = x - m`, `RmsNorm(d)`, all over the trailing axis.
/// Returns the RmsNorm node and the epsilon when `reduce` starts that pattern.
fn group_norm(model: &TypedModel, reduce: &TypedNode) -> TractResult<Option<(usize, f32)>> {
    let single = |o: OutletId| -> Option<&TypedNode> {
        let succ = model.outlet_successors(o);
        (succ.len() == 1 && !model.outputs.contains(&o)).then(|| &model.nodes[succ[0].node])
    };
    let Some(op) = reduce.op.downcast_ref::<Reduce>() else { return Ok(None) };
    let x = reduce.inputs[0];
    let xs = shape(model, x)?;
    if op.reducer != Reducer::Sum || op.axes.as_slice() != [xs.len() - 1] || model.outlet_successors(x).len() != 2 {
        return Ok(None);
    }
    let Some(mul) = single(reduce.id.into()) else { return Ok(None) };
    if mul.op.downcast_ref::<TypedBinOp>().map(|b| b.0.name()).as_deref() != Some("Mul") {
        return Ok(None);
    }
    let Some(c) = mul.inputs.iter().find_map(|&i| konst(model, i)) else { return Ok(None) };
    let len = xs[xs.len() - 1] as f32;
    if c.len() != 1 || (c.cast_to_scalar::<f32>()? * len - 1.0).abs() > 1e-5 {
        return Ok(None);
    }
    let Some(sub) = single(mul.id.into()) else { return Ok(None) };
    if sub.op.downcast_ref::<TypedBinOp>().map(|b| b.0.name()).as_deref() != Some("Sub")
        || sub.inputs[..] != [x, mul.id.into()]
    {
        return Ok(None);
    }
    let Some(rms) = single(sub.id.into()) else { return Ok(None) };
    let Some(r) = rms.op.downcast_ref::<RmsNorm>() else { return Ok(None) };
    if r.axis != xs.len() - 1 || shape(model, sub.id.into())? != xs {
        return Ok(None);
    }
    Ok(Some((rms.id, r.eps.cast_to_scalar::<f32>()?)))
}

/// The whole graph, in evaluation order: what each node became. `f16_weights`: float weights stored as f16.
/// `max_binding`: the largest buffer one binding may hold, in bytes; an operation with larger weights or constants
/// (VGG's first classifier layer: 411 MB of float weights) runs on the CPU instead of failing the whole plan.
pub fn lower(model: &TypedModel, f16_weights: bool, max_binding: usize) -> TractResult<Vec<(usize, Lowered)>> {
    let order = model.eval_order()?;
    let mut done: Vec<Option<Lowered>> = vec![None; model.nodes.len()];
    for &id in &order {
        if done[id].is_some() {
            continue;
        }
        let node = &model.nodes[id];
        if node.op_is::<tract_onnx::tract_core::ops::source::TypedSource>() {
            done[id] = Some(Lowered::Source);
            continue;
        }
        if node.op_is::<tract_onnx::tract_core::ops::konst::Const>() {
            done[id] = Some(Lowered::Const);
            continue;
        }
        // GroupNorm first: one two-pass kernel instead of four.
        let mut lowered = None;
        let mut tail: OutletId = node.id.into();
        if let Some((rms, eps)) = group_norm(model, node)? {
            let xs = shape(model, node.inputs[0])?;
            let (r, l) = (xs[..xs.len() - 1].iter().product(), xs[xs.len() - 1]);
            lowered = Some(Lowered::Gpu(Box::new(rows(node.inputs[0], r, l, 4, eps, r * l))));
            let mul = model.outlet_successors(node.id.into())[0].node;
            let sub = model.outlet_successors(mul.into())[0].node;
            for fused in [mul, sub, rms] {
                done[fused] = Some(Lowered::Fused(node.id.into()));
            }
            tail = rms.into();
        }
        let lowered = match lowered {
            Some(l) => Some(l),
            None => lower_node(model, node, f16_weights)?,
        };
        let lowered = match lowered {
            Some(Lowered::Gpu(g)) if g.largest_binding(model)? > max_binding => None,
            other => other,
        };
        let Some(mut lowered) = lowered else {
            done[id] = Some(Lowered::Cpu);
            continue;
        };
        // Fold what follows into the epilogue while the chain is single-consumer.
        if let Lowered::Gpu(g) = &mut lowered {
            loop {
                let succ = model.outlet_successors(tail);
                if succ.len() != 1 || model.outputs.contains(&tail) {
                    break;
                }
                let next = &model.nodes[succ[0].node];
                if next.outputs.len() != 1 || done[next.id].is_some() {
                    break;
                }
                if let Some(AxisOp::Add(_) | AxisOp::Rm(_) | AxisOp::Reshape(..)) = next.op.downcast_ref::<AxisOp>() {
                    done[next.id] = Some(Lowered::Fused(node.id.into()));
                    tail = next.id.into();
                    continue;
                }
                let xs = shape(model, tail)?;
                let mut epi = g.epilogue.clone();
                if !absorb(model, next, tail, &xs, &mut epi)? {
                    break;
                }
                g.epilogue = epi;
                done[next.id] = Some(Lowered::Fused(node.id.into()));
                tail = next.id.into();
            }
        }
        done[id] = Some(lowered);
    }
    Ok(order.into_iter().map(|id| (id, done[id].take().expect("every node lowered"))).collect())
}
