// Element-wise unary operations: a first step (`pre`), then the epilogue (which alone covers ReLU/Clip, scalar and
// per-channel affine, quantize and fake-quantize).
//   pre 0: identity   1: (v - pa) * pb (DequantizeLinear: v is a u8 held as f32)
//   pre 2: chan[lut_off + u32(v)] (a u8 -> u8 lookup table)   3: sigmoid

struct Params {
    ch_div: u32, ch_len: u32, chan_off: u32, affine: u32,
    lo: f32, hi: f32, fq_mode: u32, fq_inv: f32,
    fq_lo: f32, fq_hi: f32, fq_off: f32, fq_scale: f32,
    n: u32, pre: u32, pa: f32, pb: f32,
    lut_off: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> chan: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> P: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = flat_index(gid, groups);
    if (idx >= P.n) {
        return;
    }
    var v = x[idx];
    switch P.pre {
        case 1u: { v = (v - P.pa) * P.pb; }
        case 2u: { v = chan[P.lut_off + min(u32(max(v, 0.0)), 255u)]; }
        case 3u: { v = 1.0 / (1.0 + exp(-v)); }
        default: {}
    }
    y[idx] = epilogue(v, idx);
}
