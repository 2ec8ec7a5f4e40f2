// Shared by every kernel (prepended at load): the epilogue that ends each kernel. Every kernel's uniform `P`
// starts with these twelve fields, and every kernel binds `chan` (per-channel data).
//   v = v * mul[c] + add[c]        (when P.affine == 1; c = (index / ch_div) % ch_len; mul at chan[chan_off], add after it)
//   v = clamp(v, lo, hi)           (ReLU, ReLU6, Clip; lo/hi are +-FLT_MAX when absent)
//   fq_mode 1: v = (round(clamp(v * inv, qlo, qhi)) + off) * scale   (QuantizeLinear -> DequantizeLinear, as tract)
//   fq_mode 2: v = round(clamp(v * inv, qlo, qhi)) + off              (QuantizeLinear alone: u8 held as f32)
// round() is round-half-to-even in WGSL, as tract's quantization.

fn epilogue(v_in: f32, idx: u32) -> f32 {
    var v = v_in;
    if (P.affine != 0u) {
        let c = (idx / P.ch_div) % P.ch_len;
        v = v * chan[P.chan_off + c] + chan[P.chan_off + P.ch_len + c];
    }
    v = clamp(v, P.lo, P.hi);
    if (P.fq_mode == 1u) {
        v = (round(clamp(v * P.fq_inv, P.fq_lo, P.fq_hi)) + P.fq_off) * P.fq_scale;
    } else if (P.fq_mode == 2u) {
        v = round(clamp(v * P.fq_inv, P.fq_lo, P.fq_hi)) + P.fq_off;
    }
    return v;
}

// A flat invocation index over a 2-D grid of 64-wide workgroups (grids wider than 65535 groups wrap into y).
fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}
