//! The zero-padded, column-phase-split input planes that our spatial convolutions (depthwise and stem) read: each
//! tap of an output row then reads one contiguous row of a plane, whatever the stride.

/// Extra values at the end of the padded plane, so that a block of 16 lanes may overhang the last row.
pub(crate) const SLACK: usize = 16;

/// Geometry of one convolution over `[1, C, H, W]` or `[C, H, W]`, and its zero-padded, column-phase-split input
/// planes (one per input channel), read by [`super::depthwise`] and [`super::stem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub channels: usize,
    pub in_hw: [usize; 2],
    pub out_hw: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Zeros before (top, left) and after (bottom, right) the input.
    pub pad_before: [usize; 2],
    pub pad_after: [usize; 2],
}

impl std::fmt::Display for Geometry {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let g = self;
        write!(
            f,
            "{} channels {:?} -> {:?}, kernel {:?} stride {:?} pad {:?}/{:?}",
            g.channels, g.in_hw, g.out_hw, g.kernel, g.stride, g.pad_before, g.pad_after
        )
    }
}

impl Geometry {
    /// The geometry of a convolution with these parameters, with its output size; `None` when the padded input is
    /// smaller than the kernel.
    pub fn new(
        channels: usize,
        in_hw: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        pad_before: [usize; 2],
        pad_after: [usize; 2],
    ) -> Option<Geometry> {
        let padded = [in_hw[0] + pad_before[0] + pad_after[0], in_hw[1] + pad_before[1] + pad_after[1]];
        if padded[0] < kernel[0] || padded[1] < kernel[1] {
            return None;
        }
        let out_hw = [(padded[0] - kernel[0]) / stride[0] + 1, (padded[1] - kernel[1]) / stride[1] + 1];
        Some(Geometry { channels, in_hw, out_hw, kernel, stride, pad_before, pad_after })
    }

    /// Width of one column phase of the padded plane (the padded width split `stride` ways).
    pub(crate) fn phase_width(&self) -> usize {
        (self.in_hw[1] + self.pad_before[1] + self.pad_after[1]).div_ceil(self.stride[1])
    }

    pub(crate) fn padded_height(&self) -> usize {
        self.in_hw[0] + self.pad_before[0] + self.pad_after[0]
    }

    /// Values in one channel's padded plane, all its column phases.
    pub fn channel_plane_len(&self) -> usize {
        self.stride[1] * self.padded_height() * self.phase_width()
    }

    /// Plane values between the starts of two output rows.
    pub fn row_step(&self) -> usize {
        self.phase_width() * self.stride[0]
    }

    /// One past the last plane value that a pass over every output row in blocks of 16 loads, for taps starting at
    /// `tap_start`: a block starts before its row's end and overhangs it by at most 15 values (read from the next
    /// row, the next plane or the SLACK).
    pub fn last_load(&self, tap_start: &[usize]) -> usize {
        let [oh, ow] = self.out_hw;
        (oh - 1) * self.row_step() + tap_start.iter().max().unwrap_or(&0) + ow.div_ceil(16) * 16
    }

    /// Where tap (ky, kx) of output row y reads in a channel's plane: `tap_start[ky * kw + kx] + y * row_step`.
    pub fn tap_start(&self) -> Vec<usize> {
        let ([kh, kw], sw, ph, pw) = (self.kernel, self.stride[1], self.padded_height(), self.phase_width());
        (0..kh * kw).map(|t| ((t % kw % sw) * ph + t / kw) * pw + (t % kw) / sw).collect()
    }

    /// Copies one channel `src` (`ih x iw`) into its zero-padded plane, each value through `f`: column phase p holds
    /// padded columns p, p + sw, p + 2 sw, ... (the padding itself stays zero: only the interior is ever written).
    #[inline(always)]
    pub fn fill_plane_with<T: Copy>(&self, src: &[T], plane: &mut [f32], f: impl Fn(T) -> f32) {
        let g = self;
        let (iw, sw) = (g.in_hw[1], g.stride[1]);
        let (pw, ph) = (g.phase_width(), g.padded_height());
        for (r, row) in src.chunks_exact(iw).enumerate() {
            let r = r + g.pad_before[0];
            if sw == 1 {
                let start = r * pw + g.pad_before[1];
                for (dst, v) in plane[start..start + iw].iter_mut().zip(row) {
                    *dst = f(*v);
                }
            } else if sw == 2 {
                // Column j goes to phase (j + pad_left) % 2 at (j + pad_left) / 2: split the row in pairs.
                let pl = g.pad_before[1];
                let (even, odd) = plane.split_at_mut(ph * pw);
                let (even, odd) = (&mut even[r * pw..(r + 1) * pw], &mut odd[r * pw..(r + 1) * pw]);
                let mut j = 0;
                if pl % 2 == 1 {
                    odd[pl / 2] = f(row[0]);
                    j = 1;
                }
                let k0 = (j + pl) / 2;
                let pairs = row[j..].chunks_exact(2);
                let rest = pairs.remainder();
                let n = (iw - j) / 2;
                for ((pair, e), o) in pairs.zip(&mut even[k0..k0 + n]).zip(&mut odd[k0..k0 + n]) {
                    *e = f(pair[0]);
                    *o = f(pair[1]);
                }
                if let [last] = rest {
                    even[k0 + n] = f(*last);
                }
            } else {
                // Phase p takes input columns j with (j + pad_left) % sw == p, starting at k = (j + pad_left) / sw.
                for p in 0..sw {
                    let first = (p + sw - g.pad_before[1] % sw) % sw;
                    if first >= iw {
                        continue;
                    }
                    let k0 = (first + g.pad_before[1]) / sw;
                    let start = (p * ph + r) * pw + k0;
                    for (dst, v) in plane[start..start + pw - k0].iter_mut().zip(row[first..].iter().step_by(sw)) {
                        *dst = f(*v);
                    }
                }
            }
        }
    }
}
