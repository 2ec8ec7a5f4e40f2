//! Antialiased bilinear resampling of RGB8 images, bit-exact with Pillow's `Image.resize(..., BILINEAR)`,
//! so our model inputs match the PIL/torchvision pipelines models are trained and exported with.
//!
//! Same algorithm as Pillow's `Resample.c`: a triangle filter widened by the downscale factor, coefficients in
//! 22-bit fixed point, a horizontal pass to u8 and then a vertical pass.

use image::RgbImage;

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output pixel: first input index and fixed-point weights.
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
    ksize: usize,
}

fn coeffs(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // the bilinear filter has support 1
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin).min(ksize);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let t = ((x + xmin) as f64 - center + 0.5) * ss;
            let w = (1.0 - t.abs()).max(0.0);
            *kx = w;
            ww += w;
        }
        for (x, kx) in k.iter().enumerate().take(n) {
            let w = if ww != 0.0 { kx / ww } else { *kx };
            let f = w * (1u32 << PRECISION_BITS) as f64;
            weights[xx * ksize + x] = if f < 0.0 { (f - 0.5) as i32 } else { (f + 0.5) as i32 };
        }
        bounds.push((xmin, n));
    }
    Coeffs { bounds, weights, ksize }
}

#[inline]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes `img` to `width × height` exactly as Pillow's BILINEAR resize does. (The pipeline resamples into
/// planes with `resize_crop_planes`; these two image-in, image-out forms are the tests' reference.)
#[cfg(test)]
pub fn resize(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize_crop(img, width, height, (0, 0, width, height))
}

/// The `(left, top, w, h)` window of `resize(img, width, height)`, computing only the pixels inside it
/// (a centre crop after a resize, without resampling what the crop throws away).
#[cfg(test)]
pub fn resize_crop(img: &RgbImage, width: u32, height: u32, window: (u32, u32, u32, u32)) -> RgbImage {
    let plane = window.2 as usize * window.3 as usize;
    let mut planes = vec![0u8; 3 * plane];
    let (r, rest) = planes.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    resize_crop_planes(img, width, height, window, [r, g, b], |_, v| v);
    let pixels = (0..plane).flat_map(|i| [planes[i], planes[plane + i], planes[2 * plane + i]]).collect();
    RgbImage::from_raw(window.2, window.3, pixels).expect("sized buffer")
}

/// [`resize_crop`] into one plane per channel (R, G, B; `w x h` values each, row-major), each value `v` of
/// channel `c` stored as `convert(c, v)`: the model input's normalisation happens as the rows come out of the
/// vertical pass, on the threads that compute them.
pub fn resize_crop_planes<T: Send>(
    img: &RgbImage,
    width: u32,
    height: u32,
    window: (u32, u32, u32, u32),
    planes: [&mut [T]; 3],
    convert: impl Fn(usize, u8) -> T + Sync,
) {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let (ow, oh) = (width as usize, height as usize);
    let (x0, y0, cw, ch) = (window.0 as usize, window.1 as usize, window.2 as usize, window.3 as usize);
    assert!(x0 + cw <= ow && y0 + ch <= oh, "window outside the resized image");
    assert!(planes.iter().all(|p| p.len() == cw * ch), "planes of the window's size");
    if cw == 0 || ch == 0 {
        return;
    }
    let src = img.as_raw();
    // Output rows y0..y0+ch need input rows row0..row1; the horizontal pass runs over those only.
    let v = coeffs(ih, oh);
    let rows = &v.bounds[y0..y0 + ch];
    let (row0, row1) = rows.iter().fold((usize::MAX, 0), |(lo, hi), &(s, n)| (lo.min(s), hi.max(s + n)));
    let row0 = row0.min(row1);
    // The horizontal pass: each needed input row becomes a row of the window's width, its three channels one
    // after the other (so that the vertical pass runs over plain rows of bytes).
    let taps = Taps::new(&coeffs(iw, ow), x0, cw, iw);
    let stride = cw * 3;
    let mut mid = vec![0u8; (row1 - row0) * stride];
    // Both passes compiled for AVX2 where the CPU has it (`*_avx2`): their 32-bit integer multiply-adds and the
    // conversions vectorise there, and the baseline x86-64 target has no 32-bit vector multiply.
    #[cfg(target_arch = "x86_64")]
    let blocks = crate::kernels::isa().avx2.then(|| taps.by_block());
    crate::kernels::parallel::for_each_chunk(&mut mid, stride, 1, |first, out| {
        #[cfg(target_arch = "x86_64")]
        if let Some(blocks) = &blocks {
            // SAFETY: the CPU has AVX2.
            return unsafe { horizontal_avx2(&taps, blocks, src, iw, first + row0, out) };
        }
        horizontal(&taps, src, iw, first + row0, out)
    });
    // The vertical pass, rows split over the threads, each row converted into the planes as it is done.
    let vertical = Vertical { coeffs: &v, mid: &mid, row0, width: cw };
    crate::kernels::parallel::for_each_chunk_of(planes, cw, 1, |first, planes| {
        #[cfg(target_arch = "x86_64")]
        if blocks.is_some() {
            // SAFETY: the CPU has AVX2 (the horizontal pass's AVX2 layout exists only then).
            return unsafe { vertical_rows_avx2(&vertical, y0 + first, planes, &convert) };
        }
        vertical_rows(&vertical, y0 + first, planes, &convert)
    });
}

/// Input rows `first..` (RGB8, `iw` pixels each) through the horizontal pass into `out`'s rows (window width
/// x 3 channels each).
#[inline(always)]
fn horizontal(taps: &Taps, src: &[u8], iw: usize, first: usize, out: &mut [u8]) {
    for (y, out) in (first..).zip(out.chunks_exact_mut(taps.starts.len() * 3)) {
        let row = &src[y * iw * 3..(y + 1) * iw * 3];
        // The common kernel sizes as constants: the tap loop unrolls.
        match taps.ksize {
            3 => taps.run(row, out, 3),
            5 => taps.run(row, out, 5),
            7 => taps.run(row, out, 7),
            k => taps.run(row, out, k),
        }
    }
}

/// [`horizontal`] with AVX2, the taps laid out by [`Taps::by_block`]: 8 output columns at a time, each tap's 8
/// input pixels gathered (32-bit loads at byte offsets, one per pixel: its three channels), its channels masked out
/// and multiplied as 32-bit integers — the same integer sums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn horizontal_avx2(
    taps: &Taps,
    (weights, offsets): &(Vec<i32>, Vec<i32>),
    src: &[u8],
    iw: usize,
    first: usize,
    out: &mut [u8],
) {
    use std::arch::x86_64::*;
    let (cw, k) = (taps.starts.len(), taps.ksize);
    // A row with 4 bytes of slack: a 32-bit load at any of its bytes stays inside.
    let mut padded = vec![0u8; iw * 3 + 4];
    // Per 32-bit lane, its low byte to the front of its 128-bit half; then both halves' 4 bytes together.
    let bytes = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1,
        -1, -1, -1,
    );
    let halves = _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1);
    for (y, out) in (first..).zip(out.chunks_exact_mut(cw * 3)) {
        padded[..iw * 3].copy_from_slice(&src[y * iw * 3..(y + 1) * iw * 3]);
        let base = padded.as_ptr();
        for (block, idx) in offsets.chunks_exact(8).enumerate() {
            // SAFETY: the offsets are first bytes of pixels whose taps lie in the row (Taps::new), so every load
            // (at most 3 * (iw - 1), 4 bytes) is inside `padded`; the weights have 8 values per tap and block.
            let idx = unsafe { _mm256_loadu_si256(idx.as_ptr() as *const __m256i) };
            let mut acc = [_mm256_set1_epi32(1 << (PRECISION_BITS - 1)); 3];
            for t in 0..k {
                // SAFETY: the weights hold 8 values per tap and block (Taps::by_block).
                let w = unsafe { _mm256_loadu_si256(weights.as_ptr().add((block * k + t) * 8) as *const __m256i) };
                // One gather per tap: each 32-bit load holds the pixel's R, G and B (and a byte after them).
                // SAFETY: each offset plus 3 * t is a pixel of the row; 4 bytes from it lie inside `padded`.
                let rgb = unsafe { _mm256_i32gather_epi32::<1>(base.add(3 * t) as *const i32, idx) };
                let byte = _mm256_set1_epi32(0xFF);
                let r = _mm256_and_si256(rgb, byte);
                let g = _mm256_and_si256(_mm256_srli_epi32::<8>(rgb), byte);
                let b = _mm256_and_si256(_mm256_srli_epi32::<16>(rgb), byte);
                for (acc, v) in acc.iter_mut().zip([r, g, b]) {
                    *acc = _mm256_add_epi32(*acc, _mm256_mullo_epi32(v, w));
                }
            }
            let n = (cw - block * 8).min(8);
            for (c, acc) in acc.iter().enumerate() {
                // clip8: shift, clamp to 0..=255, one byte per column.
                let v = _mm256_min_epi32(
                    _mm256_max_epi32(_mm256_srai_epi32::<{ PRECISION_BITS as i32 }>(*acc), _mm256_setzero_si256()),
                    _mm256_set1_epi32(255),
                );
                let v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, bytes), halves);
                let eight = (_mm256_cvtsi256_si32(v) as u32 as u64
                    | (_mm256_extract_epi32::<1>(v) as u32 as u64) << 32)
                    .to_le_bytes();
                out[c * cw + block * 8..][..n].copy_from_slice(&eight[..n]);
            }
        }
    }
}

/// The vertical pass's inputs: the coefficients, the horizontal pass's rows (from input row `row0` on), the
/// window's width.
struct Vertical<'a> {
    coeffs: &'a Coeffs,
    mid: &'a [u8],
    row0: usize,
    width: usize,
}

/// Output rows `first..` of the vertical pass (as many as `planes` hold), converted into the planes.
#[inline(always)]
fn vertical_rows<T>(v: &Vertical, first: usize, planes: [&mut [T]; 3], convert: &impl Fn(usize, u8) -> T) {
    let (cw, stride) = (v.width, v.width * 3);
    let mut acc = vec![0i32; stride];
    let [r, g, b] = planes;
    for (i, yy) in (first..first + r.len() / cw).enumerate() {
        let (ymin, n) = v.coeffs.bounds[yy];
        acc.fill(1 << (PRECISION_BITS - 1));
        let k = &v.coeffs.weights[yy * v.coeffs.ksize..yy * v.coeffs.ksize + n];
        for (j, &w) in k.iter().enumerate() {
            let m = ymin + j - v.row0;
            for (a, &p) in acc.iter_mut().zip(&v.mid[m * stride..(m + 1) * stride]) {
                *a += p as i32 * w;
            }
        }
        for (c, plane) in [&mut *r, &mut *g, &mut *b].into_iter().enumerate() {
            for (o, &a) in plane[i * cw..(i + 1) * cw].iter_mut().zip(&acc[c * cw..(c + 1) * cw]) {
                *o = convert(c, clip8(a));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn vertical_rows_avx2<T>(v: &Vertical, first: usize, planes: [&mut [T]; 3], convert: &impl Fn(usize, u8) -> T) {
    vertical_rows(v, first, planes, convert)
}

/// The horizontal pass's taps for the window's columns: per output column the first input column it reads and
/// `ksize` weights, the window of `ksize` input columns moved left at the right edge (its weights with it) so that
/// every column reads exactly `ksize` inputs, the extra ones with weight 0 — the same integer sums as Pillow's
/// variable-length loop, with a fixed trip count.
struct Taps {
    starts: Vec<usize>,
    weights: Vec<i32>,
    ksize: usize,
}

impl Taps {
    fn new(h: &Coeffs, x0: usize, cw: usize, in_size: usize) -> Taps {
        let ksize = h.ksize.min(in_size);
        let mut starts = Vec::with_capacity(cw);
        let mut weights = vec![0i32; cw * ksize];
        for (j, xx) in (x0..x0 + cw).enumerate() {
            let (xmin, n) = h.bounds[xx];
            let start = xmin.min(in_size - ksize);
            let shift = xmin - start;
            for (i, &w) in h.weights[xx * h.ksize..xx * h.ksize + n].iter().enumerate() {
                weights[j * ksize + shift + i] = w;
            }
            starts.push(start);
        }
        Taps { starts, weights, ksize }
    }

    /// The weights as the AVX2 pass reads them: per block of 8 columns, per tap, the 8 columns' weights (0 for
    /// columns past the window); and per column its first byte in an RGB8 row (0 past the window).
    #[cfg(target_arch = "x86_64")]
    fn by_block(&self) -> (Vec<i32>, Vec<i32>) {
        let (cw, k) = (self.starts.len(), self.ksize);
        let blocks = cw.div_ceil(8);
        let mut weights = vec![0i32; blocks * k * 8];
        let mut offsets = vec![0i32; blocks * 8];
        for j in 0..cw {
            for t in 0..k {
                weights[(j / 8 * k + t) * 8 + j % 8] = self.weights[j * k + t];
            }
            offsets[j] = (self.starts[j] * 3) as i32;
        }
        (weights, offsets)
    }

    /// One input row (RGB8) into `out`: the window's columns of R, then of G, then of B. `k` is `self.ksize`,
    /// passed as a constant where the caller can.
    #[inline(always)]
    fn run(&self, row: &[u8], out: &mut [u8], k: usize) {
        let cw = self.starts.len();
        let (r, rest) = out.split_at_mut(cw);
        let (g, b) = rest.split_at_mut(cw);
        for (j, (&start, w)) in self.starts.iter().zip(self.weights.chunks_exact(k)).enumerate() {
            let p = &row[start * 3..(start + k) * 3];
            let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
            for i in 0..k {
                acc[0] += p[i * 3] as i32 * w[i];
                acc[1] += p[i * 3 + 1] as i32 * w[i];
                acc[2] += p[i * 3 + 2] as i32 * w[i];
            }
            (r[j], g[j], b[j]) = (clip8(acc[0]), clip8(acc[1]), clip8(acc[2]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_flat_images_are_preserved() {
        let img = RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 9]));
        assert_eq!(resize(&img, 7, 5), img);
        let flat = RgbImage::from_pixel(33, 17, image::Rgb([10, 200, 77]));
        assert!(resize(&flat, 8, 5).pixels().all(|p| p.0 == [10, 200, 77]));
        assert!(resize(&flat, 50, 40).pixels().all(|p| p.0 == [10, 200, 77]));
    }

    #[test]
    fn a_window_equals_the_crop_of_the_full_resize() {
        let img = RgbImage::from_fn(41, 29, |x, y| image::Rgb([(x * 7 + y) as u8, (x * y) as u8, (y * 9) as u8]));
        for (w, h) in [(30, 20), (41, 17), (13, 29), (60, 50)] {
            let full = resize(&img, w, h);
            let (l, t) = (w / 4, h / 3);
            let (cw, ch) = (w / 2, h / 2);
            let want = image::imageops::crop_imm(&full, l, t, cw, ch).to_image();
            assert_eq!(resize_crop(&img, w, h, (l, t, cw, ch)), want, "{w}x{h}");
        }
    }

    /// Both passes split their rows over the engine's threads: any split gives the one-thread bytes.
    #[test]
    fn rows_split_over_threads_give_the_same_bytes() {
        let img = RgbImage::from_fn(97, 61, |x, y| {
            image::Rgb([(x * 7 + y) as u8, (x * y) as u8, ((x ^ y) as u8).wrapping_mul(3)])
        });
        for (w, h, window) in [(40, 30, (0, 0, 40, 30)), (150, 90, (20, 10, 100, 70)), (97, 20, (3, 2, 90, 17))] {
            let one = resize_crop(&img, w, h, window);
            for threads in [2, 3] {
                let many = crate::kernels::parallel::with_threads(threads, || resize_crop(&img, w, h, window));
                assert!(one == many, "{w}x{h} {window:?} on {threads} threads");
            }
        }
    }

    /// The AVX2 horizontal pass gives the portable pass's bytes: windows of any width (not only whole blocks of
    /// 8), kernels of 3 to 23 taps, the right edge's moved windows.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_avx2_horizontal_pass_gives_the_portable_bytes() {
        if !crate::kernels::isa().avx2 {
            return eprintln!("no AVX2 on this CPU: nothing to compare");
        }
        let mut seed = 7u32;
        let img = RgbImage::from_fn(301, 5, |_, _| {
            let mut v = [0u8; 3];
            for b in &mut v {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *b = (seed >> 24) as u8;
            }
            image::Rgb(v)
        });
        for (ow, x0, cw) in
            [(205, 0, 205), (205, 11, 150), (100, 3, 97), (30, 0, 30), (29, 5, 13), (301, 0, 301), (450, 7, 441)]
        {
            let taps = Taps::new(&coeffs(301, ow), x0, cw, 301);
            let (mut portable, mut vector) = (vec![0u8; 5 * cw * 3], vec![1u8; 5 * cw * 3]);
            horizontal(&taps, img.as_raw(), 301, 0, &mut portable);
            // SAFETY: the CPU has AVX2 (checked above).
            unsafe { horizontal_avx2(&taps, &taps.by_block(), img.as_raw(), 301, 0, &mut vector) };
            assert!(portable == vector, "301 -> {ow}, window {x0}+{cw}, {} taps", taps.ksize);
        }
    }

    #[test]
    fn halving_averages_pairs_like_pillow() {
        // Pillow 12: a 4-pixel row [0, 100, 200, 255] resized to 2 with BILINEAR gives [71, 209]
        // (the widened triangle is clipped at the border and renormalised).
        let img = RgbImage::from_fn(4, 1, |x, _| {
            let v = [0u8, 100, 200, 255][x as usize];
            image::Rgb([v, v, v])
        });
        let r = resize(&img, 2, 1);
        assert_eq!(r.get_pixel(0, 0).0[0], 71);
        assert_eq!(r.get_pixel(1, 0).0[0], 209);
    }
}
