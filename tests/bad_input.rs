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

#[test]
fn empty_random_and_truncated_photos_are_refused() {
    expect_invalid_image(b"", "empty");
    expect_invalid_image(&[0u8; 1000], "zeros");
    let mut random = 0x2545F4914F6CDD1Du64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            random as u8
        })
        .collect();
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
    let good = snakeid::internals::DEFAULT_BUNDLE;
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
    b.model = b"not an onnx model".to_vec().into();
    match Classifier::new(b) {
        Err(e @ Error::InvalidBundle(_)) => eprintln!("{}", one_line(&e)),
        other => panic!("{:?}", other.map(|_| ())),
    }
}
