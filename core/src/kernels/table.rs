//! The table of the kernels this CPU runs: one function per kernel, the portable loop unless an ISA plug-in
//! replaced it, and the methods that split a call over the call's threads around them.

use super::depthwise::{self, Depthwise};
use super::epilogue::{Dest, Output, Source};
use super::parallel;
use super::qpointwise::{self, QPointwise};
use super::stem::{self, Stem};

/// The kernels this CPU runs, chosen once ([`super::kernels`]), as tract-linalg's `ops()` are: the portable loops
/// (compiled for the widest vector unit by [`super::isa::multiversion`]), with an ISA plug-in in their place where
/// the CPU has its instructions. Each takes one thread's share of the work; the methods split a call over threads.
pub(crate) struct Kernels {
    /// Output channels `first..` of a depthwise convolution, as many as the output has room for, with a zeroed
    /// padded plane of [`Depthwise::plane_len`] values.
    pub(crate) depthwise: fn(&Depthwise, Source, Dest, usize, &mut [f32]),
    /// Output channels `first..` of a stem convolution, from its padded input planes ([`Stem::fill`]).
    pub(crate) stem: fn(&Stem, &[f32], &mut [f32], usize),
    /// A whole int8 pointwise convolution (the plug-in splits it over the call's threads itself).
    pub(crate) qpointwise: fn(&QPointwise, Source, Dest),
    /// Whether `qpointwise` multiplies in integers with the CPU's own instructions: only then is it worth swapping
    /// in for tract's float products (the portable loop is the reference, not a fast path).
    pub(crate) int8_pointwise: bool,
    /// The plug-ins in the table, each as "kernel (instructions)": what `snakeid bench` and the tests report.
    pub(crate) plugged: Vec<&'static str>,
}

impl Kernels {
    /// The portable loops alone.
    pub(crate) fn portable() -> Kernels {
        Kernels {
            depthwise: depthwise::portable,
            stem: stem::portable,
            qpointwise: qpointwise::portable,
            int8_pointwise: false,
            plugged: Vec::new(),
        }
    }

    /// A depthwise convolution of `xs` into `out` (all its channels), the output channels split over the call's
    /// threads.
    pub(crate) fn depthwise<T: Output>(&self, op: &Depthwise, xs: Source, out: &mut [T]) {
        let g = &op.geometry;
        let (in_len, out_len) = (g.in_hw[0] * g.in_hw[1], g.out_hw[0] * g.out_hw[1]);
        parallel::for_each_chunk(out, out_len, 1, |first, chunk| {
            let n = chunk.len() / out_len;
            parallel::with_zeroed_floats(op.plane_len(), |plane| {
                (self.depthwise)(op, xs.slice(first * in_len..(first + n) * in_len), T::dest(chunk), first, plane)
            })
        })
    }

    /// A stem convolution of `xs` into `out` (all its channels), the output channels split over the call's
    /// threads, each filling its own copy of the (small) input planes.
    pub(crate) fn stem(&self, op: &Stem, xs: &[f32], out: &mut [f32]) {
        let out_len = op.geometry.out_hw[0] * op.geometry.out_hw[1];
        parallel::for_each_chunk(out, out_len, 1, |first, chunk| {
            parallel::with_zeroed_floats(op.plane_len(), |plane| {
                op.fill(xs, plane);
                (self.stem)(op, plane, chunk, first)
            })
        })
    }

    /// An int8 convolution of `xs` into `out`: the plug-in's matrix product, over the input itself (1x1) or its
    /// im2col matrix.
    pub(crate) fn qpointwise<T: Output>(&self, op: &QPointwise, xs: Source, out: &mut [T]) {
        op.with_gemm_input(xs, |op, xs, p0| (self.qpointwise)(op, xs, T::dest(&mut out[p0..])))
    }
}
