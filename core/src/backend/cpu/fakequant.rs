//! Our activation quantization as tract operators, swapped in after tract optimises a QDQ model: [`FakeQuant`]
//! replaces a QuantizeLinear → DequantizeLinear pair (f32 → u8 → f32) by one pass, [`QuantizeU8`] a
//! QuantizeLinear that feeds tract's integer matrix products. tract's own passes are a scalar, branchy loop that
//! took a large share of the default model's time (BENCHMARKS.md); ours ([`crate::kernels::quant`]) compute the
//! same values bit for bit.

use super::eval::eval_f32_into;
use crate::kernels::quant::{FakeQuant, QuantizeU8};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::change_axes::IntoShape;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearU8};

/// tract's QuantizeLinear(u8) → DequantizeLinear pair as our [`FakeQuant`].
pub(crate) fn fake_quant_of(q: &QuantizeLinearU8, dq: &DequantizeLinearF32) -> FakeQuant {
    FakeQuant::new(q.scale, q.zero_point, dq.scale, dq.zero_point)
}

impl Op for QuantizeU8 {
    fn name(&self) -> StaticName {
        "SnakeidQuantizeU8".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("1/scale {} zero_point {}", self.inv_scale, self.zero_point)])
    }

    op_as_typed_op!();
}

impl EvalOp for QuantizeU8 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        eval_f32_into::<u8>(&inputs[0], inputs[0].shape(), |xs, ys| self.apply(xs, ys))
    }
}

impl TypedOp for QuantizeU8 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type(), "SnakeidQuantizeU8 takes f32");
        Ok(tvec!(u8::datum_type().fact(inputs[0].shape.clone())))
    }

    fn axes_mapping(&self, inputs: &[&TypedFact], outputs: &[&TypedFact]) -> TractResult<AxesMapping> {
        AxesMapping::natural(inputs, outputs)
    }

    as_op!();
}

impl Op for FakeQuant {
    fn name(&self) -> StaticName {
        "SnakeidFakeQuant".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "1/scale_q {} clamp [{}, {}] offset {} scale_dq {}",
            self.inv_scale, self.lo, self.hi, self.offset, self.scale
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for FakeQuant {
    fn eval(&self, _ctx: &EvalContext, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let mut t = inputs.remove(0).into_tensor();
        {
            let mut plain = t.try_as_plain_ram_mut()?;
            self.apply(plain.as_slice_mut::<f32>()?);
        }
        Ok(tvec!(t.into_tvalue()))
    }

    op_out_of_plan!();
}

impl TypedOp for FakeQuant {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type(), "SnakeidFakeQuant takes f32");
        Ok(tvec!(f32::datum_type().fact(inputs[0].shape.clone())))
    }

    fn axes_mapping(&self, inputs: &[&TypedFact], outputs: &[&TypedFact]) -> TractResult<AxesMapping> {
        AxesMapping::natural(inputs, outputs)
    }

    as_op!();
}

/// Swaps our operators into an optimised model: every f32 → QuantizeLinear(u8) → (reshapes) → DequantizeLinear(f32)
/// chain becomes one [`FakeQuant`] (then the reshapes, on f32), every other QuantizeLinear(u8) on f32 a [`QuantizeU8`]. Returns how many of each.
pub fn fuse(model: &mut TypedModel) -> TractResult<(usize, usize)> {
    let quantize_of = |model: &TypedModel, id: usize| -> Option<QuantizeLinearU8> {
        let node = model.node(id);
        let q = node.op_as::<ElementWiseOp>().and_then(|e| e.0.downcast_ref::<QuantizeLinearU8>())?;
        let f32_in = model.outlet_fact(node.inputs[0]).is_ok_and(|f| f.datum_type == f32::datum_type());
        f32_in.then(|| q.clone())
    };
    let (mut pairs, mut singles) = (0, 0);
    // tract's optimiser often leaves a reshape between the two (Q → IntoShape → DQ): look through such reshapes
    // and reshape the f32 result instead.
    let is_reshape = |node: &TypedNode| node.op_is::<IntoShape>() || node.op_is::<AxisOp>();
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(dq) = node.op_as::<DequantizeLinearF32>() else { continue };
        let mut reshapes = vec![];
        let mut producer = node.inputs[0].node;
        while is_reshape(model.node(producer)) {
            reshapes.push(producer);
            producer = model.node(producer).inputs[0].node;
        }
        let Some(q) = quantize_of(model, producer) else { continue };
        let source = model.node(producer).inputs[0];
        let op = fake_quant_of(&q, dq);
        let mut patch = TypedModelPatch::default();
        let mut wire = patch.tap_model(model, source)?;
        wire = patch.wire_node(format!("{}.fakequant", node.name), op, &[wire])?[0];
        for &r in reshapes.iter().rev() {
            let reshape = model.node(r);
            wire = patch.wire_node(format!("{}.f32", reshape.name), reshape.op.clone(), &[wire])?[0];
        }
        patch.shunt_outside(model, OutletId::new(id, 0), wire)?;
        patch.apply(model)?;
        pairs += 1;
    }
    model.compact()?;
    for id in model.eval_order()? {
        let Some(q) = quantize_of(model, id) else { continue };
        let node = model.node(id);
        let patch =
            TypedModelPatch::replace_single_op(model, node, &node.inputs, QuantizeU8::new(q.scale, q.zero_point))?;
        patch.apply(model)?;
        singles += 1;
    }
    model.compact()?;
    Ok((pairs, singles))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::quant::tests::values_around;
    use tract_onnx::tract_core::ops::quant::quantize_linear_f32_u8;

    #[test]
    fn bit_exact_with_tracts_quantize_then_dequantize() {
        for (scale, zp) in [(0.0235f32, 0u8), (0.1, 128), (0.0078125, 3), (1.7, 255)] {
            let q = QuantizeLinearU8 { scale: 1.0 / scale, zero_point: zp };
            let dq = DequantizeLinearF32 { scale, zero_point: zp as i32 };
            let (op, qop) = (fake_quant_of(&q, &dq), QuantizeU8::new(q.scale, q.zero_point));
            // (Beyond x / scale = 2^31 tract's scalar path wraps `i32::MAX + zero_point` to the other end; we
            // saturate there as ONNX says, which kernels::quant's tests check.)
            let xs = values_around(scale, zp, 0x9E37_79B9);
            let mut qs = vec![0u8; xs.len()];
            qop.apply(&xs, &mut qs);
            let mut ys = xs.clone();
            op.apply(&mut ys);
            for ((x, got), y) in xs.iter().zip(&qs).zip(&ys) {
                let tracts = quantize_linear_f32_u8(*x, q.scale, q.zero_point as i32);
                assert_eq!(*got, tracts, "x = {x}, scale {scale}, zp {zp}");
                assert_eq!(
                    y.to_bits(),
                    ((tracts as i32 - dq.zero_point) as f32 * dq.scale).to_bits(),
                    "x = {x}, scale {scale}, zp {zp}"
                );
            }
        }
    }
}
