//! A workaround for a tract 0.23.9 declutter bug that refuses LeViT: a strided Slice (tract's `Downsample`) right
//! after a Reshape whose input has no counterpart of the subsampled axis fails the whole load with "Invalid axis"
//! (`pull_downsample_over_axis_op` errs where it should decline; reproduction in `models/zoo/repro/`). Such a
//! Downsample becomes [`KeptDownsample`]: tract's own operator and arithmetic, which declutter leaves in place.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::array::StridedSlice;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::downsample::Downsample;

/// tract's Downsample, computing what it computes, without its declutter rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptDownsample(pub Downsample);

impl Op for KeptDownsample {
    fn name(&self) -> StaticName {
        "SnakeidKeptDownsample".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        self.0.info()
    }

    op_as_typed_op!();
}

impl EvalOp for KeptDownsample {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.0.eval(ctx, inputs)
    }
}

impl TypedOp for KeptDownsample {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.0.output_facts(inputs)
    }

    as_op!();
}

/// Replaces every Downsample that tract's declutter would fail to pull over the axis change feeding it. Returns
/// how many. The importer's strided slices are first expanded as declutter would expand them (into Slice and
/// Downsample nodes), so that their Downsamples are there to be found.
pub fn keep_unpullable_downsamples(model: &mut TypedModel) -> TractResult<usize> {
    for id in model.eval_order()? {
        let node = model.node(id);
        if node.op_is::<StridedSlice>() {
            if let Some(patch) = node.op.declutter(model, node)? {
                patch.apply(model)?;
            }
        }
    }
    let mut kept = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(down) = node.op_as::<Downsample>() else { continue };
        // Declutter pulls it up over single-input operators that keep the rank (slices, the quantize/dequantize
        // pairs of a QDQ model, element-wise ops) until it meets an axis change. Walking back over them all keeps
        // some Downsamples tract could have pulled further: slower at worst, where missing one fails the load.
        let mut prec = model.node(node.inputs[0].node);
        while prec.inputs.len() == 1 && !prec.op_is::<AxisOp>() && same_rank(model, prec) {
            prec = model.node(prec.inputs[0].node);
        }
        let unpullable = prec.op_as::<AxisOp>().is_some_and(|a| a.recip().transform_axis(down.axis).is_none());
        if down.stride != 1 && unpullable {
            let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, KeptDownsample(down.clone()))?;
            patch.apply(model)?;
            kept += 1;
        }
    }
    Ok(kept)
}

/// Whether a node's first output has its first input's rank.
fn same_rank(model: &TypedModel, node: &TypedNode) -> bool {
    let rank = |o: OutletId| model.outlet_fact(o).map(|f| f.rank()).ok();
    rank(node.inputs[0]).is_some_and(|r| rank(OutletId::new(node.id, 0)) == Some(r))
}

#[cfg(test)]
mod tests {
    use crate::backend::cpu::Engine;

    /// LeViT's attention downsampling, `x.view(1, 8, 8, 3)[:, ::2, ::2]` (a Reshape, then a Slice with steps 2 on the
    /// new axes), in float and as LeViT's int8 export has it (QuantizeLinear → DequantizeLinear between the two):
    /// tract 0.23.9's declutter refused both with "Invalid axis". They load and subsample.
    #[test]
    fn levit_strided_slice_after_reshape_loads_and_subsamples() {
        let float = include_bytes!("../../../models/zoo/repro/downsample_over_reshape.onnx").as_slice();
        let qdq = include_bytes!("../../../models/zoo/repro/downsample_over_reshape_qdq.onnx").as_slice();
        let expected: Vec<f32> = (0..4)
            .flat_map(|y| (0..4).flat_map(move |x| (0..3).map(move |c| ((2 * y * 8 + 2 * x) * 3 + c) as f32)))
            .collect();
        for onnx in [float, qdq] {
            let engine = Engine::compile(onnx, 8, 8, 48).unwrap();
            assert_eq!(engine.run((0..192).map(|i| i as f32).collect()).unwrap(), expected);
        }
    }
}
