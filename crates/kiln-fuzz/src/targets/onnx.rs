//! ONNX models (`kiln_onnx::load_bytes`): a model Kiln exported (every graph-file seed, as
//! ONNX), mutated as protobuf bytes or field by field (op types, attribute values, dims,
//! tensor data, names), is imported and, when accepted, run on inputs of its signature.

use super::Target;
use crate::mutate;
use crate::rng::Rng;
use kiln_graph::artifact;
use kiln_onnx::proto::{attribute_proto::AttributeType, ModelProto};
use kiln_onnx::ImportOptions;
use prost::Message;
use std::path::Path;

/// Op types swapped into nodes: the ones Kiln imports, and some it does not.
const OPS: &[&str] = &[
    "Add",
    "Mul",
    "Div",
    "Sub",
    "Pow",
    "Conv",
    "ConvTranspose",
    "MaxPool",
    "AveragePool",
    "Gemm",
    "MatMul",
    "Reshape",
    "Transpose",
    "Slice",
    "Gather",
    "GatherND",
    "GatherElements",
    "Concat",
    "Split",
    "Squeeze",
    "Unsqueeze",
    "Expand",
    "Tile",
    "Pad",
    "Range",
    "Shape",
    "ConstantOfShape",
    "Cast",
    "Softmax",
    "LayerNormalization",
    "BatchNormalization",
    "ReduceMean",
    "ReduceSum",
    "ArgMax",
    "Where",
    "Clip",
    "Trilu",
    "Flatten",
    "Loop",
    "If",
];

/// Extreme integers for attributes and dims.
const INTS: &[i64] = &[
    0,
    1,
    -1,
    2,
    3,
    97,
    -97,
    1 << 20,
    -(1 << 40),
    i64::MAX,
    i64::MIN,
];

/// The ONNX model target.
pub struct OnnxModel {
    seeds: Vec<Vec<u8>>,
}

impl OnnxModel {
    /// Seeds: the graph-file seeds exported to ONNX.
    pub fn new(dir: &Path) -> OnnxModel {
        let seeds = crate::seeds::graphs(dir)
            .iter()
            .filter_map(|bytes| {
                let g = artifact::load_bytes(bytes, Path::new("seed.kgraph"), Default::default())
                    .ok()?;
                let options = kiln_onnx::ExportOptions::default();
                let model = match g.dynamic() {
                    Some(d) => kiln_onnx::export_dynamic(d, &options),
                    None => kiln_onnx::export(g.graph(), &options),
                };
                Some(model.ok()?.encode_to_vec())
            })
            .collect::<Vec<_>>();
        assert!(!seeds.is_empty(), "the ONNX seeds export");
        OnnxModel { seeds }
    }
}

fn int(rng: &mut Rng) -> i64 {
    if rng.one_in(2) {
        *rng.pick(INTS)
    } else {
        rng.below(9) as i64 - 2
    }
}

/// One field-level change to a decoded model.
fn mutate_model(rng: &mut Rng, m: &mut ModelProto) {
    let Some(g) = m.graph.as_mut() else { return };
    match rng.below(8) {
        0 if !g.node.is_empty() => {
            let k = rng.below(g.node.len());
            g.node[k].op_type = Some(rng.pick(OPS).to_string());
        }
        1 if !g.node.is_empty() => {
            let k = rng.below(g.node.len());
            let node = &mut g.node[k];
            if node.attribute.is_empty() || rng.one_in(3) {
                let mut a = kiln_onnx::proto::AttributeProto {
                    name: Some(
                        rng.pick(&[
                            "axis",
                            "perm",
                            "pads",
                            "strides",
                            "kernel_shape",
                            "group",
                            "to",
                            "keepdims",
                        ])
                        .to_string(),
                    ),
                    ..Default::default()
                };
                if rng.one_in(2) {
                    a.set_type(AttributeType::Int);
                    a.i = Some(int(rng));
                } else {
                    a.set_type(AttributeType::Ints);
                    a.ints = (0..rng.below(5)).map(|_| int(rng)).collect();
                }
                node.attribute.push(a);
            } else {
                let j = rng.below(node.attribute.len());
                let a = &mut node.attribute[j];
                a.i = Some(int(rng));
                if !a.ints.is_empty() {
                    let i = rng.below(a.ints.len());
                    a.ints[i] = int(rng);
                }
            }
        }
        2 if !g.node.is_empty() => {
            let k = rng.below(g.node.len());
            let node = &mut g.node[k];
            if !node.input.is_empty() && rng.one_in(2) {
                let i = rng.below(node.input.len());
                node.input.remove(i);
            } else if let Some(v) = g.input.first() {
                node.input.push(v.name().to_string());
            }
        }
        3 if !g.initializer.is_empty() => {
            let k = rng.below(g.initializer.len());
            let t = &mut g.initializer[k];
            if !t.dims.is_empty() && rng.one_in(2) {
                let i = rng.below(t.dims.len());
                t.dims[i] = int(rng);
            } else {
                t.data_type = Some(rng.below(30) as i32);
            }
        }
        4 if !g.input.is_empty() => {
            let k = rng.below(g.input.len());
            let dims = g.input[k]
                .r#type
                .as_mut()
                .and_then(|t| t.value.as_mut())
                .and_then(|v| match v {
                    kiln_onnx::proto::type_proto::Value::TensorType(t) => t.shape.as_mut(),
                    _ => None,
                });
            if let Some(s) = dims {
                if !s.dim.is_empty() {
                    let i = rng.below(s.dim.len());
                    s.dim[i].value = Some(if rng.one_in(2) {
                        kiln_onnx::proto::tensor_shape_proto::dimension::Value::DimValue(int(rng))
                    } else {
                        kiln_onnx::proto::tensor_shape_proto::dimension::Value::DimParam("n".into())
                    });
                }
            }
        }
        5 if g.node.len() > 1 => {
            let (a, b) = (rng.below(g.node.len()), rng.below(g.node.len()));
            g.node.swap(a, b);
        }
        6 => {
            for o in &mut m.opset_import {
                o.version = Some(int(rng));
            }
        }
        _ if !g.node.is_empty() => {
            let k = rng.below(g.node.len());
            g.node[k].domain = Some(rng.pick(&["", "ai.onnx", "com.microsoft", "x"]).to_string());
        }
        _ => {}
    }
}

impl Target for OnnxModel {
    fn name(&self) -> &'static str {
        "onnx"
    }

    fn input(&self, rng: &mut Rng) -> Vec<u8> {
        let seed = rng.pick(&self.seeds).clone();
        if rng.below(3) < 2 {
            if let Ok(mut m) = ModelProto::decode(&seed[..]) {
                for _ in 0..1 + rng.below(3) {
                    mutate_model(rng, &mut m);
                }
                let mut out = m.encode_to_vec();
                if rng.one_in(8) {
                    mutate::bytes(rng, &mut out);
                }
                return out;
            }
        }
        let mut out = seed;
        mutate::bytes(rng, &mut out);
        out
    }

    fn run(&self, input: &[u8]) -> bool {
        let options = ImportOptions {
            max_buffer_bytes: Some(64 << 20),
            ..Default::default()
        };
        let model = match kiln_onnx::load_bytes(input, None, Path::new("fuzz.onnx"), &options) {
            Ok(m) => m,
            Err(e) => {
                std::hint::black_box(e.to_string());
                return false;
            }
        };
        // Inputs of the model's own signature, the batch at 3: ones (an index of 1 may still
        // be out of range, a typed refusal when it runs).
        let args: Vec<kiln_core::Tensor> = model
            .inputs()
            .iter()
            .map(|p| {
                let shape: Vec<usize> = p.dims.iter().map(|d| d.at(3).unwrap_or(1)).collect();
                kiln_core::Tensor::ones(shape.as_slice(), p.dtype)
            })
            .collect();
        let operands: Vec<_> = args.iter().map(|t| t.operand()).collect();
        match model.run(&operands) {
            Ok(outputs) => {
                std::hint::black_box(outputs.len());
                true
            }
            Err(e) => {
                std::hint::black_box(e.to_string());
                false
            }
        }
    }
}
