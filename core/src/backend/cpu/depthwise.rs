//! Our depthwise convolution ([`crate::kernels::depthwise`]) as a tract operator: f32, channels first, any kernel
//! size, padding and stride (no dilation), with the clip (ReLU/ReLU6) and activation fake quantization that follow
//! it fused in. tract's own DepthWiseConv walks its taps through a generic zone scanner, then clips and quantizes
//! in separate passes. [`swap_in`] replaces tract's Conv nodes by this op before tract optimises.

use super::eval::{conv_output_shape, eval_into};
use super::pattern::{clip_before, constant_f32, f32_input, plain_conv, tail_after, PlainConv};
use crate::kernels::depthwise::Depthwise;
use crate::kernels::epilogue::Source;
use crate::kernels::kernels;
use crate::kernels::plane::Geometry;
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

impl Op for Depthwise {
    fn name(&self) -> StaticName {
        "SnakeidDepthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{}, input clip {:?}, clip {:?}, fake quant {}",
            self.geometry,
            self.input_clip,
            self.clip,
            self.fake_quant.is_some()
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for Depthwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let g = &self.geometry;
        ensure!(
            inputs[0].len() == g.channels * g.in_hw[0] * g.in_hw[1],
            "SnakeidDepthwise: input of {} values",
            inputs[0].len()
        );
        let shape = conv_output_shape(self.geometry.channels, self.geometry.out_hw, inputs[0].rank());
        match (self.codes_in, self.codes_out) {
            (None, None) => {
                eval_into::<f32, f32>(&inputs[0], &shape, |xs, out| kernels().depthwise(self, Source::Values(xs), out))
            }
            (None, Some(_)) => {
                eval_into::<f32, u8>(&inputs[0], &shape, |xs, out| kernels().depthwise(self, Source::Values(xs), out))
            }
            (Some(grid), None) => eval_into::<u8, f32>(&inputs[0], &shape, |xs, out| {
                kernels().depthwise(self, Source::Codes(xs, grid), out)
            }),
            (Some(grid), Some(_)) => eval_into::<u8, u8>(&inputs[0], &shape, |xs, out| {
                kernels().depthwise(self, Source::Codes(xs, grid), out)
            }),
        }
    }
}

impl TypedOp for Depthwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let takes = if self.codes_in.is_some() { u8::datum_type() } else { f32::datum_type() };
        ensure!(inputs[0].datum_type == takes, "SnakeidDepthwise takes {takes:?}");
        let shape = conv_output_shape(self.geometry.channels, self.geometry.out_hw, inputs[0].rank());
        Ok(tvec!(if self.codes_out.is_some() { u8::fact(shape) } else { f32::fact(shape) }))
    }

    as_op!();
}

/// The depthwise geometry of a tract Conv node, if it is one we run: f32, groups = input = output channels,
/// channels first with batch 1, concrete shape, explicit or no padding, no dilation, constant weights and bias.
fn depthwise_of(model: &TypedModel, node: &TypedNode) -> Option<(Geometry, Vec<f32>, Vec<f32>)> {
    let PlainConv { conv, kernel, stride, pad_before, pad_after } = plain_conv(node)?;
    let spec = &conv.pool_spec;
    if conv.group != spec.input_channels || conv.group != spec.output_channels {
        return None;
    }
    let (c, in_hw) = f32_input(model, node, conv)?;
    if c != conv.group {
        return None;
    }
    let geometry = Geometry::new(c, in_hw, kernel, stride, pad_before, pad_after)?;
    let konst = |i: usize| constant_f32(model, node.inputs[i]);
    let (weights, bias) = (konst(1)?, konst(2)?);
    let bias = match bias.len() {
        1 => vec![bias[0]; c],
        n if n == c => bias,
        _ => return None,
    };
    if weights.len() != c * kernel[0] * kernel[1] {
        return None;
    }
    Some((geometry, weights, bias))
}

/// Replaces every depthwise Conv of a typed or decluttered model (and the Max/Min clip, QuantizeLinear and
/// DequantizeLinear that follow it, when each is the previous one's only consumer) by one [`Depthwise`].
/// Returns how many it replaced.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    let mut swapped = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some((geometry, weights, bias)) = depthwise_of(model, node) else { continue };
        let Some(tail) = tail_after(model, id) else { continue };
        let (source, input_clip) = match clip_before(model, node.inputs[0]) {
            Some((source, bounds)) => (source, Some(bounds)),
            None => (node.inputs[0], None),
        };
        let op = Depthwise {
            geometry,
            weights: Arc::new(weights),
            bias: Arc::new(bias),
            input_clip,
            clip: tail.clip,
            fake_quant: tail.fake_quant,
            codes_in: None,
            codes_out: None,
        };
        let mut patch = TypedModelPatch::default();
        let tap = patch.tap_model(model, source)?;
        let out = patch.wire_node(format!("{}.snakeid_depthwise", model.node(id).name), op, &[tap])?[0];
        patch.shunt_outside(model, OutletId::new(tail.last, 0), out)?;
        patch.apply(model)?;
        swapped += 1;
    }
    model.compact()?;
    Ok(swapped)
}
