//! `snakeid bundle`: pack a bundle directory into one file, unpack one, or describe a bundle.

use crate::load_bundle;
use snakeid::{Bundle, Error};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum BundleCommand {
    /// Verify a bundle directory and pack it into a single file.
    Pack {
        dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a packed bundle (default: the embedded one) and write its files into a directory.
    Unpack {
        #[arg(long)]
        bundle: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a bundle (default: the embedded one) and describe it.
    Info {
        #[arg(long)]
        bundle: Option<PathBuf>,
    },
}

pub fn run(cmd: BundleCommand) -> snakeid::Result<ExitCode> {
    match cmd {
        BundleCommand::Pack { dir, out } => {
            let bytes = Bundle::pack_dir(&dir)?;
            std::fs::write(&out, &bytes).map_err(|e| Error::Io { path: out.clone(), source: e })?;
            eprintln!("wrote {} ({} bytes)", out.display(), bytes.len());
        }
        BundleCommand::Unpack { bundle, out } => {
            let bytes = match bundle {
                Some(p) => std::fs::read(&p).map_err(|e| Error::Io { path: p.clone(), source: e })?,
                None => snakeid::Bundle::embedded_default_bytes()?.to_vec(),
            };
            Bundle::unpack_to_dir(&bytes, &out)?;
            eprintln!("unpacked into {}", out.display());
        }
        BundleCommand::Info { bundle } => {
            let b = load_bundle(bundle.as_ref())?;
            let m = &b.manifest;
            println!("{} {} ({})", m.name, m.version, m.model.precision);
            println!("{}", m.description);
            println!("input {}x{} {:?}, {} classes, {} species", m.input.width, m.input.height, m.input.resize, b.labels.len(), b.species().count());
            for l in b.species() {
                println!("  {:>4}  {:<34} {:<28} {}", l.class_index, l.label, l.scientific_name, if l.venomous { "venomous" } else { "" });
            }
            if let Some(p) = &b.prior {
                println!("prior: {} countries, smoothing {}", p.countries().count(), p.smoothing());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
