//! Resource limits, one test each: photo bytes, photo side, photo pixels, bundle bytes, country input length; each
//! is refused with a typed one-line error before anything large is allocated (peak RSS checked), and the memory one
//! accepted call costs is bounded. Tests that read peak RSS run one at a time (`SERIAL`), resetting the peak first.

use snakeid::internals::bench::peak_rss_mb;
use snakeid::{Bundle, Classifier, Error, Limits};
use snakeid_tests::*;
use std::sync::{Mutex, OnceLock};

static SERIAL: Mutex<()> = Mutex::new(());

fn classifier() -> &'static Classifier {
    static C: OnceLock<Classifier> = OnceLock::new();
    C.get_or_init(|| Classifier::embedded_default().unwrap())
}

/// Resets the process's peak RSS to its current RSS (Linux: `clear_refs` 5) and returns it.
fn reset_peak() -> f64 {
    std::fs::write("/proc/self/clear_refs", "5").expect("Linux clear_refs");
    peak_rss_mb()
}

/// Runs `f` and returns how far peak RSS rose above where it was when `f` started, in MB.
fn peak_growth<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let base = reset_peak();
    let out = f();
    (out, peak_rss_mb() - base)
}

fn too_large(r: snakeid::Result<snakeid::Identification>, what: &str) -> String {
    match r {
        Err(e @ Error::ImageTooLarge(_)) => {
            let s = e.to_string();
            assert!(!s.contains('\n') && s.len() < 300, "{what}: {s}");
            s
        }
        other => panic!("{what}: expected ImageTooLarge, got {:?}", other.map(|a| a.decision.predictions.len())),
    }
}

#[test]
fn photo_bytes_limit() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let jpeg = photo("rocket.jpg");
    let small = Classifier::embedded_default()
        .unwrap()
        .with_limits(Limits { max_bytes: jpeg.len() as u64 - 1, ..Limits::default() });
    let msg = too_large(small.identify(&jpeg, None, 3), "one byte over");
    assert!(msg.contains("bytes"), "{msg}");
    let exact = Classifier::embedded_default()
        .unwrap()
        .with_limits(Limits { max_bytes: jpeg.len() as u64, ..Limits::default() });
    exact.identify(&jpeg, None, 3).expect("exactly at the limit is accepted");
    // The default: 64 MB.
    let mut big = jpeg.clone();
    big.resize((64 << 20) + 1, 0);
    let (r, grew) = peak_growth(|| classifier().identify(&big, None, 3));
    too_large(r, "64 MB + 1");
    assert!(grew < 16.0, "refusing a 64 MB file raised peak RSS by {grew:.0} MB");
}

#[test]
fn photo_side_limit() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let side = Limits::default().max_side as u32;
    for (w, h) in [(side + 1, 1), (1, side + 1), (100_000, 100_000)] {
        let (r, grew) = peak_growth(|| classifier().identify(&png_header(w, h), None, 3));
        let msg = too_large(r, &format!("{w}x{h} PNG"));
        assert!(msg.contains("a side"), "{msg}");
        assert!(grew < 16.0, "{w}x{h}: peak RSS +{grew:.0} MB");
    }
    let (r, _) = peak_growth(|| classifier().identify(&jpeg_header(65_000, 10), None, 3));
    too_large(r, "65000x10 JPEG");
    // At the limit the header passes and the (absent) pixel data is what fails.
    match classifier().identify(&png_header(side, 1), None, 3) {
        Err(Error::InvalidImage(_)) => {}
        other => panic!("{side}x1 PNG header without data: {:?}", other.map(|_| ())),
    }
}

#[test]
fn photo_pixel_limit() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let l = Limits::default();
    // Both sides allowed, their product not: 15000 x 15000 = 225 MP.
    assert!(15_000 <= l.max_side && 15_000u64 * 15_000 > l.max_pixels);
    for bytes in [png_header(15_000, 15_000), jpeg_header(15_000, 15_000)] {
        let (r, grew) = peak_growth(|| classifier().identify(&bytes, None, 3));
        let msg = too_large(r, "15000x15000");
        assert!(msg.contains("pixels in all"), "{msg}");
        assert!(grew < 16.0, "peak RSS +{grew:.0} MB");
    }
    let tight =
        Classifier::embedded_default().unwrap().with_limits(Limits { max_pixels: 451 * 300 - 1, ..Limits::default() });
    too_large(tight.identify(&photo("chelsea.png"), None, 3), "451x300 with one pixel too few allowed");
}

#[test]
fn memory_of_one_accepted_call_is_bounded() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let src = image::load_from_memory(&photo("rocket.jpg")).unwrap().to_rgb8();
    let big = image::imageops::resize(&src, 4000, 3000, image::imageops::FilterType::Triangle);
    let jpeg12 = jpeg(&big, 90, None);
    let mut png24 = Vec::new();
    image::imageops::resize(&src, 6000, 4000, image::imageops::FilterType::Nearest)
        .write_to(&mut std::io::Cursor::new(&mut png24), image::ImageFormat::Png)
        .unwrap();
    drop(big);
    classifier().identify(&photo("rocket.jpg"), None, 3).unwrap(); // warm: plan and scratch space exist
                                                                   // A 12 MP JPEG is decoded at 1/8 scale in the DCT domain: the full image never exists.
    let (r, jpeg_mb) = peak_growth(|| classifier().identify(&jpeg12, None, 3));
    r.unwrap();
    // A PNG has no such shortcut: its decoded pixels (3 bytes each, 72 MB here) are the bulk of a call.
    let (r, png_mb) = peak_growth(|| classifier().identify(&png24, None, 3));
    r.unwrap();
    eprintln!("peak RSS per call: 12 MP JPEG +{jpeg_mb:.1} MB, 24 MP PNG +{png_mb:.1} MB");
    assert!(jpeg_mb < 24.0, "12 MP JPEG: +{jpeg_mb:.1} MB");
    let decoded = 6000.0 * 4000.0 * 3.0 / (1 << 20) as f64;
    assert!(png_mb < decoded * 1.5 + 16.0, "24 MP PNG: +{png_mb:.1} MB for {decoded:.0} MB of pixels");
}

#[test]
fn bundle_bytes_limit() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // A sparse file one byte over the limit: refused from its size, never read.
    let path = std::env::temp_dir().join(format!("snakeid-huge-{}.snkb", std::process::id()));
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(snakeid::internals::MAX_BUNDLE_BYTES + 1).unwrap();
    let (r, grew) = peak_growth(|| Bundle::load(&path));
    std::fs::remove_file(&path).ok();
    match r {
        Err(e @ Error::InvalidBundle(_)) => assert!(e.to_string().contains("more than the"), "{e}"),
        other => panic!("{:?}", other.map(|b| b.manifest.name)),
    }
    assert!(grew < 16.0, "peak RSS +{grew:.0} MB");
}

#[test]
fn country_input_length_limit() {
    let long = "x".repeat(snakeid::internals::countries::MAX_INPUT + 1);
    match classifier().identify(&photo("rocket.jpg"), Some(&long), 3) {
        Err(e @ Error::UnknownCountry { .. }) => assert!(e.to_string().contains("65 bytes"), "{e}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}
