//! Runs one ONNX classifier (not a bundle) on raw input tensors with snakeid's CPU engine and, with `--gpu`, its GPU
//! backend, and prints one JSON object: load times, logits per input, median latency per backend (or the error).
//! `models/zoo/build_zoo.py` calls it for each architecture.
//! `cargo run --release -p snakeid --features gpu --example zoo -- MODEL.onnx W H CLASSES INPUTS.f32 [ITERATIONS] [--gpu]`

use serde_json::{json, Value};
use snakeid::internals::{cpu::Engine, model::typed_model};
use std::time::Instant;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Load time, each input's logits, median latency over `iters` runs of the first input.
fn measure(
    load: impl FnOnce() -> snakeid::Result<Box<dyn Fn(&[f32]) -> snakeid::Result<Vec<f32>>>>,
    inputs: &[Vec<f32>],
    iters: usize,
) -> Value {
    let t = Instant::now();
    let run = match load() {
        Ok(r) => r,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let load_ms = ms(t);
    let mut logits = Vec::new();
    for x in inputs {
        match run(x) {
            Ok(l) => logits.push(l),
            Err(e) => return json!({ "error": e.to_string(), "load_ms": load_ms }),
        }
    }
    let times: Vec<f64> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            let _ = run(&inputs[0]);
            ms(t)
        })
        .collect();
    json!({ "load_ms": load_ms, "logits": logits, "ms": median(times) })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let gpu = args.iter().any(|a| a == "--gpu");
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [model, w, h, classes, inputs, rest @ ..] = pos.as_slice() else {
        return Err("usage: zoo MODEL.onnx W H CLASSES INPUTS.f32 [ITERATIONS] [--gpu]".into());
    };
    let onnx = std::fs::read(model)?;
    let (w, h, classes): (u32, u32, usize) = (w.parse()?, h.parse()?, classes.parse()?);
    let iters: usize = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let raw = std::fs::read(inputs)?;
    let per = (3 * w * h) as usize;
    let values: Vec<f32> = raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let inputs: Vec<Vec<f32>> = values.chunks_exact(per).map(|c| c.to_vec()).collect();
    let cpu = measure(
        || {
            let e = Engine::compile(onnx.clone(), w, h, classes)?;
            Ok(Box::new(move |x: &[f32]| e.run(x.to_vec())))
        },
        &inputs,
        iters,
    );
    let mut out = json!({ "cpu": cpu });
    #[cfg(feature = "gpu")]
    if gpu {
        out["gpu"] = measure(
            || {
                let g = snakeid::internals::gpu::GpuEngine::compile(typed_model(onnx.clone(), w, h, classes)?)?;
                Ok(Box::new(move |x: &[f32]| g.run(x)))
            },
            // lavapipe, CI's GPU, runs big models at seconds per call: two inputs, one timed run.
            &inputs[..inputs.len().min(2)],
            1,
        );
    }
    #[cfg(not(feature = "gpu"))]
    let _ = (gpu, typed_model as fn(Vec<u8>, u32, u32, usize) -> _);
    println!("{out}");
    Ok(())
}
