// Grouped and depthwise convolution, direct: one invocation per output value, summing over its group's input
// channels and the kernel window. Same parameters, weights and epilogue as conv_gemm.wgsl.

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

fn weight(i: u32, co: u32) -> f32 {
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

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = flat_index(gid, groups);
    if (idx >= P.cout * P.N) {
        return;
    }
    let co = idx / P.N;
    let n = idx % P.N;
    let oy = n / P.wout;
    let ox = n % P.wout;
    let g = co / P.cout_pg;
    var acc = 0.0;
    for (var c = 0u; c < P.cin_pg; c++) {
        let ci = g * P.cin_pg + c;
        let wbase = (co * P.cin_pg + c) * P.kh * P.kw;
        for (var ky = 0u; ky < P.kh; ky++) {
            let iy = i32(oy * P.sh + ky * P.dh) - i32(P.ph);
            if (iy < 0 || iy >= i32(P.hin)) {
                continue;
            }
            for (var kx = 0u; kx < P.kw; kx++) {
                let ix = i32(ox * P.sw + kx * P.dw) - i32(P.pw);
                if (ix < 0 || ix >= i32(P.win)) {
                    continue;
                }
                acc = fma(x[(ci * P.hin + u32(iy)) * P.win + u32(ix)], weight(wbase + ky * P.kw + kx, co), acc);
            }
        }
    }
    y[idx] = epilogue(acc, idx);
}
