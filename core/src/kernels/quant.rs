//! Activation quantization's arithmetic: a QuantizeLinear(u8) → DequantizeLinear pair as one fake quantization
//! ([`FakeQuant`]), a lone QuantizeLinear(u8) ([`QuantizeU8`]), and the NaN-free clamp and rounding constant that
//! every epilogue shares. Branch-free loops the compiler vectorises: clamp to the representable range, round half
//! to even, shift and rescale.

use super::isa::multiversion;

/// 1.5 * 2^23: adding and subtracting it rounds an f32 of magnitude < 2^22 to an integer, half to even.
pub(crate) const ROUND: f32 = 12_582_912.0;

/// `v` clamped to `[lo, hi]`, NaN to `lo`. Written as comparisons (not `f32::max`/`min`, whose NaN rules cost a
/// compare and blend per vector) so that it compiles to plain `maxps`/`minps`.
#[inline(always)]
pub(crate) fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v > lo { v } else { lo };
    if v < hi {
        v
    } else {
        hi
    }
}

/// `y = (clamp(round_half_even(x * inv_scale) + zq, 0, 255) - zdq) * scale`, computed in f32.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeQuant {
    /// QuantizeLinear's multiplier (tract stores 1/scale).
    pub(crate) inv_scale: f32,
    /// Clamp bounds of `x * inv_scale` before rounding: `-zq` and `255 - zq`.
    pub(crate) lo: f32,
    pub(crate) hi: f32,
    /// `zq - zdq`, added after rounding.
    pub(crate) offset: f32,
    /// DequantizeLinear's scale.
    pub(crate) scale: f32,
}

impl Eq for FakeQuant {}

impl FakeQuant {
    /// A QuantizeLinear to u8 (multiplier `inv_scale_q`, 1/its scale, as tract stores it; zero point
    /// `zero_point_q`) followed by a DequantizeLinear (`scale_dq`, `zero_point_dq`).
    pub fn new(inv_scale_q: f32, zero_point_q: u8, scale_dq: f32, zero_point_dq: i32) -> Self {
        let zq = zero_point_q as f32;
        FakeQuant {
            inv_scale: inv_scale_q,
            lo: -zq,
            hi: 255.0 - zq,
            offset: zq - zero_point_dq as f32,
            scale: scale_dq,
        }
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

    multiversion!(
        /// In place. Clamping before rounding gives the same integers as clamping after (the bounds are integers),
        /// and keeps every value within the exact range of the rounding trick.
        FakeQuant, fn apply => apply_portable(xs: &mut [f32]));

    #[inline(always)]
    pub(crate) fn apply_portable(&self, xs: &mut [f32]) {
        Self::apply_params(xs, self.params());
    }
}

/// `q = clamp(round_half_even(x * inv_scale) + zq, 0, 255)` as u8.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeU8 {
    pub(crate) inv_scale: f32,
    lo: f32,
    hi: f32,
    pub(crate) zero_point: f32,
}

impl Eq for QuantizeU8 {}

impl QuantizeU8 {
    /// A QuantizeLinear to u8 with multiplier `inv_scale` (1/its scale) and zero point `zero_point`.
    pub fn new(inv_scale: f32, zero_point: u8) -> Self {
        let zq = zero_point as f32;
        QuantizeU8 { inv_scale, lo: -zq, hi: 255.0 - zq, zero_point: zq }
    }

    multiversion!(
        /// The integer is read from the bits of `v + ROUND` (whose ulp is 1): no float-to-int conversion, which
        /// would not vectorise. `v` is within [-255, 255], so `v + ROUND` stays in ROUND's binade.
        QuantizeU8, fn apply => apply_portable(xs: &[f32], ys: &mut [u8]));

    #[inline(always)]
    pub(crate) fn apply_portable(&self, xs: &[f32], ys: &mut [u8]) {
        let (zp, round_bits) = (self.zero_point as i32, ROUND.to_bits() as i32);
        for (x, y) in xs.iter().zip(ys) {
            let v = clamp(*x * self.inv_scale, self.lo, self.hi);
            *y = ((v + ROUND).to_bits() as i32 - round_bits + zp) as u8;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Uniform values in [0, 1] from a xorshift generator.
    pub(crate) fn uniform(mut seed: u32) -> impl FnMut() -> f32 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as f32 / u32::MAX as f32
        }
    }

    /// Random values over and beyond a grid's range, exact ties `(k + 0.5) * scale`, and the bounds themselves.
    pub(crate) fn values_around(scale: f32, zp: u8, seed: u32) -> Vec<f32> {
        let mut rnd = uniform(seed);
        let mut xs: Vec<f32> = (0..20_000).map(|_| (rnd() * 2.0 - 1.0) * 400.0 * scale).collect();
        xs.extend((-300..300).map(|k| (k as f32 + 0.5) * scale));
        xs.extend([0.0, -0.0, -(zp as f32) * scale, (255.0 - zp as f32) * scale, 1e6 * scale, -1e6 * scale]);
        xs
    }

    #[test]
    fn vector_variants_give_the_portable_bits_and_saturate() {
        for (scale, zp) in [(0.0235f32, 0u8), (0.1, 128), (0.0078125, 3), (1.7, 255)] {
            let (op, qop) = (FakeQuant::new(1.0 / scale, zp, scale, zp as i32), QuantizeU8::new(1.0 / scale, zp));
            let xs = values_around(scale, zp, 0x9E37_79B9);
            // The loops compiled for the widest vector unit compute what the baseline's compute.
            let (mut qs, mut qs_portable) = (vec![0u8; xs.len()], vec![1u8; xs.len()]);
            qop.apply(&xs, &mut qs);
            qop.apply_portable(&xs, &mut qs_portable);
            assert_eq!(qs, qs_portable);
            let (mut ys, mut ys_portable) = (xs.clone(), xs.clone());
            op.apply(&mut ys);
            op.apply_portable(&mut ys_portable);
            assert_eq!(
                ys.iter().map(|y| y.to_bits()).collect::<Vec<_>>(),
                ys_portable.iter().map(|y| y.to_bits()).collect::<Vec<_>>()
            );
            // Each fake-quantized value is its code's: the grid says which.
            let (grid_scale, grid_zp) = op.grid();
            for (q, y) in qs.iter().zip(&ys) {
                assert_eq!(((*q as i32 - grid_zp) as f32 * grid_scale).to_bits(), y.to_bits());
            }
            // Far out of range we saturate, as ONNX says.
            let mut ys = [1e30f32, -1e30];
            op.apply(&mut ys);
            assert_eq!(ys, [(255.0 - zp as f32) * scale, -(zp as f32) * scale]);
        }
    }
}
