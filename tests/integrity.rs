//! Bundle integrity: every file is checked against its manifest digest, files the manifest does not name are
//! refused, and a signed bundle is accepted only with a valid signature from a trusted key (tampering that rewrites
//! the digests too is caught by the signature).

use snakeid::internals::signing::{SecretKey, SIGNATURE_FILE};
use snakeid::internals::{sha256_hex, DEFAULT_BUNDLE};
use snakeid::{Bundle, Classifier, Error};
use snakeid_tests::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A fresh directory holding the default bundle's files.
fn unpacked(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("snakeid-integrity-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    Bundle::unpack_to_dir(DEFAULT_BUNDLE, &dir).unwrap();
    dir
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(path).unwrap();
    f(&mut b);
    std::fs::write(path, b).unwrap();
}

/// The packed format written by hand (the library's packer verifies, and these bundles must not verify).
fn pack_raw(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = b"SNAKEIDB".to_vec();
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    for (name, data) in files {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}

fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap()))
        .collect()
}

fn invalid(r: snakeid::Result<Bundle>) -> String {
    match r {
        Err(e @ Error::InvalidBundle(_)) => e.to_string(),
        other => panic!("expected InvalidBundle, got {:?}", other.map(|b| b.manifest.name)),
    }
}

fn untrusted(r: snakeid::Result<Bundle>) -> String {
    match r {
        Err(e @ Error::Untrusted(_)) => e.to_string(),
        other => panic!("expected Untrusted, got {:?}", other.map(|b| b.manifest.name)),
    }
}

#[test]
fn every_bundle_file_is_checked_against_its_manifest_digest() {
    for file in ["model.onnx", "labels.csv", "prior.bin"] {
        let dir = unpacked(file);
        edit(&dir.join(file), |b| {
            let i = b.len() - 3;
            b[i] ^= 0x01;
        });
        let msg = invalid(Bundle::load(&dir));
        assert!(msg.contains(file) && msg.contains("checksum"), "{file}: {msg}");
        let msg = invalid(Bundle::from_packed(&pack_raw(&read_dir(&dir))));
        assert!(msg.contains(file) && msg.contains("checksum"), "{file}, packed: {msg}");
        std::fs::remove_dir_all(&dir).ok();
    }
    // A changed digest in the manifest no longer matches its file.
    let dir = unpacked("manifest");
    let labels_sha = sha256_hex(&std::fs::read(dir.join("labels.csv")).unwrap());
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    std::fs::write(dir.join("manifest.json"), manifest.replace(&labels_sha, &"0".repeat(64))).unwrap();
    assert!(invalid(Bundle::load(&dir)).contains("labels.csv fails its checksum"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn files_the_manifest_does_not_name_are_refused() {
    let dir = unpacked("extra");
    let mut files = read_dir(&dir);
    files.insert("payload.bin".into(), b"anything".to_vec());
    let msg = invalid(Bundle::from_packed(&pack_raw(&files)));
    assert!(msg.contains("payload.bin is not named in the manifest"), "{msg}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn signed_bundles_load_only_with_a_valid_signature_from_a_trusted_key() {
    let publisher = SecretKey::from_seed([42; 32]);
    let stranger = SecretKey::from_seed([43; 32]);
    let signed = Bundle::sign_packed(DEFAULT_BUNDLE, &publisher).unwrap();
    assert!(Bundle::is_signed_packed(&signed).unwrap() && !Bundle::is_signed_packed(DEFAULT_BUNDLE).unwrap());
    let trusted = [publisher.public_key()];

    // The publisher's bundle loads with the publisher's key (and without any key), and answers as before.
    let c = Classifier::from_packed_signed(&signed, &trusted).unwrap();
    let photo = photo("rocket.jpg");
    let want = Classifier::embedded_default().unwrap().identify(&photo, Some("IN"), 5).unwrap().decision.predictions;
    assert_eq!(c.identify(&photo, Some("IN"), 5).unwrap().decision.predictions, want);
    Bundle::from_packed(&signed).unwrap();
    Bundle::from_packed_signed(&signed, &[stranger.public_key(), publisher.public_key()]).unwrap();

    // Unsigned, signed by someone else, or a damaged signature: refused.
    assert!(untrusted(Bundle::from_packed_signed(DEFAULT_BUNDLE, &trusted)).contains("not signed"));
    let other = Bundle::sign_packed(DEFAULT_BUNDLE, &stranger).unwrap();
    assert!(untrusted(Bundle::from_packed_signed(&other, &trusted)).contains("does not verify"));
    assert!(untrusted(Bundle::from_packed_signed(&signed, &[])).contains("no trusted public key"));
    let mut files = {
        let dir = unpacked("sig-files");
        std::fs::write(
            dir.join(SIGNATURE_FILE),
            &publisher.sign_manifest(&std::fs::read(dir.join("manifest.json")).unwrap()),
        )
        .unwrap();
        let f = read_dir(&dir);
        std::fs::remove_dir_all(&dir).ok();
        f
    };
    Bundle::from_packed_signed(&pack_raw(&files), &trusted).unwrap();
    files.get_mut(SIGNATURE_FILE).unwrap()[5] ^= 0x80;
    untrusted(Bundle::from_packed_signed(&pack_raw(&files), &trusted));

    // The attack the digests alone cannot stop: mark the Indian cobra harmless and rewrite the manifest's digest to
    // match. The bundle is self-consistent (it loads unsigned), but the signature no longer verifies.
    let dir = unpacked("attack");
    Bundle::unpack_to_dir(&signed, &dir).unwrap();
    assert!(dir.join(SIGNATURE_FILE).is_file());
    let old_sha = sha256_hex(&std::fs::read(dir.join("labels.csv")).unwrap());
    let labels = std::fs::read_to_string(dir.join("labels.csv")).unwrap();
    let forged = labels.replace("Naja naja,Naja,Elapidae,true,true", "Naja naja,Naja,Elapidae,false,true");
    assert_ne!(forged, labels);
    std::fs::write(dir.join("labels.csv"), &forged).unwrap();
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    std::fs::write(dir.join("manifest.json"), manifest.replace(&old_sha, &sha256_hex(forged.as_bytes()))).unwrap();
    let b = Bundle::load(&dir).expect("the forgery is self-consistent");
    assert!(!b.labels.iter().find(|l| l.scientific_name == "Naja naja").unwrap().venomous);
    assert!(untrusted(Bundle::load_signed(&dir, &trusted)).contains("does not verify"));
    assert!(matches!(Classifier::from_path_signed(&dir, &trusted), Err(Error::Untrusted(_))));
    std::fs::remove_dir_all(&dir).ok();
}
