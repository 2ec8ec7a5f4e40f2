//! `snakeid bench`: cold start, first call, per-stage p50/p90/p99 and peak RSS of one bundle on one photo.

use crate::identify::read_photo;
use snakeid::internals::bench::{BenchmarkReport, Percentiles};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// A bundle directory or packed file instead of the embedded default.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// The photo to identify (default: a synthetic 1600x1200 PNG made in memory).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Measured calls.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    iterations: u32,
    /// Unmeasured calls before measuring (the first one is reported as `first_call_ms`).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    warmup: u32,
    /// Threads for decoding, preprocessing and inference (1: the calling thread only).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    threads: u32,
    #[command(flatten)]
    backend: crate::BackendArgs,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> snakeid::Result<ExitCode> {
    let photo = match &args.image {
        Some(p) => read_photo(p)?,
        None => synthetic_photo(),
    };
    let classifier = args.backend.load(args.bundle.as_ref(), &[], args.threads as usize)?;
    let report = classifier.benchmark(&photo, args.iterations, args.warmup)?;
    if args.json {
        println!("{}", serde_json::to_string(&report).expect("report serialises"));
    } else {
        print_human(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_human(r: &BenchmarkReport) {
    println!("backend {}, {} thread(s), {} measured calls", r.backend, r.threads, r.iterations);
    if r.backend == "cpu" {
        // Which code was timed: a figure from the portable loops is not one from the plug-ins.
        println!("kernels: {}", snakeid::internals::kernel_plug_ins());
    }
    println!("cold start (bundle load + model compile)  {:8.1} ms", r.cold_start_ms);
    println!("first call                                {:8.1} ms", r.first_call_ms);
    println!("{:<12} {:>9} {:>9} {:>9}", "stage (ms)", "p50", "p90", "p99");
    let s = &r.stages_ms;
    let row = |name: &str, p: &Percentiles| println!("{name:<12} {:>9.2} {:>9.2} {:>9.2}", p.p50, p.p90, p.p99);
    row("decode", &s.decode);
    row("preprocess", &s.preprocess);
    row("inference", &s.inference);
    row("postprocess", &s.postprocess);
    row("total", &s.total);
    println!("peak RSS {:.1} MB", r.peak_rss_mb);
}

/// A deterministic 1600x1200 PNG with smooth gradients and texture, for runs without `--image`.
fn synthetic_photo() -> Vec<u8> {
    let img = image::RgbImage::from_fn(1600, 1200, |x, y| {
        let t = ((x * 7 + y * 13) % 64) as u8;
        image::Rgb([(x / 7) as u8 ^ t, (y / 5) as u8, ((x + y) / 11) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("PNG encoding in memory");
    out.into_inner()
}
