//! Where the time goes: load stages of tract (parse, type, optimise, plan) and inference time per operator kind,
//! for a bundle's model. `cargo run --release -p snakeid --example profile -- [BUNDLE|MODEL.onnx] [ITERATIONS]`
//! (no BUNDLE: the embedded default; a bare model's square input side in SNAKEID_SIDE, default 224).

use std::collections::BTreeMap;
use std::time::Instant;
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{eval, SimplePlan, SimpleState};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().filter(|a| a != "-");
    // A bare model.onnx (a zoo model) too, with its square input side in SNAKEID_SIDE (default 224).
    let (model_bytes, w, h) = match path {
        Some(p) if p.ends_with(".onnx") => {
            let side: usize = std::env::var("SNAKEID_SIDE").ok().map(|s| s.parse()).transpose()?.unwrap_or(224);
            (bytes::Bytes::from(std::fs::read(&p)?), side, side)
        }
        p => {
            let bundle = match p {
                Some(p) => snakeid::Bundle::load(std::path::Path::new(&p))?,
                None => snakeid::Bundle::embedded_default()?,
            };
            (bundle.model.clone(), bundle.manifest.input.width as usize, bundle.manifest.input.height as usize)
        }
    };
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(20);

    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let onnx = tract_onnx::onnx();
    let mut proto = <tract_onnx::pb::ModelProto as prost::Message>::decode(model_bytes)?;
    let t_decode = ms(t);
    let t = Instant::now();
    // SNAKEID_NO_FOLD=1 leaves the constant weights' DequantizeLinear nodes to tract.
    let folded = if std::env::var_os("SNAKEID_NO_FOLD").is_none() {
        snakeid::internals::onnx_fold::fold_constant_dequantize(&mut proto)
    } else {
        0
    };
    let t_fold = ms(t);
    let t = Instant::now();
    let model = onnx.model_for_proto_model(&proto)?;
    let t_parse = ms(t);
    let model = model.with_input_fact(0, f32::fact([1, 3, h, w]).into())?;
    // How much of typing is ONNX shape/type analysis (measured on a copy: into_typed analyses again).
    let mut probe = model.clone();
    let t = Instant::now();
    probe.analyse(false)?;
    let t_analyse = ms(t);
    drop(probe);
    let t = Instant::now();
    let typed = model.into_typed()?;
    let t_typed = ms(t);
    // As the engine does: our operators into the typed graph, declutter, our operators again (what only declutter
    // brings into their form). SNAKEID_NO_FUSE=1 keeps tract's convolutions.
    let fuse = std::env::var_os("SNAKEID_NO_FUSE").is_none();
    let swap = |m: &mut TypedModel| -> TractResult<(usize, usize, usize)> {
        Ok(if fuse {
            (
                snakeid::internals::cpu::depthwise::swap_in(m)?,
                snakeid::internals::cpu::stem::swap_in(m)?,
                snakeid::internals::cpu::qpointwise::swap_in(m)?,
            )
        } else {
            (0, 0, 0)
        })
    };
    let mut decluttered = typed;
    let t = Instant::now();
    let (depthwise, stem, pointwise) = swap(&mut decluttered)?;
    let t_swaps1 = ms(t);
    let t = Instant::now();
    // SNAKEID_FULL_DECLUTTER=1 runs tract's whole declutter here, ChangeAxes included.
    if std::env::var_os("SNAKEID_FULL_DECLUTTER").is_some() {
        decluttered.declutter()?;
    } else {
        snakeid::internals::cpu::declutter_for_swaps(&mut decluttered)?;
    }
    let t_declutter = ms(t);
    let t = Instant::now();
    let (depthwise2, stem2, pointwise2) = swap(&mut decluttered)?;
    let (depthwise, stem, pointwise) =
        (format!("{depthwise}+{depthwise2}"), format!("{stem}+{stem2}"), format!("{pointwise}+{pointwise2}"));
    let t_swaps2 = ms(t);
    let t = Instant::now();
    let mut optimized = decluttered.into_optimized()?;
    let t_opt = ms(t);
    let t = Instant::now();
    // SNAKEID_NO_FUSE=1 profiles tract's own quantize/dequantize passes instead of ours.
    let fused = if fuse { snakeid::internals::cpu::fakequant::fuse(&mut optimized)? } else { (0, 0) };
    // SNAKEID_NO_HANDOVER=1: f32 values between our pointwise and depthwise convolutions, not u8 codes.
    let handovers = if fuse && std::env::var_os("SNAKEID_NO_HANDOVER").is_none() {
        snakeid::internals::cpu::handover::hand_over(&mut optimized)?
    } else {
        0
    };
    let t_fuse = ms(t);
    let t = Instant::now();
    let plan = SimplePlan::new(optimized)?;
    let t_plan = ms(t);
    println!(
        "load: protobuf {t_decode:.1} ms, fold {t_fold:.1} ms ({folded} weights), parse {t_parse:.1} ms, type {t_typed:.1} ms (of which analysis {t_analyse:.1} ms), declutter {t_declutter:.1} ms, swaps {t_swaps1:.1}+{t_swaps2:.1} ms ({depthwise} depthwise, {stem} stem, {pointwise} int8 pointwise convolutions), optimise {t_opt:.1} ms, fuse {t_fuse:.1} ms ({} quantize/dequantize pairs, {} quantize ops swapped, {handovers} code handovers), plan {t_plan:.1} ms (nodes: {})",
        fused.0,
        fused.1,
        plan.model().nodes.len()
    );

    let input: TValue = Tensor::from_shape(&[1, 3, h, w], &vec![0.1f32; 3 * h * w])?.into();
    let mut state = SimpleState::new(&plan)?;
    state.run(tvec!(input.clone()))?;
    let mut per_op: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    // SNAKEID_THREADS=N runs the calls on an N-thread pool, as `snakeid bench --threads N` does.
    let threads: usize = std::env::var("SNAKEID_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    let executor = if threads > 1 { Executor::multithread(threads) } else { Executor::SingleThread };
    // SNAKEID_BY_NODE=1 times each node on its own instead of each operator kind.
    let by_node = std::env::var_os("SNAKEID_BY_NODE").is_some();
    let t_all = Instant::now();
    multithread_tract_scope(executor, || -> TractResult<()> {
        for _ in 0..n {
            state.run_plan_with_eval(tvec!(input.clone()), |ctx, op_state, node, inputs| {
                let t = Instant::now();
                let r = eval(ctx, op_state, node, inputs);
                let key =
                    if by_node { format!("{} {}", node.op().name(), node.name) } else { node.op().name().to_string() };
                let e = per_op.entry(key).or_default();
                e.0 += ms(t);
                e.1 += 1;
                r
            })?;
        }
        Ok(())
    })?;
    let total = ms(t_all) / n as f64;
    let mut rows: Vec<_> = per_op.into_iter().map(|(k, (t, c))| (k, t / n as f64, c / n)).collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("inference {total:.2} ms per call ({n} calls); per operator kind:");
    for (name, t, count) in rows {
        println!("  {name:<28} {t:8.3} ms  {:5.1}%  x{count}", 100.0 * t / total);
    }
    Ok(())
}
