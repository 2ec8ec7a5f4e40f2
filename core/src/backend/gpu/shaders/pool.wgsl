// Max and average pooling over [channels, h, w] (strided, padded, dilated windows), one invocation per output.
//   mode 0: max   1: average counting padding   2: average over the valid part of the window   3: sum

struct Params {
    ch_div: u32, ch_len: u32, chan_off: u32, affine: u32,
    lo: f32, hi: f32, fq_mode: u32, fq_inv: f32,
    fq_lo: f32, fq_hi: f32, fq_off: f32, fq_scale: f32,
    c: u32, hin: u32, win: u32, hout: u32,
    wout: u32, kh: u32, kw: u32, sh: u32,
    sw: u32, ph: u32, pw: u32, dh: u32,
    dw: u32, mode: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> chan: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> P: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = flat_index(gid, groups);
    let per_c = P.hout * P.wout;
    if (idx >= P.c * per_c) {
        return;
    }
    let c = idx / per_c;
    let oy = (idx % per_c) / P.wout;
    let ox = idx % P.wout;
    var acc = 0.0;
    if (P.mode == 0u) {
        acc = -3.4028235e38;
    }
    var count = 0u;
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
            let v = x[(c * P.hin + u32(iy)) * P.win + u32(ix)];
            if (P.mode == 0u) {
                acc = max(acc, v);
            } else {
                acc += v;
            }
            count += 1u;
        }
    }
    if (P.mode == 1u) {
        acc = acc / f32(P.kh * P.kw);
    } else if (P.mode == 2u) {
        acc = acc / f32(max(count, 1u));
    }
    y[idx] = epilogue(acc, idx);
}
