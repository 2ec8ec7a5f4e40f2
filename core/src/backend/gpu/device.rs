//! The wgpu device: adapter choice (Vulkan or Metal), downlevel limits, and the compute pipelines compiled from our
//! WGSL kernels (each kernel file is prefixed with `common.wgsl`, which holds the shared epilogue, and the
//! convolutions with `conv_common.wgsl`).

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Our kernels, one `.wgsl` file each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Groups == 1 convolutions and matrix products (implicit GEMM). Flags: int8 weights, pointwise input.
    ConvGemm {
        int8: bool,
        f16: bool,
        pointwise: bool,
    },
    /// Grouped and depthwise convolutions.
    ConvDirect {
        int8: bool,
        f16: bool,
    },
    Binary,
    Unary,
    Rows,
    Pool,
    Gather,
}

impl Kernel {
    /// The kernel's WGSL, after `common.wgsl` (and, for convolutions, `conv_common.wgsl`).
    fn source(self) -> String {
        const COMMON: &str = include_str!("shaders/common.wgsl");
        const CONV: &str = include_str!("shaders/conv_common.wgsl");
        let parts: &[&str] = match self {
            Kernel::ConvGemm { .. } => &[COMMON, CONV, include_str!("shaders/conv_gemm.wgsl")],
            Kernel::ConvDirect { .. } => &[COMMON, CONV, include_str!("shaders/conv_direct.wgsl")],
            Kernel::Binary => &[COMMON, include_str!("shaders/binary.wgsl")],
            Kernel::Unary => &[COMMON, include_str!("shaders/unary.wgsl")],
            Kernel::Rows => &[COMMON, include_str!("shaders/rows.wgsl")],
            Kernel::Pool => &[COMMON, include_str!("shaders/pool.wgsl")],
            Kernel::Gather => &[COMMON, include_str!("shaders/gather.wgsl")],
        };
        parts.join("\n")
    }

    fn constants(self) -> Vec<(&'static str, f64)> {
        match self {
            Kernel::ConvGemm { int8, f16, pointwise } => {
                vec![("W_INT8", int8 as u8 as f64), ("W_F16", f16 as u8 as f64), ("POINTWISE", pointwise as u8 as f64)]
            }
            Kernel::ConvDirect { int8, f16 } => vec![("W_INT8", int8 as u8 as f64), ("W_F16", f16 as u8 as f64)],
            _ => vec![],
        }
    }
}

/// Which adapter runs the GPU backend, as the CLI and the FFI report it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdapterInfo {
    pub name: String,
    /// `vulkan` or `metal`.
    pub api: String,
    /// `discrete`, `integrated`, `virtual`, `cpu` (a software driver such as lavapipe) or `other`.
    pub kind: String,
}

/// A device and queue with the pipelines built so far. Shared by every GPU engine of the process.
pub struct Device {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: AdapterInfo,
    pub limits: wgpu::Limits,
    pipelines: Mutex<HashMap<Kernel, Arc<wgpu::ComputePipeline>>>,
    /// The first validation or out-of-memory error wgpu reported (instead of panicking).
    errors: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").field("info", &self.info).finish()
    }
}

impl Device {
    /// The process's GPU device, created on first use. `Err` when there is no Vulkan or Metal adapter.
    pub fn shared() -> Result<Arc<Device>> {
        static SHARED: Mutex<Option<Arc<Device>>> = Mutex::new(None);
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = shared.as_ref() {
            return Ok(d.clone());
        }
        let d = Arc::new(Device::new()?);
        *shared = Some(d.clone());
        Ok(d)
    }

    fn new() -> Result<Device> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL;
        let instance = wgpu::Instance::new(desc.with_env());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| Error::Backend(format!("no GPU adapter (Vulkan or Metal) is available: {e}")))?;
        let info = adapter.get_info();
        let have = adapter.limits();
        // Ask only for what mobile GPUs and software drivers give (downlevel), plus the buffer sizes the adapter allows.
        let mut limits = wgpu::Limits::downlevel_defaults();
        limits.max_storage_buffer_binding_size = have.max_storage_buffer_binding_size;
        limits.max_buffer_size = have.max_buffer_size;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("snakeid"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::Backend(format!("the GPU adapter {} refused a device: {e}", info.name)))?;
        let errors: Arc<Mutex<Option<String>>> = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string().replace('\n', " "));
        }));
        let kind = match info.device_type {
            wgpu::DeviceType::DiscreteGpu => "discrete",
            wgpu::DeviceType::IntegratedGpu => "integrated",
            wgpu::DeviceType::VirtualGpu => "virtual",
            wgpu::DeviceType::Cpu => "cpu",
            wgpu::DeviceType::Other => "other",
        };
        let api = format!("{:?}", info.backend).to_lowercase();
        Ok(Device {
            device,
            queue,
            info: AdapterInfo { name: info.name.clone(), api, kind: kind.into() },
            limits,
            pipelines: Mutex::default(),
            errors,
        })
    }

    /// The compiled pipeline of a kernel (compiled on first request, then cached).
    pub fn pipeline(&self, kernel: Kernel) -> Result<Arc<wgpu::ComputePipeline>> {
        let mut cache = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cache.get(&kernel) {
            return Ok(p.clone());
        }
        let source = kernel.source();
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("snakeid kernel"),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let constants = kernel.constants();
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("snakeid kernel"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions { constants: &constants, ..Default::default() },
            cache: None,
        });
        self.check()?;
        let p = Arc::new(pipeline);
        cache.insert(kernel, p.clone());
        Ok(p)
    }

    /// Runs `f` with wgpu's validation and out-of-memory errors captured for this thread (wgpu's error scopes are
    /// thread-local), so that each engine sees its own errors and not another's.
    pub fn scoped<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let result = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        match v.or(o) {
            Some(e) => Err(Error::Backend(format!("GPU: {}", e.to_string().replace('\n', " ")))),
            None => result,
        }
    }

    /// Turns an error wgpu reported outside any scope since the last check into ours.
    pub fn check(&self) -> Result<()> {
        match self.errors.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(Error::Backend(format!("GPU: {e}"))),
            None => Ok(()),
        }
    }
}
