//! The `Classifier` object: a loaded bundle and compiled model, shared by reference across threads.

use crate::error::SnakeIdError;
use crate::records::{BenchmarkReport, BundleInfo, Identification};
use std::path::Path;
use std::sync::Arc;

/// Build once (loading compiles the model: hundreds of milliseconds), then call from any thread.
#[derive(Debug, uniffi::Object)]
pub struct Classifier {
    inner: snakeid::Classifier,
}

/// Warm-up calls before `benchmark` starts measuring.
const BENCH_WARMUP: u32 = 3;

#[uniffi::export]
impl Classifier {
    /// Loads the default bundle compiled into the library.
    #[uniffi::constructor]
    pub fn new() -> Result<Arc<Self>, SnakeIdError> {
        Ok(Arc::new(Classifier { inner: snakeid::Classifier::embedded_default()? }))
    }

    /// Loads a bundle directory or packed `.snkb` file.
    #[uniffi::constructor]
    pub fn from_bundle_path(path: String) -> Result<Arc<Self>, SnakeIdError> {
        Ok(Arc::new(Classifier { inner: snakeid::Classifier::from_path(Path::new(&path))? }))
    }

    /// Loads a packed `.snkb` bundle from memory (e.g. read from app assets).
    #[uniffi::constructor]
    pub fn from_bundle_bytes(bytes: Vec<u8>) -> Result<Arc<Self>, SnakeIdError> {
        Ok(Arc::new(Classifier { inner: snakeid::Classifier::from_packed(&bytes)? }))
    }

    /// Loads a bundle directory or packed file and accepts it only if it is signed by one of `trusted_keys`
    /// (ed25519 public keys, 64 hex digits each, compiled into the app); otherwise `UntrustedBundle`.
    #[uniffi::constructor]
    pub fn from_bundle_path_signed(path: String, trusted_keys: Vec<String>) -> Result<Arc<Self>, SnakeIdError> {
        Ok(Arc::new(Classifier { inner: snakeid::Classifier::from_path_signed(Path::new(&path), &snakeid::PublicKey::from_hex_all(&trusted_keys)?)? }))
    }

    /// Loads a packed bundle from memory, accepted only if signed by one of `trusted_keys`.
    #[uniffi::constructor]
    pub fn from_bundle_bytes_signed(bytes: Vec<u8>, trusted_keys: Vec<String>) -> Result<Arc<Self>, SnakeIdError> {
        Ok(Arc::new(Classifier { inner: snakeid::Classifier::from_packed_signed(&bytes, &snakeid::PublicKey::from_hex_all(&trusted_keys)?)? }))
    }

    /// Identifies the snake in a JPEG, PNG or WebP photo. `country`: ISO 3166-1 alpha-2 code, English name or
    /// `unknown`; null applies no prior. `top_k`: how many species to rank.
    pub fn identify(&self, image: Vec<u8>, country: Option<String>, top_k: u32) -> Result<Identification, SnakeIdError> {
        Ok(self.inner.identify(&image, country.as_deref(), top_k as usize)?.into())
    }

    /// The bundle's name, version, species (scientific names, venom status) and known countries.
    pub fn bundle_info(&self) -> BundleInfo {
        self.inner.bundle().into()
    }

    /// Cold start, first call, per-stage p50/p90/p99 over `iterations` calls and peak RSS, on one photo.
    pub fn benchmark(&self, image: Vec<u8>, iterations: u32) -> Result<BenchmarkReport, SnakeIdError> {
        Ok(self.inner.benchmark(&image, iterations, BENCH_WARMUP)?.into())
    }
}

#[cfg(all(test, feature = "embedded-default"))]
mod tests {
    use super::*;

    #[test]
    fn wrappers_answer_like_the_core_and_map_errors() {
        let photo = snakeid_tests::photo("rocket.jpg");
        let ffi = Classifier::new().unwrap();
        let core = snakeid::Classifier::embedded_default().unwrap();
        let a = ffi.identify(photo.clone(), Some("US".into()), 5).unwrap();
        let b = core.identify(&photo, Some("US"), 5).unwrap();
        let probs = |p: &[crate::Prediction]| p.iter().map(|p| (p.class_index as usize, p.probability)).collect::<Vec<_>>();
        assert_eq!(probs(&a.predictions), b.decision.predictions.iter().map(|p| (p.class_index, p.probability)).collect::<Vec<_>>());
        assert!(matches!(ffi.identify(vec![], None, 3), Err(SnakeIdError::InvalidImage(_))));
        assert!(matches!(ffi.identify(photo, Some("Narnia".into()), 3), Err(SnakeIdError::UnknownCountry(_))));
        assert!(matches!(Classifier::from_bundle_bytes(b"nope".to_vec()), Err(SnakeIdError::InvalidBundle(_))));
        assert_eq!(ffi.bundle_info().species.len(), 17);
    }
}
