//! The core's one error type: every failure of bundle loading, decoding, inference or the prior.

use std::path::PathBuf;

/// Everything that can go wrong in the engine. Each variant renders as one readable line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// The bytes are not a photo we can decode (format unknown, corrupt or truncated data).
    #[error("invalid image: {0}")]
    InvalidImage(String),

    /// The photo is larger than the limits allow; refused before any pixel buffer is allocated.
    #[error("image too large: {0}")]
    ImageTooLarge(String),

    /// The bundle is malformed, incomplete, inconsistent or fails its checksums.
    #[error("invalid bundle: {0}")]
    InvalidBundle(String),

    /// A signed bundle was required and this one is unsigned, signed by an untrusted key or changed after signing.
    #[error("untrusted bundle: {0}")]
    Untrusted(String),

    /// The species-by-country prior table is malformed.
    #[error("invalid prior table: {0}")]
    InvalidPrior(String),

    /// A country code or name that we do not know; `suggestions` holds close matches.
    #[error("unknown country {input:?}{}", suggestion_text(suggestions))]
    UnknownCountry { input: String, suggestions: Vec<String> },

    /// A position that is not one (latitude or longitude out of range, or not a number).
    #[error("invalid location: {0}")]
    InvalidLocation(String),

    /// The model could not be compiled or run by the inference backend.
    #[error("inference backend: {0}")]
    Backend(String),

    /// A bug: an invariant of ours did not hold (or a dependency panicked).
    #[error("internal error: {0}")]
    Internal(String),
}

fn suggestion_text(s: &[String]) -> String {
    if s.is_empty() {
        " (use an ISO 3166-1 alpha-2 code such as IN, US, BR, or an English country name)".into()
    } else {
        format!(" (did you mean {}?)", s.join(", "))
    }
}

impl Error {
    /// A stable machine-readable name for the variant, as the CLI's `--json` and the web app report it:
    /// `io`, `invalid_image`, `invalid_bundle`, `untrusted_bundle`, `unknown_country`, `backend`, `internal`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::InvalidImage(_) | Error::ImageTooLarge(_) => "invalid_image",
            Error::InvalidBundle(_) | Error::InvalidPrior(_) => "invalid_bundle",
            Error::Untrusted(_) => "untrusted_bundle",
            Error::UnknownCountry { .. } => "unknown_country",
            Error::InvalidLocation(_) => "invalid_location",
            Error::Backend(_) => "backend",
            Error::Internal(_) => "internal",
        }
    }

    pub(crate) fn bundle(msg: impl Into<String>) -> Self {
        Error::InvalidBundle(msg.into())
    }
    pub(crate) fn image(msg: impl Into<String>) -> Self {
        Error::InvalidImage(msg.into())
    }
    pub(crate) fn prior(msg: impl Into<String>) -> Self {
        Error::InvalidPrior(msg.into())
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
