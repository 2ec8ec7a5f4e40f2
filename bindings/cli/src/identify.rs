//! `snakeid identify`: photos in, a ranked answer per photo out (a table for people, JSON lines for programs).

use crate::EXIT_BAD_INPUT;
use serde_json::json;
use snakeid::{Error, Identification, SnakeVerdict};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Photos to identify.
    #[arg(required = true)]
    photos: Vec<PathBuf>,
    /// Where the photo was taken: ISO 3166-1 alpha-2 code or English name (applies the country prior). Without it,
    /// the photo's own GPS position (EXIF), else --location, picks the country.
    #[arg(long)]
    country: Option<String>,
    /// Where you are, as LAT,LON in decimal degrees (e.g. 14.6,121.0): its country, found offline, is used when
    /// no --country is given and the photo has no GPS position.
    #[arg(long, value_name = "LAT,LON", value_parser = parse_location, allow_hyphen_values = true)]
    location: Option<snakeid::Location>,
    /// How many species to list.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    top: u32,
    /// A bundle directory or packed file instead of the embedded default.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Accept the bundle only if it is signed by this ed25519 public key (64 hex digits; repeat for several keys).
    #[arg(long = "trusted-key", value_name = "HEX")]
    trusted_keys: Vec<String>,
    /// Threads for decoding, preprocessing and inference (1: the calling thread only).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    threads: u32,
    /// One JSON object per photo per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: crate::BackendArgs,
}

pub fn run(args: Args) -> snakeid::Result<ExitCode> {
    let classifier = args.backend.load(args.bundle.as_ref(), &args.trusted_keys, args.threads as usize)?;
    // Where it ran, for people, when they chose a backend (stdout: stderr is one line per problem).
    if !args.json && args.backend.backend != "cpu" {
        let b = classifier.backend_info();
        let on = b
            .adapter
            .as_ref()
            .map(|a| format!(" on {a}, {} nodes on the GPU, {} on the CPU", b.nodes_gpu, b.nodes_cpu))
            .unwrap_or_default();
        let why = b.chosen_because.as_ref().map(|w| format!(" ({w})")).unwrap_or_default();
        println!("backend: {}{on}{why}", b.backend);
    }
    // A bad country is the same mistake for every photo: refuse it once, up front.
    classifier.prior_for(args.country.as_deref())?;
    let mut failed = 0;
    for path in &args.photos {
        let result = read_photo(path).and_then(|bytes| {
            classifier.identify_at(&bytes, args.country.as_deref(), args.location, args.top as usize)
        });
        match result {
            Ok(id) if args.json => println!("{}", to_json(path, &id)),
            Ok(id) => print_human(path, &id),
            Err(e) => {
                failed += 1;
                eprintln!("error: {}: {e}", path.display());
                if args.json {
                    println!(
                        "{}",
                        json!({"image": path.display().to_string(), "error": {"kind": e.kind(), "message": e.to_string()}})
                    );
                }
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(EXIT_BAD_INPUT) })
}

pub fn read_photo(path: &Path) -> snakeid::Result<Vec<u8>> {
    let io = |e| Error::Io { path: path.to_path_buf(), source: e };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(Error::InvalidImage(format!("{} is a directory, not a photo", path.display())));
    }
    let limit = snakeid::Limits::default().max_bytes;
    if meta.len() > limit {
        return Err(Error::ImageTooLarge(format!("file is {} bytes, more than the {limit} allowed", meta.len())));
    }
    std::fs::read(path).map_err(io)
}

fn parse_location(text: &str) -> Result<snakeid::Location, String> {
    snakeid::Location::parse(text).map_err(|e| e.to_string())
}

fn to_json(path: &Path, id: &Identification) -> serde_json::Value {
    let mut v = serde_json::to_value(id).expect("Identification serialises");
    v["image"] = json!(path.display().to_string());
    v
}

fn print_human(path: &Path, id: &Identification) {
    let d = &id.decision;
    let from = match id.country_source {
        Some(snakeid::CountrySource::PhotoGps) => " from the photo's GPS",
        Some(snakeid::CountrySource::DeviceLocation) => " from --location",
        _ => "",
    };
    let place = match (&id.country, id.prior_applied) {
        (Some(c), true) => format!(", country {c}{from} (prior applied)"),
        (Some(c), false) => format!(", country {c}{from} (not in this bundle's prior: none applied)"),
        (None, _) => String::new(),
    };
    let p_snake = d.snake_probability * 100.0;
    match d.snake_verdict {
        SnakeVerdict::Snake => println!("{}: snake ({p_snake:.0}%){place}", path.display()),
        SnakeVerdict::Possible => println!(
            "{}: possibly a snake ({p_snake:.0}%){place}; if it is one, the closest species are:",
            path.display()
        ),
        // "None" reads as none: no species list, so no VENOMOUS beside "no snake" (issue 33).
        SnakeVerdict::NoSnake => {
            println!("{}: no snake detected ({p_snake:.0}%){place}", path.display());
            println!("  if there is a snake, photograph it whole, closer and in focus, and try again.");
            print_timings(id);
            return;
        }
    }
    let width = d.predictions.iter().map(|p| p.label.len() + p.scientific_name.len() + 3).max().unwrap_or(0);
    for (i, p) in d.predictions.iter().enumerate() {
        let name = format!("{} ({})", p.label, p.scientific_name);
        let venom = if p.venomous { "  VENOMOUS" } else { "" };
        println!("  {:>2}. {name:<width$}  {:>5.1}%{venom}", i + 1, p.probability * 100.0);
    }
    if let Some(g) = &d.genus {
        let v = if g.venomous { ", venomous genus" } else { "" };
        println!("  genus: most likely {} ({:.0}%{v})", g.genus, g.probability * 100.0);
    }
    if d.venomous_warning {
        let names: Vec<String> =
            d.warning_species.iter().map(|p| format!("{} {:.0}%", p.label, p.probability * 100.0)).collect();
        println!(
            "  WARNING: possibly venomous ({}). Treat the bite as venomous and seek medical care now.",
            names.join(", ")
        );
    }
    if d.uncertain {
        println!("  uncertain: the model is not sure; treat as venomous and seek care.");
    }
    print_timings(id);
}

fn print_timings(id: &Identification) {
    let t = &id.timings_ms;
    let views = if id.views_run > 1 { format!(" over {} views", id.views_run) } else { String::new() };
    println!(
        "  ({:.0} ms: decode {:.0}, preprocess {:.0}, inference {:.0}{views})",
        t.total, t.decode, t.preprocess, t.inference
    );
}
