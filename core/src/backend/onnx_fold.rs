//! Folds DequantizeLinear of constant weights into f32 initializers in the ONNX graph, before tract reads it.
//!
//! A QDQ model stores every weight as int8 + scale + zero point behind a DequantizeLinear. tract folds those
//! nodes itself, but through its generic broadcasting Sub/Mul on the inference graph, twice (shape analysis and
//! translation), most of loading the default bundle (BENCHMARKS.md). Here each such node becomes one f32 initializer,
//! computed with the same arithmetic as tract (so the model's values are identical bit for bit), in one pass.
//! Anything unusual (external data, blocked quantization, unknown types) is left for tract to handle.

use std::collections::{HashMap, HashSet};
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{GraphProto, ModelProto, NodeProto, TensorProto};

/// Folds every DequantizeLinear whose inputs are all constants; returns how many it folded.
pub fn fold_constant_dequantize(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else { return 0 };
    let folded = fold_graph(graph);
    if folded > 0 {
        drop_unused_initializers(graph);
    }
    folded
}

fn fold_graph(graph: &mut GraphProto) -> usize {
    let consts: HashMap<&str, &TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut new_initializers = Vec::new();
    let mut folded_nodes = HashSet::new();
    for (i, node) in graph.node.iter().enumerate() {
        if node.op_type != "DequantizeLinear" || !node.domain.is_empty() || node.output.len() != 1 {
            continue;
        }
        let inputs: Option<Vec<&TensorProto>> = node.input.iter().map(|n| consts.get(n.as_str()).copied()).collect();
        let Some(inputs) = inputs else { continue };
        if let Some(mut t) = dequantize(node, &inputs) {
            t.name = node.output[0].clone();
            new_initializers.push(t);
            folded_nodes.insert(i);
        }
    }
    let folded = folded_nodes.len();
    let mut i = 0;
    graph.node.retain(|_| {
        i += 1;
        !folded_nodes.contains(&(i - 1))
    });
    graph.initializer.extend(new_initializers);
    folded
}

/// Initializers (and their graph-input entries) that no node and no graph output reads any more.
fn drop_unused_initializers(graph: &mut GraphProto) {
    let mut used: HashSet<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    for node in &graph.node {
        used.extend(node.input.iter().cloned());
        // Subgraphs (If/Loop bodies) may read outer initializers by name: keep everything they name.
        for attr in &node.attribute {
            for g in attr.g.iter().chain(attr.graphs.iter()) {
                names_read_by(g, &mut used);
            }
        }
    }
    let dropped: HashSet<String> =
        graph.initializer.iter().filter(|t| !used.contains(&t.name)).map(|t| t.name.clone()).collect();
    graph.initializer.retain(|t| !dropped.contains(&t.name));
    graph.input.retain(|i| !dropped.contains(&i.name));
}

fn names_read_by(graph: &GraphProto, used: &mut HashSet<String>) {
    for node in &graph.node {
        used.extend(node.input.iter().cloned());
        for attr in &node.attribute {
            for g in attr.g.iter().chain(attr.graphs.iter()) {
                names_read_by(g, used);
            }
        }
    }
}

/// The f32 tensor of `DequantizeLinear(x, scale[, zero_point])`, or `None` to leave the node to tract.
/// Arithmetic as tract's: one scale → `((x - zp) as f32) * scale` (its DequantizeLinearF32); per-axis scales →
/// `((x as f32) - (zp as f32)) * scale[axis index]` (its cast, Sub and Mul).
fn dequantize(node: &NodeProto, inputs: &[&TensorProto]) -> Option<TensorProto> {
    if !(2..=3).contains(&inputs.len()) {
        return None;
    }
    let mut axis = 1i64;
    for attr in &node.attribute {
        match attr.name.as_str() {
            "axis" => axis = attr.i,
            "block_size" if attr.i != 0 => return None,
            "block_size" => {}
            _ => return None,
        }
    }
    let x_type = inputs[0].data_type;
    let x = Ints::of(inputs[0])?;
    let scale = floats(inputs[1])?;
    let zero_point = match inputs.get(2) {
        Some(zp) if zp.data_type != x_type => return None,
        Some(zp) => integers(zp)?,
        None => vec![0],
    };
    let dims = inputs[0].dims.clone();
    if scale.is_empty() || zero_point.is_empty() || dims.iter().any(|d| *d < 0) {
        return None;
    }
    // The f32 values are written straight as little-endian bytes: no intermediate Vec<f32>.
    let mut raw = vec![0u8; x.len() * 4];
    if scale.len() == 1 && zero_point.len() == 1 {
        x.dequantize_into(0..x.len(), &mut raw, zero_point[0], scale[0], true);
    } else {
        let rank = dims.len() as i64;
        let axis = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&axis) {
            return None;
        }
        let channels = dims[axis as usize] as usize;
        let inner: usize = dims[axis as usize + 1..].iter().map(|d| *d as usize).product();
        let per_channel = |v: &[i32]| v.len() == 1 || v.len() == channels;
        if !per_channel(&zero_point) || !(scale.len() == 1 || scale.len() == channels) || inner == 0 {
            return None;
        }
        for (i, out) in raw.chunks_mut(inner * 4).enumerate() {
            let c = i % channels;
            let zp = zero_point[if zero_point.len() == 1 { 0 } else { c }];
            let s = scale[if scale.len() == 1 { 0 } else { c }];
            x.dequantize_into(i * inner..(i * inner + out.len() / 4), out, zp, s, false);
        }
    }
    Some(TensorProto { dims, data_type: DataType::Float as i32, raw_data: raw, ..Default::default() })
}

fn stored_inline(t: &TensorProto) -> bool {
    t.external_data.is_empty() && t.data_location.unwrap_or(0) == 0 && t.segment.is_none()
}

fn element_count(t: &TensorProto) -> Option<usize> {
    t.dims.iter().try_fold(1usize, |n, d| usize::try_from(*d).ok().and_then(|d| n.checked_mul(d)))
}

/// int8, uint8 or int32 values, from `raw_data` or `int32_data`.
/// The integers of a quantized tensor, read in place when stored as raw 8-bit values (the weights).
enum Ints<'a> {
    Int8(&'a [u8]),
    Uint8(&'a [u8]),
    Wide(Vec<i32>),
}

impl<'a> Ints<'a> {
    fn of(t: &'a TensorProto) -> Option<Ints<'a>> {
        let n = element_count(t)?;
        let raw = &t.raw_data;
        let ints = match DataType::try_from(t.data_type).ok()? {
            DataType::Int8 if stored_inline(t) && !raw.is_empty() => Ints::Int8(raw),
            DataType::Uint8 if stored_inline(t) && !raw.is_empty() => Ints::Uint8(raw),
            _ => Ints::Wide(integers(t)?),
        };
        (ints.len() == n).then_some(ints)
    }

    fn len(&self) -> usize {
        match self {
            Ints::Int8(b) | Ints::Uint8(b) => b.len(),
            Ints::Wide(v) => v.len(),
        }
    }

    /// Writes the f32 values of `range` into `out` (little-endian), with tract's arithmetic: per tensor
    /// `(q - zp) as f32 * s`, per axis `(q as f32 - zp as f32) * s` (the same value).
    fn dequantize_into(&self, range: std::ops::Range<usize>, out: &mut [u8], zp: i32, s: f32, per_tensor: bool) {
        fn write(out: &mut [u8], xs: impl Iterator<Item = i32>, zp: i32, s: f32, per_tensor: bool) {
            for (bytes, q) in out.chunks_exact_mut(4).zip(xs) {
                let v = if per_tensor { (q - zp) as f32 * s } else { (q as f32 - zp as f32) * s };
                bytes.copy_from_slice(&v.to_le_bytes());
            }
        }
        match self {
            Ints::Int8(b) => write(out, b[range].iter().map(|b| *b as i8 as i32), zp, s, per_tensor),
            Ints::Uint8(b) => write(out, b[range].iter().map(|b| *b as i32), zp, s, per_tensor),
            Ints::Wide(v) => write(out, v[range].iter().copied(), zp, s, per_tensor),
        }
    }
}

fn integers(t: &TensorProto) -> Option<Vec<i32>> {
    if !stored_inline(t) {
        return None;
    }
    let n = element_count(t)?;
    let raw = &t.raw_data;
    let values: Vec<i32> = match DataType::try_from(t.data_type).ok()? {
        DataType::Int8 if !raw.is_empty() => raw.iter().map(|b| *b as i8 as i32).collect(),
        DataType::Uint8 if !raw.is_empty() => raw.iter().map(|b| *b as i32).collect(),
        DataType::Int32 if !raw.is_empty() => {
            raw.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        }
        DataType::Int8 | DataType::Uint8 | DataType::Int32 => t.int32_data.clone(),
        _ => return None,
    };
    (values.len() == n).then_some(values)
}

/// f32 values, from `raw_data` or `float_data`.
fn floats(t: &TensorProto) -> Option<Vec<f32>> {
    if !stored_inline(t) || t.data_type != DataType::Float as i32 {
        return None;
    }
    let n = element_count(t)?;
    let values: Vec<f32> = if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    };
    (values.len() == n).then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dt: DataType, dims: &[i64], raw: Vec<u8>) -> TensorProto {
        TensorProto {
            name: name.into(),
            data_type: dt as i32,
            dims: dims.to_vec(),
            raw_data: raw,
            ..Default::default()
        }
    }

    fn node(inputs: &[&str], axis: Option<i64>) -> NodeProto {
        let attribute = axis
            .map(|i| tract_onnx::pb::AttributeProto { name: "axis".into(), i, r#type: 2, ..Default::default() })
            .into_iter()
            .collect();
        NodeProto {
            op_type: "DequantizeLinear".into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec!["y".into()],
            attribute,
            ..Default::default()
        }
    }

    fn f32s(t: &TensorProto) -> Vec<f32> {
        floats(t).unwrap()
    }

    #[test]
    fn per_tensor_and_per_axis_values() {
        let x = tensor("x", DataType::Int8, &[2, 3], vec![0, 1, 255, 127, 128, 5]);
        let s1 = tensor("s", DataType::Float, &[], 0.5f32.to_le_bytes().to_vec());
        let z1 = tensor("z", DataType::Int8, &[], vec![1]);
        let y = dequantize(&node(&["x", "s", "z"], None), &[&x, &s1, &z1]).unwrap();
        assert_eq!(f32s(&y), vec![-0.5, 0.0, -1.0, 63.0, -64.5, 2.0]);
        // Per output channel (axis 0), no zero point.
        let s2 = tensor("s", DataType::Float, &[2], [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect());
        let y = dequantize(&node(&["x", "s"], Some(0)), &[&x, &s2]).unwrap();
        assert_eq!(f32s(&y), vec![0.0, 1.0, -1.0, 254.0, -256.0, 10.0]);
        // Per axis 1 (the default), uint8 with per-channel zero points.
        let xu = tensor("x", DataType::Uint8, &[2, 2], vec![0, 10, 200, 255]);
        let s = tensor("s", DataType::Float, &[2], [1.0f32, 0.25].iter().flat_map(|v| v.to_le_bytes()).collect());
        let z = tensor("z", DataType::Uint8, &[2], vec![128, 2]);
        let y = dequantize(&node(&["x", "s", "z"], None), &[&xu, &s, &z]).unwrap();
        assert_eq!(f32s(&y), vec![-128.0, 2.0, 72.0, 63.25]);
    }

    #[test]
    fn unusual_nodes_are_left_to_tract() {
        let x = tensor("x", DataType::Int8, &[2, 3], vec![0; 6]);
        let s = tensor("s", DataType::Float, &[3], vec![0; 12]);
        // Three scales on an axis of length 2.
        assert!(dequantize(&node(&["x", "s"], Some(0)), &[&x, &s]).is_none());
        // Zero point of another type than x.
        let s1 = tensor("s", DataType::Float, &[], 1f32.to_le_bytes().to_vec());
        let z = tensor("z", DataType::Uint8, &[], vec![0]);
        assert!(dequantize(&node(&["x", "s", "z"], None), &[&x, &s1, &z]).is_none());
        // Data that does not match the dims.
        let short = tensor("x", DataType::Int8, &[2, 3], vec![0; 5]);
        assert!(dequantize(&node(&["x", "s"], None), &[&short, &s1]).is_none());
    }
}
