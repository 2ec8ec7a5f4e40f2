//! The im2col matrix of an int8 convolution of any kernel size, stride and padding: the u8 codes each output
//! pixel's window reads, one row per (input channel, kernel row, kernel column), so that the pointwise
//! convolution's matrix product and its plug-ins ([`super::qpointwise`]) compute the whole convolution. The padding
//! reads the zero point's code, which stands for the value 0.

use super::parallel;
use super::plane::Geometry;
use std::ops::Range;

/// Writes `rows` rows of the output pixels `pixels` (indices into `out_hw`, row-major) into `out`
/// (`[rows][pixels.len()]`): row `(c * kh + ky) * kw + kx` holds, for each of those pixels, the code of input
/// channel `c` at the window's tap (ky, kx), or `pad` outside the input. Rows beyond the convolution's
/// `channels * kh * kw` (padding to the matrix product's multiple of 4) hold `pad` too. `codes` is the input,
/// `[channels][ih][iw]`. The rows are split over the call's threads.
pub(crate) fn im2col(g: &Geometry, codes: &[u8], pad: u8, rows: usize, pixels: Range<usize>, out: &mut [u8]) {
    let ([ih, iw], [oh, ow], [kh, kw]) = (g.in_hw, g.out_hw, g.kernel);
    let n = pixels.len();
    assert!(
        codes.len() == g.channels * ih * iw
            && out.len() == rows * n
            && rows >= g.channels * kh * kw
            && pixels.end <= oh * ow
    );
    parallel::for_each_chunk(out, n, 1, |first, chunk| {
        for (r, row) in (first..).zip(chunk.chunks_exact_mut(n)) {
            if r >= g.channels * kh * kw {
                row.fill(pad);
                continue;
            }
            let (c, ky, kx) = (r / (kh * kw), r / kw % kh, r % kw);
            let plane = &codes[c * ih * iw..(c + 1) * ih * iw];
            // Output columns [lo, hi) read inside the input: ix = ox * sw + kx - pad_left in [0, iw).
            let sw = g.stride[1];
            let lo = g.pad_before[1].saturating_sub(kx).div_ceil(sw).min(ow);
            let hi = ((iw + g.pad_before[1]).saturating_sub(kx).div_ceil(sw)).clamp(lo, ow);
            // The output rows the pixels cross, each as its columns [x0, x1) and where they go in `row`.
            let mut p = pixels.start;
            while p < pixels.end {
                let (oy, x0) = (p / ow, p % ow);
                let x1 = ow.min(x0 + pixels.end - p);
                let dst = &mut row[p - pixels.start..p - pixels.start + x1 - x0];
                p += x1 - x0;
                let iy = (oy * g.stride[0] + ky).wrapping_sub(g.pad_before[0]);
                let (a, b) = (lo.clamp(x0, x1), hi.clamp(x0, x1));
                if iy >= ih || a == b {
                    dst.fill(pad);
                    continue;
                }
                dst[..a - x0].fill(pad);
                dst[b - x0..].fill(pad);
                let src = &plane[iy * iw + a * sw + kx - g.pad_before[1]..];
                let dst = &mut dst[a - x0..b - x0];
                if sw == 1 {
                    dst.copy_from_slice(&src[..b - a]);
                } else {
                    for (d, s) in dst.iter_mut().zip(src.iter().step_by(sw)) {
                        *d = *s;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element against the definition, on kernels, strides and paddings of every kind (asymmetric, larger
    /// than the kernel's reach, a window wider than the input), for all the pixels and for ranges of them.
    #[test]
    fn rows_are_the_windows_taps() {
        for (c, in_hw, kernel, stride, pb, pa) in [
            (3, [9, 11], [3, 3], [1, 1], [1, 1], [1, 1]),
            (2, [9, 11], [3, 3], [2, 2], [1, 1], [0, 0]),
            (3, [10, 10], [7, 7], [2, 2], [3, 3], [3, 3]),
            (4, [8, 7], [1, 1], [2, 2], [0, 0], [0, 0]),
            (1, [5, 6], [3, 5], [3, 1], [0, 2], [2, 1]),
            (2, [3, 2], [3, 3], [1, 1], [2, 2], [2, 2]),
        ] {
            let g = Geometry::new(c, in_hw, kernel, stride, pb, pa).unwrap();
            let codes: Vec<u8> = (0..c * in_hw[0] * in_hw[1]).map(|i| (i * 37 % 251) as u8).collect();
            let taps = c * kernel[0] * kernel[1];
            let rows = taps.div_ceil(4) * 4 + 4;
            let pixels = g.out_hw[0] * g.out_hw[1];
            // All the pixels, and ranges starting and ending inside output rows.
            for range in [0..pixels, pixels / 3..pixels - 1, 1..2.min(pixels)] {
                let n = range.len();
                let mut out = vec![0u8; rows * n];
                parallel::with_threads(3, || im2col(&g, &codes, 200, rows, range.clone(), &mut out));
                for r in 0..rows {
                    for (oy, ox) in range.clone().map(|p| (p / g.out_hw[1], p % g.out_hw[1])) {
                        let expected = if r >= taps {
                            200
                        } else {
                            let (ci, ky, kx) = (r / (kernel[0] * kernel[1]), r / kernel[1] % kernel[0], r % kernel[1]);
                            let iy = (oy * stride[0] + ky) as isize - pb[0] as isize;
                            let ix = (ox * stride[1] + kx) as isize - pb[1] as isize;
                            if iy < 0 || ix < 0 || iy >= in_hw[0] as isize || ix >= in_hw[1] as isize {
                                200
                            } else {
                                codes[(ci * in_hw[0] + iy as usize) * in_hw[1] + ix as usize]
                            }
                        };
                        assert_eq!(
                            out[r * n + oy * g.out_hw[1] + ox - range.start],
                            expected,
                            "{g}: row {r}, pixel ({oy}, {ox})"
                        );
                    }
                }
            }
        }
    }
}
