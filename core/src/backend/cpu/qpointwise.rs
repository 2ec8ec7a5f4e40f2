//! Our int8 convolution ([`crate::kernels::qpointwise`]: 1x1, or any kernel, stride and padding through its im2col
//! matrix) as a tract operator, for CPUs with an int8 plug-in (AVX-512 VNNI, AVX2 + FMA, the Arm dot product, WebAssembly
//! SIMD): tract runs a QDQ model's
//! convolutions as f32 products of dequantized values (tract PR 2725).
//!
//! [`swap_in`] replaces tract's Conv of one group (typed model) or a 1x1 one's EinSum + bias Add (decluttered
//! model), with the clip and QuantizeLinear → DequantizeLinear after it, by this op, only where the CPU has the
//! instructions and the weights are exactly int8.

use super::eval::eval_into;
use super::pattern::{constant, only_successor, other_constant, plain_conv, tail_after, PlainConv};
use crate::kernels::depthwise::Depthwise;
use crate::kernels::epilogue::Source;
use crate::kernels::kernels;
use crate::kernels::plane::Geometry;
use crate::kernels::qpointwise::QPointwise;
use crate::kernels::quant::FakeQuant;
use crate::kernels::stem::Stem;
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math::Add;
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::ops::quant::DequantizeLinearF32;

impl Op for QPointwise {
    fn name(&self) -> StaticName {
        "SnakeidQPointwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let window = self.window.as_ref().map(|g| format!(" ({g})")).unwrap_or_default();
        Ok(vec![
            format!(
                "{}{window} -> {} channels, {} pixels, input zero point {}, clip {:?}, fake quant {}",
                self.in_channels,
                self.out_channels,
                self.pixels,
                self.zero_point,
                self.clip,
                self.fake_quant.is_some()
            ) + if self.codes_in { ", u8 codes in" } else { "" }
                + if self.codes_out.is_some() { ", u8 codes out" } else { "" },
        ])
    }

    op_as_typed_op!();
}

impl EvalOp for QPointwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs[0].len() == self.input_len(), "SnakeidQPointwise: input of {} values", inputs[0].len());
        let grid = (1.0 / self.inv_scale, self.zero_point);
        match (self.codes_in, self.codes_out) {
            (false, None) => eval_into::<f32, f32>(&inputs[0], &self.out_shape, |xs, out| {
                kernels().qpointwise(self, Source::Values(xs), out)
            }),
            (false, Some(_)) => eval_into::<f32, u8>(&inputs[0], &self.out_shape, |xs, out| {
                kernels().qpointwise(self, Source::Values(xs), out)
            }),
            (true, None) => eval_into::<u8, f32>(&inputs[0], &self.out_shape, |xs, out| {
                kernels().qpointwise(self, Source::Codes(xs, grid), out)
            }),
            (true, Some(_)) => eval_into::<u8, u8>(&inputs[0], &self.out_shape, |xs, out| {
                kernels().qpointwise(self, Source::Codes(xs, grid), out)
            }),
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
/// or of our depthwise, pointwise or stem convolution with fake quantization fused in (a VGG's second convolution
/// reads the stem's: missing it left that 64-channel 3x3 convolution at 224x224, half of VGG16's time, to tract).
fn activation_grid(model: &TypedModel, outlet: OutletId) -> Option<(f32, i32)> {
    let node = model.node(outlet.node);
    if let Some(dq) = node.op_as::<DequantizeLinearF32>() {
        // Whatever made the u8 codes (a QuantizeLinear, or tract's lookup table for Q → DQ → Q).
        let u8_codes = model.outlet_fact(node.inputs[0]).ok()?.datum_type == u8::datum_type();
        return u8_codes.then_some((dq.scale, dq.zero_point));
    }
    let fused = match (node.op_as::<Depthwise>(), node.op_as::<QPointwise>(), node.op_as::<Stem>()) {
        (Some(dw), _, _) => dw.fake_quant.as_ref(),
        (_, Some(pw), _) => pw.fake_quant.as_ref(),
        (_, _, Some(stem)) => stem.fake_quant.as_ref(),
        _ => None,
    };
    fused.map(FakeQuant::grid)
}

/// Replaces every eligible pointwise convolution of a typed or decluttered model by a [`QPointwise`] (only when
/// the CPU has an int8 plug-in: AVX-512 VNNI, AVX2 + FMA, the Arm dot product, WebAssembly SIMD). Returns how many it replaced.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    if !crate::kernels::kernels().int8_pointwise {
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

/// What an int8 convolution node is made of, in either form.
struct Parts {
    source: OutletId,
    /// `[O, I]` or `[O, I, kh, kw]`.
    weights: Arc<Tensor>,
    /// A convolution other than 1x1 with unit strides and no padding.
    window: Option<Geometry>,
    /// Per output channel (or one value), when the node itself adds it.
    bias: Option<Arc<Tensor>>,
    /// The last node covered so far (the node itself).
    last: usize,
}

/// tract's ONNX `Conv` before declutter: one group, NCHW with a batch of one; any kernel, stride and padding.
fn conv_parts(model: &TypedModel, id: usize) -> Option<Parts> {
    let node = model.node(id);
    let PlainConv { conv, kernel, stride, pad_before, pad_after } = plain_conv(node)?;
    if conv.group != 1 || conv.pool_spec.data_format != DataFormat::NCHW {
        return None;
    }
    let in_shape: Vec<usize> = model.outlet_fact(node.inputs[0]).ok()?.shape.as_concrete()?.to_vec();
    let [1, c, h, w] = in_shape[..] else { return None };
    let pointwise = kernel == [1, 1] && stride == [1, 1] && pad_before == [0, 0] && pad_after == [0, 0];
    let window = if pointwise { None } else { Some(Geometry::new(c, [h, w], kernel, stride, pad_before, pad_after)?) };
    Some(Parts {
        source: node.inputs[0],
        weights: constant(model, node.inputs[1])?,
        bias: Some(constant(model, node.inputs[2])?),
        window,
        last: id,
    })
}

/// The decluttered form: an EinSum `[N]IHW,OI->[N]OHW`, or the classifier's Gemm on a pooled `[I, 1, 1]` input
/// (tract writes it `kba,nk->mn`).
fn einsum_parts(model: &TypedModel, id: usize) -> Option<Parts> {
    let node = model.node(id);
    let einsum = node.op_as::<EinSum>()?;
    let expr = einsum.axes.to_string();
    let classifier = expr == "kba,nk->mn";
    if einsum.q_params.is_some()
        || !(classifier || matches!(expr.as_str(), "IHW,OI->OHW" | "NIHW,OI->OHW" | "NIHW,OI->NOHW"))
    {
        return None;
    }
    let in_shape: Vec<usize> = model.outlet_fact(node.inputs[0]).ok()?.shape.as_concrete()?.to_vec();
    if (in_shape.len() == 4 && in_shape[0] != 1) || in_shape.len() < 3 || (classifier && in_shape[1..] != [1, 1]) {
        return None;
    }
    Some(Parts {
        source: node.inputs[0],
        weights: model.outlet_fact(node.inputs[1]).ok()?.konst.clone()?,
        bias: None,
        window: None,
        last: id,
    })
}

/// A pointwise convolution over a fake-quantized input with int8 weights, and the clip and Q → DQ that follow it:
/// the op, the last node it replaces, and its input. Two forms: tract's ONNX `Conv` before declutter (any kernel,
/// stride and padding, bias as its third input), and after declutter a 1x1 one's EinSum and the bias Add after it.
fn pointwise_of(model: &TypedModel, id: usize) -> Option<(QPointwise, usize, OutletId)> {
    let Parts { source, weights, mut bias, window, mut last } =
        conv_parts(model, id).or_else(|| einsum_parts(model, id))?;
    let in_shape: Vec<usize> = model.outlet_fact(source).ok()?.shape.as_concrete()?.to_vec();
    // The matrix product: `in_channels` deep (channels x kernel taps) over `pixels` output pixels.
    let (in_channels, pixels) = match &window {
        Some(g) => (g.channels * g.kernel[0] * g.kernel[1], g.out_hw[0] * g.out_hw[1]),
        None => (in_shape[in_shape.len() - 3], in_shape[in_shape.len() - 2] * in_shape[in_shape.len() - 1]),
    };
    let (out_channels, cols) = match (weights.shape(), &window) {
        ([o, i], None) | ([o, i, 1, 1], None) => (*o, *i),
        ([o, i, kh, kw], Some(g)) if [*kh, *kw] == g.kernel => (*o, i * kh * kw),
        _ => return None,
    };
    if cols != in_channels || weights.datum_type() != f32::datum_type() {
        return None;
    }
    let (scale, zero_point) = activation_grid(model, source)?;
    let out_shape = model.outlet_fact(OutletId::new(id, 0)).ok()?.shape.as_concrete()?.to_vec();
    // tract's output shape must be the geometry's (it is, for the paddings plain_conv accepts).
    if out_shape.iter().product::<usize>() != out_channels * pixels {
        return None;
    }

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
    let weights = weights.try_as_plain_ram().ok()?;
    let op = QPointwise::new(
        in_channels,
        out_channels,
        pixels,
        out_shape,
        weights.as_slice::<f32>().ok()?,
        (scale, zero_point),
        bias,
        tail.clip,
        tail.fake_quant,
    )?;
    Some((
        match window {
            Some(g) => op.windowed(g),
            None => op,
        },
        tail.last,
        source,
    ))
}
