//! The x86-64 plug-ins for CPUs with AVX2 and FMA but no AVX-512 (most laptops and desktops: Intel's client cores,
//! AMD before Zen 4): the depthwise convolution ([`depthwise`]), the stem convolution ([`stem`]), the int8
//! convolutions ([`qpointwise`]) and the epilogue they run in registers ([`epilogue`]). Each computes its portable
//! loop's values bit for bit.

pub(crate) mod depthwise;
pub(crate) mod epilogue;
pub(crate) mod qpointwise;
pub(crate) mod stem;
