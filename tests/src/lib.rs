//! Shared helpers for the integration tests: paths to committed data, test-photo makers.

use std::path::{Path, PathBuf};

/// `tests/data`.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// `../shared/data` beside the project root: the real photos and tables that may not be committed (their README
/// says why). Present for every developer and for CI: a test that needs it fails when it is missing, never skips.
pub fn shared_data() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    assert!(dir.is_dir(), "{} is missing: the real photos live in ../shared/data beside the project", dir.display());
    dir
}

pub fn photo(name: &str) -> Vec<u8> {
    std::fs::read(data_dir().join("photos").join(name)).expect("committed test photo")
}

/// The committed onnxruntime goldens (`models/make_default_bundle.py` writes them).
pub fn golden() -> serde_json::Value {
    let text = std::fs::read_to_string(data_dir().join("golden/golden.json")).expect("golden.json");
    serde_json::from_str(&text).expect("golden.json parses")
}

pub fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .expect("golden input")
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

/// Encodes an RGB image as JPEG, optionally inserting an EXIF APP1 segment with the given orientation tag.
pub fn jpeg(img: &image::RgbImage, quality: u8, exif_orientation: Option<u16>) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(img).expect("encode");
    if let Some(o) = exif_orientation {
        // TIFF header (little endian), one IFD entry: tag 0x0112 Orientation, SHORT, count 1, value o.
        let mut tiff = b"II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0".to_vec();
        tiff.extend_from_slice(&o.to_le_bytes());
        tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let len = (app1.len() + 2) as u16;
        let mut seg = vec![0xFF, 0xE1];
        seg.extend_from_slice(&len.to_be_bytes());
        seg.extend_from_slice(&app1);
        out.splice(2..2, seg);
    }
    out
}

/// `jpeg` with an EXIF APP1 segment, right after SOI, holding only a GPS position (as a phone's camera writes one).
pub fn with_gps(jpeg: &[u8], latitude: f64, longitude: f64) -> Vec<u8> {
    // TIFF (little endian): IFD0 at 8 with one entry, the GPS IFD pointer (0x8825) to 26; the GPS IFD's four entries
    // (N/S, latitude, E/W, longitude); the two triples of RATIONALs (degrees, minutes, seconds x 1000) at 80 and 104.
    let mut t = b"II*\0\x08\0\0\0\x01\0\x25\x88\x04\0\x01\0\0\0\x1a\0\0\0\0\0\0\0".to_vec();
    t.extend(4u16.to_le_bytes());
    let dms = |v: f64| {
        let v = v.abs();
        let (d, m) = (v.trunc(), (v.fract() * 60.0).trunc());
        [(d as u32, 1u32), (m as u32, 1), (((v * 3600.0 - d * 3600.0 - m * 60.0) * 1000.0).round() as u32, 1000)]
    };
    let refs = [if latitude < 0.0 { b'S' } else { b'N' }, if longitude < 0.0 { b'W' } else { b'E' }];
    for (i, (tag, offset)) in [(2u16, 80u32), (4, 104)].into_iter().enumerate() {
        t.extend((tag - 1).to_le_bytes());
        t.extend([2, 0, 2, 0, 0, 0, refs[i], 0, 0, 0]);
        t.extend(tag.to_le_bytes());
        t.extend([5, 0, 3, 0, 0, 0]);
        t.extend(offset.to_le_bytes());
    }
    t.extend([0; 4]);
    for (n, d) in dms(latitude).into_iter().chain(dms(longitude)) {
        t.extend(n.to_le_bytes());
        t.extend(d.to_le_bytes());
    }
    let mut seg = vec![0xFF, 0xE1];
    seg.extend(((t.len() + 8) as u16).to_be_bytes());
    seg.extend(b"Exif\0\0");
    seg.extend(t);
    let mut out = jpeg.to_vec();
    out.splice(2..2, seg);
    out
}

/// Index of the largest value.
pub fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).expect("non-empty")
}

/// Indices of the k largest values, best first.
pub fn top_k(v: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    idx.truncate(k);
    idx
}

/// Whether a GPU adapter is there for the GPU tests. Without one they say so and pass, unless `SNAKEID_REQUIRE_GPU`
/// is set (as CI does), which makes a missing adapter a failure.
pub fn gpu_available() -> bool {
    #[cfg(feature = "gpu")]
    let adapter = snakeid::internals::gpu::adapter().map(|a| format!("{a:?}"));
    #[cfg(not(feature = "gpu"))]
    let adapter: snakeid::Result<String> =
        Err(snakeid::Error::Backend("this build has no GPU backend (feature `gpu`)".into()));
    match adapter {
        Ok(a) => {
            eprintln!("GPU adapter: {a}");
            true
        }
        Err(e) if std::env::var_os("SNAKEID_REQUIRE_GPU").is_none() => {
            eprintln!("skipping GPU test: {e}");
            false
        }
        Err(e) => panic!("SNAKEID_REQUIRE_GPU is set but {e}"),
    }
}

/// A PNG with a valid signature, an IHDR claiming `w × h` and an empty IDAT: a header a decoder reads to the
/// start of the pixel data, with no pixel data.
pub fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for chunk in [&ihdr[..], b"IDAT"] {
        out.extend_from_slice(&(chunk.len() as u32 - 4).to_be_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(&crc32(chunk).to_be_bytes());
    }
    out
}

pub fn crc32(data: &[u8]) -> u32 {
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
pub fn jpeg_header(w: u16, h: u16) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 8];
    out.extend_from_slice(&h.to_be_bytes());
    out.extend_from_slice(&w.to_be_bytes());
    out.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xFF, 0xD9]);
    out
}

/// An answer's ranking as (class index, probability), for comparing answers exactly.
pub fn ranking(answer: &snakeid::Identification) -> Vec<(usize, f32)> {
    answer.decision.predictions.iter().map(|p| (p.class_index, p.probability)).collect()
}

/// The C allocator's bytes held from the system, in MB (glibc's `mallinfo2`, all arenas): the process's own heap.
/// Under qemu-user, RSS is the emulator's process and includes its translated code and per-thread state; this is
/// the guest program's heap alone. None where the allocator is not glibc's.
pub fn heap_held_mb() -> Option<f64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// glibc's `struct mallinfo2` (glibc 2.33+): ten `size_t` fields.
        #[repr(C)]
        #[allow(dead_code)]
        struct Mallinfo2 {
            arena: usize,
            ordblks: usize,
            smblks: usize,
            hblks: usize,
            hblkhd: usize,
            usmblks: usize,
            fsmblks: usize,
            uordblks: usize,
            fordblks: usize,
            keepcost: usize,
        }
        unsafe extern "C" {
            fn mallinfo2() -> Mallinfo2;
        }
        // SAFETY: mallinfo2 takes nothing and returns a plain struct by value.
        let m = unsafe { mallinfo2() };
        return Some((m.arena + m.hblkhd) as f64 / 1e6);
    }
    #[allow(unreachable_code)]
    None
}
