// Convolution with groups == 1 (any kernel, stride, padding, dilation) and matrix products, as an implicit GEMM:
// Y[m, n] = sum_k W[m, k] * X'[k, n] with m the output channel, n the output pixel, k = (ci, ky, kx), X' read from
// the input on the fly (no im2col buffer). 64x64 output tiles, 16-deep K steps through workgroup memory, 4x4 outputs
// per invocation. Weights are f32, f16 (two per word), or 8-bit packed four to a word with one scale and zero point per output channel
// (chan[0..cout], chan[cout..2 cout]), dequantised here: w = (q - zero_point) * scale. Bias and what follows (activation, fake quantization) run in the epilogue.

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
// 1x1, stride 1, no padding: X' is the input itself, [cin, hout * wout].
override POINTWISE: bool = false;

var<workgroup> As: array<f32, 1024>; // [16 k][64 m]
var<workgroup> Bs: array<f32, 1024>; // [16 k][64 n]

fn weight(m: u32, k: u32) -> f32 {
    let i = m * P.K + k;
    if (W_INT8) {
        let b = (w[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
        return (f32(b) - chan[P.cout + m]) * chan[m];
    }
    if (W_F16) {
        let pair = unpack2x16float(w[i >> 1u]);
        return select(pair.x, pair.y, (i & 1u) == 1u);
    }
    return bitcast<f32>(w[i]);
}

fn input(k: u32, n: u32) -> f32 {
    if (POINTWISE) {
        return x[k * P.N + n];
    }
    let khw = P.kh * P.kw;
    let ci = k / khw;
    let r = k % khw;
    let oy = n / P.wout;
    let ox = n % P.wout;
    let iy = i32(oy * P.sh + (r / P.kw) * P.dh) - i32(P.ph);
    let ix = i32(ox * P.sw + (r % P.kw) * P.dw) - i32(P.pw);
    if (iy < 0 || ix < 0 || iy >= i32(P.hin) || ix >= i32(P.win)) {
        return 0.0;
    }
    return x[(ci * P.hin + u32(iy)) * P.win + u32(ix)];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let m0 = wg.y * 64u;
    let n0 = wg.x * 64u;
    let t = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < P.K; k0 += 16u) {
        for (var j = 0u; j < 4u; j++) {
            let e = t + j * 256u;
            // A: consecutive invocations walk k (weights are row-major [m, k]).
            let ka = e % 16u;
            let ma = e / 16u;
            var a = 0.0;
            if (m0 + ma < P.cout && k0 + ka < P.K) {
                a = weight(m0 + ma, k0 + ka);
            }
            As[ka * 64u + ma] = a;
            // B: consecutive invocations walk n (pixels are contiguous).
            let kb = e / 64u;
            let nb = e % 64u;
            var b = 0.0;
            if (k0 + kb < P.K && n0 + nb < P.N) {
                b = input(k0 + kb, n0 + nb);
            }
            Bs[kb * 64u + nb] = b;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = As[kk * 64u + lid.y * 4u + i];
                bv[i] = Bs[kk * 64u + lid.x + i * 16u];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid.y * 4u + i;
        if (m >= P.cout) {
            continue;
        }
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + lid.x + j * 16u;
            if (n < P.N) {
                let idx = m * P.N + n;
                y[idx] = epilogue(acc[i * 4u + j], idx);
            }
        }
    }
}
