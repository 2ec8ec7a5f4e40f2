//! Runs the embedded model's inference N times on one fixed input, with our operators swapped in or with tract's
//! alone (`--tract`), on one thread: what bench/arm_instructions.sh counts instructions of under emulation.
//! `cargo run --release -p snakeid --example infer -- [N] [--tract]`.

use snakeid::internals::cpu::{Engine, OwnOps};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find(|a| !a.starts_with("--")).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let own_ops = if args.iter().any(|a| a == "--tract") { OwnOps::NONE } else { OwnOps::ALL };
    let bundle = snakeid::Bundle::embedded_default()?;
    let (m, w, h) = (&bundle.manifest, bundle.manifest.input.width, bundle.manifest.input.height);
    let engine = Engine::compile_with(bundle.model.clone(), w, h, m.model.num_classes, own_ops)?;
    let input: Vec<f32> = (0..3 * w as usize * h as usize).map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0).collect();
    let mut checksum = 0f32;
    for _ in 0..n {
        checksum += engine.run(input.clone())?[0];
    }
    println!("{n} inferences ({}), logit 0 sum {checksum}", if own_ops == OwnOps::NONE { "tract alone" } else { "snakeid" });
    Ok(())
}
