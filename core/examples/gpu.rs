//! GPU against CPU on one bundle: compiles both, runs both on the same input, prints the largest probability
//! difference, whether top-5 agree, where each node ran and the timings.
//! `cargo run --release -p snakeid --features gpu --example gpu -- [BUNDLE|-] [ITERATIONS] [PHOTO]`

use snakeid::internals::gpu::GpuEngine;
use snakeid::internals::{cpu::Engine, model::typed_model};
use std::time::Instant;

fn top5(p: &[f32]) -> Vec<usize> {
    let mut i: Vec<usize> = (0..p.len()).collect();
    i.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    i.truncate(5);
    i
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bundle = match args.next().filter(|a| a != "-") {
        Some(p) => snakeid::Bundle::load(std::path::Path::new(&p))?,
        None => snakeid::Bundle::embedded_default()?,
    };
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let (w, h, c) = (bundle.manifest.input.width, bundle.manifest.input.height, bundle.manifest.model.num_classes);
    let t = Instant::now();
    let cpu = Engine::compile(bundle.model.clone(), w, h, c)?;
    let t_cpu_load = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    // SNAKEID_GPU_F16=1: float weights stored as f16.
    let gpu = GpuEngine::compile_with(
        typed_model(bundle.model.clone(), w, h, c)?,
        std::env::var_os("SNAKEID_GPU_F16").is_some(),
    )?;
    let t_gpu_load = t.elapsed().as_secs_f64() * 1e3;
    let (layers, int8) = gpu.weight_layers();
    println!(
        "adapter: {:?}; nodes on GPU {}, on CPU {}; {int8} of {layers} weight layers int8 on the GPU",
        gpu.adapter(),
        gpu.gpu_nodes(),
        gpu.cpu_nodes()
    );
    let input: Vec<f32> = match args.next() {
        Some(photo) => snakeid::Classifier::new(bundle.clone())?.preprocess(&std::fs::read(photo)?)?,
        None => (0..(3 * w * h) as usize).map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0).collect(),
    };
    let a = cpu.run(input.clone())?;
    let b = gpu.run(&input)?;
    let (pa, pb) = (snakeid::internals::softmax(&a), snakeid::internals::softmax(&b));
    let dp = pa.iter().zip(&pb).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    let dl = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    if std::env::var_os("SNAKEID_DECLUTTERED").is_some() {
        // tract itself, unoptimised: how far its own optimised plan is from the graph the GPU runs.
        use tract_onnx::prelude::*;
        let plain = typed_model(bundle.model.clone(), w, h, c)?.into_decluttered()?.into_runnable()?;
        let t = Tensor::from_shape(&[1, 3, h as usize, w as usize], &input)?;
        let out = plain.run(tvec!(t.into()))?;
        let d: Vec<f32> = out[0].to_plain_array_view::<f32>()?.iter().copied().collect();
        let pd = snakeid::internals::softmax(&d);
        let dp = pa.iter().zip(&pd).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        let dl = a.iter().zip(&d).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        let dg = b.iter().zip(&d).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        println!(
            "tract decluttered vs optimised: max |dprob| {dp:.2e}, max |dlogit| {dl:.2e}; vs gpu max |dlogit| {dg:.2e}"
        );
    }
    println!("max |dprob| {dp:.2e}, max |dlogit| {dl:.2e}, top-5 cpu {:?} gpu {:?}", top5(&pa), top5(&pb));
    let time = |f: &dyn Fn()| {
        f();
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        t.elapsed().as_secs_f64() * 1e3 / n as f64
    };
    let tc = time(&|| {
        cpu.run(input.clone()).unwrap();
    });
    let tg = time(&|| {
        gpu.run(&input).unwrap();
    });
    println!(
        "load: cpu {t_cpu_load:.0} ms, gpu {t_gpu_load:.0} ms; inference: cpu {tc:.1} ms, gpu {tg:.1} ms (x{:.2})",
        tc / tg
    );
    Ok(())
}
