//! Runs the embedded model's inference N times on one fixed input, on one thread, with our operators swapped in,
//! with tract's alone (`--tract`), or with ours but tract's float pointwise convolutions (`--float-pointwise`): what
//! bench/arm_instructions.sh counts instructions of under emulation.
//! `cargo run --release -p snakeid --example infer -- [N] [--tract | --float-pointwise]`.

use snakeid::internals::cpu::{Engine, OwnOps};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find(|a| !a.starts_with("--")).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let flag = |f: &str| args.iter().any(|a| a == f);
    let own_ops = match (flag("--tract"), flag("--float-pointwise")) {
        (true, _) => OwnOps::NONE,
        (_, true) => OwnOps { int8_pointwise: false, ..OwnOps::ALL },
        _ => OwnOps::ALL,
    };
    let bundle = snakeid::Bundle::embedded_default()?;
    let (m, w, h) = (&bundle.manifest, bundle.manifest.input.width, bundle.manifest.input.height);
    let engine = Engine::compile_with(bundle.model.clone(), w, h, m.model.num_classes, own_ops)?;
    let input: Vec<f32> = (0..3 * w as usize * h as usize).map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0).collect();
    let mut checksum = 0f32;
    for _ in 0..n {
        checksum += engine.run(input.clone())?[0];
    }
    println!("{n} inferences ({own_ops:?}), logit 0 sum {checksum}");
    Ok(())
}
