//! What our convolutions share around their sums: the epilogue (clip, then fake quantization) run on each block
//! of outputs while it is in registers, and the two forms of their input and output, f32 values or the u8 codes
//! of a fake quantization's grid (handed between convolutions, [`crate::backend::cpu::handover`]).

use super::quant::{clamp, FakeQuant};

/// A convolution's input: f32 values, or u8 codes `q` of the values `(q - zero point) * scale`.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    Values(&'a [f32]),
    Codes(&'a [u8], (f32, i32)),
}

impl<'a> Source<'a> {
    /// Its elements `range`.
    pub(crate) fn slice(self, range: std::ops::Range<usize>) -> Source<'a> {
        match self {
            Source::Values(x) => Source::Values(&x[range]),
            Source::Codes(x, grid) => Source::Codes(&x[range], grid),
        }
    }
}

/// A convolution's output: f32 values, or u8 codes of its fake quantization's grid.
pub(crate) enum Dest<'a> {
    Values(&'a mut [f32]),
    Codes(&'a mut [u8]),
}

/// What our convolutions write: f32 values, or u8 codes of their output's fake quantization grid, for a reader that
/// takes codes ([`crate::backend::cpu::handover`]).
pub(crate) trait Output: Copy + Default + Send + Sync + 'static {
    /// Whether these are codes (for the plug-ins).
    #[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
    const CODES: bool;
    /// A block's outputs from its values before the epilogue (`pre`, changed; at least as long as `out`).
    fn finish(pre: &mut [f32], epilogue: &Epilogue, zero_point: i32, out: &mut [Self]);
    /// The output as a [`Dest`], for the kernels' table.
    fn dest(out: &mut [Self]) -> Dest<'_>;
}

impl Output for f32 {
    const CODES: bool = false;
    fn dest(out: &mut [f32]) -> Dest<'_> {
        Dest::Values(out)
    }
    #[inline(always)]
    fn finish(pre: &mut [f32], epilogue: &Epilogue, _: i32, out: &mut [f32]) {
        epilogue.apply(pre);
        out.copy_from_slice(&pre[..out.len()]);
    }
}

impl Output for u8 {
    const CODES: bool = true;
    fn dest(out: &mut [u8]) -> Dest<'_> {
        Dest::Codes(out)
    }
    #[inline(always)]
    fn finish(pre: &mut [f32], epilogue: &Epilogue, zero_point: i32, out: &mut [u8]) {
        let mut codes = [0u8; 16];
        for (pre, out) in pre.chunks_mut(16).zip(out.chunks_mut(16)) {
            epilogue.codes(pre, zero_point, &mut codes[..pre.len()]);
            out.copy_from_slice(&codes[..out.len()]);
        }
    }
}

/// Our convolutions' epilogue: clip, then fake quantization, on blocks of accumulated outputs. Made once per call
/// (the clip folded into the quantization's clamp where it can be, [`FakeQuant::after_clip`]),
/// applied to every block: portable here, broadcast into registers by the x86-64 plug-ins (`x86_64::epilogue`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epilogue {
    /// The clip left to run on its own (none when folded), and the fake quantization's constants
    /// ([`FakeQuant::params`]'s layout).
    pub clip: Option<(f32, f32)>,
    pub fake_quant: Option<[f32; 5]>,
}

impl Epilogue {
    pub(crate) fn new(clip: Option<(f32, f32)>, fake_quant: Option<&FakeQuant>) -> Epilogue {
        match fake_quant {
            Some(fq) => {
                let (clip, params) = fq.after_clip(clip);
                Epilogue { clip, fake_quant: Some(params) }
            }
            None => Epilogue { clip, fake_quant: None },
        }
    }

    /// The clip left to run on its own, if any, in place.
    #[inline(always)]
    fn clip(&self, block: &mut [f32]) {
        if let Some((lo, hi)) = self.clip {
            block.iter_mut().for_each(|v| *v = clamp(*v, lo, hi));
        }
    }

    /// On one block of outputs, in place (portable).
    #[inline(always)]
    pub(crate) fn apply(&self, block: &mut [f32]) {
        self.clip(block);
        if let Some(params) = self.fake_quant {
            FakeQuant::apply_params(block, params);
        }
    }

    /// On one block of outputs of a fake-quantized epilogue (the block itself clipped in place): their u8 codes on
    /// the grid of zero point `zero_point` ([`FakeQuant::grid`]) into `codes` — whose values
    /// times the grid's scale are exactly what [`Epilogue::apply`] gives. Without a fake quantization: none.
    #[inline(always)]
    pub(crate) fn codes(&self, block: &mut [f32], zero_point: i32, codes: &mut [u8]) {
        self.clip(block);
        if let Some(params) = self.fake_quant {
            for (c, v) in codes.iter_mut().zip(block.iter()) {
                *c = (FakeQuant::level(*v, params) as i32 + zero_point) as u8;
            }
        }
    }
}

/// Clip bounds compared by their bits (NaN-safe, as `Eq` needs).
pub(crate) fn bits(clip: Option<(f32, f32)>) -> Option<(u32, u32)> {
    clip.map(|(a, b)| (a.to_bits(), b.to_bits()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::quant::tests::uniform;

    /// A clip folded into the quantization's clamp (`after_clip`) gives the bits of the clip then the fake
    /// quantization: ReLU, ReLU6 and odd clips, grids that cut the clip or lie past it, NaN, infinities, signed
    /// zeros and exact ties; with the vector epilogues too: AVX-512 where the CPU has it, NEON on AArch64.
    #[test]
    fn a_clip_folded_into_the_quantization_gives_the_same_bits() {
        if cfg!(target_arch = "x86_64") {
            // Where it cannot run, the portable epilogue alone is checked.
            crate::kernels::plug_in_ran("epilogue (AVX-512 F)", &["avx512f"], crate::kernels::isa().avx512f);
        }
        let mut rnd = uniform(0x2545_F491);
        let mut folded = 0;
        for (scale, zp) in [(0.0235f32, 0u8), (0.1, 128), (0.0078125, 3), (1.7, 255), (0.02, 250)] {
            let op = FakeQuant::new(1.0 / scale, zp, scale, zp as i32);
            for clip in [
                (0.0, 6.0),
                (0.0, f32::INFINITY),
                (-1.0, 1.0),
                (f32::NEG_INFINITY, 0.5),
                (-0.0, 3.3),
                (7.0, 9.0),
                (-9.0, -8.0),
            ] {
                let mut xs: Vec<f32> = (0..5_000).map(|_| (rnd() * 2.0 - 1.0) * 12.0).collect();
                xs.extend((-300..300).map(|k| (k as f32 + 0.5) * scale));
                xs.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, clip.0, clip.1, 6.0, -6.0]);
                let mut want = xs.clone();
                want.iter_mut().for_each(|v| *v = clamp(*v, clip.0, clip.1));
                op.apply_portable(&mut want);
                let (left, params) = op.after_clip(Some(clip));
                folded += left.is_none() as usize;
                let mut got = xs.clone();
                Epilogue::new(Some(clip), Some(&op)).apply(&mut got);
                let bits = |v: &[f32]| v.iter().map(|y| y.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "scale {scale} zp {zp} clip {clip:?} -> {left:?} {params:?}");
                #[cfg(target_arch = "x86_64")]
                if crate::kernels::isa().avx512f {
                    let mut lanes = xs.clone();
                    lanes.resize(xs.len().next_multiple_of(16), 0.0);
                    // SAFETY: the CPU has AVX-512 F; each load and store stays within `lanes`.
                    unsafe {
                        use std::arch::x86_64::*;
                        #[target_feature(enable = "avx512f")]
                        unsafe fn run(lanes: &mut [f32], clip: (f32, f32), op: &FakeQuant) {
                            // SAFETY: the caller keeps this function's contract (its `# Safety`).
                            unsafe {
                                let e = crate::kernels::x86_64::epilogue::Epilogue::new(Some(clip), Some(op));
                                for block in lanes.chunks_exact_mut(16) {
                                    _mm512_storeu_ps(block.as_mut_ptr(), e.apply(_mm512_loadu_ps(block.as_ptr())));
                                }
                            }
                        }
                        run(&mut lanes, clip, &op);
                    }
                    assert_eq!(bits(&lanes[..xs.len()]), bits(&want), "AVX-512, scale {scale} zp {zp} clip {clip:?}");
                }
                #[cfg(target_arch = "aarch64")]
                {
                    // The NEON epilogue, values and codes: the portable bits and codes.
                    let e = Epilogue::new(Some(clip), Some(&op));
                    let neon = crate::kernels::aarch64::epilogue::NeonEpilogue::new(e, zp as i32);
                    let mut lanes = xs.clone();
                    lanes.resize(xs.len().next_multiple_of(16), 0.0);
                    let (mut values, mut codes) = (vec![0f32; lanes.len()], vec![0u8; lanes.len()]);
                    for ((block, v), c) in
                        lanes.chunks_exact(16).zip(values.chunks_exact_mut(16)).zip(codes.chunks_exact_mut(16))
                    {
                        // SAFETY: NEON is part of every AArch64 CPU; each load and store is 16 lanes of a block.
                        unsafe {
                            let regs: [_; 4] =
                                std::array::from_fn(|q| std::arch::aarch64::vld1q_f32(block.as_ptr().add(q * 4)));
                            neon.store(regs, v.as_mut_ptr(), 16);
                            neon.store(regs, c.as_mut_ptr(), 16);
                        }
                    }
                    assert_eq!(bits(&values[..xs.len()]), bits(&want), "NEON, scale {scale} zp {zp} clip {clip:?}");
                    let mut want_codes = vec![0u8; xs.len()];
                    e.codes(&mut xs.clone(), zp as i32, &mut want_codes);
                    assert_eq!(&codes[..xs.len()], &want_codes[..], "NEON codes, scale {scale} zp {zp} clip {clip:?}");
                    // A partial block stores its first n outputs and nothing after them.
                    for n in 0..=16 {
                        let (mut v, mut c) = ([f32::MAX; 17], [7u8; 17]);
                        // SAFETY: as above, n <= 16 outputs stored.
                        unsafe {
                            let regs: [_; 4] =
                                std::array::from_fn(|q| std::arch::aarch64::vld1q_f32(lanes.as_ptr().add(q * 4)));
                            neon.store(regs, v.as_mut_ptr(), n);
                            neon.store(regs, c.as_mut_ptr(), n);
                        }
                        assert_eq!(bits(&v[..n]), bits(&values[..n]), "NEON values, {n} of a block");
                        assert_eq!(&c[..n], &codes[..n], "NEON codes, {n} of a block");
                        assert!(
                            v[n..].iter().all(|v| *v == f32::MAX) && c[n..].iter().all(|c| *c == 7),
                            "stored past {n}"
                        );
                    }
                }
            }
        }
        assert!(folded >= 20, "only {folded} clips were folded");
    }
}
