//! The CPU inference engine: tract loads and optimises the ONNX model once, with our own operators swapped into
//! its graph ([`depthwise`], [`stem`], [`qpointwise`], [`fakequant`], [`handover`]: tract's traits and graph
//! matching only, their arithmetic in [`crate::kernels`]); each call runs the compiled plan.

pub mod depthwise;
mod eval;
pub mod fakequant;
pub mod handover;
mod pattern;
pub mod qpointwise;
pub mod stem;

#[cfg(test)]
use super::model::typed_model_with;
use super::model::{berr, one_line, typed_model};
use crate::error::{Error, Result};
use std::sync::Arc;
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;

/// Which of our operators replace tract's: depthwise convolutions with their clip and quantization
/// ([`depthwise`]), int8 pointwise convolutions where the CPU has an int8 plug-in ([`qpointwise`]),
/// quantize/dequantize passes ([`fakequant`]). The first and last compute tract's values bit for bit; the
/// int8 products differ by tract's own float rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnOps {
    pub depthwise: bool,
    pub stem: bool,
    pub int8_pointwise: bool,
    pub fake_quant: bool,
    /// u8 codes instead of f32 values between two of our convolutions where one alone reads the other
    /// ([`handover`]).
    pub handover: bool,
}

impl OwnOps {
    pub const ALL: OwnOps =
        OwnOps { depthwise: true, stem: true, int8_pointwise: true, fake_quant: true, handover: true };
    pub const NONE: OwnOps =
        OwnOps { depthwise: false, stem: false, int8_pointwise: false, fake_quant: false, handover: false };
}

/// A compiled model. Cheap to share: the plan is immutable and every call gets its own state.
#[derive(Debug, Clone)]
pub struct Engine {
    plan: Arc<TypedRunnableModel>,
    /// Runs tract's matrix products: on the calling thread, or split over a private thread pool.
    executor: Executor,
    threads: usize,
    width: usize,
    height: usize,
    num_classes: usize,
}

impl Engine {
    /// Parses, types and optimises the model for a `[1, 3, height, width]` f32 input and checks
    /// that it outputs `num_classes` logits.
    /// `onnx`: the file's bytes (a `Vec<u8>`, a `&'static [u8]` or a bundle's `Bytes`, which is not copied).
    pub fn compile(onnx: impl Into<bytes::Bytes>, width: u32, height: u32, num_classes: usize) -> Result<Self> {
        Self::compile_with(onnx, width, height, num_classes, OwnOps::ALL)
    }

    /// As [`Engine::compile`], with a choice of which of our operators replace tract's.
    pub fn compile_with(
        onnx: impl Into<bytes::Bytes>,
        width: u32,
        height: u32,
        num_classes: usize,
        own_ops: OwnOps,
    ) -> Result<Self> {
        let typed = typed_model(onnx, width, height, num_classes)?;
        let (width, height) = (width as usize, height as usize);
        let optimized = optimized_model(typed, own_ops)?;
        let plan = optimized.into_runnable().map_err(berr("planning"))?;
        Ok(Engine { plan, executor: Executor::SingleThread, threads: 1, width, height, num_classes })
    }

    /// Splits the heavy matrix products of each call over a private pool of `threads` threads (1: the caller's thread).
    pub fn with_threads(mut self, threads: usize) -> Result<Self> {
        let threads = threads.max(1);
        self.executor = if threads == 1 { Executor::SingleThread } else { pool(threads)? };
        self.threads = threads;
        Ok(self)
    }

    /// Runs `f` with this engine's threads as the current executor, so that our own parallel work (photo
    /// decoding) uses the same pool as the model.
    pub fn in_pool<R>(&self, f: impl FnOnce() -> R) -> R {
        multithread_tract_scope(self.executor.clone(), f)
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Nodes of the optimised plan (constants and the input aside).
    pub fn nodes(&self) -> usize {
        self.plan
            .model()
            .nodes
            .iter()
            .filter(|n| {
                !n.op_is::<tract_onnx::tract_core::ops::konst::Const>()
                    && !n.op_is::<tract_onnx::tract_core::ops::source::TypedSource>()
            })
            .count()
    }

    /// Runs the model on one normalised `[1, 3, height, width]` input and returns the logits.
    pub fn run(&self, input: Vec<f32>) -> Result<Vec<f32>> {
        let expected = 3 * self.width * self.height;
        if input.len() != expected {
            return Err(Error::Internal(format!("input has {} values, expected {expected}", input.len())));
        }
        // The input's buffer becomes the tensor's (no copy of its 600 KB).
        let tensor = tract_ndarray::Array4::from_shape_vec((1, 3, self.height, self.width), input)
            .map_err(|e| Error::Internal(e.to_string()))?
            .into_tensor();
        let outputs = multithread_tract_scope(self.executor.clone(), || {
            crate::tools::failpoint::hit("inference");
            self.plan.run(tvec!(tensor.into()))
        })
        .map_err(|e| Error::Backend(format!("running the model: {}", one_line(&e))))?;
        let view = outputs[0].to_plain_array_view::<f32>().map_err(|e| Error::Internal(one_line(&e)))?;
        let logits: Vec<f32> = view.iter().copied().collect();
        if logits.len() != self.num_classes {
            return Err(Error::Internal(format!(
                "model returned {} logits, expected {}",
                logits.len(),
                self.num_classes
            )));
        }
        Ok(logits)
    }
}

/// Declutters and optimises a typed model for the CPU, with our operators swapped in where `own_ops` says.
/// They go in twice: first into the typed graph, straight from the importer — declutter is then a pass over a
/// graph without the convolutions' weights, which it would otherwise rewrite and copy (most of the load time) —,
/// then into the decluttered graph, for what only declutter brings into their form (a classifier's Gemm).
pub fn optimized_model(typed: TypedModel, own_ops: OwnOps) -> Result<TypedModel> {
    let mut model = typed;
    swap_in(&mut model, own_ops)?;
    declutter_for_swaps(&mut model).map_err(berr("decluttering"))?;
    swap_in(&mut model, own_ops)?;
    let mut optimized = model.into_optimized().map_err(berr("optimising"))?;
    if own_ops.fake_quant {
        fakequant::fuse(&mut optimized).map_err(berr("fusing quantize/dequantize pairs"))?;
    }
    if own_ops.handover {
        handover::hand_over(&mut optimized).map_err(berr("handing codes between convolutions"))?;
    }
    Ok(optimized)
}

/// Our depthwise, stem and int8 pointwise convolutions, where `own_ops` says, into a typed or decluttered model.
fn swap_in(model: &mut TypedModel, own_ops: OwnOps) -> Result<()> {
    if own_ops.depthwise {
        depthwise::swap_in(model).map_err(berr("swapping in depthwise convolutions"))?;
    }
    if own_ops.stem {
        stem::swap_in(model).map_err(berr("swapping in stem convolutions"))?;
    }
    if own_ops.int8_pointwise {
        qpointwise::swap_in(model).map_err(berr("swapping in int8 pointwise convolutions"))?;
    }
    Ok(())
}

/// tract's declutter without its ChangeAxes pass, which deep-copies constant tensors for the axis changes it tries
/// (most of declutter's time on the default bundle before our operators went in ahead of it; BENCHMARKS.md) and
/// which our swaps do not need.
/// `into_optimized` runs the full declutter, ChangeAxes included, afterwards, on the graph our operators made small.
/// Should a tract release rename or drop the pass, this falls back to the full declutter.
pub fn declutter_for_swaps(model: &mut TypedModel) -> TractResult<()> {
    let mut optimizer = tract_onnx::tract_core::optim::Optimizer::declutter();
    let all = optimizer.passes.len();
    optimizer.passes.retain(|pass| !format!("{pass:?}").starts_with("ChangeAxes"));
    if optimizer.passes.len() + 1 != all {
        return model.declutter();
    }
    optimizer.session().optimize(model)
}

/// A private pool of `threads` threads (more than one).
#[cfg(feature = "threads")]
fn pool(threads: usize) -> Result<Executor> {
    std::panic::catch_unwind(|| Executor::multithread_with_name(threads, "snakeid"))
        .map_err(|_| Error::Backend(format!("cannot start a pool of {threads} threads")))
}

/// Without the `threads` feature there is no pool: more than one thread is refused, not silently ignored.
#[cfg(not(feature = "threads"))]
fn pool(threads: usize) -> Result<Executor> {
    Err(Error::Backend(format!("cannot run on {threads} threads: snakeid was built without its `threads` feature")))
}

/// A build without `threads` (the phone libraries', the web app's) refuses a pool: it must not run on one thread while
/// reporting more.
#[cfg(all(test, not(feature = "threads")))]
#[test]
fn without_the_threads_feature_more_than_one_thread_is_refused() {
    let e = pool(2).unwrap_err();
    assert!(matches!(e, Error::Backend(_)) && e.to_string().contains("`threads` feature"), "{e}");
}

#[cfg(all(test, feature = "embedded-default"))]
mod tests {
    use super::*;

    fn default_engines(a: OwnOps, b: OwnOps) -> (Engine, Engine, Vec<f32>) {
        let bundle = crate::Bundle::embedded_default().unwrap();
        let (w, h, n) = (bundle.manifest.input.width, bundle.manifest.input.height, bundle.manifest.model.num_classes);
        let input: Vec<f32> = (0..3 * w * h).map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0).collect();
        (
            Engine::compile_with(bundle.model.clone(), w, h, n, a).unwrap(),
            Engine::compile_with(bundle.model.clone(), w, h, n, b).unwrap(),
            input,
        )
    }

    /// Our depthwise convolution and quantization passes give tract's logits bit for bit: each tap is rounded as
    /// tract's own kernel rounds it on this ISA, a multiply then an add on x86-64 (and wasm, armv7), one fused
    /// multiply-add on AArch64 (`kernels::depthwise::FUSED`).
    #[test]
    fn our_depthwise_and_quantize_operators_give_tracts_logits_bit_for_bit() {
        let ours = OwnOps { int8_pointwise: false, stem: false, ..OwnOps::ALL };
        let (fused, plain, input) = default_engines(ours, OwnOps::NONE);
        assert!(fused.nodes() < plain.nodes(), "nothing was swapped in: {} vs {} nodes", fused.nodes(), plain.nodes());
        let (a, b) = (fused.run(input.clone()).unwrap(), plain.run(input).unwrap());
        assert_eq!(
            a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }

    /// u8 codes instead of f32 values between our int8 pointwise and depthwise convolutions (into every depthwise
    /// convolution of MobileNetV2 but the first, which follows the float stem, out of every one, and the two
    /// pointwise pairs with nothing between them): the same logits, bit for bit.
    #[test]
    fn codes_handed_between_convolutions_give_the_same_logits() {
        let bundle = crate::Bundle::embedded_default().unwrap();
        let (w, h, n) = (bundle.manifest.input.width, bundle.manifest.input.height, bundle.manifest.model.num_classes);
        let mut model = optimized_model(
            typed_model(bundle.model.clone(), w, h, n).unwrap(),
            OwnOps { handover: false, ..OwnOps::ALL },
        )
        .unwrap();
        let expected = if crate::kernels::kernels().int8_pointwise { 16 + 17 + 2 } else { 0 };
        assert_eq!(handover::hand_over(&mut model).unwrap(), expected);
        assert_eq!(handover::hand_over(&mut model).unwrap(), 0, "handed over twice");
        let (codes, values, input) = default_engines(OwnOps::ALL, OwnOps { handover: false, ..OwnOps::ALL });
        let (a, b) = (codes.run(input.clone()).unwrap(), values.run(input).unwrap());
        assert_eq!(
            a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }

    /// Integer products instead of tract's float products of the same quantized values: the logits move by tract's
    /// float rounding, carried through a few quantization steps — the distance onnxruntime's integer kernels have.
    #[test]
    fn int8_pointwise_convolutions_stay_within_rounding_of_tracts_float_products() {
        let (int8, float, input) = default_engines(OwnOps::ALL, OwnOps { int8_pointwise: false, ..OwnOps::ALL });
        if !crate::kernels::kernels().int8_pointwise {
            assert_eq!(int8.nodes(), float.nodes());
            return;
        }
        assert!(int8.nodes() < float.nodes(), "no int8 pointwise convolution was swapped in");
        let (a, b) = (int8.run(input.clone()).unwrap(), float.run(input).unwrap());
        let max = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        let mean = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
        let spread = b.iter().fold(f32::MIN, |m, v| m.max(*v)) - b.iter().fold(f32::MAX, |m, v| m.min(*v));
        eprintln!("int8 vs float pointwise: max |Δlogit| {max}, mean {mean}, logit spread {spread}");
        assert!(max <= 1.0 && mean <= 0.25, "max |Δlogit| {max}, mean {mean}");
        let argmax = |v: &[f32]| v.iter().enumerate().max_by(|x, y| x.1.total_cmp(y.1)).unwrap().0;
        assert_eq!(argmax(&a), argmax(&b));
    }

    /// Our stem convolution sums its 27 products in another order than tract's im2col matrix product: the logits
    /// move by float rounding only (carried through the quantization steps after it).
    #[test]
    fn stem_convolution_stays_within_rounding_of_tracts() {
        let (ours, tracts, input) = default_engines(OwnOps::ALL, OwnOps { stem: false, ..OwnOps::ALL });
        if !crate::kernels::isa().fast_fma() {
            return assert_eq!(ours.nodes(), tracts.nodes());
        }
        assert!(ours.nodes() < tracts.nodes(), "the stem convolution was not swapped in");
        let (a, b) = (ours.run(input.clone()).unwrap(), tracts.run(input).unwrap());
        let max = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        eprintln!("stem: max |Δlogit| {max}");
        assert!(max <= 0.5, "max |Δlogit| {max}");
        let argmax = |v: &[f32]| v.iter().enumerate().max_by(|x, y| x.1.total_cmp(y.1)).unwrap().0;
        assert_eq!(argmax(&a), argmax(&b));
    }

    /// Our operators split their work over the engine's threads (channels of a depthwise convolution, output
    /// channels of an int8 one); each piece computes what it computed on one thread. (Without the `threads` feature,
    /// as in wasm, there is one thread and more is an error.)
    #[test]
    #[cfg(feature = "threads")]
    fn three_threads_give_one_threads_logits_bit_for_bit() {
        let (one, three, input) = default_engines(OwnOps::ALL, OwnOps::ALL);
        let three = three.with_threads(3).unwrap();
        let (a, b) = (one.run(input.clone()).unwrap(), three.run(input).unwrap());
        assert_eq!(
            a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }

    /// Load time: our operators must find every convolution of the default model in the typed graph, before
    /// declutter — one left for declutter costs its weights' rewriting and copying (most of the load time).
    #[test]
    fn every_convolution_is_swapped_in_before_declutter() {
        let bundle = crate::Bundle::embedded_default().unwrap();
        let (w, h, n) = (bundle.manifest.input.width, bundle.manifest.input.height, bundle.manifest.model.num_classes);
        let mut model = typed_model(bundle.model.clone(), w, h, n).unwrap();
        assert_eq!(depthwise::swap_in(&mut model).unwrap(), 17);
        let stem = crate::kernels::isa().fast_fma();
        assert_eq!(stem::swap_in(&mut model).unwrap(), stem as usize);
        // The 34 pointwise convolutions. Where our float stem does not take the 3x3 stem (wasm: no fused multiply-add)
        // tract runs it: its input is the photo's floats, not int8 codes, so it is no int8 convolution of ours.
        let int8 = if crate::kernels::kernels().int8_pointwise { 34 } else { 0 };
        assert_eq!(qpointwise::swap_in(&mut model).unwrap(), int8);
        declutter_for_swaps(&mut model).unwrap();
        let again = depthwise::swap_in(&mut model).unwrap()
            + qpointwise::swap_in(&mut model).unwrap()
            + stem::swap_in(&mut model).unwrap();
        assert_eq!(again, 0);
        // Every clip went into one of our operators too (the first convolution's, tract's, into the depthwise
        // convolution that reads it).
        let plan = optimized_model(typed_model(bundle.model.clone(), w, h, n).unwrap(), OwnOps::ALL).unwrap();
        let clips: Vec<String> = plan
            .nodes
            .iter()
            .map(|n| n.op.name().to_string())
            .filter(|n| n.contains("Max") || n.contains("Min"))
            .collect();
        assert!(clips.is_empty(), "clips left to tract: {clips:?}");
    }

    /// Our folding of constant DequantizeLinear nodes must give tract the very weights it would compute itself.
    /// Tract folds a convolution's dequantized weights into a constant during declutter, but leaves a Gemm's
    /// per-channel ones as a multiplication of constants (folding would quadruple their bytes): those are evaluated
    /// here by tract's own operators.
    #[test]
    fn folded_weights_are_tracts_weights_bit_for_bit() {
        let bundle = crate::Bundle::embedded_default().unwrap();
        let (w, h, n) = (bundle.manifest.input.width, bundle.manifest.input.height, bundle.manifest.model.num_classes);
        let consts = |fold: bool| -> Vec<Vec<u32>> {
            let model = typed_model_with(bundle.model.clone(), w, h, n, fold).unwrap().into_decluttered().unwrap();
            let mut out = constant_inputs(&model);
            out.sort();
            out
        };
        let (folded, plain) = (consts(true), consts(false));
        assert!(folded.len() >= 50, "{} weight tensors", folded.len());
        assert_eq!(folded, plain);
    }

    /// The f32 values (as bits; tensors of more than 16) that the model's computing nodes read from constants:
    /// `Const` nodes, and what subgraphs of constants alone compute, evaluated by tract.
    fn constant_inputs(model: &TypedModel) -> Vec<Vec<u32>> {
        let mut known: std::collections::HashMap<OutletId, TValue> = Default::default();
        for id in model.eval_order().unwrap() {
            let node = &model.nodes[id];
            if let Some(k) = node.op_as::<tract_onnx::tract_core::ops::konst::Const>() {
                known.insert(OutletId::new(id, 0), k.val().clone().into_tvalue());
                continue;
            }
            let inputs: Option<TVec<TValue>> = node.inputs.iter().map(|i| known.get(i).cloned()).collect();
            // Ops that can be evaluated with no plan around them (what tract's own const folding uses).
            if let Some(outputs) = inputs.filter(|i| !i.is_empty()).and_then(|i| node.op.eval_out_of_plan(i).unwrap()) {
                for (slot, v) in outputs.into_iter().enumerate() {
                    known.insert(OutletId::new(id, slot), v);
                }
            }
        }
        let read: std::collections::BTreeSet<OutletId> = model
            .nodes
            .iter()
            .filter(|node| !known.contains_key(&OutletId::new(node.id, 0)))
            .flat_map(|node| node.inputs.iter().copied())
            .filter(|i| known.contains_key(i))
            .collect();
        read.iter()
            .filter_map(|i| {
                known[i]
                    .try_as_plain_ram()
                    .ok()?
                    .as_slice::<f32>()
                    .ok()
                    .map(|v| v.iter().map(|x| x.to_bits()).collect())
            })
            .filter(|v: &Vec<u32>| v.len() > 16)
            .collect()
    }
}
