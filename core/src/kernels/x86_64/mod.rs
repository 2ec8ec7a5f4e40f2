//! The x86-64 plug-ins: our kernels written with AVX-512 intrinsics (the portable loops, compiled for AVX2 or
//! AVX-512 by [`super::isa::multiversion`], cover the rest), and the epilogue they share ([`epilogue`]). Each computes the same
//! operations in the same order as its portable loop, so the same bits; each is called only where
//! [`super::isa()`] says the CPU has its instructions.

pub(crate) mod depthwise;
pub(crate) mod epilogue;
pub(crate) mod qpointwise;
pub(crate) mod stem;

use super::isa::Isa;
use super::table::Kernels;

/// Puts the x86-64 plug-ins into `kernels`, each only where `isa` says the CPU has its instructions: what makes
/// calling them through the table safe.
pub(crate) fn plug(kernels: &mut Kernels, isa: &Isa) {
    if isa.avx512_bw_vl() {
        kernels.depthwise = depthwise::plugged;
    }
    if isa.avx512f {
        kernels.stem = stem::plugged;
    }
    if isa.avx512_vnni() {
        kernels.qpointwise = qpointwise::plugged;
        kernels.int8_pointwise = true;
    }
}
