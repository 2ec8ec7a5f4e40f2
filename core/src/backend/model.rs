//! The model as tract reads it, shared by the CPU and GPU backends: the ONNX file parsed (constant
//! dequantizations folded first, [`super::onnx_fold`]), typed for one input shape and checked to give the
//! manifest's logits; and tract's errors as one line.

use crate::error::{Error, Result};
use tract_onnx::prelude::*;

/// Parses and types the bundle's model for a `[1, 3, height, width]` f32 input, checking that it has one input and
/// one output of `num_classes` f32 logits. The CPU engine optimises it; the GPU backend lowers it.
pub fn typed_model(onnx: impl Into<bytes::Bytes>, width: u32, height: u32, num_classes: usize) -> Result<TypedModel> {
    typed_model_with(onnx, width, height, num_classes, true)
}

/// As [`typed_model`]; `fold: false` leaves the folding of constant weights to tract (slower, same values).
pub(crate) fn typed_model_with(
    onnx: impl Into<bytes::Bytes>,
    width: u32,
    height: u32,
    num_classes: usize,
    fold: bool,
) -> Result<TypedModel> {
    let (width, height) = (width as usize, height as usize);
    let unloadable = |e: TractError| Error::InvalidBundle(format!("model.onnx cannot be loaded: {}", one_line(&e)));
    let onnx_reader = tract_onnx::onnx();
    // Decoded from the bytes themselves: tract's `proto_model_for_read` copies the whole file into a fresh buffer
    // first, and decoding from a plain slice copies every tensor twice.
    let mut proto = <tract_onnx::pb::ModelProto as prost::Message>::decode(onnx.into())
        .map_err(|e| Error::InvalidBundle(format!("model.onnx cannot be loaded: {e}")))?;
    if fold {
        super::onnx_fold::fold_constant_dequantize(&mut proto);
    }
    let model = onnx_reader.model_for_proto_model(&proto).map_err(unloadable)?;
    drop(proto);
    if model.inputs.len() != 1 || model.outputs.len() != 1 {
        return Err(Error::bundle(format!(
            "the model must have one input and one output (it has {} and {})",
            model.inputs.len(),
            model.outputs.len()
        )));
    }
    let mut typed = model
        .with_input_fact(0, f32::fact([1, 3, height, width]).into())
        .and_then(|m| m.into_typed())
        .map_err(berr("typing the model"))?;
    super::downsample::keep_unpullable_downsamples(&mut typed)
        .map_err(berr("working around tract's strided slices"))?;
    let out = typed.output_fact(0).map_err(berr("reading the output"))?;
    let shape: Option<Vec<usize>> = out.shape.as_concrete().map(|s| s.to_vec());
    let classes = match shape.as_deref() {
        Some([1, n]) | Some([n]) => *n,
        _ => return Err(Error::bundle(format!("model output must be [1, classes] logits, found {:?}", out.shape))),
    };
    if classes != num_classes {
        return Err(Error::bundle(format!("model outputs {classes} classes, the manifest says {num_classes}")));
    }
    if out.datum_type != f32::datum_type() {
        return Err(Error::bundle(format!("model output must be f32 logits, found {:?}", out.datum_type)));
    }
    Ok(typed)
}

/// Turns a tract error at one stage of compiling into our one-line backend error.
pub(crate) fn berr(stage: &'static str) -> impl Fn(TractError) -> Error {
    move |e| Error::Backend(format!("{stage}: {}", one_line(&e)))
}

/// tract errors carry a chain of causes; one readable line is what we promise.
pub(crate) fn one_line(e: &TractError) -> String {
    e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ").replace('\n', " ")
}
