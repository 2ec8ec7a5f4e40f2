// Strided copies of rank <= 4 tensors: constant padding (offsets below zero read `fill`) and subsampling
// (Downsample: a stride along one axis). Input coordinate = output coordinate * stride + offset, per axis.

struct Params {
    ch_div: u32, ch_len: u32, chan_off: u32, affine: u32,
    lo: f32, hi: f32, fq_mode: u32, fq_inv: f32,
    fq_lo: f32, fq_hi: f32, fq_off: f32, fq_scale: f32,
    n: u32, o1: u32, o2: u32, o3: u32,
    i0: u32, i1: u32, i2: u32, i3: u32,
    st0: u32, st1: u32, st2: u32, st3: u32,
    off0: i32, off1: i32, off2: i32, off3: i32,
    fill: f32, _p0: u32, _p1: u32, _p2: u32,
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
    var t = idx;
    let c3 = i32(t % P.o3) * i32(P.st3) + P.off3;
    t = t / P.o3;
    let c2 = i32(t % P.o2) * i32(P.st2) + P.off2;
    t = t / P.o2;
    let c1 = i32(t % P.o1) * i32(P.st1) + P.off1;
    let c0 = i32(t / P.o1) * i32(P.st0) + P.off0;
    var v = P.fill;
    if (c0 >= 0 && c1 >= 0 && c2 >= 0 && c3 >= 0 && c0 < i32(P.i0) && c1 < i32(P.i1) && c2 < i32(P.i2) && c3 < i32(P.i3)) {
        v = x[((u32(c0) * P.i1 + u32(c1)) * P.i2 + u32(c2)) * P.i3 + u32(c3)];
    }
    y[idx] = epilogue(v, idx);
}
