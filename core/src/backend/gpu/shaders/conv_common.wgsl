// Shared by conv_gemm.wgsl and conv_direct.wgsl (prepended to each): their parameters, bindings and weight decoding.
// Weights are f32, f16 (two per word), or 8-bit packed four to a word with one scale and zero point per output
// channel (chan[0..cout], chan[cout..2 cout]): w = (q - zero_point) * scale.

struct Params {
    ch_div: u32, ch_len: u32, chan_off: u32, affine: u32,
    lo: f32, hi: f32, fq_mode: u32, fq_inv: f32,
    fq_lo: f32, fq_hi: f32, fq_off: f32, fq_scale: f32,
    cin: u32, hin: u32, win: u32, cout: u32,
    hout: u32, wout: u32, kh: u32, kw: u32,
    sh: u32, sw: u32, ph: u32, pw: u32,
    dh: u32, dw: u32, K: u32, N: u32,
    cin_pg: u32, cout_pg: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> chan: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> P: Params;

override W_INT8: bool = false;
// f16 weights, two per word (storage only: unpacked to f32, so no SHADER_F16 is needed).
override W_F16: bool = false;

// Weight number i (row-major [cout, cin/groups * kh * kw]) of output channel co, as f32.
fn weight_at(i: u32, co: u32) -> f32 {
    if (W_INT8) {
        let b = (w[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
        return (f32(b) - chan[P.cout + co]) * chan[co];
    }
    if (W_F16) {
        let pair = unpack2x16float(w[i >> 1u]);
        return select(pair.x, pair.y, (i & 1u) == 1u);
    }
    return bitcast<f32>(w[i]);
}
