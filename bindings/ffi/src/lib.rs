//! snakeid for Kotlin, Swift and Python: UniFFI wrappers over the core, with no logic of their own.
//!
//! [`Classifier`] is the one object; [`records`] mirror the CLI's JSON; [`SnakeIdError`] is the one error enum
//! across the FFI. The core turns every panic into `Internal`, and UniFFI's scaffolding catches any other,
//! so no panic reaches the host app.

mod classifier;
mod error;
mod records;

pub use classifier::Classifier;
pub use error::SnakeIdError;
pub use records::{
    BenchmarkReport, BundleInfo, CountrySource, GenusAnswer, Identification, Limits, Location, Percentiles, Prediction,
    SnakeVerdict, Species, StageStats, Timings,
};

uniffi::setup_scaffolding!("snakeid");
