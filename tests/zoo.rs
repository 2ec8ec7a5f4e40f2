//! The two smallest models of the zoo (models/zoo/) and two small stand-ins, int8 QDQ as the export tool makes them, against onnxruntime's
//! logits committed beside them (its literal evaluation of the QDQ graph, no graph optimisation: its fused int8
//! kernels depart from the QDQ semantics by up to 2.3 logits on ShuffleNetV2), on the golden inputs: snakeid's CPU
//! engine, and its GPU backend when there is one.
//! (Random weights, logits scaled to a spread of ~3: see models/zoo/build_zoo.py.)

use snakeid::internals::cpu::Engine;
use snakeid_tests::*;
use std::path::PathBuf;

fn committed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/zoo/committed")
}

/// Runs `run` on every golden input and compares with onnxruntime: every logit within `bound` (on most photos the
/// logits are bit-identical; a value on a rounding boundary of one of the quantize steps flips by a step when sums
/// are accumulated in another order, and one flip before the classifier moves every logit: 0.86 on one photo here),
/// snakeid's top-1 one the reference also ranks within `bound` of its best (the references hold exact ties), top-5
/// overlap >= `min_top5`.
fn check(model: &str, what: &str, bound: f32, min_top5: usize, run: &dyn Fn(Vec<f32>) -> snakeid::Result<Vec<f32>>) {
    let text = std::fs::read_to_string(committed().join(format!("{model}.int8.golden.json"))).unwrap();
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    let logits = golden["logits"].as_object().unwrap();
    assert!(logits.len() >= 6);
    let mut worst = 0f32;
    for (photo, want) in logits {
        let want = floats(want);
        let got = run(read_f32(&data_dir().join("golden").join(format!("{photo}.input.f32")))).unwrap();
        let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        worst = worst.max(d);
        assert!(d <= bound, "{model} {what} {photo}: max |delta logit| {d}");
        let best = want.iter().copied().fold(f32::MIN, f32::max);
        assert!(
            want[argmax(&got)] >= best - bound,
            "{model} {what} {photo}: top-1 {} is far from the reference's",
            argmax(&got)
        );
        let (a, b) = (top_k(&got, 5), top_k(&want, 5));
        assert!(a.iter().filter(|i| b.contains(i)).count() >= min_top5, "{model} {what} {photo}: top-5 {a:?} vs {b:?}");
    }
    eprintln!("{model} {what}: max |delta logit| vs onnxruntime {worst:.3} over {} inputs", logits.len());
}

#[test]
fn committed_zoo_models_answer_like_onnxruntime_on_the_cpu_and_gpu() {
    // The two smallest zoo models, and stand-ins with ResNet18's layer kinds (int8 3x3 convolutions at strides 1 and
    // 2, 1x1/2 shortcuts, u8 codes handed between them) and EfficientNet-B0's (depthwise, SiLU, squeeze-excitation).
    // The EfficientNet stand-in's random logits crowd its top 5 within its int8 rounding (snakeid is 0.79 from the
    // literal QDQ evaluation there, onnxruntime's own fused kernels 2.37), so 3 of its 5 are asked for.
    // Each model's bound is about 1.5x the largest |delta logit| measured on the CPU or GPU of any machine it ran on
    // (issue 38: one bound of 1.0 for all let a regression hide under it): squeezenet 0.123 everywhere; shufflenet
    // 0.857 (AVX2 CPU), 0.714 (GPU, AVX-512 VNNI CPU); the ResNet stand-in 0.000 with VNNI's exact int8 sums, 0.171
    // with tract's f32 products on AVX2; the EfficientNet stand-in 0.791.
    for (model, min_top5, bound) in [
        ("squeezenet1_1", 4, 0.19),
        ("shufflenet_v2_x1_0", 4, 1.3),
        ("resnet_standin", 4, 0.26),
        ("efficientnet_standin", 3, 1.2),
    ] {
        let onnx = std::fs::read(committed().join(format!("{model}.int8.onnx"))).unwrap();
        let cpu = Engine::compile(onnx.clone(), 224, 224, 1000).unwrap();
        check(model, "cpu", bound, min_top5, &|x| cpu.run(x));
        #[cfg(feature = "gpu")]
        if gpu_available() {
            let gpu = snakeid::internals::gpu::GpuEngine::compile(
                snakeid::internals::model::typed_model(onnx.clone(), 224, 224, 1000).unwrap(),
            )
            .unwrap();
            check(model, "gpu", bound, min_top5, &|x| gpu.run(&x));
        }
    }
}
