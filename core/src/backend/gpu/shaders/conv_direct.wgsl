// Grouped and depthwise convolution, direct: one invocation per output value, summing over its group's input
// channels and the kernel window. Parameters, bindings and weights from conv_common.wgsl.

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
                acc = fma(x[(ci * P.hin + u32(iy)) * P.win + u32(ix)], weight_at(wbase + ky * P.kw + kx, co), acc);
            }
        }
    }
    y[idx] = epilogue(acc, idx);
}
