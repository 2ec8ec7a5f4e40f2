//! The `snakeid` command line: identify photos, benchmark, evaluate and calibrate, build and inspect country priors,
//! pack bundles.

mod bench_cmd;
mod bundle_cmd;
mod calibrate_cmd;
mod dataset;
mod eval_cmd;
mod identify;
mod metrics;
mod plot;
mod prior_cmd;
mod train_cmd;

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "snakeid", version, about = "Offline snake species identification from a photo")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Identify the snake in one or more photos (JPEG, PNG, WebP).
    Identify(identify::Args),
    /// Measure cold start, first call, per-stage latency percentiles and peak memory.
    Bench(bench_cmd::Args),
    /// Top-1, top-5, macro-F1, venomous/harmless confusions, track 1 and calibration error, with and without the
    /// country prior, on a labelled photo set.
    Eval(eval_cmd::Args),
    /// Fit the bundle's temperature on a labelled photo set and write the calibrated bundle.
    Calibrate(calibrate_cmd::Args),
    /// Teach a bundle a region's own species from a folder of their photos.
    Train(train_cmd::Args),
    /// Build or inspect a species-by-country prior table.
    #[command(subcommand)]
    Prior(prior_cmd::PriorCommand),
    /// Create, pack, unpack, describe, sign or verify a bundle.
    #[command(subcommand)]
    Bundle(bundle_cmd::BundleCommand),
}

/// Exit code for bad input of any kind (photo, bundle, country, arguments), as clap uses for bad arguments.
pub const EXIT_BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    stop_quietly_on_a_closed_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Identify(args) => identify::run(args),
        Command::Bench(args) => bench_cmd::run(args),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Calibrate(args) => calibrate_cmd::run(args),
        Command::Train(args) => train_cmd::run(args),
        Command::Prior(cmd) => prior_cmd::run(cmd),
        Command::Bundle(cmd) => bundle_cmd::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

/// `snakeid identify ... | head -3`: when the reader goes away, end as other Unix tools do (killed by SIGPIPE,
/// nothing printed) instead of panicking in `println!` with a backtrace (Rust ignores SIGPIPE by default).
fn stop_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The bundle named on the command line, or the one embedded in the binary. With trusted keys (hex), the bundle
/// must be signed by one of them (the embedded bundle is part of the binary and needs no signature).
/// A panic in the parser (a bug) is an `Internal` error ([`snakeid::guard`], as the core's own constructors make it), not a crash.
pub fn load_bundle(bundle: Option<&PathBuf>, trusted_keys: &[String]) -> snakeid::Result<snakeid::Bundle> {
    let load = || match bundle {
        Some(p) if !trusted_keys.is_empty() => {
            snakeid::Bundle::load_signed(p, &snakeid::PublicKey::from_hex_all(trusted_keys)?)
        }
        Some(p) => snakeid::Bundle::load(p),
        None => snakeid::Bundle::embedded_default(),
    };
    snakeid::guard(load)
}

/// [`load_bundle`] compiled on the CPU, one thread.
pub fn load_classifier(bundle: Option<&PathBuf>, trusted_keys: &[String]) -> snakeid::Result<snakeid::Classifier> {
    snakeid::Classifier::on(load_bundle(bundle, trusted_keys)?, snakeid::Backend::Cpu, 1, None)
}

/// `--backend`, shared by `identify` and `bench`.
#[derive(clap::Args)]
pub struct BackendArgs {
    /// Where inference runs: `cpu` (tract), `gpu` (our wgpu kernels; an error without a GPU), `gpu-f16` (the same
    /// with float weights stored as f16), or `auto` (the faster of cpu and gpu, measured once per GPU and bundle and
    /// remembered in ~/.cache/snakeid).
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "gpu", "gpu-f16", "auto"])]
    pub backend: String,
}

impl BackendArgs {
    /// The bundle compiled once, for this backend (no CPU engine compiled only to be dropped for the GPU's).
    pub fn load(
        &self,
        bundle: Option<&PathBuf>,
        trusted_keys: &[String],
        threads: usize,
    ) -> snakeid::Result<snakeid::Classifier> {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("snakeid"));
        snakeid::Classifier::on(load_bundle(bundle, trusted_keys)?, self.backend.parse()?, threads, cache.as_deref())
    }
}

/// Reads a file, its path in the error.
pub fn read_file(path: &Path) -> snakeid::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| snakeid::Error::Io { path: path.to_path_buf(), source: e })
}

/// Writes a file, its path in the error.
pub fn write_file(path: &Path, data: impl AsRef<[u8]>) -> snakeid::Result<()> {
    std::fs::write(path, data).map_err(|e| snakeid::Error::Io { path: path.to_path_buf(), source: e })
}
