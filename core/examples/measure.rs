//! Measures cold start, first call and steady-state stage timings of the embedded bundle on one photo:
//! `cargo run --release -p snakeid --example measure -- PHOTO [ITERATIONS]`.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let photo = std::fs::read(args.next().ok_or("usage: measure PHOTO [ITERATIONS]")?)?;
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(30);
    let t = Instant::now();
    let c = snakeid::Classifier::embedded_default()?;
    let cold = t.elapsed().as_secs_f64() * 1e3;
    let first = c.identify(&photo, None, 5)?.timings_ms.total;
    let mut runs: Vec<snakeid::Timings> =
        (0..n).map(|_| c.identify(&photo, None, 5).map(|i| i.timings_ms)).collect::<Result<_, _>>()?;
    let median = |f: fn(&snakeid::Timings) -> f64, runs: &mut Vec<snakeid::Timings>| {
        runs.sort_by(|a, b| f(a).total_cmp(&f(b)));
        f(&runs[runs.len() / 2])
    };
    println!("cold start (bundle load + model compile): {cold:.1} ms; first call {first:.1} ms");
    println!(
        "median of {n}: decode {:.2} ms, preprocess {:.2} ms, inference {:.2} ms, postprocess {:.3} ms, total {:.2} ms",
        median(|t| t.decode, &mut runs),
        median(|t| t.preprocess, &mut runs),
        median(|t| t.inference, &mut runs),
        median(|t| t.postprocess, &mut runs),
        median(|t| t.total, &mut runs)
    );
    Ok(())
}
