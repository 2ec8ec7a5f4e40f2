//! Hands u8 codes instead of f32 values between our convolutions where one alone reads the other's fake-quantized
//! output: from an int8 pointwise convolution to the depthwise one after it, from a depthwise convolution to the
//! int8 pointwise one after it, and between two int8 pointwise convolutions. A quarter of the bytes written and
//! read between them (MobileNetV2's first expansion writes 4.8 MB of f32, which the depthwise convolution reads
//! back from memory), no rounding to f32 and back to codes again. The codes are of the output's own grid, so the reader sees the very same values, bit for
//! bit.

use crate::kernels::depthwise::Depthwise;
use crate::kernels::qpointwise::QPointwise;
use tract_onnx::prelude::*;

/// Rewires every such pair in `model` (an optimised plan's model, our operators swapped in). Returns how many.
pub fn hand_over(model: &mut TypedModel) -> TractResult<usize> {
    let into_depthwise = rewire(model, |producer, consumer| {
        let (producer, grid) = producer.op_as::<QPointwise>()?.with_codes_out()?;
        let consumer = consumer.op_as::<Depthwise>()?.with_codes_in(grid)?;
        Some((Box::new(producer) as Box<dyn TypedOp>, Box::new(consumer) as Box<dyn TypedOp>))
    })?;
    let into_pointwise = rewire(model, |producer, consumer| {
        let (producer, grid) = producer.op_as::<Depthwise>()?.with_codes_out()?;
        let consumer = consumer.op_as::<QPointwise>()?.with_codes_in(grid)?;
        Some((Box::new(producer) as Box<dyn TypedOp>, Box::new(consumer) as Box<dyn TypedOp>))
    })?;
    let between_pointwise = rewire(model, |producer, consumer| {
        let (producer, grid) = producer.op_as::<QPointwise>()?.with_codes_out()?;
        let consumer = consumer.op_as::<QPointwise>()?.with_codes_in(grid)?;
        Some((Box::new(producer) as Box<dyn TypedOp>, Box::new(consumer) as Box<dyn TypedOp>))
    })?;
    Ok(into_depthwise + into_pointwise + between_pointwise)
}

/// Replaces each node and the node that feeds its first input — when it alone reads that output, which is not a
/// model output — by the ops `pair(producer, consumer)` gives, if it gives them.
fn rewire(
    model: &mut TypedModel,
    pair: impl Fn(&TypedNode, &TypedNode) -> Option<(Box<dyn TypedOp>, Box<dyn TypedOp>)>,
) -> TractResult<usize> {
    let mut count = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(&from) = node.inputs.first() else { continue };
        let producer = model.node(from.node);
        if producer.inputs.len() != 1
            || model.outlet_successors(from).len() != 1
            || model.output_outlets()?.contains(&from)
        {
            continue;
        }
        let Some((new_producer, new_consumer)) = pair(producer, node) else { continue };
        let mut patch = TypedModelPatch::default();
        let mut inputs = vec![patch.tap_model(model, producer.inputs[0])?];
        inputs[0] = patch.wire_node(format!("{}.codes", producer.name), new_producer, &inputs)?[0];
        for &input in &node.inputs[1..] {
            inputs.push(patch.tap_model(model, input)?);
        }
        let out = patch.wire_node(format!("{}.from_codes", node.name), new_consumer, &inputs)?[0];
        patch.shunt_outside(model, OutletId::new(id, 0), out)?;
        patch.apply(model)?;
        count += 1;
    }
    model.compact()?;
    Ok(count)
}
