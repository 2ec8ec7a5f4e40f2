//! Every kernel against a naive CPU reference, on random shapes: one-op (or few-op) tract graphs lowered and run on
//! the GPU (lavapipe in CI), compared with straightforward loops written here.

use super::GpuEngine;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::{Pad, PadMode};
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, MaxPool, PaddingSpec, PoolSpec, SumPool};
use tract_onnx::tract_core::ops::downsample::Downsample;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math;
use tract_onnx::tract_core::ops::nn::{DataFormat, Reduce, Reducer, RmsNorm};
use tract_onnx::tract_core::ops::quant::{quantize_linear_u8, DequantizeLinearF32};

/// xorshift64*: reproducible random shapes and values without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    fn float(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.float()).collect()
    }
}

fn gpu_available() -> bool {
    match super::adapter() {
        Ok(_) => true,
        // CI installs lavapipe and sets SNAKEID_REQUIRE_GPU=1: there a missing adapter is a failure, not a skip.
        Err(e) if std::env::var_os("SNAKEID_REQUIRE_GPU").is_none() => {
            eprintln!("skipping GPU test: {e}");
            false
        }
        Err(e) => panic!("SNAKEID_REQUIRE_GPU is set but {e}"),
    }
}

fn run_gpu(model: TypedModel, input: &[f32]) -> (Vec<f32>, usize) {
    let engine = GpuEngine::compile(model).unwrap();
    (engine.run(input).unwrap(), engine.cpu_nodes())
}

/// tract's own answer for the same graph.
fn run_tract(model: &TypedModel, shape: &[usize], x: &[f32]) -> Vec<f32> {
    let out = model.clone().into_runnable().unwrap().run(tvec!(Tensor::from_shape(shape, x).unwrap().into())).unwrap();
    out[0].to_plain_array_view::<f32>().unwrap().iter().copied().collect()
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what}: at {i} gpu {g} cpu {w}");
    }
}

#[allow(clippy::too_many_arguments)]
fn naive_conv(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    k: &[f32],
    b: &[f32],
    co: usize,
    g: usize,
    kh: usize,
    kw: usize,
    s: (usize, usize),
    p: (usize, usize),
    d: (usize, usize),
    ho: usize,
    wo: usize,
) -> Vec<f32> {
    let (cig, cog) = (c / g, co / g);
    let mut y = vec![0f32; co * ho * wo];
    for o in 0..co {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut acc = b[o] as f64;
                for ci in 0..cig {
                    let cin = (o / cog) * cig + ci;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * s.0 + ky * d.0) as isize - p.0 as isize;
                            let ix = (ox * s.1 + kx * d.1) as isize - p.1 as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                acc += (x[(cin * h + iy as usize) * w + ix as usize]
                                    * k[((o * cig + ci) * kh + ky) * kw + kx])
                                    as f64;
                            }
                        }
                    }
                }
                y[(o * ho + oy) * wo + ox] = acc as f32;
            }
        }
    }
    y
}

#[test]
fn conv_matches_naive_reference_on_random_shapes() {
    if !gpu_available() {
        return;
    }
    let mut rng = Rng(0x5eed_c0de);
    for case in 0..40 {
        let g = [1, 1, 2, 0][case % 4]; // 0: depthwise
        let c = if g == 2 { 2 * rng.int(1, 4) } else { rng.int(1, 9) };
        let g = if g == 0 { c } else { g };
        let co = if g == c { c * rng.int(1, 2) } else { g * rng.int(1, 5) };
        let (kh, kw) = (rng.int(1, 4), rng.int(1, 4));
        let (sh, sw, dh, dw) = (rng.int(1, 3), rng.int(1, 3), rng.int(1, 2), rng.int(1, 2));
        let (pt, pl, pb, pr) = (rng.int(0, 2), rng.int(0, 2), rng.int(0, 2), rng.int(0, 2));
        let (h, w) = (rng.int(dh * (kh - 1) + 1, 19), rng.int(dw * (kw - 1) + 1, 23));
        let ho = (h + pt + pb - dh * (kh - 1) - 1) / sh + 1;
        let wo = (w + pl + pr - dw * (kw - 1) - 1) / sw + 1;
        // Half the cases: weights that went through symmetric int8 quantization (the GPU keeps them as int8).
        let mut k = rng.vec(co * (c / g) * kh * kw);
        if case % 2 == 1 {
            for row in k.chunks_mut((c / g) * kh * kw) {
                let s = 0.01 + rng.float().abs() * 0.05;
                let qmax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
                row.iter_mut().for_each(|v| *v = (*v / qmax * 127.0).round() * s);
            }
            assert!(
                matches!(super::pack_weights(&k, co), super::Weights::Int8 { .. }),
                "case {case}: int8 weights not recognised"
            );
        }
        let b = rng.vec(co);
        let x = rng.vec(c * h * w);
        let nchw = case % 3 == 0;
        let mut m = TypedModel::default();
        let shape: TVec<usize> = if nchw { tvec!(1, c, h, w) } else { tvec!(c, h, w) };
        let src = m.add_source("x", f32::fact(&*shape)).unwrap();
        let kc = m.add_const("k", Tensor::from_shape(&[co, c / g, kh, kw], &k).unwrap()).unwrap();
        let bc = m.add_const("b", Tensor::from_shape(&[co], &b).unwrap()).unwrap();
        let op = Conv {
            pool_spec: PoolSpec {
                data_format: if nchw { DataFormat::NCHW } else { DataFormat::CHW },
                kernel_shape: tvec!(kh, kw),
                padding: PaddingSpec::Explicit(tvec!(pt, pl), tvec!(pb, pr)),
                dilations: Some(tvec!(dh, dw)),
                strides: Some(tvec!(sh, sw)),
                input_channels: c,
                output_channels: co,
            },
            kernel_fmt: KernelFormat::OIHW,
            group: g,
            q_params: None,
        };
        let y = m.wire_node("conv", op, &[src, kc, bc]).unwrap();
        m.select_output_outlets(&y).unwrap();
        let want = naive_conv(&x, c, h, w, &k, &b, co, g, kh, kw, (sh, sw), (pt, pl), (dh, dw), ho, wo);
        let (got, cpu) = run_gpu(m, &x);
        assert_eq!(cpu, 0, "case {case}: conv fell back to the CPU");
        assert_close(
            &got,
            &want,
            1e-4,
            &format!("conv case {case} c{c} co{co} g{g} k{kh}x{kw} s{sh},{sw} d{dh},{dw} p{pt},{pl},{pb},{pr} {h}x{w}"),
        );
    }
}

/// Also with f16 weight storage, against the reference computed with the same f16-rounded weights.
#[test]
fn matrix_products_match_naive_reference() {
    if !gpu_available() {
        return;
    }
    let mut rng = Rng(77);
    for f16 in [false, true] {
        for (case, expr) in ["khw,ok->ohw", "khw,ko->ohw", "k,ok->o", "nkhw,ok->nohw"].iter().enumerate() {
            let (k, o, h, w) = (rng.int(1, 70), rng.int(1, 90), rng.int(1, 9), rng.int(1, 11));
            let x = rng.vec(k * h * w);
            let mut wt = rng.vec(o * k);
            if f16 {
                wt.iter_mut().for_each(|v| *v = half::f16::from_f32(*v * 1.37).to_f32());
            }
            let transposed = expr.contains("ko");
            let (xs, ws): (Vec<usize>, Vec<usize>) = match case {
                2 => (vec![k], vec![o, k]),
                3 => (vec![1, k, h, w], vec![o, k]),
                _ => (vec![k, h, w], if transposed { vec![k, o] } else { vec![o, k] }),
            };
            let p = if case == 2 { 1 } else { h * w };
            let x = &x[..k * p];
            let mut m = TypedModel::default();
            let src = m.add_source("x", f32::fact(&xs)).unwrap();
            let wc = m.add_const("w", Tensor::from_shape(&ws, &wt).unwrap()).unwrap();
            let y = m.wire_node("mm", EinSum::new(expr.parse().unwrap(), f32::datum_type()), &[src, wc]).unwrap();
            m.select_output_outlets(&y).unwrap();
            let mut want = vec![0f32; o * p];
            for oo in 0..o {
                for pp in 0..p {
                    want[oo * p + pp] = (0..k)
                        .map(|kk| x[kk * p + pp] * if transposed { wt[kk * o + oo] } else { wt[oo * k + kk] })
                        .sum();
                }
            }
            let engine = GpuEngine::compile_with(m, f16).unwrap();
            assert_eq!(engine.cpu_nodes(), 0, "{expr} fell back to the CPU");
            assert_close(&engine.run(x).unwrap(), &want, 1e-4, &format!("{expr} f16 {f16}"));
        }
    }
}

#[test]
fn pooling_matches_naive_reference() {
    if !gpu_available() {
        return;
    }
    let mut rng = Rng(99);
    for case in 0..24 {
        let (c, h, w) = (rng.int(1, 5), rng.int(3, 17), rng.int(3, 17));
        let (kh, kw, sh, sw) = (rng.int(1, 3), rng.int(1, 3), rng.int(1, 2), rng.int(1, 2));
        let (ph, pw) = (rng.int(0, kh - 1), rng.int(0, kw - 1));
        let x = rng.vec(c * h * w);
        let spec = PoolSpec {
            data_format: DataFormat::CHW,
            kernel_shape: tvec!(kh, kw),
            padding: PaddingSpec::Explicit(tvec!(ph, pw), tvec!(ph, pw)),
            dilations: None,
            strides: Some(tvec!(sh, sw)),
            input_channels: c,
            output_channels: c,
        };
        let mode = case % 3; // 0 max, 1 average counting padding, 2 average of the valid part
        let mut m = TypedModel::default();
        let src = m.add_source("x", f32::fact([c, h, w])).unwrap();
        let y = if mode == 0 {
            m.wire_node("pool", MaxPool { pool_spec: spec, with_index_outputs: None }, &[src]).unwrap()
        } else {
            m.wire_node("pool", SumPool { pool_spec: spec, count_include_pad: mode == 1, normalize: true }, &[src])
                .unwrap()
        };
        m.select_output_outlets(&y).unwrap();
        let (ho, wo) = ((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1);
        let mut want = vec![];
        for cc in 0..c {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut vals = vec![];
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let (iy, ix) =
                                ((oy * sh + ky) as isize - ph as isize, (ox * sw + kx) as isize - pw as isize);
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                vals.push(x[(cc * h + iy as usize) * w + ix as usize]);
                            }
                        }
                    }
                    want.push(match mode {
                        0 => vals.iter().copied().fold(f32::MIN, f32::max),
                        1 => vals.iter().sum::<f32>() / (kh * kw) as f32,
                        _ => vals.iter().sum::<f32>() / vals.len() as f32,
                    });
                }
            }
        }
        let (got, cpu) = run_gpu(m, &x);
        assert_eq!(cpu, 0);
        assert_close(&got, &want, 1e-5, &format!("pool case {case} mode {mode}"));
    }
}

/// GroupNorm as tract imports it (sum, scale, subtract, RMS-normalise, per-channel affine, ReLU): the fused two-pass
/// kernel, plus broadcast Sub and the row kernels when the pattern is broken up.
#[test]
fn group_norm_reductions_and_broadcasting_match_naive_reference() {
    if !gpu_available() {
        return;
    }
    let mut rng = Rng(4242);
    for case in 0..6 {
        let (groups, per, hw) = (rng.int(1, 4), rng.int(1, 3), rng.int(5, 300));
        let (c, len) = (groups * per, per * hw);
        let x: Vec<f32> = rng.vec(c * hw).iter().map(|v| v * 3.0 + 1.5).collect();
        let gamma = rng.vec(c);
        let beta = rng.vec(c);
        let eps = 1e-5f32;
        let mut m = TypedModel::default();
        let src = m.add_source("x", f32::fact([groups, len])).unwrap();
        let sum = m.wire_node("sum", Reduce { axes: tvec!(1), reducer: Reducer::Sum }, &[src]).unwrap();
        let inv = m.add_const("inv", tensor2(&[[1.0 / len as f32]])).unwrap();
        let mean = m.wire_node("mean", TypedBinOp(Box::new(math::Mul), None), &[sum[0], inv]).unwrap();
        // case 0, 2, 4: a second reader of `mean` breaks the fusion pattern (separate sum, Sub, RmsNorm kernels).
        let sub = m.wire_node("diff", TypedBinOp(Box::new(math::Sub), None), &[src, mean[0]]).unwrap();
        let rms = m.wire_node("rms", RmsNorm { axis: 1, eps: tensor0(eps).into_arc_tensor() }, &sub).unwrap();
        let back = m
            .wire_node(
                "back",
                tract_onnx::tract_core::ops::change_axes::AxisOp::Reshape(
                    0,
                    tvec!(groups.into(), len.into()),
                    tvec!(c.into(), hw.into()),
                ),
                &rms,
            )
            .unwrap();
        let gc = m.add_const("gamma", Tensor::from_shape(&[c, 1], &gamma).unwrap()).unwrap();
        let bc = m.add_const("beta", Tensor::from_shape(&[c, 1], &beta).unwrap()).unwrap();
        let zero = m.add_const("zero", tensor2(&[[0f32]])).unwrap();
        let y = m.wire_node("mul", TypedBinOp(Box::new(math::Mul), None), &[back[0], gc]).unwrap();
        let y = m.wire_node("add", TypedBinOp(Box::new(math::Add), None), &[y[0], bc]).unwrap();
        let mut y = m.wire_node("relu", TypedBinOp(Box::new(math::Max), None), &[y[0], zero]).unwrap();
        if case % 2 == 0 {
            // Also output mean + y's first row... simpler: y + max over rows of y (broadcast against [c, 1]).
            let mx = m.wire_node("rowmax", Reduce { axes: tvec!(1), reducer: Reducer::Max }, &y).unwrap();
            y = m.wire_node("plus", TypedBinOp(Box::new(math::Add), None), &[y[0], mx[0]]).unwrap();
        }
        m.select_output_outlets(&y).unwrap();
        let mut want = vec![0f32; c * hw];
        for g in 0..groups {
            let row = &x[g * len..(g + 1) * len];
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / len as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / len as f64;
            for (i, &v) in row.iter().enumerate() {
                let ch = (g * len + i) / hw;
                let n = ((v as f64 - mean) / (var + eps as f64).sqrt()) as f32;
                want[g * len + i] = (n * gamma[ch] + beta[ch]).max(0.0);
            }
        }
        if case % 2 == 0 {
            for ch in 0..c {
                let mx = want[ch * hw..(ch + 1) * hw].iter().copied().fold(f32::MIN, f32::max);
                want[ch * hw..(ch + 1) * hw].iter_mut().for_each(|v| *v += mx);
            }
        }
        let (got, cpu) = run_gpu(m, &x);
        assert_eq!(cpu, 0);
        assert_close(&got, &want, 1e-4, &format!("group norm case {case}"));
    }
}

#[test]
fn pad_and_subsample_match_naive_reference() {
    if !gpu_available() {
        return;
    }
    let (c, h, w) = (3, 7, 9);
    let x: Vec<f32> = (0..c * h * w).map(|i| i as f32).collect();
    let mut m = TypedModel::default();
    let src = m.add_source("x", f32::fact([1, c, h, w])).unwrap();
    let p = m
        .wire_node(
            "pad",
            Pad {
                pads: vec![(0, 0), (0, 0), (1, 2), (2, 1)],
                mode: PadMode::Constant(tensor0(-1f32).into_arc_tensor()),
            },
            &[src],
        )
        .unwrap();
    let d = m.wire_node("down", Downsample { axis: 3, stride: 2, modulo: 1 }, &p).unwrap();
    m.select_output_outlets(&d).unwrap();
    let (ph, pw) = (h + 3, w + 3);
    let mut want = vec![];
    for cc in 0..c {
        for y in 0..ph {
            for xo in (1..pw).step_by(2) {
                let (iy, ix) = (y as isize - 1, xo as isize - 2);
                want.push(if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                    x[(cc * h + iy as usize) * w + ix as usize]
                } else {
                    -1.0
                });
            }
        }
    }
    let (got, cpu) = run_gpu(m, &x);
    assert_eq!(cpu, 0);
    assert_eq!(got, want);
}

/// QuantizeLinear -> DequantizeLinear after a convolution (the int8 QDQ pattern): the epilogue rounds half to even
/// exactly as tract does; the convolution's sum may differ in its last bits, so a value sitting on a rounding
/// boundary may land one step away.
#[test]
fn fake_quantization_epilogue_matches_tract_rounding() {
    if !gpu_available() {
        return;
    }
    let mut rng = Rng(1234);
    let (c, h, w, co) = (4, 9, 11, 6);
    let x = rng.vec(c * h * w);
    let k = rng.vec(co * c);
    let (scale, zp) = (0.02f32, 128u8);
    let mut m = TypedModel::default();
    let src = m.add_source("x", f32::fact([c, h, w])).unwrap();
    let wc = m.add_const("w", Tensor::from_shape(&[co, c], &k).unwrap()).unwrap();
    let y = m.wire_node("mm", EinSum::new("khw,ok->ohw".parse().unwrap(), f32::datum_type()), &[src, wc]).unwrap();
    let q = m.wire_node("q", quantize_linear_u8(1.0 / scale, zp), &y).unwrap();
    let dq = m.wire_node("dq", DequantizeLinearF32 { scale, zero_point: zp as i32 }, &q).unwrap();
    m.select_output_outlets(&dq).unwrap();
    let want = run_tract(&m, &[c, h, w], &x);
    let (got, cpu) = run_gpu(m, &x);
    assert_eq!(cpu, 0);
    let exact = got.iter().zip(&want).filter(|(g, w)| g == w).count();
    assert!(
        got.iter().zip(&want).all(|(g, w)| (g - w).abs() <= scale * 1.001),
        "off by more than one quantization step"
    );
    assert!(exact * 100 >= got.len() * 99, "only {exact} of {} values equal", got.len());
}

/// An operation the GPU does not have runs on the CPU between GPU kernels, its input read back and its output
/// uploaded.
#[test]
fn unsupported_operations_fall_back_to_the_cpu_between_gpu_kernels() {
    if !gpu_available() {
        return;
    }
    let mut rng = Rng(5);
    let (c, h, w, co) = (3, 5, 6, 4);
    let x = rng.vec(c * h * w);
    let k = rng.vec(co * c);
    let mut m = TypedModel::default();
    let src = m.add_source("x", f32::fact([c, h, w])).unwrap();
    let wc = m.add_const("w", Tensor::from_shape(&[co, c], &k).unwrap()).unwrap();
    let y = m.wire_node("mm", EinSum::new("khw,ok->ohw".parse().unwrap(), f32::datum_type()), &[src, wc]).unwrap();
    let e = m.wire_node("exp", math::exp(), &y).unwrap();
    let w2 = m
        .add_const("w2", Tensor::from_shape(&[2, co], &[0.5f32, -1.0, 0.25, 2.0, 1.0, 1.0, -0.5, 0.0]).unwrap())
        .unwrap();
    let z = m.wire_node("mm2", EinSum::new("khw,ok->ohw".parse().unwrap(), f32::datum_type()), &[e[0], w2]).unwrap();
    m.select_output_outlets(&z).unwrap();
    let want = run_tract(&m, &[c, h, w], &x);
    let engine = GpuEngine::compile(m).unwrap();
    assert_eq!((engine.gpu_nodes(), engine.cpu_nodes()), (2, 1));
    for _ in 0..2 {
        assert_close(&engine.run(&x).unwrap(), &want, 1e-5, "fallback");
    }
}

/// Regression (VGG16 int8 in the zoo: "Buffer binding 1 range 411041792 exceeds max_*_buffer_binding_size"): an
/// operation whose weights exceed the binding limit runs on the CPU; the rest of the graph stays on the GPU.
#[test]
fn weights_larger_than_a_binding_fall_back_to_the_cpu() {
    if !gpu_available() {
        return;
    }
    let mut rng = Rng(11);
    let (k, o, o2) = (64, 48, 5);
    let x = rng.vec(k);
    let mut m = TypedModel::default();
    let src = m.add_source("x", f32::fact([k])).unwrap();
    let big = m.add_const("big", Tensor::from_shape(&[o, k], &rng.vec(o * k)).unwrap()).unwrap();
    let y = m.wire_node("big_mm", EinSum::new("k,ok->o".parse().unwrap(), f32::datum_type()), &[src, big]).unwrap();
    let small = m.add_const("small", Tensor::from_shape(&[o2, o], &rng.vec(o2 * o)).unwrap()).unwrap();
    let z =
        m.wire_node("small_mm", EinSum::new("k,ok->o".parse().unwrap(), f32::datum_type()), &[y[0], small]).unwrap();
    m.select_output_outlets(&z).unwrap();
    let want = run_tract(&m, &[k], &x);
    // 4 KB per binding: the 12 KB weights do not fit, the 1 KB ones do.
    let engine = GpuEngine::compile_limited(m, false, 4096).unwrap();
    assert_eq!((engine.gpu_nodes(), engine.cpu_nodes()), (1, 1));
    assert_close(&engine.run(&x).unwrap(), &want, 1e-4, "big weights on the CPU");
}
