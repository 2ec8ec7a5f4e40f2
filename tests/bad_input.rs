//! Bad input of every kind gets a typed error with a one-line message: never a panic, never gigabytes of memory.

use snakeid::{Bundle, Classifier, Error};
use snakeid_tests::*;
use std::sync::OnceLock;

fn classifier() -> &'static Classifier {
    static C: OnceLock<Classifier> = OnceLock::new();
    C.get_or_init(|| Classifier::embedded_default().unwrap())
}

fn one_line(e: &Error) -> String {
    let s = e.to_string();
    assert!(!s.contains('\n') && !s.is_empty() && s.len() < 400, "not one readable line: {s:?}");
    s
}

fn expect_invalid_image(bytes: &[u8], what: &str) -> String {
    match classifier().identify(bytes, None, 3) {
        Err(e @ (Error::InvalidImage(_) | Error::ImageTooLarge(_))) => one_line(&e),
        other => panic!("{what}: expected an invalid-image error, got {other:?}"),
    }
}

/// A PNG with a valid signature and IHDR claiming `w × h`, and no pixel data.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// A JPEG whose frame header claims `w × h` (baseline SOF0), followed by nothing useful.
fn jpeg_header(w: u16, h: u16) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 8];
    out.extend_from_slice(&h.to_be_bytes());
    out.extend_from_slice(&w.to_be_bytes());
    out.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xFF, 0xD9]);
    out
}

#[test]
fn empty_random_and_truncated_photos_are_refused() {
    expect_invalid_image(b"", "empty");
    expect_invalid_image(&[0u8; 1000], "zeros");
    let mut random = 0x2545F4914F6CDD1Du64;
    let noise: Vec<u8> = (0..4096).map(|_| { random ^= random << 13; random ^= random >> 7; random ^= random << 17; random as u8 }).collect();
    expect_invalid_image(&noise, "random bytes");
    let jpg = photo("rocket.jpg");
    for cut in [3, 20, 200, jpg.len() / 2, jpg.len() - 100] {
        let msg = expect_invalid_image(&jpg[..cut], "truncated JPEG");
        eprintln!("truncated JPEG at {cut}: {msg}");
    }
    let png = photo("chelsea.png");
    expect_invalid_image(&png[..png.len() / 2], "truncated PNG");
    let webp = photo("astronaut.webp");
    expect_invalid_image(&webp[..webp.len() / 3], "truncated WebP");
    // A valid photo still works afterwards: the process stays healthy.
    classifier().identify(&png, None, 3).unwrap();
}

#[test]
fn decompression_bombs_are_refused_before_allocating() {
    let before = snakeid::bench::peak_rss_mb();
    let msg = expect_invalid_image(&png_header(100_000, 100_000), "100000x100000 PNG");
    assert!(msg.contains("too large"), "{msg}");
    let msg = expect_invalid_image(&jpeg_header(65_000, 65_000), "65000x65000 JPEG");
    assert!(msg.contains("too large"), "{msg}");
    let msg = expect_invalid_image(&png_header(30_000, 1), "30000x1 PNG");
    assert!(msg.contains("too large"), "{msg}");
    let after = snakeid::bench::peak_rss_mb();
    eprintln!("peak RSS {before:.0} MB -> {after:.0} MB");
    assert!(after < 1024.0, "peak RSS {after} MB");
}

#[test]
fn unknown_countries_are_refused_with_suggestions() {
    let png = photo("chelsea.png");
    for (bad, hint) in [("Indai", "IN (India)"), ("XX", ""), ("Brasil", "BR (Brazil)"), ("", "")] {
        match classifier().identify(&png, Some(bad), 3) {
            Err(e @ Error::UnknownCountry { .. }) => {
                let msg = one_line(&e);
                assert!(msg.contains(hint), "{bad}: {msg}");
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    // Codes and names both work, in any case; a country absent from the prior applies no prior.
    assert!(classifier().identify(&png, Some("in"), 3).unwrap().prior_applied);
    assert!(classifier().identify(&png, Some("United States"), 3).unwrap().prior_applied);
    let fr = classifier().identify(&png, Some("FR"), 3).unwrap();
    assert_eq!(fr.country.as_deref(), Some("FR"));
    assert!(!fr.prior_applied);
}

#[test]
fn wrong_and_tampered_bundles_are_refused() {
    let expect_bundle_error = |bytes: &[u8], what: &str| match Bundle::from_packed(bytes) {
        Err(e @ Error::InvalidBundle(_)) | Err(e @ Error::InvalidPrior(_)) => one_line(&e),
        other => panic!("{what}: {:?}", other.map(|b| b.manifest.name)),
    };
    let good = snakeid::bundle::DEFAULT_BUNDLE;
    expect_bundle_error(b"", "empty");
    expect_bundle_error(&photo("chelsea.png"), "a photo");
    expect_bundle_error(&good[..good.len() - 1], "truncated");
    // Flip one byte inside the model: the checksum catches it.
    let mut tampered = good.to_vec();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x01;
    let msg = expect_bundle_error(&tampered, "tampered model");
    assert!(msg.contains("checksum"), "{msg}");
    // A missing path and a directory without a manifest.
    assert!(matches!(Classifier::from_path(std::path::Path::new("/nonexistent/bundle")), Err(Error::Io { .. })));
    let dir = std::env::temp_dir().join(format!("snakeid-empty-bundle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(Classifier::from_path(&dir).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_model_that_is_not_a_classifier_is_refused_at_load() {
    // Keep the manifest and labels, but replace the model with garbage (and fix the digest so it gets that far).
    let good = Bundle::embedded_default().unwrap();
    let mut b = good.clone();
    b.model = b"not an onnx model".to_vec();
    match Classifier::new(b) {
        Err(e @ Error::InvalidBundle(_)) => eprintln!("{}", one_line(&e)),
        other => panic!("{:?}", other.map(|_| ())),
    }
}
