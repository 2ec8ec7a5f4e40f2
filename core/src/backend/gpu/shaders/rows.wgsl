// Reductions over the trailing axes, seen as rows of a [rows, len] matrix: one workgroup per row, a tree reduction
// in workgroup memory.
//   mode 0: sum   1: mean   2: max   (output [rows])
//   mode 3: RMS normalisation, y = x / sqrt(mean(x^2) + eps)          (output [rows, len])
//   mode 4: group normalisation, y = (x - mean) / sqrt(var + eps)     (output [rows, len]; GroupNorm before its affine)
// Then the epilogue (for modes 3 and 4 it carries GroupNorm's per-channel scale and shift and the activation).

struct Params {
    ch_div: u32, ch_len: u32, chan_off: u32, affine: u32,
    lo: f32, hi: f32, fq_mode: u32, fq_inv: f32,
    fq_lo: f32, fq_hi: f32, fq_off: f32, fq_scale: f32,
    rows: u32, len: u32, mode: u32, eps: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> chan: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> P: Params;

var<workgroup> part: array<f32, 256>;
var<workgroup> part2: array<f32, 256>;

fn reduce_pair(t: u32) {
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (t < s) {
            if (P.mode == 2u) {
                part[t] = max(part[t], part[t + s]);
            } else {
                part[t] += part[t + s];
                part2[t] += part2[t + s];
            }
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let row = wg.x + wg.y * groups.x;
    if (row >= P.rows) {
        return;
    }
    let base = row * P.len;
    var s = 0.0;
    var s2 = 0.0;
    if (P.mode == 2u) {
        s = -3.4028235e38;
    }
    for (var i = t; i < P.len; i += 256u) {
        let v = x[base + i];
        if (P.mode == 2u) {
            s = max(s, v);
        } else {
            s += v;
            s2 += v * v;
        }
    }
    part[t] = s;
    part2[t] = s2;
    workgroupBarrier();
    reduce_pair(t);
    let n = f32(P.len);
    if (P.mode <= 2u) {
        if (t == 0u) {
            var r = part[0];
            if (P.mode == 1u) {
                r = r / n;
            }
            y[row] = epilogue(r, row);
        }
        return;
    }
    var shift = 0.0;
    var inv = 0.0;
    if (P.mode == 3u) {
        inv = inverseSqrt(part2[0] / n + P.eps);
    } else {
        shift = part[0] / n;
        inv = inverseSqrt(max(part2[0] / n - shift * shift, 0.0) + P.eps);
    }
    for (var i = t; i < P.len; i += 256u) {
        y[base + i] = epilogue((x[base + i] - shift) * inv, base + i);
    }
}
