//! The GPU backend: our WGSL compute kernels run the model through wgpu (Vulkan on Linux and Android, Metal on
//! Apple). tract still parses, types and declutters the model; [`lower`] turns each node into a GPU operation, an
//! epilogue of the one before it, or a CPU fallback (run by tract); [`exec`] builds every buffer, pipeline and bind
//! group once, and each call uploads the input, dispatches and reads the logits back.

mod device;
mod exec;
mod lower;

pub use device::AdapterInfo;
pub use lower::{pack_weights, Weights};

use crate::backend::model::one_line;
use crate::error::{Error, Result};
use std::sync::Mutex;
use tract_onnx::prelude::*;

/// A model compiled for the GPU. `Send + Sync`; calls are serialised (the activation buffers are shared).
pub struct GpuEngine {
    plan: Mutex<exec::Plan>,
    adapter: AdapterInfo,
    gpu_nodes: usize,
    cpu_nodes: usize,
    f16_weights: bool,
}

impl std::fmt::Debug for GpuEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuEngine")
            .field("adapter", &self.adapter)
            .field("gpu_nodes", &self.gpu_nodes)
            .field("cpu_nodes", &self.cpu_nodes)
            .finish()
    }
}

/// The adapter the GPU backend would use, or why there is none.
pub fn adapter() -> Result<AdapterInfo> {
    Ok(device::Device::shared()?.info.clone())
}

impl GpuEngine {
    /// Compiles a typed model (one f32 input of known shape, one output) for the process's GPU.
    pub fn compile(model: TypedModel) -> Result<Self> {
        Self::compile_with(model, false)
    }

    /// As [`GpuEngine::compile`]; `f16_weights` stores float weights as f16 (half the memory and bandwidth, about
    /// three significant digits; 8-bit weights stay 8-bit). Arithmetic stays f32.
    pub fn compile_with(model: TypedModel, f16_weights: bool) -> Result<Self> {
        let device = device::Device::shared()?;
        let max_binding = device.limits.max_storage_buffer_binding_size as usize;
        Self::compile_limited(model, f16_weights, max_binding)
    }

    /// As [`GpuEngine::compile_with`], with operations binding more than `max_binding` bytes sent to the CPU.
    pub(crate) fn compile_limited(model: TypedModel, f16_weights: bool, max_binding: usize) -> Result<Self> {
        let device = device::Device::shared()?;
        let model = model.into_decluttered().map_err(|e| Error::Backend(format!("decluttering: {}", one_line(&e))))?;
        let lowered = lower::lower(&model, f16_weights, max_binding)
            .map_err(|e| Error::Backend(format!("lowering to the GPU: {}", one_line(&e))))?;
        let adapter = device.info.clone();
        let plan = device.clone().scoped(|| {
            exec::Plan::build(device, model, lowered)
                .map_err(|e| Error::Backend(format!("building the GPU plan: {}", one_line(&e))))
        })?;
        let (gpu_nodes, cpu_nodes) = (plan.gpu_nodes, plan.cpu_nodes);
        Ok(GpuEngine { plan: Mutex::new(plan), adapter, gpu_nodes, cpu_nodes, f16_weights })
    }

    /// Runs the model on one input (its values in row-major order) and returns the output values.
    pub fn run(&self, input: &[f32]) -> Result<Vec<f32>> {
        let plan = self.plan.lock().unwrap_or_else(|p| p.into_inner());
        plan.device().scoped(|| plan.run(input))
    }

    /// Whether float weights are stored as f16.
    pub fn f16_weights(&self) -> bool {
        self.f16_weights
    }

    pub fn adapter(&self) -> &AdapterInfo {
        &self.adapter
    }

    /// Graph nodes (constants and the input aside) run on the GPU, fused into a GPU kernel or aliased there.
    pub fn gpu_nodes(&self) -> usize {
        self.gpu_nodes
    }

    /// (convolutions and matrix products, of which with int8 weights on the GPU)
    pub fn weight_layers(&self) -> (usize, usize) {
        self.plan.lock().unwrap_or_else(|p| p.into_inner()).weight_layers
    }

    /// Graph nodes tract runs on the CPU between GPU kernels.
    pub fn cpu_nodes(&self) -> usize {
        self.cpu_nodes
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GpuEngine>();
};

#[cfg(test)]
mod tests;
