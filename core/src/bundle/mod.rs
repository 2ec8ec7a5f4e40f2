//! Bundles: a model with its manifest, labels and prior, loaded from a directory, a packed file or the binary itself.
//!
//! Packed layout (little endian): `SNAKEIDB`, u16 version, u16 entry count, then per entry
//! u16 name length, name (UTF-8), u64 data length, data. Every file is checked against the
//! SHA-256 the manifest gives for it, a file the manifest does not name is refused, and the pieces are checked
//! against each other. A bundle may carry a signature over its manifest ([`crate::bundle::signing`]); the `*_signed`
//! loaders require one from a trusted key.

pub mod countries;
mod info;
pub mod labels;
pub mod manifest;
pub mod prior;
pub mod signing;

use crate::bundle::manifest::Manifest;
use crate::bundle::prior::PriorTable;
use crate::error::{Error, Result};
use bytes::Bytes;
pub use info::BundleInfo;
use labels::Label;
use sha2::{Digest, Sha256};
use signing::{PublicKey, SIGNATURE_FILE};
use std::collections::BTreeMap;
use std::path::Path;

const MAGIC: &[u8; 8] = b"SNAKEIDB";
const VERSION: u16 = 1;
const MAX_ENTRIES: usize = 16;
/// Largest bundle accepted, so a wrong path cannot make us read gigabytes.
pub const MAX_BUNDLE_BYTES: u64 = 1 << 30;

/// The default bundle, compiled into the binary: MobileNetV2 int8, 17 snake species (see `models/`).
#[cfg(feature = "embedded-default")]
pub static DEFAULT_BUNDLE: &[u8] = include_bytes!("../../../models/default/snakeid-default.snkb");

/// A verified bundle, ready to be compiled into a [`crate::Classifier`].
#[derive(Debug, Clone)]
pub struct Bundle {
    pub manifest: Manifest,
    pub labels: Vec<Label>,
    pub prior: Option<PriorTable>,
    /// The ONNX file. Shares the packed bundle's memory (the binary's own, for the embedded bundle): no copy.
    pub model: Bytes,
    /// For each output class, its column in the prior table (snake classes only).
    pub(crate) prior_columns: Vec<Option<usize>>,
}

impl Bundle {
    /// The bundle embedded in the binary.
    ///
    /// Its checksums are not recomputed (a SHA-256 over the model at every start): the bundle is part of the
    /// binary, which nothing inside the binary can vouch for; a test checks them against the manifest instead.
    pub fn embedded_default() -> Result<Self> {
        Self::from_files_checked(unpack(&Bytes::from_static(Self::embedded_default_bytes()?))?, None, false)
    }

    /// The packed bytes of the embedded bundle.
    pub fn embedded_default_bytes() -> Result<&'static [u8]> {
        #[cfg(feature = "embedded-default")]
        return Ok(DEFAULT_BUNDLE);
        #[cfg(not(feature = "embedded-default"))]
        Err(Error::bundle(
            "this build has no embedded default bundle (feature `embedded-default` is off): pass a bundle path",
        ))
    }

    /// Loads a bundle directory or packed bundle file.
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_files(read_files(path)?, None)
    }

    /// Loads a bundle directory or packed file and requires its signature to verify with one of `trusted`.
    pub fn load_signed(path: &Path, trusted: &[PublicKey]) -> Result<Self> {
        Self::from_files(read_files(path)?, Some(trusted))
    }

    /// Parses a packed bundle.
    pub fn from_packed(bytes: &[u8]) -> Result<Self> {
        Self::from_files(unpack_copy(bytes)?, None)
    }

    /// Parses a packed bundle and requires its signature to verify with one of `trusted`.
    pub fn from_packed_signed(bytes: &[u8], trusted: &[PublicKey]) -> Result<Self> {
        Self::from_files(unpack_copy(bytes)?, Some(trusted))
    }

    fn from_files(files: BTreeMap<String, Bytes>, trusted: Option<&[PublicKey]>) -> Result<Self> {
        Self::from_files_checked(files, trusted, true)
    }

    /// As [`Bundle::from_files`]; `checksums: false` skips the SHA-256 of each file (for the embedded bundle only).
    fn from_files_checked(
        mut files: BTreeMap<String, Bytes>,
        trusted: Option<&[PublicKey]>,
        checksums: bool,
    ) -> Result<Self> {
        let manifest_bytes = files.remove("manifest.json").ok_or_else(|| Error::bundle("manifest.json is missing"))?;
        let signature = files.remove(SIGNATURE_FILE);
        // The signature first: an untrusted manifest is not even parsed.
        if let Some(trusted) = trusted {
            signing::verify_manifest(&manifest_bytes, signature.as_deref(), trusted)?;
        }
        let manifest = Manifest::parse(&manifest_bytes)?;
        let mut take = |name: &str, sha: &str| -> Result<Bytes> {
            let data = files.remove(name).ok_or_else(|| Error::bundle(format!("{name} is missing")))?;
            if !checksums {
                return Ok(data);
            }
            let got = sha256_hex(&data);
            if !got.eq_ignore_ascii_case(sha) {
                return Err(Error::bundle(format!(
                    "{name} fails its checksum (manifest {sha}, file {got}): tampered or corrupt"
                )));
            }
            Ok(data)
        };
        let model = take(&manifest.model.file, &manifest.model.sha256)?;
        let labels = labels::parse(&take(&manifest.labels.file, &manifest.labels.sha256)?)?;
        let prior = match &manifest.prior {
            Some(p) => Some(PriorTable::from_bytes(&take(&p.file, &p.sha256)?)?),
            None => None,
        };
        if let Some(extra) = files.keys().next() {
            return Err(Error::bundle(format!(
                "{extra} is not named in the manifest (a bundle holds only the files it lists)"
            )));
        }
        if labels.len() != manifest.model.num_classes {
            return Err(Error::bundle(format!(
                "labels.csv has {} classes but the model outputs {}",
                labels.len(),
                manifest.model.num_classes
            )));
        }
        if let Some(&c) = manifest.decision.lookalike_classes.iter().find(|&&c| labels[c].is_snake) {
            return Err(Error::bundle(format!("decision.lookalike_classes: class {c} is a snake, not a look-alike")));
        }
        let prior_columns = match &prior {
            None => vec![None; labels.len()],
            Some(p) => {
                let index: BTreeMap<&str, usize> =
                    p.species().iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
                let mut cols = Vec::with_capacity(labels.len());
                for l in &labels {
                    cols.push(if l.is_snake {
                        let key = l.species_key();
                        Some(*index.get(key.as_str()).ok_or_else(|| {
                            Error::bundle(format!(
                                "species {:?} (class {}) is missing from the prior table",
                                l.scientific_name, l.class_index
                            ))
                        })?)
                    } else {
                        None
                    });
                }
                cols
            }
        };
        Ok(Bundle { manifest, labels, prior, model, prior_columns })
    }

    /// Packs a bundle directory into the single-file form, verifying it first.
    pub fn pack_dir(dir: &Path) -> Result<Vec<u8>> {
        Ok(Self::pack_files(read_dir_files(dir)?)?.1)
    }

    /// Packs in-memory bundle files (`manifest.json`, the files it names and the signature if there is one) into
    /// the single-file form and verifies them as [`Bundle::from_packed`] would; returns the verified bundle and the
    /// packed bytes.
    pub fn pack_files(files: BTreeMap<String, Vec<u8>>) -> Result<(Self, Vec<u8>)> {
        let manifest_bytes = files.get("manifest.json").ok_or_else(|| Error::bundle("manifest.json is missing"))?;
        let mut names = file_names(&Manifest::parse(manifest_bytes)?);
        names.extend(files.contains_key(SIGNATURE_FILE).then(|| SIGNATURE_FILE.to_string()));
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(names.len() as u16).to_le_bytes());
        for name in names {
            let data = files.get(&name).ok_or_else(|| Error::bundle(format!("{name} is missing")))?;
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(data.len() as u64).to_le_bytes());
            out.extend_from_slice(data);
        }
        Ok((Self::from_files(files.into_iter().map(|(name, data)| (name, Bytes::from(data))).collect(), None)?, out))
    }

    /// Writes the files of a packed bundle into `dir` (created if missing), after verifying them.
    pub fn unpack_to_dir(bytes: &[u8], dir: &Path) -> Result<()> {
        Self::from_packed(bytes)?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for (name, data) in unpack_copy(bytes)? {
            let path = dir.join(&name);
            std::fs::write(&path, data).map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }

    /// Signs packed bundle bytes: verifies them, then returns them packed again with `signature.ed25519` (replacing any
    /// earlier signature) over their manifest.
    pub fn sign_packed(bytes: &[u8], key: &signing::SecretKey) -> Result<Vec<u8>> {
        let mut files = owned_files(bytes)?;
        let manifest = files.get("manifest.json").ok_or_else(|| Error::bundle("manifest.json is missing"))?;
        let signature = key.sign_manifest(manifest);
        files.insert(SIGNATURE_FILE.to_string(), signature);
        Ok(Self::pack_files(files)?.1)
    }

    /// Packed bundle bytes with their manifest changed by `edit` (e.g. a fitted temperature), verified again. Any
    /// signature is dropped: it vouched for the old manifest, and only the key's owner can vouch for the new one.
    pub fn repack_with_manifest(bytes: &[u8], edit: impl FnOnce(&mut Manifest)) -> Result<Vec<u8>> {
        let mut files = owned_files(bytes)?;
        files.remove(SIGNATURE_FILE);
        let manifest_bytes = files.get("manifest.json").ok_or_else(|| Error::bundle("manifest.json is missing"))?;
        let mut manifest = Manifest::parse(manifest_bytes)?;
        edit(&mut manifest);
        manifest.validate()?;
        files.insert("manifest.json".to_string(), serde_json::to_vec_pretty(&manifest).expect("manifest serialises"));
        Ok(Self::pack_files(files)?.1)
    }

    /// Whether packed bundle bytes carry a signature (not whether it verifies: see [`Bundle::from_packed_signed`]).
    pub fn is_signed_packed(bytes: &[u8]) -> Result<bool> {
        Ok(unpack_copy(bytes)?.contains_key(SIGNATURE_FILE))
    }

    /// Species of the bundle (snake classes only), in class order.
    pub fn species(&self) -> impl Iterator<Item = &Label> {
        self.labels.iter().filter(|l| l.is_snake)
    }

    /// This bundle as a [`BundleInfo`].
    pub fn info(&self) -> BundleInfo {
        let m = &self.manifest;
        BundleInfo {
            name: m.name.clone(),
            version: m.version.clone(),
            description: m.description.clone(),
            num_classes: m.model.num_classes,
            input_width: m.input.width,
            input_height: m.input.height,
            species: self.species().cloned().collect(),
            countries: self.prior.iter().flat_map(|p| p.countries()).map(str::to_string).collect(),
        }
    }
}

/// The files of a bundle directory or packed file.
fn read_files(path: &Path) -> Result<BTreeMap<String, Bytes>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        Ok(read_dir_files(path)?.into_iter().map(|(name, data)| (name, Bytes::from(data))).collect())
    } else {
        unpack(&Bytes::from(read_limited(path)?))
    }
}

/// `manifest.json`, the files it names and the signature, if the directory has one.
fn read_dir_files(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let manifest = Manifest::parse(&read_limited(&dir.join("manifest.json"))?)?;
    let mut files = BTreeMap::new();
    for name in file_names(&manifest) {
        files.insert(name.clone(), read_limited(&dir.join(&name))?);
    }
    let sig = dir.join(SIGNATURE_FILE);
    if sig.is_file() {
        files.insert(SIGNATURE_FILE.to_string(), read_limited(&sig)?);
    }
    Ok(files)
}

/// Every file of a bundle, manifest first.
fn file_names(m: &Manifest) -> Vec<String> {
    let mut names = vec!["manifest.json".to_string(), m.model.file.clone(), m.labels.file.clone()];
    names.extend(m.prior.as_ref().map(|p| p.file.clone()));
    names
}

/// The entries of packed bundle bytes the caller keeps: one copy, which the entries share.
/// The files of packed bundle bytes, each its own `Vec`, to edit and pack again.
fn owned_files(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>> {
    Ok(unpack_copy(bytes)?.into_iter().map(|(name, data)| (name, data.to_vec())).collect())
}

fn unpack_copy(bytes: &[u8]) -> Result<BTreeMap<String, Bytes>> {
    unpack(&Bytes::copy_from_slice(bytes))
}

/// The entries of a packed bundle, each a view of `bytes` (no copy).
fn unpack(bytes: &Bytes) -> Result<BTreeMap<String, Bytes>> {
    let bad = |what: &str| Error::bundle(format!("not a valid packed bundle: {what}"));
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(bad("bad magic (expected a snakeid bundle file or directory)"));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != VERSION {
        return Err(bad(&format!("unsupported version {version}")));
    }
    let count = u16::from_le_bytes([bytes[10], bytes[11]]) as usize;
    if count == 0 || count > MAX_ENTRIES {
        return Err(bad(&format!("{count} entries")));
    }
    let mut pos = 12usize;
    let mut take = |n: u64| -> Result<Bytes> {
        let n = usize::try_from(n).map_err(|_| bad("entry too large"))?;
        let end = pos.checked_add(n).filter(|&e| e <= bytes.len()).ok_or_else(|| bad("truncated"))?;
        let s = bytes.slice(pos..end);
        pos = end;
        Ok(s)
    };
    let mut files = BTreeMap::new();
    for _ in 0..count {
        let n = take(2)?;
        let name_len = u16::from_le_bytes([n[0], n[1]]) as u64;
        let name = std::str::from_utf8(&take(name_len)?).map_err(|_| bad("entry name is not UTF-8"))?.to_string();
        let l = take(8)?;
        let len = u64::from_le_bytes(<[u8; 8]>::try_from(&l[..]).expect("8 bytes"));
        let data = take(len)?;
        if files.insert(name.clone(), data).is_some() {
            return Err(bad(&format!("{name} appears twice")));
        }
    }
    if pos != bytes.len() {
        return Err(bad("trailing bytes"));
    }
    Ok(files)
}

fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > MAX_BUNDLE_BYTES {
        return Err(Error::bundle(format!(
            "{} is {} bytes, more than the {MAX_BUNDLE_BYTES} allowed",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Lower-case hex SHA-256, as written in manifests.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(all(test, feature = "embedded-default"))]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_loads_and_is_consistent() {
        // The checksums the embedded loader skips: every file matches its manifest entry.
        Bundle::from_packed(DEFAULT_BUNDLE).unwrap();
        let b = Bundle::embedded_default().unwrap();
        assert_eq!(b.labels.len(), b.manifest.model.num_classes);
        assert!(b.species().count() >= 17);
        assert!(b.prior.is_some());
    }

    #[test]
    fn every_truncation_and_bit_flip_of_the_header_is_an_error() {
        let bytes = DEFAULT_BUNDLE;
        for cut in [0, 7, 8, 11, 12, 13, 40, bytes.len() / 2, bytes.len() - 1] {
            assert!(Bundle::from_packed(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut tampered = bytes.to_vec();
        let last = tampered.len() - 100;
        tampered[last] ^= 0x40;
        let e = Bundle::from_packed(&tampered).unwrap_err().to_string();
        assert!(e.contains("checksum") || e.contains("invalid"), "{e}");
    }
}
