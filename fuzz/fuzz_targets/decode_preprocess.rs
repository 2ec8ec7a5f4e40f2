//! Fuzz target: any bytes as a photo → decode (JPEG/PNG/WebP, EXIF) → preprocess, for a 224 crop and a 456 stretch.
//! A decoder panic is caught in production (→ InvalidImage); here it is turned back into a crash so it is found.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snakeid::internals::decode::{decode, Limits};
use snakeid::internals::manifest::{ChannelOrder, InputSpec, Resize};
use snakeid::internals::preprocess::{min_size, to_tensor};

fuzz_target!(|data: &[u8]| {
    let spec = if data.first().is_some_and(|b| b & 1 == 1) {
        InputSpec { width: 456, height: 456, resize: Resize::Stretch, mean: [0.5; 3], std: [0.5; 3], channel_order: ChannelOrder::Rgb }
    } else {
        let resize = Resize::ShorterSideCenterCrop { shorter_side: 256 };
        InputSpec { width: 224, height: 224, resize, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], channel_order: ChannelOrder::Bgr }
    };
    // Small limits keep each run fast; the limit checks themselves are part of what is fuzzed.
    let limits = Limits { max_bytes: 1 << 20, max_side: 4096, max_pixels: 4_000_000 };
    match decode(data, min_size(&spec), &limits) {
        Ok(img) => {
            let t = to_tensor(&img, &spec);
            assert_eq!(t.len(), 3 * (spec.width * spec.height) as usize);
            assert!(t.iter().all(|x| x.is_finite()));
        }
        Err(snakeid::Error::InvalidImage(m)) => assert!(!m.contains("decoder failed on malformed"), "a decoder panicked: {m}"),
        Err(_) => {}
    }
});
