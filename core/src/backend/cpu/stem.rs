//! Our stem convolution ([`crate::kernels::stem`]) as a tract operator: a dense f32 convolution with a spatial
//! kernel over few input channels (an image model's first layer), with the clip and fake quantization after it
//! fused in. tract runs it as an im2col matrix product of short rows, which neither vectorises nor splits over
//! threads well. [`swap_in`] replaces tract's Conv nodes by this op before tract optimises.

use super::eval::{conv_output_shape, eval_f32_into};
use super::pattern::{constant_f32, f32_input, plain_conv, tail_after, PlainConv};
use crate::kernels::plane::Geometry;
use crate::kernels::stem::{Stem, MAX_TAPS};
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

impl Op for Stem {
    fn name(&self) -> StaticName {
        "SnakeidStem".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} in, {} out, clip {:?}, fake quant {}",
            self.geometry,
            self.out_channels,
            self.clip,
            self.fake_quant.is_some()
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for Stem {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let g = &self.geometry;
        ensure!(
            inputs[0].len() == g.channels * g.in_hw[0] * g.in_hw[1],
            "SnakeidStem: input of {} values",
            inputs[0].len()
        );
        eval_f32_into::<f32>(
            &inputs[0],
            &conv_output_shape(self.out_channels, self.geometry.out_hw, inputs[0].rank()),
            |xs, out| crate::kernels::kernels().stem(self, xs, out),
        )
    }
}

impl TypedOp for Stem {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type(), "SnakeidStem takes f32");
        Ok(tvec!(f32::fact(conv_output_shape(self.out_channels, self.geometry.out_hw, inputs[0].rank()))))
    }

    as_op!();
}

/// The stem convolution a tract Conv node is, if it is one we run: a [`PlainConv`] with one group, a kernel larger
/// than 1x1, at most [`MAX_TAPS`] taps, an f32 channels-first input of batch 1, constant weights and bias.
fn stem_of(model: &TypedModel, node: &TypedNode) -> Option<Stem> {
    let PlainConv { conv, kernel, stride, pad_before, pad_after } = plain_conv(node)?;
    let (c, in_hw) = f32_input(model, node, conv)?;
    let taps = c * kernel[0] * kernel[1];
    if conv.group != 1 || kernel == [1, 1] || taps > MAX_TAPS {
        return None;
    }
    let geometry = Geometry::new(c, in_hw, kernel, stride, pad_before, pad_after)?;
    let out_channels = conv.pool_spec.output_channels;
    let weights = constant_f32(model, node.inputs[1])?;
    let bias = match constant_f32(model, node.inputs[2])? {
        b if b.len() == 1 => vec![b[0]; out_channels],
        b if b.len() == out_channels => b,
        _ => return None,
    };
    if weights.len() != out_channels * taps {
        return None;
    }
    Some(Stem {
        geometry,
        out_channels,
        weights: Arc::new(weights),
        bias: Arc::new(bias),
        clip: None,
        fake_quant: None,
    })
}

/// Replaces every stem convolution of a typed or decluttered model (and the Max/Min clip, QuantizeLinear and
/// DequantizeLinear that follow it, when each is the previous one's only consumer) by one [`Stem`]. Returns how
/// many it replaced: none on CPUs without a fused multiply-add instruction, where libm would compute the sums'
/// fused multiply-adds, slowly.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    if !crate::kernels::isa().fast_fma() {
        return Ok(0);
    }
    let mut swapped = 0;
    for id in model.eval_order()? {
        let Some(mut op) = stem_of(model, model.node(id)) else { continue };
        let Some(tail) = tail_after(model, id) else { continue };
        (op.clip, op.fake_quant) = (tail.clip, tail.fake_quant);
        let mut patch = TypedModelPatch::default();
        let tap = patch.tap_model(model, model.node(id).inputs[0])?;
        let out = patch.wire_node(format!("{}.snakeid_stem", model.node(id).name), op, &[tap])?[0];
        patch.shunt_outside(model, OutletId::new(tail.last, 0), out)?;
        patch.apply(model)?;
        swapped += 1;
    }
    model.compact()?;
    Ok(swapped)
}
