//! The pipeline on real photos: formats, EXIF orientation, DCT-domain downscaling of big JPEGs, the prior, threads.

use snakeid::internals::decode::{decode, Limits, MinSize};
use snakeid::Classifier;
use snakeid_tests::*;
use std::sync::{Arc, OnceLock};

fn classifier() -> &'static Classifier {
    static C: OnceLock<Classifier> = OnceLock::new();
    C.get_or_init(|| Classifier::embedded_default().unwrap())
}

#[test]
fn no_snake_in_photos_of_cats_coffee_and_rockets() {
    for name in ["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.webp", "squirrel_cls.jpg", "orange.jpg"] {
        let id = classifier().identify(&photo(name), None, 5).unwrap();
        let d = &id.decision;
        assert!(!d.snake_detected && d.snake_probability < 0.05, "{name}: {}", d.snake_probability);
        assert!(!d.venomous_warning, "{name}: no warning without a snake");
        assert_eq!(d.predictions.len(), 5);
        let sum: f32 = d.predictions.iter().map(|p| p.probability).sum();
        assert!(sum <= 1.0 + 1e-5 && d.predictions.windows(2).all(|w| w[0].probability >= w[1].probability));
        assert!(d.predictions.iter().all(|p| (52..=68).contains(&p.class_index)));
        let t = id.timings_ms;
        assert!(t.total >= t.decode + t.preprocess + t.inference + t.postprocess - 1e-6);
    }
}

#[test]
fn country_prior_reorders_species_as_the_formula_says() {
    let png = photo("coffee.png");
    let plain = classifier().identify(&png, None, 17).unwrap();
    let india = classifier().identify(&png, Some("IN"), 17).unwrap();
    assert!(india.prior_applied && !plain.prior_applied);
    // Recompute by hand: p'(s) ∝ p(s) · p(s|IN), from the unadjusted probabilities and the bundle's table.
    let (_, prior) = classifier().prior_for(Some("IN")).unwrap();
    let prior = prior.unwrap();
    let z: f32 = plain.decision.predictions.iter().map(|p| p.probability * prior[p.class_index]).sum();
    for p in &india.decision.predictions {
        let base = plain.decision.predictions.iter().find(|q| q.class_index == p.class_index).unwrap();
        let expected = base.probability * prior[p.class_index] / z;
        assert!((p.probability - expected).abs() < 1e-4, "{}: {} vs {expected}", p.label, p.probability);
    }
    // Naja naja is the only species of the 17 in India's range: it leads.
    assert_eq!(india.decision.predictions[0].scientific_name, "Naja naja");
}

#[test]
fn exif_orientation_is_applied() {
    // A wide image, stored with orientation 6 (rotate 90° clockwise to display): decoded tall.
    let img =
        image::RgbImage::from_fn(64, 32, |x, _| if x < 32 { image::Rgb([250, 0, 0]) } else { image::Rgb([0, 0, 250]) });
    // Ask for full size (a smaller request would let the decoder scale the JPEG down).
    let min = MinSize { width: 64, height: 64 };
    let plain = decode(&jpeg(&img, 95, None), min, &Limits::default()).unwrap();
    assert_eq!(plain.dimensions(), (64, 32));
    let rotated = decode(&jpeg(&img, 95, Some(6)), min, &Limits::default()).unwrap();
    assert_eq!(rotated.dimensions(), (32, 64));
    // Rotating clockwise puts the left (red) half on top.
    assert!(rotated.get_pixel(16, 4).0[0] > 200 && rotated.get_pixel(16, 60).0[2] > 200);
}

#[test]
fn a_12_megapixel_jpeg_is_decoded_at_an_eighth_of_its_size() {
    // A real photo upscaled to 4000x3000 and encoded as a phone would.
    let src = decode(&photo("rocket.jpg"), MinSize { width: 1, height: 1 }, &Limits::default()).unwrap();
    let big = image::imageops::resize(&src, 4000, 3000, image::imageops::FilterType::Triangle);
    let bytes = jpeg(&big, 90, None);
    let decoded = decode(&bytes, MinSize { width: 256, height: 256 }, &Limits::default()).unwrap();
    assert_eq!(decoded.dimensions(), (500, 375), "DCT scaling 1/8 keeps the shorter side >= 256");
    let c = classifier();
    let id = c.identify(&bytes, None, 3).unwrap();
    eprintln!("12 MP JPEG: {:?}", id.timings_ms);
    // The same photo decoded at full size (issue 38: this test only printed the scaled answer). Handed over as a
    // lossless PNG, which is decoded whole.
    let full = decode(&bytes, MinSize { width: 4000, height: 3000 }, &Limits::default()).unwrap();
    assert_eq!(full.dimensions(), (4000, 3000));
    let mut png = Vec::new();
    full.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let scaled = c.logits(c.preprocess(&bytes).unwrap()).unwrap();
    let whole = c.logits(c.preprocess(&png).unwrap()).unwrap();
    let max = scaled.iter().zip(&whole).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    eprintln!("12 MP JPEG: max |d logit| {max:.3} between the 1/8 DCT decode and the full decode");
    assert_eq!(argmax(&scaled), argmax(&whole), "the scaled decode changes the top class");
    // Measured: 1.379 (rocket.jpg at 4000x3000; the 1/8 DCT decode is not the full decode resampled).
    assert!(max < 2.0, "the scaled decode moves a logit by {max}");
    let id_full = c.identify(&png, None, 3).unwrap();
    assert_eq!(id.decision.snake_verdict, id_full.decision.snake_verdict);
}

#[test]
fn one_classifier_serves_many_threads_with_identical_answers() {
    let c = Arc::new(Classifier::embedded_default().unwrap());
    let photos = ["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.webp"];
    let expected: Vec<_> = photos.iter().map(|p| c.identify(&photo(p), Some("US"), 5).unwrap().decision).collect();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                (0..3)
                    .map(|i| c.identify(&photo(photos[(t + i) % 4]), Some("US"), 5).unwrap().decision)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for (t, h) in handles.into_iter().enumerate() {
        for (i, d) in h.join().unwrap().into_iter().enumerate() {
            assert_eq!(d, expected[(t + i) % 4]);
        }
    }
}
