//! Hands u8 codes instead of f32 values from an int8 pointwise convolution to the depthwise convolution that alone
//! reads its output: a quarter of the bytes written and read between them (MobileNetV2's first expansion writes
//! 4.8 MB of f32, which the depthwise convolution after it reads back from memory). The codes are of the output's own
//! fake quantization grid, so the depthwise convolution sees the very same values, bit for bit.

use crate::depthwise::Depthwise;
use crate::qpointwise::QPointwise;
use tract_onnx::prelude::*;

/// Rewires every int8 pointwise → depthwise pair in `model` (an optimised plan's model, our operators swapped in)
/// where the depthwise convolution is the only reader and the output is fake-quantized. Returns how many.
pub fn hand_over(model: &mut TypedModel) -> TractResult<usize> {
    let mut count = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(depthwise) = node.op_as::<Depthwise>() else { continue };
        let from = node.inputs[0];
        let producer = model.node(from.node);
        let Some(pointwise) = producer.op_as::<QPointwise>() else { continue };
        if model.outlet_successors(from).len() != 1 || model.output_outlets()?.contains(&from) {
            continue;
        }
        let Some((pointwise, grid)) = pointwise.with_codes() else { continue };
        let Some(depthwise) = depthwise.with_codes(grid) else { continue };
        let mut patch = TypedModelPatch::default();
        let input = patch.tap_model(model, producer.inputs[0])?;
        let codes = patch.wire_node(format!("{}.codes", producer.name), pointwise, &[input])?[0];
        let out = patch.wire_node(format!("{}.from_codes", node.name), depthwise, &[codes])?[0];
        patch.shunt_outside(model, OutletId::new(id, 0), out)?;
        patch.apply(model)?;
        count += 1;
    }
    model.compact()?;
    Ok(count)
}
