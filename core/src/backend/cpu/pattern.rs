//! The graph patterns our operators replace: a plain float Conv and its input; the element-wise tail that a
//! convolution absorbs into its epilogue (a Max/Min clip with one-value constants, then a QuantizeLinear(u8) →
//! DequantizeLinear pair, each node the previous one's only consumer) and the clip before it; constants.

use super::fakequant::fake_quant_of;
use crate::kernels::quant::FakeQuant;
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::math::{Max, Min};
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearU8};

/// What follows a node and can be fused into it.
pub(crate) struct Tail {
    /// The last node absorbed (the node itself when nothing is).
    pub last: usize,
    pub clip: Option<(f32, f32)>,
    pub fake_quant: Option<FakeQuant>,
}

/// The single consumer of `node`'s only output, if it has exactly one and is not a model output.
pub(crate) fn only_successor(model: &TypedModel, node: usize) -> Option<usize> {
    let outputs = &model.node(node).outputs;
    (outputs.len() == 1 && outputs[0].successors.len() == 1 && !model.outputs.contains(&OutletId::new(node, 0)))
        .then(|| outputs[0].successors[0].node)
}

/// The constant among a node's inputs other than the one coming from `from`.
pub(crate) fn other_constant(model: &TypedModel, node: &TypedNode, from: usize) -> Option<Arc<Tensor>> {
    let other = node.inputs.iter().find(|i| i.node != from)?;
    constant(model, *other)
}

/// The value of an outlet that is a constant, or a constant under a Cast: before declutter, tract's ONNX Conv
/// casts its bias to the input's type with a Cast node that only declutter folds away.
pub(crate) fn constant(model: &TypedModel, outlet: OutletId) -> Option<Arc<Tensor>> {
    let fact = model.outlet_fact(outlet).ok()?;
    if let Some(k) = &fact.konst {
        return Some(k.clone());
    }
    let node = model.node(outlet.node);
    let cast = node.op_as::<Cast>()?;
    let k = model.outlet_fact(*node.inputs.first()?).ok()?.konst.clone()?;
    Some(k.cast_to_dt(cast.to).ok()?.into_owned().into_arc_tensor())
}

/// [`constant`]'s values as f32 (cast when they are another type).
pub(crate) fn constant_f32(model: &TypedModel, outlet: OutletId) -> Option<Vec<f32>> {
    let t = constant(model, outlet)?.cast_to::<f32>().ok()?.into_owned();
    Some(t.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?.to_vec())
}

/// A Max or Min of `node`'s input from `from` with a one-value f32 constant, as the bounds it clips to (the other
/// one infinite).
fn clip_bounds(model: &TypedModel, node: &TypedNode, from: usize) -> Option<(f32, f32)> {
    let bin = node.op_as::<TypedBinOp>()?;
    let is_max = bin.0.is::<Max>();
    if !is_max && !bin.0.is::<Min>() {
        return None;
    }
    let k = other_constant(model, node, from).filter(|k| k.len() == 1 && k.datum_type() == f32::datum_type())?;
    let v = k.cast_to_scalar::<f32>().ok()?;
    Some(if is_max { (v, f32::INFINITY) } else { (f32::NEG_INFINITY, v) })
}

/// The Max/Min clip that makes `outlet`, when it is read by one node only: the outlet before the clip and its
/// bounds. `None` when there is none, or its bounds cross.
pub(crate) fn clip_before(model: &TypedModel, outlet: OutletId) -> Option<(OutletId, (f32, f32))> {
    let (mut source, mut lo, mut hi, mut clipped) = (outlet, f32::NEG_INFINITY, f32::INFINITY, false);
    while source.slot == 0 && only_successor(model, source.node).is_some() {
        let node = model.node(source.node);
        let Some(input) = node.inputs.iter().find(|i| model.outlet_fact(**i).is_ok_and(|f| f.konst.is_none())) else {
            break;
        };
        let Some((l, h)) = clip_bounds(model, node, input.node) else { break };
        (lo, hi, source, clipped) = (lo.max(l), hi.min(h), *input, true);
    }
    (clipped && lo <= hi).then_some((source, (lo, hi)))
}

/// The clip and fake quantization after node `from`; `None` when clip bounds cross (nothing sensible to fuse).
pub(crate) fn tail_after(model: &TypedModel, from: usize) -> Option<Tail> {
    let (mut last, mut lo, mut hi, mut clipped) = (from, f32::NEG_INFINITY, f32::INFINITY, false);
    while let Some(next) = only_successor(model, last) {
        let Some((l, h)) = clip_bounds(model, model.node(next), last) else { break };
        (lo, hi, last, clipped) = (lo.max(l), hi.min(h), next, true);
    }
    if clipped && lo > hi {
        return None;
    }
    let mut fake_quant = None;
    if let Some(q_id) = only_successor(model, last) {
        let q = model.node(q_id).op_as::<ElementWiseOp>().and_then(|e| e.0.downcast_ref::<QuantizeLinearU8>());
        if let (Some(q), Some(dq_id)) = (q, only_successor(model, q_id)) {
            if let Some(dq) = model.node(dq_id).op_as::<DequantizeLinearF32>() {
                fake_quant = Some(fake_quant_of(q, dq));
                last = dq_id;
            }
        }
    }
    Some(Tail { last, clip: clipped.then_some((lo, hi)), fake_quant })
}

/// A 2-D float Conv that our convolution operators can replace: no quantization parameters, an OIHW kernel given
/// as an input with the bias, unit dilations, explicit (or no) padding, no zero-sized kernel or stride.
pub(crate) struct PlainConv<'a> {
    pub conv: &'a Conv,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad_before: [usize; 2],
    pub pad_after: [usize; 2],
}

/// `node` as a [`PlainConv`], when it is one.
pub(crate) fn plain_conv(node: &TypedNode) -> Option<PlainConv<'_>> {
    let conv = node.op_as::<Conv>()?;
    let spec = &conv.pool_spec;
    if conv.q_params.is_some()
        || conv.kernel_fmt != KernelFormat::OIHW
        || node.inputs.len() != 3
        || spec.kernel_shape.len() != 2
    {
        return None;
    }
    if spec.dilations.as_ref().is_some_and(|d| d.iter().any(|d| *d != 1)) {
        return None;
    }
    let (pad_before, pad_after) = match &spec.padding {
        PaddingSpec::Valid => ([0, 0], [0, 0]),
        PaddingSpec::Explicit(b, a) if b.len() == 2 && a.len() == 2 => ([b[0], b[1]], [a[0], a[1]]),
        _ => return None,
    };
    let kernel = [spec.kernel_shape[0], spec.kernel_shape[1]];
    let stride = spec.strides.as_ref().map(|s| [s[0], s[1]]).unwrap_or([1, 1]);
    if stride.contains(&0) || kernel.contains(&0) {
        return None;
    }
    Some(PlainConv { conv, kernel, stride, pad_before, pad_after })
}

/// A Conv's input as channels and height x width, when it is f32, batch 1, channels first, of concrete shape.
pub(crate) fn f32_input(model: &TypedModel, node: &TypedNode, conv: &Conv) -> Option<(usize, [usize; 2])> {
    let fact = model.outlet_fact(node.inputs[0]).ok()?;
    let shape: Vec<usize> = fact.shape.as_concrete()?.to_vec();
    let (c, in_hw) = match (conv.pool_spec.data_format, shape.as_slice()) {
        (DataFormat::NCHW, [1, c, h, w]) | (DataFormat::CHW, [c, h, w]) => (*c, [*h, *w]),
        _ => return None,
    };
    (fact.datum_type == f32::datum_type()).then_some((c, in_hw))
}
