//! Which engine runs the model: tract on the CPU, our wgpu kernels on the GPU, or `auto`, which measures both once
//! per adapter and bundle (remembering the answer in a small cache file when given one) and keeps the faster.

pub mod cpu;
mod downsample;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod model;
pub mod onnx_fold;

use crate::error::{Error, Result};
use crate::tools::clock::Instant;
use cpu::Engine;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The backend a caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    #[default]
    Cpu,
    /// The GPU; an error when there is no adapter or this build has no GPU backend.
    Gpu,
    /// The GPU with float weights stored as f16 (half the weight memory and bandwidth; 8-bit weights stay 8-bit).
    GpuF16,
    /// The faster of the two on this device (the CPU when there is no GPU).
    Auto,
}

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Backend::Cpu),
            "gpu" => Ok(Backend::Gpu),
            "gpu-f16" => Ok(Backend::GpuF16),
            "auto" => Ok(Backend::Auto),
            _ => Err(Error::Backend(format!("unknown backend {s:?} (cpu, gpu, gpu-f16 or auto)"))),
        }
    }
}

/// Where the last identification ran, as reported in answers and benchmarks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendInfo {
    /// `cpu`, `gpu` or `gpu-f16`.
    pub backend: &'static str,
    /// The GPU adapter's name (GPU only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// Graph nodes run on the GPU (in a kernel, fused into one, or aliased) and by tract on the CPU.
    pub nodes_gpu: usize,
    pub nodes_cpu: usize,
    /// For `auto`: why this backend was chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen_because: Option<String>,
}

/// The compiled model, on one side or the other.
#[derive(Debug)]
pub(crate) enum Runner {
    Cpu(Engine),
    #[cfg(feature = "gpu")]
    Gpu(crate::backend::gpu::GpuEngine),
}

impl Runner {
    pub fn run(&self, input: Vec<f32>) -> Result<Vec<f32>> {
        match self {
            Runner::Cpu(e) => e.run(input),
            #[cfg(feature = "gpu")]
            Runner::Gpu(g) => g.run(&input),
        }
    }

    /// Runs `f` on the CPU engine's thread pool (the caller's thread alone for the GPU).
    pub fn in_pool<R>(&self, f: impl FnOnce() -> R) -> R {
        match self {
            Runner::Cpu(e) => e.in_pool(f),
            #[cfg(feature = "gpu")]
            Runner::Gpu(_) => f(),
        }
    }

    pub fn info(&self, chosen_because: Option<String>) -> BackendInfo {
        match self {
            Runner::Cpu(e) => {
                BackendInfo { backend: "cpu", adapter: None, nodes_gpu: 0, nodes_cpu: e.nodes(), chosen_because }
            }
            #[cfg(feature = "gpu")]
            Runner::Gpu(g) => BackendInfo {
                backend: if g.f16_weights() { "gpu-f16" } else { "gpu" },
                adapter: Some(g.adapter().name.clone()),
                nodes_gpu: g.gpu_nodes(),
                nodes_cpu: g.cpu_nodes(),
                chosen_because,
            },
        }
    }
}

/// The engine for a bundle's model on `backend`, compiled once: the CPU engine (on `threads` threads) only where the
/// CPU runs it or `auto` must measure it, never to be dropped for the GPU's. With `auto`, why it chose.
pub(crate) fn compile(
    bundle: &crate::Bundle,
    backend: Backend,
    threads: usize,
    cache_dir: Option<&Path>,
) -> Result<(Runner, Option<String>)> {
    let cpu = || {
        let m = &bundle.manifest;
        crate::tools::failpoint::hit("load");
        Engine::compile(bundle.model.clone(), m.input.width, m.input.height, m.model.num_classes)?.with_threads(threads)
    };
    Ok(match backend {
        Backend::Cpu => (Runner::Cpu(cpu()?), None),
        Backend::Gpu => (compile_gpu(bundle, false)?, None),
        Backend::GpuF16 => (compile_gpu(bundle, true)?, None),
        Backend::Auto => {
            let (runner, why) = choose(bundle, cpu()?, cache_dir);
            (runner, Some(why))
        }
    })
}

/// The GPU engine for a bundle's model.
#[cfg(feature = "gpu")]
pub(crate) fn compile_gpu(bundle: &crate::Bundle, f16_weights: bool) -> Result<Runner> {
    let m = &bundle.manifest;
    let typed =
        crate::backend::model::typed_model(bundle.model.clone(), m.input.width, m.input.height, m.model.num_classes)?;
    Ok(Runner::Gpu(crate::backend::gpu::GpuEngine::compile_with(typed, f16_weights)?))
}

#[cfg(not(feature = "gpu"))]
pub(crate) fn compile_gpu(_bundle: &crate::Bundle, _f16_weights: bool) -> Result<Runner> {
    Err(Error::Backend("this build of snakeid has no GPU backend (core feature `gpu`)".into()))
}

/// One remembered choice of `auto`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Choice {
    adapter: String,
    bundle_sha256: String,
    backend: String,
    cpu_ms: f64,
    gpu_ms: f64,
}

fn cache_file(dir: &Path) -> PathBuf {
    dir.join("backend-choices.json")
}

fn median_ms(runner: &Runner, input: &[f32], runs: usize) -> Result<f64> {
    runner.run(input.to_vec())?;
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            runner.run(input.to_vec()).map(|_| s.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_>>()?;
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

/// `auto`: the GPU engine when it is faster than `cpu` on this adapter, measured now or remembered in `cache_dir`.
pub(crate) fn choose(bundle: &crate::Bundle, cpu: Engine, cache_dir: Option<&Path>) -> (Runner, String) {
    let gpu = match compile_gpu(bundle, false) {
        Ok(g) => g,
        Err(e) => return (Runner::Cpu(cpu), format!("no usable GPU ({e})")),
    };
    let adapter = gpu.info(None).adapter.unwrap_or_default();
    let sha = bundle.manifest.model.sha256.clone();
    let mut known: Vec<Choice> = cache_dir
        .and_then(|d| std::fs::read(cache_file(d)).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if let Some(c) = known.iter().find(|c| c.adapter == adapter && c.bundle_sha256 == sha) {
        let why = format!("remembered: gpu {:.1} ms, cpu {:.1} ms on {adapter}", c.gpu_ms, c.cpu_ms);
        return if c.backend == "gpu" { (gpu, why) } else { (Runner::Cpu(cpu), why) };
    }
    let m = &bundle.manifest.input;
    let input: Vec<f32> =
        (0..3 * m.width as usize * m.height as usize).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    let cpu = Runner::Cpu(cpu);
    let (c, g) = match (median_ms(&cpu, &input, 3), median_ms(&gpu, &input, 3)) {
        (Ok(c), Ok(g)) => (c, g),
        (_, Err(e)) => return (cpu, format!("the GPU failed a trial run ({e})")),
        (Err(_), Ok(_)) => return (gpu, "the CPU failed a trial run".into()),
    };
    let backend = if g < c { "gpu" } else { "cpu" };
    if let Some(dir) = cache_dir {
        known.push(Choice {
            adapter: adapter.clone(),
            bundle_sha256: sha,
            backend: backend.into(),
            cpu_ms: c,
            gpu_ms: g,
        });
        // Best effort: a read-only cache only means measuring again next time.
        let _ = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(cache_file(dir), serde_json::to_vec_pretty(&known).unwrap_or_default()));
    }
    let why = format!("measured: gpu {g:.1} ms, cpu {c:.1} ms on {adapter}");
    if backend == "gpu" {
        (gpu, why)
    } else {
        (cpu, why)
    }
}
