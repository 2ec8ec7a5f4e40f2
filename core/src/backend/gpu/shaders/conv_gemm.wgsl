// Convolution with groups == 1 (any kernel, stride, padding, dilation) and matrix products, as an implicit GEMM:
// Y[m, n] = sum_k W[m, k] * X'[k, n] with m the output channel, n the output pixel, k = (ci, ky, kx), X' read from
// the input on the fly (no im2col buffer). 64x64 output tiles, 16-deep K steps through workgroup memory, 4x4 outputs
// per invocation. Parameters, bindings and weight decoding (f32, f16 or 8-bit) come from conv_common.wgsl. Bias and
// what follows (activation, fake quantization) run in the epilogue.

// 1x1, stride 1, no padding: X' is the input itself, [cin, hout * wout].
override POINTWISE: bool = false;

var<workgroup> As: array<f32, 1024>; // [16 k][64 m]
var<workgroup> Bs: array<f32, 1024>; // [16 k][64 n]

fn weight(m: u32, k: u32) -> f32 {
    return weight_at(m * P.K + k, m);
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
