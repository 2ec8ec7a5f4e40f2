//! `snakeid prior`: compile a SnakeCLEF-style species-by-country table, or show a country's most likely species.

use crate::load_bundle;
use snakeid::internals::prior::{PriorTable, DEFAULT_SMOOTHING};
use snakeid::{internals::countries, Error};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum PriorCommand {
    /// Compile a CSV (`Species/Country` header, species columns, one row per country) into a binary table.
    Build {
        /// The CSV of counts t_sc or probabilities p(s|c).
        #[arg(long)]
        counts: PathBuf,
        /// Where to write the compiled table.
        #[arg(long)]
        out: PathBuf,
        /// Mix λ of a uniform distribution into every row (0 = exactly t_sc / t_c).
        #[arg(long, default_value_t = DEFAULT_SMOOTHING)]
        smoothing: f64,
    },
    /// List the most likely species for a country.
    Show {
        #[arg(long)]
        country: String,
        /// A compiled table (default: the prior of the bundle).
        #[arg(long, conflicts_with = "bundle")]
        prior: Option<PathBuf>,
        #[arg(long)]
        bundle: Option<PathBuf>,
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
}

pub fn run(cmd: PriorCommand) -> snakeid::Result<ExitCode> {
    match cmd {
        PriorCommand::Build { counts, out, smoothing } => {
            let file = std::fs::File::open(&counts).map_err(|e| Error::Io { path: counts.clone(), source: e })?;
            let (table, report) = PriorTable::build_from_csv(std::io::BufReader::new(file), smoothing)?;
            let bytes = table.to_bytes();
            crate::write_file(&out, &bytes)?;
            eprintln!(
                "wrote {}: {} species x {} countries, {} bytes, input read as {}, smoothing {smoothing}",
                out.display(),
                table.species().len(),
                table.countries().count(),
                bytes.len(),
                if report.input_was_counts { "counts" } else { "probabilities" }
            );
            for (dup, first) in &report.merged_rows {
                eprintln!("  merged row {dup:?} into {first:?} (same country)");
            }
            for empty in &report.empty_rows {
                eprintln!("  skipped row {empty:?}: no observations");
            }
            Ok(ExitCode::SUCCESS)
        }
        PriorCommand::Show { country, prior, bundle, top } => {
            let table = match prior {
                Some(p) => {
                    PriorTable::from_bytes(&std::fs::read(&p).map_err(|e| Error::Io { path: p.clone(), source: e })?)?
                }
                None => load_bundle(bundle.as_ref(), &[])?
                    .prior
                    .ok_or_else(|| Error::InvalidBundle("the bundle has no prior".into()))?,
            };
            let code = countries::resolve(&country)?;
            let name = countries::find(code).map_or(code, |c| c.name);
            let Some(row) = table.row(code) else {
                println!("{code} ({name}): not in this table; no prior is applied there");
                return Ok(ExitCode::SUCCESS);
            };
            let mut ranked: Vec<(usize, f32)> = row.into_iter().enumerate().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            println!("{code} ({name}): p(species | country), smoothing {}", table.smoothing());
            for (i, p) in ranked.into_iter().take(top) {
                println!("  {:<40} {:.6}", table.species()[i], p);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
