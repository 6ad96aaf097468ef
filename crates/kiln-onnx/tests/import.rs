//! Import: a model Kiln exported comes back with its symbolic batch and Kiln's outputs; what
//! cannot be imported is a typed error naming the op, its domain and opset (or the attribute);
//! malformed bytes are an error. (`onnx_suite` runs PyTorch's exports and the ONNX backend
//! tests against onnxruntime's and ONNX's own outputs in CI.)

use kiln::graph::compile;
use kiln::prelude::*;
use kiln_onnx::proto::{AttributeProto, ModelProto};
use kiln_onnx::{export_dynamic, load_bytes, ExportOptions, ImportOptions, OnnxError};
use prost::Message;
use std::path::Path;

fn cnn_model() -> (Sequential, ModelProto) {
    manual_seed(3);
    let net = Sequential::new()
        .append(Conv2d::with_config(
            1,
            4,
            3,
            Conv2dConfig::default().padding(1),
        ))
        .append(ReLU::new())
        .append(MaxPool2d::new(2))
        .append(Flatten::new())
        .append(Linear::new(4 * 4 * 4, 5));
    let graph = no_grad(|| {
        compile(|x: &[Tensor]| vec![net.forward(&x[0])])
            .dynamic_batch()
            .dynamic_graph(&[Tensor::zeros([2, 1, 8, 8], DType::F32)])
    })
    .expect("traces");
    let model = export_dynamic(&graph, &ExportOptions::default()).expect("exports");
    (net, model)
}

fn import(model: &ModelProto) -> Result<kiln_onnx::OnnxModel, OnnxError> {
    load_bytes(
        &model.encode_to_vec(),
        None,
        Path::new("test.onnx"),
        &ImportOptions::default(),
    )
}

#[test]
fn an_exported_cnn_imports_with_its_batch_symbolic_and_gives_kilns_outputs() {
    let (net, model) = cnn_model();
    let onnx = import(&model).expect("imports");
    assert_eq!(onnx.inputs().len(), 1);
    assert!(
        !onnx.inputs()[0].dims[0].is_fixed(),
        "the batch stays symbolic"
    );
    assert!(onnx.dynamic().is_some() && !onnx.specialized());
    for batch in [1, 3, 7] {
        let x = Tensor::randn([batch, 1, 8, 8], DType::F32);
        let got = onnx.run(&[x.operand()]).expect("runs");
        let got = Tensor::from_owned_operand(&got[0]).to_vec::<f32>();
        let want = no_grad(|| net.forward(&x)).to_vec::<f32>();
        assert_eq!(got.len(), batch * 5);
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "{g} vs {w} at batch {batch}"
            );
        }
    }
}

#[test]
fn an_op_kiln_does_not_import_is_named_with_its_domain_and_opset() {
    let (_, mut model) = cnn_model();
    let g = model.graph.as_mut().unwrap();
    g.node[0].op_type = Some("NonMaxSuppression".into());
    g.node[0].name = Some("nms".into());
    let e = import(&model).err().expect("refused");
    assert!(matches!(e, OnnxError::UnsupportedOp { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "ONNX import: node \"nms\": op NonMaxSuppression of domain \"\" (opset 21) is not supported"
    );

    let (_, mut model) = cnn_model();
    let g = model.graph.as_mut().unwrap();
    g.node[0].domain = Some("com.microsoft".into());
    let e = import(&model).err().expect("refused");
    assert!(e.to_string().contains("of domain \"com.microsoft\""), "{e}");
}

#[test]
fn an_attribute_the_importer_does_not_read_is_refused_not_ignored() {
    let (_, mut model) = cnn_model();
    let g = model.graph.as_mut().unwrap();
    let conv = g
        .node
        .iter_mut()
        .find(|n| n.op_type() == "Conv")
        .expect("a Conv");
    conv.attribute.push(AttributeProto {
        name: Some("future_flag".into()),
        i: Some(1),
        r#type: Some(2),
        ..Default::default()
    });
    let e = import(&model).err().expect("refused");
    assert!(matches!(e, OnnxError::Node { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("(Conv): attribute future_flag is not supported"),
        "{e}"
    );
}

#[test]
fn malformed_bytes_and_a_value_used_before_it_is_defined_are_invalid() {
    let e = load_bytes(
        b"\x08\x07\x12\xff",
        None,
        Path::new("x.onnx"),
        &ImportOptions::default(),
    )
    .err()
    .expect("refused");
    assert!(matches!(e, OnnxError::Invalid(_)), "{e}");

    let (_, mut model) = cnn_model();
    let g = model.graph.as_mut().unwrap();
    g.node.reverse();
    let e = import(&model).err().expect("refused");
    assert!(e.to_string().contains("before it is defined"), "{e}");
}

#[test]
fn a_trainable_import_gives_the_models_outputs_and_its_weights_train() {
    let (net, model) = cnn_model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cnn.onnx");
    kiln_onnx::save(&model, &path).unwrap();
    let body = kiln::onnx::load_trainable(&path, &ImportOptions::default()).expect("imports");
    // Conv and Linear weights and biases, as the network has.
    assert_eq!(body.parameters().len(), 4);
    assert_eq!(body.num_parameters(), net.num_parameters());
    let x = Tensor::randn([6, 1, 8, 8], DType::F32);
    let want = no_grad(|| net.forward(&x)).to_vec::<f32>();
    let got = body.forward(&x).to_vec::<f32>();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{g} vs {w}");
    }
    // A few steps of SGD on a fixed batch lower the loss: gradients reach every weight.
    let y = Tensor::from_vec(vec![0i64, 1, 2, 3, 4, 0], [6]);
    let mut opt = Sgd::new(body.parameters(), 0.05);
    let first = F::cross_entropy(&body.forward(&x), &y);
    for _ in 0..5 {
        opt.zero_grad();
        let loss = F::cross_entropy(&body.forward(&x), &y);
        loss.backward();
        assert!(body.parameters().iter().all(|p| p.grad().is_some()));
        opt.step();
    }
    let last = F::cross_entropy(&body.forward(&x), &y);
    assert!(last.item::<f64>() < first.item::<f64>());
}

#[test]
fn weights_saved_as_external_data_import_back_and_a_location_outside_the_folder_is_refused() {
    let (net, model) = cnn_model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cnn.onnx");
    kiln_onnx::save_with_external_data(&model, &path).unwrap();
    let data = std::fs::metadata(dir.path().join("cnn.onnx.data"))
        .unwrap()
        .len();
    let file = std::fs::metadata(&path).unwrap().len();
    assert!(
        data > file,
        "the weights ({data} bytes) left the model file ({file} bytes)"
    );
    let onnx = kiln_onnx::load(&path).expect("imports with its external data");
    let x = Tensor::randn([4, 1, 8, 8], DType::F32);
    let got = Tensor::from_owned_operand(&onnx.run(&[x.operand()]).unwrap()[0]).to_vec::<f32>();
    let want = no_grad(|| net.forward(&x)).to_vec::<f32>();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{g} vs {w}");
    }

    // A location that climbs out of the model's folder is refused, as is a short file.
    let mut bad = ModelProto::decode(&std::fs::read(&path).unwrap()[..]).unwrap();
    let t = bad
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| !t.external_data.is_empty())
        .expect("an external weight");
    t.external_data[0].value = Some("../cnn.onnx.data".into());
    let e = load_bytes(
        &bad.encode_to_vec(),
        Some(dir.path()),
        &path,
        &ImportOptions::default(),
    )
    .err()
    .expect("refused");
    assert!(
        e.to_string()
            .contains("not a file inside the model's folder"),
        "{e}"
    );
    std::fs::write(dir.path().join("cnn.onnx.data"), b"short").unwrap();
    let e = kiln_onnx::load(&path).err().expect("refused");
    assert!(matches!(e, OnnxError::Invalid(_)), "{e}");
}

#[test]
fn an_input_read_as_a_shape_is_imported_per_value() {
    // y = Reshape(x, shape) with `shape` a model input: known only when the model runs.
    use kiln_onnx::proto::tensor_shape_proto::{dimension, Dimension};
    use kiln_onnx::proto::type_proto::{Tensor as TensorType, Value as TypeValue};
    use kiln_onnx::proto::{
        GraphProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto,
    };
    let info = |name: &str, elem: i32, dims: &[i64]| ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TensorType {
                elem_type: Some(elem),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(dimension::Value::DimValue(d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            node: vec![NodeProto {
                input: vec!["x".into(), "shape".into()],
                output: vec!["y".into()],
                op_type: Some("Reshape".into()),
                ..Default::default()
            }],
            input: vec![info("x", 1, &[2, 6]), info("shape", 7, &[2])],
            output: vec![info("y", 1, &[])],
            ..Default::default()
        }),
        ..Default::default()
    };
    let onnx = import(&model).expect("imports");
    assert!(onnx.specialized(), "specialized on the shape input");
    let x = Tensor::from_vec((0..12).map(|v| v as f32).collect::<Vec<_>>(), [2, 6]);
    for target in [[3i64, 4], [6, 2], [-1, 3]] {
        let shape = Tensor::from_vec(target.to_vec(), [2]);
        let y = onnx.run(&[x.operand(), shape.operand()]).expect("runs");
        let want: Vec<usize> = match target {
            [-1, 3] => vec![4, 3],
            [a, b] => vec![a as usize, b as usize],
        };
        assert_eq!(y[0].operand().shape(), &want[..]);
    }
}

#[test]
fn a_batch_norm_is_not_folded_into_a_conv_whose_output_is_also_read_under_another_name() {
    // c = Conv(x, 2) (1×1), a = Identity(c), y = BatchNormalization(a); both y and c are
    // outputs. Folding the norm into the conv would change c too (DenseNet's transition
    // output feeds a norm through a one-input Concat and every later layer directly).
    use kiln_onnx::proto::tensor_proto::DataType;
    use kiln_onnx::proto::type_proto::{Tensor as TensorType, Value as TypeValue};
    use kiln_onnx::proto::{
        AttributeProto, GraphProto, NodeProto, OperatorSetIdProto, TensorProto, TypeProto,
        ValueInfoProto,
    };
    let info = |name: &str| ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TensorType {
                elem_type: Some(DataType::Float as i32),
                shape: None,
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let init = |name: &str, dims: &[i64], v: f32| TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        float_data: vec![v],
        ..Default::default()
    };
    let node = |op: &str, inputs: &[&str], out: &str, attrs: Vec<AttributeProto>| NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        op_type: Some(op.into()),
        attribute: attrs,
        ..Default::default()
    };
    let eps = AttributeProto {
        name: Some("epsilon".into()),
        f: Some(0.0),
        r#type: Some(kiln_onnx::proto::attribute_proto::AttributeType::Float as i32),
        ..Default::default()
    };
    let mut x_info = info("x");
    if let Some(TypeValue::TensorType(t)) = x_info.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        use kiln_onnx::proto::tensor_shape_proto::{dimension, Dimension};
        t.shape = Some(kiln_onnx::proto::TensorShapeProto {
            dim: [1, 1, 2, 2]
                .iter()
                .map(|&d| Dimension {
                    value: Some(dimension::Value::DimValue(d)),
                    ..Default::default()
                })
                .collect(),
        });
    }
    let model = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            node: vec![
                node("Conv", &["x", "w"], "c", vec![]),
                node("Identity", &["c"], "a", vec![]),
                node(
                    "BatchNormalization",
                    &["a", "scale", "bias", "mean", "var"],
                    "y",
                    vec![eps],
                ),
            ],
            initializer: vec![
                init("w", &[1, 1, 1, 1], 2.0),
                init("scale", &[1], 3.0),
                init("bias", &[1], 1.0),
                init("mean", &[1], 0.5),
                init("var", &[1], 4.0),
            ],
            input: vec![x_info],
            output: vec![info("y"), info("c")],
            ..Default::default()
        }),
        ..Default::default()
    };
    let onnx = import(&model).expect("imports");
    let x = Tensor::from_vec(vec![0.0f32, 1.0, 2.0, 3.0], [1, 1, 2, 2]);
    let out = onnx.run(&[x.operand()]).expect("runs");
    let values = |k: usize| kiln_kernels::cpu::to_contiguous_vec::<f32>(out[k].operand());
    // c = 2x; y = 3·(c − 0.5)/√4 + 1.
    assert_eq!(values(1), vec![0.0, 2.0, 4.0, 6.0]);
    assert_eq!(values(0), vec![0.25, 3.25, 6.25, 9.25]);
}
