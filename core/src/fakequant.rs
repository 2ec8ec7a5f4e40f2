//! Our own tract operators for activation quantization, swapped in after tract optimises a QDQ model.
//!
//! tract quantizes activations with a scalar, branchy element-wise loop; on the default MobileNetV2 its
//! QuantizeLinear(u8) and DequantizeLinear passes were 40% of inference time. [`FakeQuant`] replaces a
//! QuantizeLinear → DequantizeLinear pair (f32 → u8 → f32) by one pass; [`QuantizeU8`] replaces a QuantizeLinear
//! that feeds tract's integer matrix products. Both compute the same values bit for bit in branch-free loops the
//! compiler vectorises: clamp to the representable range, round half to even, shift and rescale.

use crate::simd::{clamp, eval_f32_into, simd_dispatch, ROUND};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::change_axes::IntoShape;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearU8};

/// `y = (clamp(round_half_even(x * inv_scale) + zq, 0, 255) - zdq) * scale`, computed in f32.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeQuant {
    /// QuantizeLinear's multiplier (tract stores 1/scale).
    inv_scale: f32,
    /// Clamp bounds of `x * inv_scale` before rounding: `-zq` and `255 - zq`.
    lo: f32,
    hi: f32,
    /// `zq - zdq`, added after rounding.
    offset: f32,
    /// DequantizeLinear's scale.
    scale: f32,
}

impl Eq for FakeQuant {}



impl FakeQuant {
    pub fn new(q: &QuantizeLinearU8, dq: &DequantizeLinearF32) -> Self {
        let zq = q.zero_point as f32;
        FakeQuant { inv_scale: q.scale, lo: -zq, hi: 255.0 - zq, offset: zq - dq.zero_point as f32, scale: dq.scale }
    }

    /// `[1/scale_q, lo, hi, ROUND - offset, scale_dq]`: the constants of [`FakeQuant::apply`]'s loop, for kernels
    /// that run the same operations on their own registers.
    pub(crate) fn params(&self) -> [f32; 5] {
        [self.inv_scale, self.lo, self.hi, ROUND - self.offset, self.scale]
    }

    /// A clip to `[a, b]` followed by this fake quantization, as one fake quantization: `(clip left, params)`.
    /// Multiplying by `1/scale > 0` and rounding to f32 never reverses an order, so `clamp(x, a, b) * inv` is
    /// `clamp(x * inv, a * inv, b * inv)` bit for bit (NaN included: both give `a * inv`), and the two clamps
    /// in a row are one, to the narrower bounds, when the ranges meet. Two vector operations fewer per 16
    /// outputs in our convolutions' epilogues. Otherwise (or without a clip) the clip is left as it was.
    pub(crate) fn after_clip(&self, clip: Option<(f32, f32)>) -> (Option<(f32, f32)>, [f32; 5]) {
        let [inv, lo, hi, shift, scale] = self.params();
        if let Some((a, b)) = clip {
            let (lo_folded, hi_folded) = (clamp(a * inv, lo, f32::INFINITY), clamp(b * inv, f32::NEG_INFINITY, hi));
            if inv > 0.0 && a <= b && lo_folded <= hi_folded {
                return (None, [inv, lo_folded, hi_folded, shift, scale]);
            }
        }
        (clip, [inv, lo, hi, shift, scale])
    }

    /// [`FakeQuant::apply_portable`] with constants from [`FakeQuant::params`] or [`FakeQuant::after_clip`].
    #[inline(always)]
    pub(crate) fn apply_params(xs: &mut [f32], params: [f32; 5]) {
        for x in xs {
            *x = Self::level(*x, params) * params[4];
        }
    }

    /// The level of `x` on the grid, `q - zero_point` ([`FakeQuant::grid`]) as an f32 integer, with constants from
    /// [`FakeQuant::params`] or [`FakeQuant::after_clip`]: `x`'s fake-quantized value is the level times the scale.
    #[inline(always)]
    pub(crate) fn level(x: f32, [inv, lo, hi, shift, _]: [f32; 5]) -> f32 {
        let v = clamp(x * inv, lo, hi);
        // `(v + ROUND) - ROUND + offset` in one subtraction: every value in it is an integer below 2^24.
        (v + ROUND) - shift
    }

    /// The grid of the output values: `(scale, zero_point)` with every output `(q - zero_point) * scale`, q in 0..=255.
    pub fn grid(&self) -> (f32, i32) {
        (self.scale, (-self.lo - self.offset) as i32)
    }

    simd_dispatch!(
        /// In place. Clamping before rounding gives the same integers as clamping after (the bounds are integers),
        /// and keeps every value within the exact range of the rounding trick.
        FakeQuant, apply => apply_portable(xs: &mut [f32]));

    #[inline(always)]
    pub(crate) fn apply_portable(&self, xs: &mut [f32]) {
        Self::apply_params(xs, self.params());
    }
}

/// `q = clamp(round_half_even(x * inv_scale) + zq, 0, 255)` as u8.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeU8 {
    inv_scale: f32,
    lo: f32,
    hi: f32,
    zero_point: f32,
}

impl Eq for QuantizeU8 {}

impl QuantizeU8 {
    pub fn new(q: &QuantizeLinearU8) -> Self {
        let zq = q.zero_point as f32;
        QuantizeU8 { inv_scale: q.scale, lo: -zq, hi: 255.0 - zq, zero_point: zq }
    }

    simd_dispatch!(
        /// The integer is read from the bits of `v + ROUND` (whose ulp is 1): no float-to-int conversion, which
        /// would not vectorise. `v` is within [-255, 255], so `v + ROUND` stays in ROUND's binade.
        QuantizeU8, apply => apply_portable(xs: &[f32], ys: &mut [u8]));

    #[inline(always)]
    fn apply_portable(&self, xs: &[f32], ys: &mut [u8]) {
        let (zp, round_bits) = (self.zero_point as i32, ROUND.to_bits() as i32);
        for (x, y) in xs.iter().zip(ys) {
            let v = clamp(*x * self.inv_scale, self.lo, self.hi);
            *y = ((v + ROUND).to_bits() as i32 - round_bits + zp) as u8;
        }
    }
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
        Ok(vec![format!("1/scale_q {} clamp [{}, {}] offset {} scale_dq {}", self.inv_scale, self.lo, self.hi, self.offset, self.scale)])
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
        let op = FakeQuant::new(&q, dq);
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
        let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, QuantizeU8::new(&q))?;
        patch.apply(model)?;
        singles += 1;
    }
    model.compact()?;
    Ok((pairs, singles))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::quant::quantize_linear_f32_u8;

    /// tract's own two passes, element by element.
    fn reference(x: f32, q: &QuantizeLinearU8, dq: &DequantizeLinearF32) -> f32 {
        (quantize_linear_f32_u8(x, q.scale, q.zero_point as i32) as i32 - dq.zero_point) as f32 * dq.scale
    }

    /// Uniform values in [0, 1] from a xorshift generator.
    fn uniform(mut seed: u32) -> impl FnMut() -> f32 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as f32 / u32::MAX as f32
        }
    }

    /// A clip folded into the quantization's clamp (`after_clip`) gives the bits of the clip then the fake
    /// quantization: ReLU, ReLU6 and odd clips, grids that cut the clip or lie past it, NaN, infinities, signed
    /// zeros and exact ties; with the vector epilogue too where the CPU has AVX-512.
    #[test]
    fn a_clip_folded_into_the_quantization_gives_the_same_bits() {
        let mut rnd = uniform(0x2545_F491);
        let mut folded = 0;
        for (scale, zp) in [(0.0235f32, 0u8), (0.1, 128), (0.0078125, 3), (1.7, 255), (0.02, 250)] {
            let op = FakeQuant::new(&QuantizeLinearU8 { scale: 1.0 / scale, zero_point: zp }, &DequantizeLinearF32 { scale, zero_point: zp as i32 });
            for clip in [(0.0, 6.0), (0.0, f32::INFINITY), (-1.0, 1.0), (f32::NEG_INFINITY, 0.5), (-0.0, 3.3), (7.0, 9.0), (-9.0, -8.0)] {
                let mut xs: Vec<f32> = (0..5_000).map(|_| (rnd() * 2.0 - 1.0) * 12.0).collect();
                xs.extend((-300..300).map(|k| (k as f32 + 0.5) * scale));
                xs.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, clip.0, clip.1, 6.0, -6.0]);
                let mut want = xs.clone();
                want.iter_mut().for_each(|v| *v = clamp(*v, clip.0, clip.1));
                op.apply_portable(&mut want);
                let (left, params) = op.after_clip(Some(clip));
                folded += left.is_none() as usize;
                let mut got = xs.clone();
                crate::simd::Epilogue::new(Some(clip), Some(&op)).apply(&mut got);
                let bits = |v: &[f32]| v.iter().map(|y| y.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "scale {scale} zp {zp} clip {clip:?} -> {left:?} {params:?}");
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx512f") {
                    let mut lanes = xs.clone();
                    lanes.resize(xs.len().next_multiple_of(16), 0.0);
                    // SAFETY: the CPU has AVX-512 F; each load and store stays within `lanes`.
                    unsafe {
                        use std::arch::x86_64::*;
                        #[target_feature(enable = "avx512f")]
                        unsafe fn run(lanes: &mut [f32], clip: (f32, f32), op: &FakeQuant) {
                            let e = crate::simd::avx512::Epilogue::new(Some(clip), Some(op));
                            for block in lanes.chunks_exact_mut(16) {
                                _mm512_storeu_ps(block.as_mut_ptr(), e.apply(_mm512_loadu_ps(block.as_ptr())));
                            }
                        }
                        run(&mut lanes, clip, &op);
                    }
                    assert_eq!(bits(&lanes[..xs.len()]), bits(&want), "AVX-512, scale {scale} zp {zp} clip {clip:?}");
                }
            }
        }
        assert!(folded >= 20, "only {folded} clips were folded");
    }

    #[test]
    fn bit_exact_with_tracts_quantize_then_dequantize() {
        let mut rnd = uniform(0x9E37_79B9);
        for (scale, zp) in [(0.0235f32, 0u8), (0.1, 128), (0.0078125, 3), (1.7, 255)] {
            let q = QuantizeLinearU8 { scale: 1.0 / scale, zero_point: zp };
            let dq = DequantizeLinearF32 { scale, zero_point: zp as i32 };
            let op = FakeQuant::new(&q, &dq);
            // Random values over and beyond the range, exact ties (k + 0.5) * scale, and the bounds themselves.
            let mut xs: Vec<f32> = (0..20_000).map(|_| (rnd() * 2.0 - 1.0) * 400.0 * scale).collect();
            xs.extend((-300..300).map(|k| (k as f32 + 0.5) * scale));
            xs.extend([0.0, -0.0, -(zp as f32) * scale, (255.0 - zp as f32) * scale, 1e6 * scale, -1e6 * scale]);
            let qop = QuantizeU8::new(&q);
            let mut qs = vec![0u8; xs.len()];
            qop.apply(&xs, &mut qs);
            for (x, got) in xs.iter().zip(&qs) {
                assert_eq!(*got, quantize_linear_f32_u8(*x, q.scale, q.zero_point as i32), "x = {x}, scale {scale}, zp {zp}");
            }
            // The loop compiled for the baseline computes what the AVX-512/AVX2 variant (if any) computed.
            let mut qs_portable = vec![0u8; xs.len()];
            qop.apply_portable(&xs, &mut qs_portable);
            assert_eq!(qs, qs_portable);
            let mut ys_portable = xs.clone();
            op.apply_portable(&mut ys_portable);
            let mut ys = xs.clone();
            op.apply(&mut ys);
            assert_eq!(ys.iter().map(|y| y.to_bits()).collect::<Vec<_>>(), ys_portable.iter().map(|y| y.to_bits()).collect::<Vec<_>>());
            for (x, y) in xs.iter().zip(&ys) {
                assert_eq!(y.to_bits(), reference(*x, &q, &dq).to_bits(), "x = {x}, scale {scale}, zp {zp}");
            }
            // Far out of range we saturate, as ONNX says. (tract's scalar path computes `i32::MAX + zero_point`
            // there, which wraps to the *other* end for x * (1/scale) >= 2^31 - zero_point.)
            let mut ys = [1e30f32, -1e30];
            op.apply(&mut ys);
            assert_eq!(ys, [(255.0 - zp as f32) * scale, -(zp as f32) * scale]);
        }
    }
}
