//! snakeid: offline snake species identification from a photo (and, when known, a country).
//!
//! Layers, bottom up: [`bundle`] (model + [`manifest`] + [`labels`] + [`prior`]), [`decode`] (with `jpeg_dc` for
//! JPEGs at 1/8 scale) and [`preprocess`] (photo to tensor), [`engine`] (tract on the CPU, with [`onnx_fold`]
//! before it reads the model and our operators [`depthwise`], [`qpointwise`] and [`fakequant`] swapped into its
//! graph), `gpu` (our wgpu kernels, feature `gpu`) and [`backend`] (which of the two runs), [`decision`] (softmax,
//! snake gate, country prior, top-k, warnings), [`Classifier`], which ties them together, and [`bench`], which
//! measures it.
//!
//! ```no_run
//! let classifier = snakeid::Classifier::embedded_default()?;
//! let photo = std::fs::read("photo.jpg").unwrap();
//! let answer = classifier.identify(&photo, Some("IN"), 3)?;
//! if answer.decision.venomous_warning { println!("possibly venomous: seek care"); }
//! # Ok::<(), snakeid::Error>(())
//! ```

pub mod backend;
pub mod bench;
pub mod bundle;
pub mod calibration;
pub mod classifier;
pub mod countries;
pub mod decision;
pub mod decode;
pub mod depthwise;
pub mod engine;
mod epilogue;
pub mod fakequant;
pub mod handover;
mod jpeg_dc;
pub mod onnx_fold;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod error;
pub mod failpoint;
pub mod labels;
pub mod manifest;
pub mod metrics;
pub mod preprocess;
mod parallel;
pub mod prior;
pub mod qpointwise;
pub mod resample;
pub mod signing;
pub mod stem;
mod simd;

pub use backend::{Backend, BackendInfo};
pub use bench::BenchmarkReport;
pub use bundle::Bundle;
pub use classifier::{Classifier, Identification, Timings};
pub use decision::{Decision, GenusAnswer, Prediction, SnakeVerdict};
pub use decode::Limits;
pub use error::{Error, Result};
pub use signing::PublicKey;
