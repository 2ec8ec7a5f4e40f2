//! Bundle signatures: an ed25519 signature over `manifest.json` (which holds the SHA-256 of every other file), so an
//! app holding the publisher's public key can refuse a bundle that anyone else made or changed.
//!
//! The signature is the file `signature.ed25519` (64 bytes) of a bundle directory or packed bundle, over the bytes
//! `snakeid-bundle-signature-v1\n` followed by `manifest.json` exactly as stored. Keys travel as 64 hex digits.

use crate::error::{Error, Result};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

/// The bundle file that holds the signature.
pub const SIGNATURE_FILE: &str = "signature.ed25519";
const CONTEXT: &[u8] = b"snakeid-bundle-signature-v1\n";

/// A publisher's public key, the one an app compiles in to accept only that publisher's bundles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::Untrusted(format!("a public key is 32 bytes, this one is {}", bytes.len())))?;
        VerifyingKey::from_bytes(&arr)
            .map(PublicKey)
            .map_err(|_| Error::Untrusted("not a valid ed25519 public key".into()))
    }

    /// From 64 hex digits.
    pub fn from_hex(hex: &str) -> Result<Self> {
        Self::from_bytes(
            &from_hex(hex.trim())
                .ok_or_else(|| Error::Untrusted(format!("public key {hex:?} is not 64 hex digits")))?,
        )
    }

    pub fn to_hex(&self) -> String {
        to_hex(self.0.as_bytes())
    }

    /// Several keys from hex (as the CLI's `--trusted-key` and the FFI's signed constructors take them).
    pub fn from_hex_all<S: AsRef<str>>(hex: &[S]) -> Result<Vec<Self>> {
        hex.iter().map(|k| Self::from_hex(k.as_ref())).collect()
    }
}

/// A publisher's secret key (kept by whoever builds bundles, never shipped).
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// From a 32-byte seed (e.g. from the OS's random source).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SecretKey(SigningKey::from_bytes(&seed))
    }

    /// From 64 hex digits (the seed).
    pub fn from_hex(hex: &str) -> Result<Self> {
        let seed: [u8; 32] = from_hex(hex.trim())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::Untrusted("a secret key is 64 hex digits".into()))?;
        Ok(Self::from_seed(seed))
    }

    pub fn to_hex(&self) -> String {
        to_hex(self.0.as_bytes())
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The signature file's contents for this manifest.
    pub fn sign_manifest(&self, manifest: &[u8]) -> Vec<u8> {
        self.0.sign(&message(manifest)).to_bytes().to_vec()
    }
}

/// Checks that `signature` (the signature file, if the bundle has one) signs `manifest` with one of `trusted`.
pub fn verify_manifest(manifest: &[u8], signature: Option<&[u8]>, trusted: &[PublicKey]) -> Result<()> {
    if trusted.is_empty() {
        return Err(Error::Untrusted("no trusted public key was given to check the signature against".into()));
    }
    let sig =
        signature.ok_or_else(|| Error::Untrusted(format!("the bundle is not signed (it has no {SIGNATURE_FILE})")))?;
    let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| {
        Error::Untrusted(format!("{SIGNATURE_FILE} is {} bytes, not a 64-byte ed25519 signature", sig.len()))
    })?;
    let msg = message(manifest);
    if trusted.iter().any(|k| k.0.verify_strict(&msg, &sig).is_ok()) {
        Ok(())
    } else {
        Err(Error::Untrusted("the bundle's signature does not verify with any trusted key: modified after signing, or signed by someone else".into()))
    }
}

fn message(manifest: &[u8]) -> Vec<u8> {
    [CONTEXT, manifest].concat()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify_and_every_way_to_fail() {
        let key = SecretKey::from_seed([7; 32]);
        let other = SecretKey::from_seed([8; 32]);
        let manifest = br#"{"format":"snakeid-bundle"}"#;
        let sig = key.sign_manifest(manifest);
        let pk = key.public_key();
        assert_eq!(PublicKey::from_hex(&pk.to_hex()).unwrap(), pk);
        assert_eq!(SecretKey::from_hex(&key.to_hex()).unwrap().public_key(), pk);
        verify_manifest(manifest, Some(&sig), &[other.public_key(), pk]).unwrap();
        let untrusted = |r: Result<()>| matches!(r, Err(Error::Untrusted(_)));
        assert!(untrusted(verify_manifest(manifest, Some(&sig), &[other.public_key()])));
        assert!(untrusted(verify_manifest(b"{\"format\":\"snakeid-bundlf\"}", Some(&sig), &[pk])));
        assert!(untrusted(verify_manifest(manifest, None, &[pk])));
        assert!(untrusted(verify_manifest(manifest, Some(&sig[..63]), &[pk])));
        assert!(untrusted(verify_manifest(manifest, Some(&sig), &[])));
        let mut flipped = sig.clone();
        flipped[10] ^= 1;
        assert!(untrusted(verify_manifest(manifest, Some(&flipped), &[pk])));
        // The signature covers the context too: a signature over the bare manifest does not verify.
        let bare = key.0.sign(manifest).to_bytes();
        assert!(untrusted(verify_manifest(manifest, Some(&bare), &[pk])));
        for bad in ["", "zz", &pk.to_hex()[..62], &"g".repeat(64)] {
            assert!(PublicKey::from_hex(bad).is_err(), "{bad}");
        }
    }
}
