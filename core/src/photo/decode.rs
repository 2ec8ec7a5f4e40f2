//! Photo decoding: JPEG (DCT-domain downscaling), PNG and WebP, EXIF orientation applied, size limits enforced before allocation.

use crate::error::{Error, Result};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, RgbImage};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Limits on what a photo may be; checked against the header, before any pixel buffer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded file.
    pub max_bytes: u64,
    /// Largest width or height.
    pub max_side: u32,
    /// Largest width × height.
    pub max_pixels: u64,
}

impl Default for Limits {
    /// 64 MiB files, 20 000 pixels a side, 100 megapixels: every phone camera, no decompression bomb.
    fn default() -> Self {
        Limits { max_bytes: 64 << 20, max_side: 20_000, max_pixels: 100_000_000 }
    }
}

impl Limits {
    fn check_dims(&self, width: u64, height: u64) -> Result<()> {
        if width == 0 || height == 0 {
            return Err(Error::image(format!("image has zero size ({width}x{height})")));
        }
        if width > self.max_side as u64 || height > self.max_side as u64 || width * height > self.max_pixels {
            return Err(Error::ImageTooLarge(format!(
                "{width}x{height} pixels exceeds the limit of {} pixels a side and {} pixels in all",
                self.max_side, self.max_pixels
            )));
        }
        Ok(())
    }
}

/// The smallest decoded size the preprocessing needs, in display orientation (after EXIF rotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinSize {
    pub width: u32,
    pub height: u32,
}

/// Decodes a photo to RGB8 at a size no smaller than `min` allows (JPEGs may be decoded at 1/2, 1/4 or 1/8 scale).
pub fn decode(bytes: &[u8], min: MinSize, limits: &Limits) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(Error::image("empty file"));
    }
    if bytes.len() as u64 > limits.max_bytes {
        return Err(Error::ImageTooLarge(format!(
            "file is {} bytes, more than the {} allowed",
            bytes.len(),
            limits.max_bytes
        )));
    }
    let format = sniff(bytes)?;
    // The decoders are fuzzed upstream, but a panic here must never take the host app down.
    catch_unwind(AssertUnwindSafe(|| match format {
        ImageFormat::Jpeg => decode_jpeg(bytes, min, limits),
        other => decode_with_image(bytes, other, limits),
    }))
    .unwrap_or_else(|_| Err(Error::image("the image decoder failed on malformed data")))
}

fn sniff(bytes: &[u8]) -> Result<ImageFormat> {
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => Ok(ImageFormat::Jpeg),
        [0x89, b'P', b'N', b'G', ..] => Ok(ImageFormat::Png),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Ok(ImageFormat::WebP),
        _ => Err(Error::image("not a JPEG, PNG or WebP file")),
    }
}

fn swaps_axes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    )
}

fn decode_jpeg(bytes: &[u8], min: MinSize, limits: &Limits) -> Result<RgbImage> {
    use jpeg_decoder::{Decoder, PixelFormat};
    let jerr = |e: jpeg_decoder::Error| Error::image(format!("JPEG: {e}"));
    let mut dec = Decoder::new(bytes);
    dec.read_info().map_err(jerr)?;
    let info = dec.info().ok_or_else(|| Error::image("JPEG: no frame header"))?;
    let (w, h) = (info.width as u64, info.height as u64);
    limits.check_dims(w, h)?;
    let orientation = dec.exif_data().and_then(Orientation::from_exif_chunk).unwrap_or(Orientation::NoTransforms);
    let (need_w, need_h) = if swaps_axes(orientation) { (min.height, min.width) } else { (min.width, min.height) };
    // One factor for both axes keeps the aspect ratio; the decoder picks the smallest DCT scale that still covers it.
    let f = (need_w as f64 / w as f64).max(need_h as f64 / h as f64).min(1.0);
    let req_w = ((w as f64 * f).ceil() as u16).max(1);
    let req_h = ((h as f64 * f).ceil() as u16).max(1);
    let (sw, sh) = dec.scale(req_w, req_h).map_err(jerr)?;
    // At 1/8 scale our DC-only decoder gives jpeg-decoder's pixels at a fraction of the cost, when it handles the
    // file (baseline, one scan, YCbCr or grayscale); otherwise jpeg-decoder does it all.
    let eighth = (sw as u64, sh as u64) == (w.div_ceil(8), h.div_ceil(8));
    if let Some(rgb) = eighth.then(|| crate::photo::jpeg_dc::decode_eighth(bytes)).flatten() {
        if (rgb.width, rgb.height) == (sw as u32, sh as u32) {
            let img = RgbImage::from_raw(rgb.width, rgb.height, rgb.pixels)
                .ok_or_else(|| Error::image("JPEG: inconsistent buffer"))?;
            let mut img = DynamicImage::ImageRgb8(img);
            img.apply_orientation(orientation);
            return Ok(img.into_rgb8());
        }
    }
    let format = info.pixel_format;
    dec.set_max_decoding_buffer_size((sw as usize * sh as usize * format.pixel_bytes()).max(1));
    let data = dec.decode().map_err(jerr)?;
    let (sw, sh) = (sw as u32, sh as u32);
    let px = (sw * sh) as usize;
    let rgb: Vec<u8> = match format {
        PixelFormat::RGB24 => data,
        PixelFormat::L8 => data.iter().flat_map(|&v| [v, v, v]).collect(),
        PixelFormat::L16 => data.chunks_exact(2).flat_map(|c| [c[0], c[0], c[0]]).collect(),
        PixelFormat::CMYK32 => data
            .chunks_exact(4)
            .flat_map(|c| {
                let k = 255 - c[3] as u16;
                [c[0], c[1], c[2]].map(|v| ((255 - v as u16) * k / 255) as u8)
            })
            .collect(),
    };
    if rgb.len() != px * 3 {
        return Err(Error::image("JPEG: decoded data is shorter than the frame (truncated file?)"));
    }
    let img = RgbImage::from_raw(sw, sh, rgb).ok_or_else(|| Error::image("JPEG: inconsistent buffer"))?;
    let mut img = DynamicImage::ImageRgb8(img);
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

fn decode_with_image(bytes: &[u8], format: ImageFormat, limits: &Limits) -> Result<RgbImage> {
    let ierr = |e: image::ImageError| Error::image(format!("{format:?}: {e}"));
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    // The decoder refuses oversized headers itself (before reading pixel data); our own check below covers the rest.
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(l);
    let mut decoder = reader.into_decoder().map_err(|e| match e {
        image::ImageError::Limits(_) => Error::ImageTooLarge(format!(
            "the {format:?} header exceeds the limit of {} pixels a side and {} pixels in all",
            limits.max_side, limits.max_pixels
        )),
        e => ierr(e),
    })?;
    let (w, h) = decoder.dimensions();
    limits.check_dims(w as u64, h as u64)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(ierr)?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        img.write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Png).unwrap();
        out
    }

    #[test]
    fn png_round_trip() {
        let img = decode(&png(40, 30), MinSize { width: 8, height: 8 }, &Limits::default()).unwrap();
        assert_eq!(img.dimensions(), (40, 30));
        assert_eq!(img.get_pixel(5, 6).0, [5, 6, 7]);
    }

    #[test]
    fn rejects_empty_random_and_truncated() {
        let min = MinSize { width: 8, height: 8 };
        let l = Limits::default();
        assert!(matches!(decode(b"", min, &l), Err(Error::InvalidImage(_))));
        assert!(matches!(decode(b"hello world, not an image", min, &l), Err(Error::InvalidImage(_))));
        let p = png(40, 30);
        for cut in [8, 20, 40, p.len() - 10] {
            assert!(matches!(decode(&p[..cut], min, &l), Err(Error::InvalidImage(_))), "cut {cut}");
        }
    }

    #[test]
    fn limits_refuse_large_dimensions() {
        let l = Limits { max_side: 32, ..Limits::default() };
        let e = decode(&png(40, 30), MinSize { width: 8, height: 8 }, &l).unwrap_err();
        assert!(matches!(e, Error::ImageTooLarge(_)), "{e}");
        let l = Limits { max_bytes: 10, ..Limits::default() };
        assert!(decode(&png(40, 30), MinSize { width: 8, height: 8 }, &l).is_err());
    }
}
