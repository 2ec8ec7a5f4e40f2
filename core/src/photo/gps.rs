//! The position a camera wrote into a photo's EXIF (the GPS IFD), found in a JPEG, PNG or WebP file and read
//! without trusting it: anything malformed is no position, never an error.

use crate::place::Location;

/// The GPS position in the photo's EXIF block, if it has a well-formed one.
pub fn of_photo(photo: &[u8]) -> Option<Location> {
    position(exif_block(photo)?)
}

/// The EXIF block (TIFF data) of a JPEG (APP1 "Exif"), PNG (eXIf chunk) or WebP (EXIF chunk) file.
fn exif_block(photo: &[u8]) -> Option<&[u8]> {
    let be32 = |b: &[u8], at: usize| -> Option<usize> {
        Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    if let Some(mut rest) = photo.strip_prefix(&[0xFF, 0xD8]) {
        // JPEG markers up to the scan: FF xx, then a big-endian length that counts itself.
        while let [0xFF, marker, hi, lo, ..] = *rest {
            let len = u16::from_be_bytes([hi, lo]) as usize;
            if len < 2 {
                return None;
            }
            let body = rest.get(4..2 + len)?;
            if marker == 0xE1 && body.starts_with(b"Exif\0\0") {
                return Some(&body[6..]);
            }
            if marker == 0xDA {
                return None;
            }
            rest = &rest[2 + len..];
        }
        return None;
    }
    if let Some(mut rest) = photo.strip_prefix(b"\x89PNG\r\n\x1a\n") {
        // PNG chunks: length, type, data, CRC.
        while rest.len() >= 12 {
            let len = be32(rest, 0)?;
            let data = rest.get(8..8usize.checked_add(len)?)?;
            if &rest[4..8] == b"eXIf" {
                return Some(data);
            }
            rest = rest.get(12 + len..)?;
        }
        return None;
    }
    if photo.get(..4) == Some(b"RIFF") && photo.get(8..12) == Some(b"WEBP") {
        // RIFF chunks: FourCC, little-endian size, data padded to an even length.
        let mut rest = &photo[12..];
        while rest.len() >= 8 {
            let len = u32::from_le_bytes(rest[4..8].try_into().ok()?) as usize;
            let data = rest.get(8..8usize.checked_add(len)?)?;
            if &rest[..4] == b"EXIF" {
                return Some(data);
            }
            rest = rest.get((8 + len + (len & 1)).min(rest.len())..)?;
        }
    }
    None
}

/// The photo's GPS latitude and longitude, if its EXIF block (TIFF data, as `image`'s decoders hand it over) has a
/// well-formed, in-range position. Anything malformed, truncated or out of range is no position, never an error:
/// the photo is still identified.
pub fn position(exif: &[u8]) -> Option<Location> {
    let tiff = Tiff::new(exif)?;
    let ifd0 = tiff.u32(4)? as usize;
    let gps_ifd = tiff.entries(ifd0)?.find(|e| e.tag == 0x8825)?.value_u32()? as usize;
    let mut refs = [None, None];
    let mut coords = [None, None];
    for e in tiff.entries(gps_ifd)? {
        match e.tag {
            1 | 3 => refs[(e.tag / 2) as usize] = e.ascii_char(),
            2 | 4 => coords[(e.tag / 2 - 1) as usize] = e.degrees(&tiff),
            _ => {}
        }
    }
    let sign = |r: Option<u8>, neg: u8| match r {
        Some(c) if c == neg => Some(-1.0),
        Some(_) => Some(1.0),
        None => None,
    };
    let lat = coords[0]? * sign(refs[0], b'S')?;
    let lon = coords[1]? * sign(refs[1], b'W')?;
    Location::new(lat, lon).ok()
}

/// TIFF data: byte order, bounds-checked reads.
struct Tiff<'a> {
    data: &'a [u8],
    little: bool,
}

/// One 12-byte IFD entry: tag, type, count, and the 4 bytes holding the value or its offset.
struct Entry {
    tag: u16,
    kind: u16,
    count: u32,
    value: [u8; 4],
    little: bool,
}

impl<'a> Tiff<'a> {
    fn new(exif: &'a [u8]) -> Option<Self> {
        // Some decoders hand over the APP1 payload with its "Exif\0\0" prefix.
        let data = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
        let little = match data.get(..4)? {
            [b'I', b'I', 42, 0] => true,
            [b'M', b'M', 0, 42] => false,
            _ => return None,
        };
        Some(Tiff { data, little })
    }

    fn u16(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.data.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if self.little { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) })
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.data.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if self.little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    }

    /// The entries of the IFD at `at` (at most as many as fit in the data: a count is not trusted).
    fn entries(&self, at: usize) -> Option<impl Iterator<Item = Entry> + '_> {
        let n = self.u16(at)? as usize;
        let first = at.checked_add(2)?;
        let fit = self.data.len().saturating_sub(first) / 12;
        Some((0..n.min(fit)).filter_map(move |i| {
            let e = first + 12 * i;
            Some(Entry {
                tag: self.u16(e)?,
                kind: self.u16(e + 2)?,
                count: self.u32(e + 4)?,
                value: self.data.get(e + 8..e + 12)?.try_into().ok()?,
                little: self.little,
            })
        }))
    }
}

impl Entry {
    fn value_u32(&self) -> Option<u32> {
        // LONG (4) or the IFD type (13), one value.
        matches!(self.kind, 4 | 13).then(|| {
            if self.little {
                u32::from_le_bytes(self.value)
            } else {
                u32::from_be_bytes(self.value)
            }
        })
    }

    /// An ASCII value of one letter (and its NUL), as GPS references ('N', 'S', 'E', 'W') are.
    fn ascii_char(&self) -> Option<u8> {
        (self.kind == 2 && (1..=4).contains(&self.count) && self.value[0].is_ascii_alphabetic())
            .then_some(self.value[0].to_ascii_uppercase())
    }

    /// Three RATIONALs (degrees, minutes, seconds) at the entry's offset, as decimal degrees.
    fn degrees(&self, tiff: &Tiff) -> Option<f64> {
        if self.kind != 5 || self.count != 3 {
            return None;
        }
        let at = if self.little { u32::from_le_bytes(self.value) } else { u32::from_be_bytes(self.value) } as usize;
        let part = |i: usize| -> Option<f64> {
            let (num, den) = (tiff.u32(at.checked_add(8 * i)?)?, tiff.u32(at.checked_add(8 * i + 4)?)?);
            (den != 0).then(|| num as f64 / den as f64)
        };
        let d = part(0)? + part(1)? / 60.0 + part(2)? / 3600.0;
        d.is_finite().then_some(d)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A big- or little-endian TIFF block with IFD0 pointing to a GPS IFD of the given position (d, m, s each).
    pub(crate) fn exif_with_gps(little: bool, lat: (char, [u32; 3]), lon: (char, [u32; 3])) -> Vec<u8> {
        let w16 = |v: u16| if little { v.to_le_bytes().to_vec() } else { v.to_be_bytes().to_vec() };
        let w32 = |v: u32| if little { v.to_le_bytes().to_vec() } else { v.to_be_bytes().to_vec() };
        let mut t = if little { b"II".to_vec() } else { b"MM".to_vec() };
        t.extend(w16(42));
        t.extend(w32(8));
        // IFD0 at 8: one entry (the GPS IFD pointer), then no next IFD.
        t.extend(w16(1));
        t.extend(w16(0x8825));
        t.extend(w16(4));
        t.extend(w32(1));
        t.extend(w32(26));
        t.extend(w32(0));
        // GPS IFD at 26: four entries, then the rationals at 26 + 2 + 48 + 4 = 80.
        t.extend(w16(4));
        let ascii = |c: char| [c as u8, 0, 0, 0];
        for (tag, kind, count, value) in
            [(1u16, 2u16, 2u32, ascii(lat.0)), (2, 5, 3, [0; 4]), (3, 2, 2, ascii(lon.0)), (4, 5, 3, [0; 4])]
        {
            t.extend(w16(tag));
            t.extend(w16(kind));
            t.extend(w32(count));
            if kind == 5 {
                t.extend(w32(if tag == 2 { 80 } else { 104 }));
            } else {
                t.extend(value);
            }
        }
        t.extend(w32(0));
        for v in lat.1.iter().chain(&lon.1) {
            t.extend(w32(*v));
            t.extend(w32(1));
        }
        t
    }

    #[test]
    fn reads_the_position_in_either_byte_order_with_its_hemisphere() {
        for little in [true, false] {
            // Manila: 14° 35' 45" N, 120° 58' 38" E; Lima: 12° 2' 46" S, 77° 2' 34" W.
            let p = position(&exif_with_gps(little, ('N', [14, 35, 45]), ('E', [120, 58, 38]))).unwrap();
            assert!((p.latitude - 14.595_833).abs() < 1e-5 && (p.longitude - 120.977_222).abs() < 1e-5, "{p:?}");
            let p = position(&exif_with_gps(little, ('S', [12, 2, 46]), ('W', [77, 2, 34]))).unwrap();
            assert!(p.latitude < -12.0 && p.longitude < -77.0, "{p:?}");
        }
    }

    /// A JPEG whose APP1 segment holds `exif` (the photo data after it is never read).
    pub(crate) fn jpeg_with_exif(exif: &[u8]) -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xE1];
        j.extend(((exif.len() + 8) as u16).to_be_bytes());
        j.extend(b"Exif\0\0");
        j.extend(exif);
        j.extend([0xFF, 0xDA, 0, 2, 1, 2, 3]);
        j
    }

    #[test]
    fn finds_the_exif_block_in_jpeg_png_and_webp() {
        let exif = exif_with_gps(false, ('N', [14, 35, 45]), ('E', [120, 58, 38]));
        let manila = position(&exif);
        assert!(manila.is_some());
        assert_eq!(of_photo(&jpeg_with_exif(&exif)), manila);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, data) in [(b"IHDR", &[0u8; 13][..]), (b"eXIf", &exif[..])] {
            png.extend((data.len() as u32).to_be_bytes());
            png.extend(kind);
            png.extend(data);
            png.extend([0; 4]);
        }
        assert_eq!(of_photo(&png), manila);
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X".to_vec();
        webp.extend(10u32.to_le_bytes());
        webp.extend([0; 10]);
        webp.extend(b"EXIF");
        webp.extend((exif.len() as u32).to_le_bytes());
        webp.extend(&exif);
        assert_eq!(of_photo(&webp), manila);
        let jpeg = jpeg_with_exif(&exif);
        for cut in 0..jpeg.len() - 7 {
            assert_eq!(of_photo(&jpeg[..cut]), None, "a JPEG cut at {cut}");
        }
        assert_eq!(of_photo(b""), None);
        assert_eq!(of_photo(&[0xFF, 0xD8, 0xFF, 0xE1, 0, 0]), None, "a length under 2");
    }

    #[test]
    fn malformed_truncated_or_impossible_positions_are_no_position() {
        let good = exif_with_gps(true, ('N', [14, 35, 45]), ('E', [120, 58, 38]));
        for cut in 0..good.len() {
            assert_eq!(position(&good[..cut]), None, "cut at {cut}");
        }
        assert_eq!(position(&exif_with_gps(true, ('N', [95, 0, 0]), ('E', [1, 0, 0]))), None, "latitude 95");
        assert_eq!(position(&exif_with_gps(false, ('N', [1, 0, 0]), ('E', [181, 0, 0]))), None, "longitude 181");
        assert_eq!(position(&exif_with_gps(true, ('?', [1, 0, 0]), ('E', [1, 0, 0]))), None, "no hemisphere");
        let mut zero_den = good.clone();
        zero_den[84..88].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(position(&zero_den), None, "a zero denominator");
        assert_eq!(position(b"Exif\0\0"), None);
        assert!(position(&[b"Exif\0\0".as_slice(), &good].concat()).is_some(), "the APP1 prefix is skipped");
    }
}
