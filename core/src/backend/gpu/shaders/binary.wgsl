// Element-wise binary operations with broadcasting (residual Add, Sub, Mul, Div, Max, Min) on tensors of rank <= 4:
// each operand is read through its own strides (0 along broadcast axes). Then the epilogue.

struct Params {
    ch_div: u32, ch_len: u32, chan_off: u32, affine: u32,
    lo: f32, hi: f32, fq_mode: u32, fq_inv: f32,
    fq_lo: f32, fq_hi: f32, fq_off: f32, fq_scale: f32,
    n: u32, op: u32, d1: u32, d2: u32,
    d3: u32, sa0: u32, sa1: u32, sa2: u32,
    sa3: u32, sb0: u32, sb1: u32, sb2: u32,
    sb3: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> chan: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> P: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = flat_index(gid, groups);
    if (idx >= P.n) {
        return;
    }
    let i3 = idx % P.d3;
    var t = idx / P.d3;
    let i2 = t % P.d2;
    t = t / P.d2;
    let i1 = t % P.d1;
    let i0 = t / P.d1;
    let va = a[i0 * P.sa0 + i1 * P.sa1 + i2 * P.sa2 + i3 * P.sa3];
    let vb = b[i0 * P.sb0 + i1 * P.sb1 + i2 * P.sb2 + i3 * P.sb3];
    var v: f32;
    switch P.op {
        case 0u: { v = va + vb; }
        case 1u: { v = va - vb; }
        case 2u: { v = va * vb; }
        case 3u: { v = va / vb; }
        case 4u: { v = max(va, vb); }
        default: { v = min(va, vb); }
    }
    y[idx] = epilogue(v, idx);
}
