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

/// Resizes `img` to `width × height` exactly as Pillow's BILINEAR resize does.
pub fn resize(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize_crop(img, width, height, (0, 0, width, height))
}

/// The `(left, top, w, h)` window of `resize(img, width, height)`, computing only the pixels inside it
/// (a centre crop after a resize, without resampling what the crop throws away).
pub fn resize_crop(img: &RgbImage, width: u32, height: u32, window: (u32, u32, u32, u32)) -> RgbImage {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let (ow, oh) = (width as usize, height as usize);
    let (x0, y0, cw, ch) = (window.0 as usize, window.1 as usize, window.2 as usize, window.3 as usize);
    assert!(x0 + cw <= ow && y0 + ch <= oh, "window outside the resized image");
    let src = img.as_raw();
    // Output rows y0..y0+ch need input rows row0..row1; the horizontal pass runs over those only.
    let v = coeffs(ih, oh);
    let (row0, row1) = if oh == ih {
        (y0, y0 + ch)
    } else {
        let rows = &v.bounds[y0..y0 + ch];
        let (lo, hi) = rows.iter().fold((usize::MAX, 0), |(lo, hi), &(s, n)| (lo.min(s), hi.max(s + n)));
        (lo.min(hi), hi)
    };
    let stride = cw * 3;
    let mut mid = vec![0u8; (row1 - row0) * stride];
    if ow == iw {
        for (y, out) in mid.chunks_exact_mut(stride).enumerate() {
            let start = ((y + row0) * iw + x0) * 3;
            out.copy_from_slice(&src[start..start + stride]);
        }
    } else {
        let h = coeffs(iw, ow);
        // Both passes split their rows over the current executor's threads.
        crate::parallel::for_each_chunk(&mut mid, stride, 1, |first, rows| {
            for (y, out) in (first..).zip(rows.chunks_exact_mut(stride)) {
                let row = &src[(y + row0) * iw * 3..(y + row0 + 1) * iw * 3];
                for (j, xx) in (x0..x0 + cw).enumerate() {
                    let (xmin, n) = h.bounds[xx];
                    let k = &h.weights[xx * h.ksize..xx * h.ksize + n];
                    let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
                    for (i, &w) in k.iter().enumerate() {
                        let p = &row[(xmin + i) * 3..(xmin + i) * 3 + 3];
                        acc[0] += p[0] as i32 * w;
                        acc[1] += p[1] as i32 * w;
                        acc[2] += p[2] as i32 * w;
                    }
                    out[j * 3..j * 3 + 3].copy_from_slice(&acc.map(clip8));
                }
            }
        });
    }
    if oh == ih {
        // No vertical pass: rows y0..y0+ch are exactly mid's rows.
        return RgbImage::from_raw(window.2, window.3, mid).expect("sized buffer");
    }
    let mut out = vec![0u8; ch * stride];
    crate::parallel::for_each_chunk(&mut out, stride, 1, |first, rows| {
        let mut acc = vec![0i32; stride];
        for (yy, out_row) in (y0 + first..).zip(rows.chunks_exact_mut(stride)) {
            let (ymin, n) = v.bounds[yy];
            acc.fill(1 << (PRECISION_BITS - 1));
            let k = &v.weights[yy * v.ksize..yy * v.ksize + n];
            for (i, &w) in k.iter().enumerate() {
                let r = ymin + i - row0;
                for (a, &p) in acc.iter_mut().zip(&mid[r * stride..(r + 1) * stride]) {
                    *a += p as i32 * w;
                }
            }
            for (o, &a) in out_row.iter_mut().zip(&acc) {
                *o = clip8(a);
            }
        }
    });
    RgbImage::from_raw(window.2, window.3, out).expect("sized buffer")
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
        use tract_linalg::multithread::{multithread_tract_scope, Executor};
        let img = RgbImage::from_fn(97, 61, |x, y| image::Rgb([(x * 7 + y) as u8, (x * y) as u8, (x ^ y) as u8 * 3]));
        for (w, h, window) in [(40, 30, (0, 0, 40, 30)), (150, 90, (20, 10, 100, 70)), (97, 20, (3, 2, 90, 17))] {
            let one = resize_crop(&img, w, h, window);
            for threads in [2, 3] {
                let many = multithread_tract_scope(Executor::multithread(threads), || resize_crop(&img, w, h, window));
                assert!(one == many, "{w}x{h} {window:?} on {threads} threads");
            }
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
