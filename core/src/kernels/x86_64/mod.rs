//! The x86-64 plug-ins: our kernels written with AVX-512 intrinsics, and the epilogue they share ([`epilogue`]);
//! in [`avx2`], those for CPUs with AVX2 but no AVX-512 (the portable loops, compiled for AVX2 or AVX-512 by
//! [`super::isa::multiversion`], cover the rest). Each computes the same
//! operations in the same order as its portable loop, so the same bits; each is called only where
//! [`super::isa()`] says the CPU has its instructions.

pub(crate) mod avx2;
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
        kernels.plugged.push("depthwise (AVX-512 F/BW/VL)");
    } else if isa.avx2_fma() {
        kernels.depthwise = avx2::depthwise::plugged;
        kernels.plugged.push("depthwise (AVX2)");
    }
    if isa.avx512f {
        kernels.stem = stem::plugged;
        kernels.plugged.push("stem (AVX-512 F)");
    } else if isa.avx2_fma() {
        kernels.stem = avx2::stem::plugged;
        kernels.plugged.push("stem (AVX2)");
    }
    if isa.avx512_vnni() {
        kernels.qpointwise = qpointwise::plugged;
        kernels.int8_pointwise = true;
        kernels.plugged.push("int8 convolutions (AVX-512 VNNI)");
    } else if isa.avx2_fma() {
        kernels.qpointwise = avx2::qpointwise::plugged;
        kernels.int8_pointwise = true;
        kernels.plugged.push("int8 convolutions (AVX2 + FMA)");
    }
}
