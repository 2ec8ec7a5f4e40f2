//! The base model cut at its pooled features, and put back together with a taught species head.
//!
//! A base bundle works when its model ends in a fully connected layer (`Gemm`, weights `[classes, features]` with
//! `transB = 1`) whose output is the model's output. Cutting it gives the feature extractor (the `Gemm`'s input made
//! the output). The taught model keeps the base's classes that are not snakes, so the base's snake gate still
//! works, and replaces the base's snake classes by the new species:
//!
//! ```text
//! features ─ Gemm(base) ─┬─ Gather(not snakes) ──────────────────────────────┐
//!                        └─ Gather(snakes) ─ ReduceLogSumExp ─┐              Concat ─ logits
//! features ─ Gemm(head: u8 per channel) ─ LogSoftmax ──────── Add ───────────┘
//! ```
//!
//! In the softmax over those logits, P(snake) is exactly the base's, and the species given a snake are exactly the
//! head's softmax: the gate and the species are each what they were trained to be.

use crate::error::{Error, Result};
use prost::Message;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::type_proto::{Tensor, Value};
use tract_onnx::pb::{
    tensor_shape_proto, AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

/// A base model found to end in a fully connected layer.
pub struct Cut {
    model: ModelProto,
    /// The final Gemm's index among the graph's nodes.
    gemm: usize,
    /// The name of the Gemm's input: the pooled features.
    features: String,
    /// Length of the feature vector.
    pub dim: usize,
    /// Outputs of the base's classifier.
    pub classes: usize,
}

/// A taught head: row-major `[species, dim]` weights and a bias per species (temperature already divided in).
pub struct Head {
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

fn cannot_cut(why: impl std::fmt::Display) -> Error {
    Error::bundle(format!("the base model cannot be cut at its pooled features: {why}"))
}

impl Cut {
    pub fn of(onnx: &[u8]) -> Result<Cut> {
        let model = ModelProto::decode(onnx).map_err(|e| Error::bundle(format!("model.onnx cannot be loaded: {e}")))?;
        let graph = model.graph.as_ref().ok_or_else(|| cannot_cut("no graph"))?;
        let [output] = graph.output.as_slice() else { return Err(cannot_cut("it must have one output")) };
        let gemm = graph
            .node
            .iter()
            .position(|n| n.output.first() == Some(&output.name))
            .ok_or_else(|| cannot_cut("nothing computes its output"))?;
        let node = &graph.node[gemm];
        let trans_b = node.attribute.iter().find(|a| a.name == "transB").map_or(0, |a| a.i);
        let trans_a = node.attribute.iter().find(|a| a.name == "transA").map_or(0, |a| a.i);
        if node.op_type != "Gemm" || node.input.len() < 2 || trans_b != 1 || trans_a != 0 {
            return Err(cannot_cut(format!(
                "it ends in {} where a fully connected layer (Gemm, transB = 1) was expected",
                node.op_type
            )));
        }
        let weights = node.input[1].clone();
        let dims =
            shape_of(graph, &weights).ok_or_else(|| cannot_cut(format!("the shape of {weights} is not known")))?;
        let [classes, dim] = dims[..] else { return Err(cannot_cut(format!("{weights} is not a matrix: {dims:?}"))) };
        let features = node.input[0].clone();
        Ok(Cut { model, gemm, features, dim, classes })
    }

    /// The same cut, its input made `[1, 3, height, width]`: the network up to its global pooling works at any size,
    /// so a photo can be shown larger than the base was trained at. The base's recorded intermediate shapes are
    /// dropped (tract infers them again from the new input).
    pub fn at_size(mut self, width: u32, height: u32) -> Result<Cut> {
        let g = self.model.graph.as_mut().expect("checked in Cut::of");
        let weights: std::collections::HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
        let input = g.input.iter_mut().find(|i| !weights.contains(&i.name));
        #[allow(unreachable_patterns)] // other value types in other versions of the ONNX schema
        let shape = input
            .and_then(|i| match i.r#type.as_mut()?.value.as_mut()? {
                Value::TensorType(t) => t.shape.as_mut(),
                _ => None,
            })
            .filter(|s| s.dim.len() == 4)
            .ok_or_else(|| cannot_cut("its input is not a [1, 3, height, width] tensor"))?;
        for (d, v) in shape.dim[2..].iter_mut().zip([height, width]) {
            d.value = Some(tensor_shape_proto::dimension::Value::DimValue(v as i64));
        }
        g.value_info.clear();
        Ok(self)
    }

    /// The feature extractor: the base with the classifier's input as its output, `[1, dim]`.
    pub fn features_model(&self) -> Vec<u8> {
        let mut m = self.model.clone();
        let g = m.graph.as_mut().expect("checked in Cut::of");
        g.node.truncate(self.gemm);
        g.output = vec![value_info(&self.features, &[1, self.dim as i64])];
        prune(g);
        m.encode_to_vec()
    }

    /// The taught model (see the module's picture): the base's classes outside `snake_classes`, in their order, then
    /// one logit per species of `head`.
    pub fn with_head(&self, snake_classes: &[usize], head: &Head) -> Vec<u8> {
        let species = head.bias.len();
        let mut m = self.model.clone();
        let g = m.graph.as_mut().expect("checked in Cut::of");
        let base_logits = "snakeid_base_logits";
        g.node[self.gemm].output[0] = base_logits.into();
        let others: Vec<i64> = (0..self.classes).filter(|c| !snake_classes.contains(c)).map(|c| c as i64).collect();
        let snakes: Vec<i64> = snake_classes.iter().map(|&c| c as i64).collect();
        let (q, scale, zero) = quantize_rows(&head.weights, self.dim);
        g.initializer.extend([
            int64s("snakeid_others", &others),
            int64s("snakeid_snakes", &snakes),
            tensor("snakeid_head_u8", DataType::Uint8, &[species as i64, self.dim as i64], q),
            tensor("snakeid_head_scale", DataType::Float, &[species as i64], f32_bytes(&scale)),
            tensor("snakeid_head_zero_point", DataType::Uint8, &[species as i64], zero),
            tensor("snakeid_head_bias", DataType::Float, &[species as i64], f32_bytes(&head.bias)),
        ]);
        let output = g.output[0].name.clone();
        // The base's shape for its output no longer holds.
        g.value_info.retain(|v| v.name != output);
        g.node.extend([
            node("Gather", &[base_logits, "snakeid_others"], "snakeid_other_logits", vec![int("axis", 1)]),
            node("Gather", &[base_logits, "snakeid_snakes"], "snakeid_snake_logits", vec![int("axis", 1)]),
            node(
                "ReduceLogSumExp",
                &["snakeid_snake_logits"],
                "snakeid_snake_lse",
                vec![ints("axes", &[1]), int("keepdims", 1)],
            ),
            node(
                "DequantizeLinear",
                &["snakeid_head_u8", "snakeid_head_scale", "snakeid_head_zero_point"],
                "snakeid_head",
                vec![int("axis", 0)],
            ),
            node(
                "Gemm",
                &[self.features.as_str(), "snakeid_head", "snakeid_head_bias"],
                "snakeid_head_logits",
                vec![int("transB", 1)],
            ),
            node("LogSoftmax", &["snakeid_head_logits"], "snakeid_species_given_snake", vec![int("axis", 1)]),
            node("Add", &["snakeid_species_given_snake", "snakeid_snake_lse"], "snakeid_species_logits", vec![]),
            node("Concat", &["snakeid_other_logits", "snakeid_species_logits"], &output, vec![int("axis", 1)]),
        ]);
        g.output = vec![value_info(&output, &[1, (others.len() + species) as i64])];
        m.encode_to_vec()
    }
}

/// u8 per output row, as the default bundle stores its classifier: the row's range mapped onto 0..=255.
fn quantize_rows(w: &[f32], dim: usize) -> (Vec<u8>, Vec<f32>, Vec<u8>) {
    let (mut q, mut scales, mut zeros) = (Vec::with_capacity(w.len()), Vec::new(), Vec::new());
    for row in w.chunks(dim) {
        // The range must hold 0 (the zero point is a code) and must not be empty.
        let lo = row.iter().copied().fold(0.0f32, f32::min);
        let hi = row.iter().copied().fold(0.0f32, f32::max);
        let scale = ((hi - lo) / 255.0).max(f32::MIN_POSITIVE);
        let zero = (-lo / scale).round().clamp(0.0, 255.0);
        q.extend(row.iter().map(|&x| (x / scale + zero).round().clamp(0.0, 255.0) as u8));
        scales.push(scale);
        zeros.push(zero as u8);
    }
    (q, scales, zeros)
}

/// The weights a quantized head will really use: `quantize_rows` undone.
pub fn dequantized(w: &[f32], dim: usize) -> Vec<f32> {
    let (q, scales, zeros) = quantize_rows(w, dim);
    q.chunks(dim)
        .zip(scales.iter().zip(&zeros))
        .flat_map(|(row, (&s, &z))| row.iter().map(move |&c| (c as f32 - z as f32) * s))
        .collect()
}

/// Drops the nodes and initializers no output needs.
fn prune(g: &mut GraphProto) {
    let mut needed: std::collections::HashSet<String> = g.output.iter().map(|o| o.name.clone()).collect();
    let mut keep = vec![false; g.node.len()];
    for (i, n) in g.node.iter().enumerate().rev() {
        if n.output.iter().any(|o| needed.contains(o)) {
            keep[i] = true;
            needed.extend(n.input.iter().cloned());
        }
    }
    let mut k = keep.into_iter();
    g.node.retain(|_| k.next().unwrap_or(false));
    g.initializer.retain(|t| needed.contains(&t.name));
}

fn shape_of(g: &GraphProto, name: &str) -> Option<Vec<usize>> {
    if let Some(t) = g.initializer.iter().find(|t| t.name == name) {
        return Some(t.dims.iter().map(|&d| d as usize).collect());
    }
    // A quantized weight: the shape of the DequantizeLinear's integer input.
    let n = g.node.iter().find(|n| n.output.first().map(String::as_str) == Some(name))?;
    (n.op_type == "DequantizeLinear").then(|| shape_of(g, n.input.first()?)).flatten()
}

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
            ..Default::default()
        })
        .collect();
    let tensor = Tensor { elem_type: DataType::Float as i32, shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto { value: Some(Value::TensorType(tensor)), ..Default::default() }),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i, r#type: AttributeType::Int as i32, ..Default::default() }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: v.to_vec(), r#type: AttributeType::Ints as i32, ..Default::default() }
}

fn tensor(name: &str, dt: DataType, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    TensorProto { name: name.into(), data_type: dt as i32, dims: dims.to_vec(), raw_data: raw, ..Default::default() }
}

fn int64s(name: &str, v: &[i64]) -> TensorProto {
    tensor(name, DataType::Int64, &[v.len() as i64], v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(nodes: Vec<NodeProto>, initializer: Vec<TensorProto>, output: &str) -> Vec<u8> {
        let graph =
            GraphProto { node: nodes, initializer, output: vec![value_info(output, &[1, 3])], ..Default::default() };
        ModelProto { graph: Some(graph), ..Default::default() }.encode_to_vec()
    }

    #[test]
    fn a_model_that_does_not_end_in_a_fully_connected_layer_cannot_be_cut() {
        let relu = model(vec![node("Relu", &["x"], "y", vec![])], vec![], "y");
        let e = Cut::of(&relu).err().expect("a Relu is not a classifier").to_string();
        assert!(e.contains("ends in Relu where a fully connected layer"), "{e}");
        let gemm = |trans_b: i64| {
            let w = tensor("w", DataType::Float, &[3, 4], f32_bytes(&[0.5; 12]));
            model(vec![node("Gemm", &["x", "w"], "y", vec![int("transB", trans_b)])], vec![w], "y")
        };
        assert!(Cut::of(&gemm(0)).is_err(), "weights not stored [classes, features]");
        let cut = Cut::of(&gemm(1)).unwrap();
        assert_eq!((cut.classes, cut.dim), (3, 4));
        assert!(Cut::of(b"not a model").is_err());
    }

    #[test]
    fn a_cut_at_another_size_has_that_input_and_no_recorded_shapes() {
        let w = tensor("w", DataType::Float, &[3, 4], f32_bytes(&[0.5; 12]));
        let mut m = ModelProto::decode(
            model(vec![node("Gemm", &["x", "w"], "y", vec![int("transB", 1)])], vec![w], "y").as_slice(),
        )
        .unwrap();
        let g = m.graph.as_mut().unwrap();
        g.input = vec![value_info("x", &[1, 3, 224, 224])];
        g.value_info = vec![value_info("y", &[1, 3])];
        let cut = Cut::of(&m.encode_to_vec()).unwrap().at_size(320, 288).unwrap();
        let g = cut.model.graph.as_ref().unwrap();
        let Some(Value::TensorType(t)) = g.input[0].r#type.as_ref().and_then(|t| t.value.as_ref()) else { panic!() };
        let dims: Vec<_> = t.shape.as_ref().unwrap().dim.iter().map(|d| d.value.clone()).collect();
        let v = |d| Some(tensor_shape_proto::dimension::Value::DimValue(d));
        assert_eq!(dims, [v(1), v(3), v(288), v(320)]);
        assert!(g.value_info.is_empty());
        // A model whose input is not an image cannot be shown larger.
        let w = tensor("w", DataType::Float, &[3, 4], f32_bytes(&[0.5; 12]));
        let flat = model(vec![node("Gemm", &["x", "w"], "y", vec![int("transB", 1)])], vec![w], "y");
        assert!(Cut::of(&flat).unwrap().at_size(288, 288).is_err());
    }

    #[test]
    fn rows_quantize_per_channel_within_half_a_step() {
        let w: Vec<f32> = (0..8).map(|i| (i as f32 - 3.0) * 0.37).chain((0..8).map(|i| i as f32 * 0.01)).collect();
        let back = dequantized(&w, 8);
        for (row, brow) in w.chunks(8).zip(back.chunks(8)) {
            let step =
                (row.iter().copied().fold(0.0f32, f32::max) - row.iter().copied().fold(0.0f32, f32::min)) / 255.0;
            assert!(row.iter().zip(brow).all(|(a, b)| (a - b).abs() <= step * 0.5 + 1e-7), "{row:?} {brow:?}");
        }
    }
}
