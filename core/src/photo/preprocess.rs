//! Preprocessing: a decoded photo becomes the model's normalised NCHW f32 input, as the manifest describes.

use crate::bundle::manifest::{ChannelOrder, InputSpec, Resize, View};
use crate::photo::decode::MinSize;
use crate::photo::resample;
use image::RgbImage;

/// The smallest decoded size that loses nothing for this input spec, given the photo's aspect ratio.
pub fn min_size(spec: &InputSpec) -> MinSize {
    match spec.resize {
        // The shorter side must reach `shorter_side`; the decoder scales both axes by one factor.
        Resize::ShorterSideCenterCrop { shorter_side } => MinSize { width: shorter_side, height: shorter_side },
        Resize::Stretch => MinSize { width: spec.width, height: spec.height },
    }
}

/// Resizes (and crops) with Pillow's antialiased bilinear filter, then normalises to `(x/255 - mean) / std`.
/// Returns `[1, 3, height, width]` data in row-major order.
pub fn to_tensor(img: &RgbImage, spec: &InputSpec) -> Vec<f32> {
    let (w, h) = (spec.width, spec.height);
    let window = match spec.resize {
        Resize::Stretch => (w, h, (0, 0, w, h)),
        Resize::ShorterSideCenterCrop { shorter_side } => {
            // torchvision's Resize(s) + CenterCrop: the longer side becomes int(s * long / short),
            // the crop offset is round((side - crop) / 2).
            let (iw, ih) = img.dimensions();
            let s = shorter_side as u64;
            let (rw, rh) = if iw <= ih {
                (shorter_side, (s * ih as u64 / iw as u64) as u32)
            } else {
                ((s * iw as u64 / ih as u64) as u32, shorter_side)
            };
            let left = ((rw - w) as f64 / 2.0).round_ties_even() as u32;
            let top = ((rh - h) as f64 / 2.0).round_ties_even() as u32;
            (rw, rh, (left, top, w, h))
        }
    };
    let plane = (w * h) as usize;
    let mut out = vec![0f32; 3 * plane];
    let (p0, rest) = out.split_at_mut(plane);
    let (p1, p2) = rest.split_at_mut(plane);
    // The output planes in source channel order (R, G, B), and the output plane each source channel goes to.
    let (planes, to_plane): ([&mut [f32]; 3], [usize; 3]) = match spec.channel_order {
        ChannelOrder::Rgb => ([p0, p1, p2], [0, 1, 2]),
        ChannelOrder::Bgr => ([p2, p1, p0], [2, 1, 0]),
    };
    // The normalisation as one multiply-add per value, indexed by source channel.
    let mul = to_plane.map(|c| 1.0 / (255.0 * spec.std[c]));
    let add = to_plane.map(|c| -spec.mean[c] / spec.std[c]);
    resample::resize_crop_planes(img, window.0, window.1, window.2, planes, move |c, v| v as f32 * mul[c] + add[c]);
    out
}

/// The model input for one view of the photo. A mirror is made from the primary view's tensor when the caller
/// has it (`primary`), without resampling again.
pub fn view_tensor(img: &RgbImage, spec: &InputSpec, view: View, primary: Option<&[f32]>) -> Vec<f32> {
    match view {
        View::Primary => to_tensor(img, spec),
        View::Mirror => match primary {
            Some(t) => mirror(t, spec.width as usize),
            None => mirror(&to_tensor(img, spec), spec.width as usize),
        },
        View::Whole => to_tensor(img, &InputSpec { resize: Resize::Stretch, ..spec.clone() }),
    }
}

/// Every row of an NCHW tensor reversed: the picture mirrored left to right.
fn mirror(tensor: &[f32], width: usize) -> Vec<f32> {
    tensor.chunks_exact(width).flat_map(|row| row.iter().rev().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(resize: Resize) -> InputSpec {
        InputSpec {
            width: 4,
            height: 4,
            resize,
            mean: [0.5; 3],
            std: [0.5; 3],
            channel_order: ChannelOrder::Rgb,
            views: vec![View::Primary],
        }
    }

    #[test]
    fn views_mirror_the_crop_and_show_the_whole_photo() {
        // Left quarter red, the rest blue, 16x4: the centre crop (4x4 of a 16x4 resize) is all blue, the whole
        // photo squeezed to 4x4 has a red first column.
        let img = RgbImage::from_fn(16, 4, |x, _| {
            if x < 4 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, (x * 15) as u8, 255])
            }
        });
        let s = spec(Resize::ShorterSideCenterCrop { shorter_side: 4 });
        let primary = view_tensor(&img, &s, View::Primary, None);
        assert!(primary[..16].iter().all(|&v| v < -0.9), "the centre crop shows no red");
        let whole = view_tensor(&img, &s, View::Whole, None);
        assert!(whole[0] > 0.0 && whole[3] < -0.9, "the whole view shows the red edge: {whole:?}");
        let mirrored = view_tensor(&img, &s, View::Mirror, Some(&primary));
        assert_eq!(mirrored, view_tensor(&img, &s, View::Mirror, None));
        for (row, mrow) in primary.chunks(4).zip(mirrored.chunks(4)) {
            assert!(row.iter().eq(mrow.iter().rev()));
        }
    }

    #[test]
    fn normalises_a_flat_image_exactly() {
        let img = RgbImage::from_pixel(10, 6, image::Rgb([255, 0, 51]));
        let t = to_tensor(&img, &spec(Resize::ShorterSideCenterCrop { shorter_side: 5 }));
        assert_eq!(t.len(), 48);
        assert!(t[..16].iter().all(|&v| (v - 1.0).abs() < 1e-6));
        assert!(t[16..32].iter().all(|&v| (v + 1.0).abs() < 1e-6));
        assert!(t[32..].iter().all(|&v| (v - (0.2 - 0.5) / 0.5).abs() < 1e-6));
    }

    #[test]
    fn bgr_swaps_planes_and_crop_is_centred() {
        // Left half red, right half blue: a centre crop of a wide image sees both.
        let img =
            RgbImage::from_fn(40, 10, |x, _| if x < 20 { image::Rgb([255, 0, 0]) } else { image::Rgb([0, 0, 255]) });
        let mut s = spec(Resize::ShorterSideCenterCrop { shorter_side: 4 });
        let t = to_tensor(&img, &s);
        assert!(t[0] > 0.9 && t[3] < -0.9, "red plane: left red, right not");
        s.channel_order = ChannelOrder::Bgr;
        let b = to_tensor(&img, &s);
        assert_eq!(&b[..16], &t[32..]);
    }
}
