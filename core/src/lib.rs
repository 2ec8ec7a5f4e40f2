//! snakeid: offline snake species identification from a photo (and, when known, a country).
//!
//! The front door is [`Classifier`]: load a [`Bundle`] once, then [`Classifier::identify`] a photo's bytes into an
//! [`Identification`] whose [`Decision`] says whether there is a snake, which species are likeliest, and whether to
//! warn that it may be venomous. The layers under it, bottom up:
//!
//! - `kernels`: the arithmetic of our operators, with no tract in it; portable loops and per-ISA plug-ins;
//! - `bundle`: the model, manifest, labels, country prior and signature, loaded and checked;
//! - `photo`: bytes to the model's input tensor (decode, orient, resample, normalise), and the camera's GPS position;
//! - `place`: a position to its country (offline boundaries), and which of chosen, photo and device decided it;
//! - `backend`: the model run on the CPU (tract, our operators swapped into its graph) or the GPU (wgpu);
//! - `decision`: logits to the answer (temperature, snake gate, prior, top-k, venom warning, genus), and the
//!   calibration of its temperature;
//! - `teach`: a bundle taught a region's own species from its photos (`snakeid train`);
//! - `tools`: benchmarks and fault injection.
//!
//! ```no_run
//! let classifier = snakeid::Classifier::embedded_default()?;
//! let photo = std::fs::read("photo.jpg").unwrap();
//! let answer = classifier.identify(&photo, Some("IN"), 3)?;
//! if answer.decision.venomous_warning { println!("possibly venomous: seek care"); }
//! # Ok::<(), snakeid::Error>(())
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

mod backend;
mod bundle;
mod classifier;
mod decision;
mod error;
mod kernels;
mod photo;
mod place;
pub mod teach;
mod tools;

pub use backend::{Backend, BackendInfo};
pub use bundle::labels::Label;
pub use bundle::manifest::View;
pub use bundle::signing::PublicKey;
pub use bundle::{Bundle, BundleInfo};
pub use classifier::{guard, Classifier, Identification};
pub use decision::{Decision, GenusAnswer, Prediction, SnakeVerdict};
pub use error::{Error, Result};
pub use photo::decode::Limits;
pub use place::{CountrySource, Location};
pub use tools::bench::{BenchmarkReport, Percentiles, StageStats, Timings};

/// What the CLI, examples, tests and fuzz targets reach beyond the front door: the layers' own modules. Not a
/// stable API.
#[doc(hidden)]
pub mod internals {
    #[cfg(feature = "gpu")]
    pub use crate::backend::gpu;
    pub use crate::backend::{cpu, model, onnx_fold};
    #[cfg(feature = "embedded-default")]
    pub use crate::bundle::DEFAULT_BUNDLE;
    pub use crate::bundle::{countries, labels, manifest, prior, sha256_hex, signing, MAX_BUNDLE_BYTES};
    pub use crate::decision::{calibration, softmax};
    pub use crate::kernels::plugged as kernel_plug_ins;
    pub use crate::photo::{decode, preprocess};
    pub use crate::tools::bench;
    #[cfg(feature = "failpoints")]
    pub use crate::tools::failpoint;
}
