//! The one error enum across the FFI; each variant carries the core's one-line message.

/// Why a call failed. In Kotlin `SnakeIdException.InvalidImage` etc., in Swift `SnakeIdError.InvalidImage`,
/// in Python `SnakeIdError.InvalidImage`; the message is the readable one-line reason.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum SnakeIdError {
    /// Not a photo we can decode (corrupt, truncated, unknown format) or larger than the limits allow.
    #[error("{0}")]
    InvalidImage(String),
    /// The bundle is missing, unreadable, malformed, inconsistent or fails its checksums.
    #[error("{0}")]
    InvalidBundle(String),
    /// A signed bundle was required and this one is unsigned, signed by another key or changed after signing.
    #[error("{0}")]
    UntrustedBundle(String),
    /// A country code or name we do not know; the message lists close matches.
    #[error("{0}")]
    UnknownCountry(String),
    /// A location that is not a position (latitude outside [-90, 90], longitude outside [-180, 180]).
    #[error("{0}")]
    InvalidLocation(String),
    /// The inference backend could not compile or run the model.
    #[error("{0}")]
    Backend(String),
    /// A bug on our side (including a caught panic); the classifier stays usable.
    #[error("{0}")]
    Internal(String),
}

impl From<snakeid::Error> for SnakeIdError {
    fn from(e: snakeid::Error) -> Self {
        use snakeid::Error as E;
        let msg = e.to_string();
        match e {
            E::InvalidImage(_) | E::ImageTooLarge(_) => SnakeIdError::InvalidImage(msg),
            E::Io { .. } | E::InvalidBundle(_) | E::InvalidPrior(_) => SnakeIdError::InvalidBundle(msg),
            E::Untrusted(_) => SnakeIdError::UntrustedBundle(msg),
            E::UnknownCountry { .. } => SnakeIdError::UnknownCountry(msg),
            E::InvalidLocation(_) => SnakeIdError::InvalidLocation(msg),
            E::Backend(_) => SnakeIdError::Backend(msg),
            E::Internal(_) => SnakeIdError::Internal(msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_error_maps_to_its_ffi_variant_with_the_same_message() {
        use snakeid::Error as E;
        let io = E::Io { path: "/x".into(), source: std::io::Error::other("gone") };
        let cases = [
            (E::InvalidImage("bad".into()), "InvalidImage"),
            (E::ImageTooLarge("huge".into()), "InvalidImage"),
            (io, "InvalidBundle"),
            (E::InvalidBundle("b".into()), "InvalidBundle"),
            (E::InvalidPrior("p".into()), "InvalidBundle"),
            (E::Untrusted("u".into()), "UntrustedBundle"),
            (E::UnknownCountry { input: "Indai".into(), suggestions: vec!["IN (India)".into()] }, "UnknownCountry"),
            (E::InvalidLocation("l".into()), "InvalidLocation"),
            (E::Backend("t".into()), "Backend"),
            (E::Internal("i".into()), "Internal"),
        ];
        for (core, variant) in cases {
            let msg = core.to_string();
            let ffi = SnakeIdError::from(core);
            assert!(format!("{ffi:?}").starts_with(variant), "{ffi:?}");
            assert_eq!(ffi.to_string(), msg);
        }
    }
}
