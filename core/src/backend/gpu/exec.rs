//! The GPU plan at run time: buffers (activations share a pool of slots by lifetime), uniform and per-channel data,
//! bind groups and staging buffers, all created once; a call uploads the input, records the dispatches, runs the
//! CPU fallbacks between them (downloading and uploading only what crosses) and reads the output back.

use super::device::{Device, Kernel};
use super::lower::{f32s, GpuOp, Grid, Lowered, Weights};
use crate::backend::model::one_line;
use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{bail, format_err};
use wgpu::util::DeviceExt;

enum Step {
    Dispatch {
        pipeline: Arc<wgpu::ComputePipeline>,
        bind_group: wgpu::BindGroup,
        groups: (u32, u32, u32),
    },
    /// A node tract runs: its inputs (GPU values are read back first) and, when a GPU op reads its output, the slot.
    Cpu {
        node: usize,
        inputs: Vec<OutletId>,
        upload: Option<usize>,
    },
}

/// Where a value lives while the plan runs.
#[derive(Clone, Copy, Debug)]
enum Home {
    Slot(usize),
    /// A constant uploaded at load.
    Const(usize),
}

pub struct Plan {
    device: Arc<Device>,
    model: TypedModel,
    steps: Vec<Step>,
    slots: Vec<wgpu::Buffer>,
    /// Keeps constant, weight, uniform and channel buffers alive (bind groups hold them too).
    _consts: Vec<wgpu::Buffer>,
    homes: HashMap<OutletId, Home>,
    /// Reshapes and fused nodes: the value whose buffer (or host tensor) holds theirs.
    aliases: HashMap<OutletId, OutletId>,
    /// Values read back to the host: GPU inputs of CPU nodes and the model output, each with its staging buffer.
    staging: HashMap<OutletId, wgpu::Buffer>,
    input: OutletId,
    output: OutletId,
    pub gpu_nodes: usize,
    pub cpu_nodes: usize,
    /// Convolutions and matrix products, and how many of them keep int8 weights on the GPU.
    pub weight_layers: (usize, usize),
}

fn root(aliases: &HashMap<OutletId, OutletId>, mut o: OutletId) -> OutletId {
    while let Some(&r) = aliases.get(&o) {
        o = r;
    }
    o
}

fn len_of(model: &TypedModel, o: OutletId) -> TractResult<usize> {
    Ok(model.outlet_fact(o)?.shape.as_concrete().ok_or_else(|| format_err!("symbolic shape"))?.iter().product())
}

fn bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_u32(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The values the GPU must hold (inputs and outputs of GPU ops, CPU outputs feeding GPU ops), and the last step of
/// `lowered` that reads each (the model's output: never freed).
fn lifetimes(
    model: &TypedModel,
    lowered: &[(usize, Lowered)],
    aliases: &HashMap<OutletId, OutletId>,
    out_root: OutletId,
) -> (HashSet<OutletId>, HashMap<OutletId, usize>) {
    let mut needs_gpu = HashSet::new();
    let mut last_use: HashMap<OutletId, usize> = HashMap::new();
    for (step, (id, l)) in lowered.iter().enumerate() {
        if let Lowered::Gpu(g) = l {
            for &i in &g.inputs {
                let r = root(aliases, i);
                needs_gpu.insert(r);
                last_use.insert(r, step);
            }
            needs_gpu.insert((*id).into());
            last_use.entry((*id).into()).or_insert(step);
        } else if let Lowered::Cpu = l {
            for i in &model.nodes[*id].inputs {
                last_use.insert(root(aliases, *i), step);
            }
        }
    }
    last_use.insert(out_root, usize::MAX);
    (needs_gpu, last_use)
}

/// Where each value the GPU holds lives: constants in their own buffers, everything else in slots shared by values
/// whose lifetimes do not overlap.
struct Homes {
    homes: HashMap<OutletId, Home>,
    consts: Vec<wgpu::Buffer>,
    /// Each slot's size in f32 values: the largest value it holds.
    slot_sizes: Vec<usize>,
}

impl Homes {
    fn place(
        device: &Device,
        model: &TypedModel,
        lowered: &[(usize, Lowered)],
        wanted: &HashSet<OutletId>,
        last_use: &HashMap<OutletId, usize>,
        out_root: OutletId,
    ) -> TractResult<Homes> {
        let mut placed = Homes { homes: HashMap::new(), consts: vec![], slot_sizes: vec![] };
        let (mut free, mut live): (Vec<usize>, Vec<(usize, OutletId)>) = (vec![], vec![]);
        for (step, (id, l)) in lowered.iter().enumerate() {
            // Free what died before this step.
            live.retain(|&(slot, v)| {
                if last_use.get(&v).copied().unwrap_or(0) < step {
                    free.push(slot);
                    false
                } else {
                    true
                }
            });
            let o: OutletId = (*id).into();
            match l {
                Lowered::Const if wanted.contains(&o) => {
                    let t = model.outlet_fact(o)?.konst.clone().ok_or_else(|| format_err!("constant without value"))?;
                    let data = f32s(&t)?;
                    let data = if data.is_empty() { &[0f32][..] } else { &data[..] };
                    placed.consts.push(device.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some("constant"),
                        contents: &bytes_f32(data),
                        usage: wgpu::BufferUsages::STORAGE,
                    }));
                    placed.homes.insert(o, Home::Const(placed.consts.len() - 1));
                }
                Lowered::Source | Lowered::Gpu(_) | Lowered::Cpu
                    if wanted.contains(&o) || (o == out_root && !matches!(l, Lowered::Cpu)) =>
                {
                    let n = match l {
                        // A fused chain writes its last node's values (GroupNorm: the whole tensor, not the sums).
                        Lowered::Gpu(g) => g.out_len,
                        _ => len_of(model, o)?,
                    }
                    .max(1);
                    let slot = placed.slot_for(n, &mut free);
                    live.push((slot, o));
                    placed.homes.insert(o, Home::Slot(slot));
                }
                _ => {}
            }
        }
        Ok(placed)
    }

    /// A free slot of at least `n` values, else a free one grown to `n`, else a new one.
    fn slot_for(&mut self, n: usize, free: &mut Vec<usize>) -> usize {
        match free.iter().position(|&s| self.slot_sizes[s] >= n) {
            Some(i) => free.swap_remove(i),
            None => match free.pop() {
                Some(s) => {
                    self.slot_sizes[s] = n;
                    s
                }
                None => {
                    self.slot_sizes.push(n);
                    self.slot_sizes.len() - 1
                }
            },
        }
    }
}

/// The activation slots' buffers; an error when one is larger than the GPU can bind.
fn slot_buffers(device: &Device, slot_sizes: &[usize]) -> TractResult<Vec<wgpu::Buffer>> {
    let max_binding = device.limits.max_storage_buffer_binding_size as usize;
    if let Some(big) = slot_sizes.iter().find(|&&n| n * 4 > max_binding) {
        bail!("a tensor of {} MB exceeds the GPU's storage binding limit of {} MB", big * 4 >> 20, max_binding >> 20);
    }
    Ok(slot_sizes
        .iter()
        .map(|&n| {
            device.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("activation"),
                size: (n * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
        .collect())
}

impl Plan {
    pub fn build(device: Arc<Device>, model: TypedModel, lowered: Vec<(usize, Lowered)>) -> TractResult<Plan> {
        let input = model.input_outlets()?[0];
        let output = model.output_outlets()?[0];
        // 1. Which buffer each value uses: aliases and fused nodes share their source's.
        let aliases: HashMap<OutletId, OutletId> = lowered
            .iter()
            .filter_map(|(id, l)| match l {
                Lowered::Alias(src) | Lowered::Fused(src) => Some(((*id).into(), *src)),
                _ => None,
            })
            .collect();
        let gpu_nodes =
            lowered.iter().filter(|(_, l)| !matches!(l, Lowered::Source | Lowered::Const | Lowered::Cpu)).count();
        let cpu_nodes = lowered.iter().filter(|(_, l)| matches!(l, Lowered::Cpu)).count();
        let weight_layers = lowered.iter().fold((0, 0), |(all, int8), (_, l)| match l {
            Lowered::Gpu(g) if g.weights.is_some() => {
                (all + 1, int8 + matches!(g.weights, Some(Weights::Int8 { .. })) as usize)
            }
            _ => (all, int8),
        });
        // 2. Values the GPU must hold, and the last step that reads each.
        let out_root = root(&aliases, output);
        let (wanted, last_use) = lifetimes(&model, &lowered, &aliases, out_root);
        // 3. Constants read by GPU ops as data get their own buffers; everything else shares slots by lifetime.
        let Homes { homes, mut consts, slot_sizes } =
            Homes::place(&device, &model, &lowered, &wanted, &last_use, out_root)?;
        let slots = slot_buffers(&device, &slot_sizes)?;
        // 4. Steps, bind groups and staging buffers.
        let lowered_of: HashMap<usize, &Lowered> = lowered.iter().map(|(id, l)| (*id, l)).collect();
        let is_cpu = |id: usize| matches!(lowered_of.get(&id), Some(Lowered::Cpu));
        let mut staging: HashMap<OutletId, wgpu::Buffer> = HashMap::new();
        let mut add_staging = |o: OutletId| -> TractResult<()> {
            if !staging.contains_key(&o) {
                // As large as the value's slot: a fused chain's last value may be larger than its first node's.
                let Some(Home::Slot(slot)) = homes.get(&o) else { bail!("value {o:?} has no GPU slot to read back") };
                let size = (slot_sizes[*slot] * 4) as u64;
                staging.insert(
                    o,
                    device.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("readback"),
                        size,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    }),
                );
            }
            Ok(())
        };
        let mut steps = vec![];
        let buffer_of = |o: OutletId| -> TractResult<&wgpu::Buffer> {
            match homes.get(&root(&aliases, o)) {
                Some(Home::Slot(s)) => Ok(&slots[*s]),
                Some(Home::Const(c)) => Ok(&consts[*c]),
                None => bail!("value {o:?} has no GPU buffer"),
            }
        };
        let mut extra: Vec<wgpu::Buffer> = vec![];
        for (id, l) in &lowered {
            match l {
                Lowered::Gpu(g) => {
                    let (pipeline, bind_group, groups, mut bufs) =
                        Self::encode(&device, g, &buffer_of, buffer_of((*id).into())?)?;
                    extra.append(&mut bufs);
                    steps.push(Step::Dispatch { pipeline, bind_group, groups });
                }
                Lowered::Cpu => {
                    let inputs: Vec<OutletId> = model.nodes[*id].inputs.to_vec();
                    for &i in &inputs {
                        let r = root(&aliases, i);
                        if matches!(homes.get(&r), Some(Home::Slot(_)))
                            && !is_cpu(r.node)
                            && lowered_of.get(&r.node).is_some_and(|l| !matches!(l, Lowered::Const))
                        {
                            add_staging(r)?;
                        }
                    }
                    let upload = match homes.get(&(*id).into()) {
                        Some(Home::Slot(s)) => Some(*s),
                        _ => None,
                    };
                    steps.push(Step::Cpu { node: *id, inputs, upload });
                }
                _ => {}
            }
        }
        if !is_cpu(out_root.node) {
            add_staging(out_root)?;
        }
        consts.append(&mut extra);
        device.check().map_err(|e| format_err!("{e}"))?;
        Ok(Plan {
            device,
            model,
            steps,
            slots,
            _consts: consts,
            homes,
            aliases,
            staging,
            input,
            output,
            gpu_nodes,
            cpu_nodes,
            weight_layers,
        })
    }

    /// Uniform, channel and weight buffers, pipeline and bind group of one op.
    #[allow(clippy::type_complexity)]
    fn encode<'a>(
        device: &Device,
        g: &GpuOp,
        buffer_of: &dyn Fn(OutletId) -> TractResult<&'a wgpu::Buffer>,
        out: &'a wgpu::Buffer,
    ) -> TractResult<(Arc<wgpu::ComputePipeline>, wgpu::BindGroup, (u32, u32, u32), Vec<wgpu::Buffer>)> {
        let dev = &device.device;
        let init = |label: &str, contents: &[u8], usage: wgpu::BufferUsages| {
            let contents = if contents.is_empty() { &[0u8; 4][..] } else { contents };
            dev.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents, usage })
        };
        let mut chan = g.chan_prefix.clone();
        let chan_off = chan.len();
        chan.extend(g.epilogue.chan());
        let mut params = g.params.clone();
        if g.kernel == Kernel::Unary {
            params[4] = chan.len() as u32;
        }
        chan.extend(&g.chan_suffix);
        let mut uniform = g.epilogue.words(chan_off);
        uniform.extend(params);
        while uniform.len() % 4 != 0 {
            uniform.push(0);
        }
        let uniform = init("params", &bytes_u32(&uniform), wgpu::BufferUsages::UNIFORM);
        let chan = init("channels", &bytes_f32(&chan), wgpu::BufferUsages::STORAGE);
        let pipeline = device.pipeline(g.kernel).map_err(|e| format_err!("{e}"))?;
        let mut owned = vec![];
        let mut entries: Vec<&wgpu::Buffer> = vec![];
        for &i in &g.inputs {
            entries.push(buffer_of(i)?);
        }
        let weights = g.weights.as_ref().map(|w| match w {
            Weights::F32(v) => init("weights", &bytes_f32(v), wgpu::BufferUsages::STORAGE),
            Weights::Int8 { packed, .. } | Weights::F16(packed) => {
                init("weights", &bytes_u32(packed), wgpu::BufferUsages::STORAGE)
            }
        });
        if let Some(w) = &weights {
            entries.push(w);
        }
        entries.push(&chan);
        entries.push(out);
        entries.push(&uniform);
        let layout = pipeline.get_bind_group_layout(0);
        let bind_entries: Vec<wgpu::BindGroupEntry> = entries
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        let bind_group =
            dev.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &layout, entries: &bind_entries });
        let max = device.limits.max_compute_workgroups_per_dimension as usize;
        let spread = |n: usize| -> (u32, u32, u32) {
            if n <= max {
                (n as u32, 1, 1)
            } else {
                (max as u32, n.div_ceil(max) as u32, 1)
            }
        };
        let groups = match g.grid {
            Grid::Flat(n) => spread(n.div_ceil(64)),
            Grid::Rows(r) => spread(r),
            Grid::Tiles(x, y) => (x as u32, y as u32, 1),
        };
        if groups.0 as usize > max || groups.1 as usize > max {
            bail!("dispatch of {groups:?} workgroups exceeds the GPU's limit of {max}");
        }
        owned.push(uniform);
        owned.push(chan);
        owned.extend(weights);
        Ok((pipeline, bind_group, groups, owned))
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runs the plan on one input tensor and returns the output's values as f32.
    pub fn run(&self, input: &[f32]) -> Result<Vec<f32>> {
        let dev = &self.device;
        let gerr = |e: TractError| Error::Backend(format!("GPU plan: {}", one_line(&e)));
        let mut host: HashMap<OutletId, TValue> = HashMap::new();
        let in_shape: Vec<usize> =
            self.model.outlet_fact(self.input).map_err(gerr)?.shape.as_concrete().unwrap_or(&[]).to_vec();
        host.insert(self.input, Tensor::from_shape(&in_shape, input).map_err(gerr)?.into_tvalue());
        if let Some(Home::Slot(s)) = self.homes.get(&self.input) {
            dev.queue.write_buffer(&self.slots[*s], 0, &bytes_f32(input));
        }
        let mut encoder = dev.device.create_command_encoder(&Default::default());
        let mut pass_open = false;
        let mut steps = self.steps.iter().peekable();
        while let Some(step) = steps.next() {
            match step {
                Step::Dispatch { .. } => {
                    // One compute pass for each run of dispatches.
                    let mut pass = encoder.begin_compute_pass(&Default::default());
                    let mut cur = Some(step);
                    while let Some(Step::Dispatch { pipeline, bind_group, groups }) = cur {
                        pass.set_pipeline(pipeline);
                        pass.set_bind_group(0, bind_group, &[]);
                        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
                        cur = match steps.peek() {
                            Some(Step::Dispatch { .. }) => steps.next(),
                            _ => None,
                        };
                    }
                    pass_open = true;
                }
                Step::Cpu { node, inputs, upload } => {
                    let node = &self.model.nodes[*node];
                    let mut values = tvec![];
                    for &i in inputs {
                        values.push(self.host_value(i, &mut host, &mut encoder, &mut pass_open)?);
                    }
                    let out = node.op.eval_out_of_plan(values).map_err(gerr)?.ok_or_else(|| {
                        Error::Backend(format!("GPU plan: {} cannot run outside a plan", node.op.name()))
                    })?;
                    let value = out.into_iter().next().ok_or_else(|| Error::Internal("op returned nothing".into()))?;
                    if let Some(slot) = upload {
                        // Commands recorded so far must run before this write lands.
                        self.flush(&mut encoder, &mut pass_open);
                        dev.queue.write_buffer(&self.slots[*slot], 0, &bytes_f32(&f32s(&value).map_err(gerr)?));
                    }
                    host.insert(node.id.into(), value);
                }
            }
        }
        let out = self.host_value(self.output, &mut host, &mut encoder, &mut pass_open)?;
        dev.check()?;
        f32s(&out).map_err(gerr)
    }

    fn flush(&self, encoder: &mut wgpu::CommandEncoder, pass_open: &mut bool) {
        let done = std::mem::replace(encoder, self.device.device.create_command_encoder(&Default::default()));
        self.device.queue.submit([done.finish()]);
        *pass_open = false;
    }

    /// A value on the host: computed there, or read back from its GPU buffer (waiting for the GPU).
    fn host_value(
        &self,
        o: OutletId,
        host: &mut HashMap<OutletId, TValue>,
        encoder: &mut wgpu::CommandEncoder,
        pass_open: &mut bool,
    ) -> Result<TValue> {
        let gerr = |e: TractError| Error::Backend(format!("GPU plan: {}", one_line(&e)));
        let fact = self.model.outlet_fact(o).map_err(gerr)?;
        if let Some(k) = &fact.konst {
            return Ok(k.clone().into_tvalue());
        }
        if let Some(v) = host.get(&o) {
            return Ok(v.clone());
        }
        let shape: Vec<usize> = fact.shape.as_concrete().unwrap_or(&[]).to_vec();
        let dt = fact.datum_type;
        // Reshapes and fused nodes share their source's data.
        let src = root(&self.aliases, o);
        if let Some(v) = host.get(&src) {
            let v = v.clone().into_tensor().into_shape(&shape).map_err(gerr)?.into_tvalue();
            host.insert(o, v.clone());
            return Ok(v);
        }
        let (Some(Home::Slot(slot)), Some(staging)) = (self.homes.get(&src), self.staging.get(&src)) else {
            return Err(Error::Internal(format!("value {o:?} cannot be read back")));
        };
        let n = shape.iter().product::<usize>().max(1) * 4;
        encoder.copy_buffer_to_buffer(&self.slots[*slot], 0, staging, 0, n as u64);
        self.flush(encoder, pass_open);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, 0..n as u64, move |r| {
            let _ = tx.send(r);
        });
        // Unmapped (or the pending map cancelled) on every way out, an error or a panic too: a buffer left mapped
        // would make every later call fail.
        let mapped = Unmap(staging);
        self.device
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Backend(format!("GPU: {e}")))?;
        rx.recv()
            .map_err(|_| Error::Backend("GPU: readback was dropped".into()))?
            .map_err(|e| Error::Backend(format!("GPU: readback failed: {e}")))?;
        let values: Vec<f32> = {
            let view = staging.get_mapped_range(0..n as u64).map_err(|e| Error::Backend(format!("GPU: {e}")))?;
            crate::tools::failpoint::hit("gpu.readback");
            view.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        };
        drop(mapped);
        let t = Tensor::from_shape(&shape, &values).map_err(gerr)?;
        let t = if dt == f32::datum_type() {
            t
        } else {
            // u8 held as f32 on the GPU.
            t.cast_to_dt(dt).map_err(gerr)?.into_owned()
        };
        let v = t.into_tvalue();
        host.insert(o, v.clone());
        Ok(v)
    }
}

/// Unmaps a buffer (mapped or with a map pending) when dropped; views into it must be gone by then.
struct Unmap<'a>(&'a wgpu::Buffer);

impl Drop for Unmap<'_> {
    fn drop(&mut self) {
        self.0.unmap();
    }
}
