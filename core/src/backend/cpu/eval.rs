//! Evaluating one of our operators in tract: its input's values into a fresh output tensor.

use tract_onnx::prelude::*;

/// Evaluates an operator whose input is f32: `fill(input values, output values)` into a fresh tensor of `shape`.
pub(crate) fn eval_f32_into<T: Datum>(
    input: &TValue,
    shape: &[usize],
    fill: impl FnOnce(&[f32], &mut [T]),
) -> TractResult<TVec<TValue>> {
    eval_into(input, shape, fill)
}

/// [`eval_f32_into`] for an input of any element type `I`.
pub(crate) fn eval_into<I: Datum, T: Datum>(
    input: &TValue,
    shape: &[usize],
    fill: impl FnOnce(&[I], &mut [T]),
) -> TractResult<TVec<TValue>> {
    let input = input.try_as_plain_ram()?;
    let xs = input.as_slice::<I>()?;
    // SAFETY: every caller's `fill` writes every output value.
    let mut out = unsafe { Tensor::uninitialized::<T>(shape)? };
    {
        let mut plain = out.try_as_plain_ram_mut()?;
        fill(xs, plain.as_slice_mut::<T>()?);
    }
    Ok(tvec!(out.into_tvalue()))
}

/// A convolution's output shape for an input of rank `input_rank`: `[channels, h, w]`, with the batch of one when the
/// input has it.
pub(crate) fn conv_output_shape(channels: usize, [h, w]: [usize; 2], input_rank: usize) -> TVec<usize> {
    let mut shape: TVec<usize> = tvec![channels, h, w];
    if input_rank == 4 {
        shape.insert(0, 1);
    }
    shape
}
