//! The structure of exported models, decoded from their bytes: a symbolic batch on the inputs
//! and outputs, weights as initializers, the asked names and opset; and the errors for what
//! does not export. (`onnxruntime_check.py` runs the files in onnxruntime.)

use kiln::graph::compile;
use kiln::prelude::*;
use kiln_onnx::proto::tensor_shape_proto::dimension::Value as DimValue;
use kiln_onnx::proto::type_proto::Value as TypeValue;
use kiln_onnx::proto::{ModelProto, ValueInfoProto};
use kiln_onnx::{export, export_dynamic, save, ExportOptions, OnnxError};
use prost::Message;

fn mlp() -> Sequential {
    manual_seed(1);
    Sequential::new()
        .append(Linear::new(4, 8))
        .append(ReLU::new())
        .append(Linear::new(8, 3))
}

fn dims(v: &ValueInfoProto) -> Vec<String> {
    let Some(TypeValue::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        panic!("not a tensor type")
    };
    t.shape
        .as_ref()
        .unwrap()
        .dim
        .iter()
        .map(|d| match d.value.as_ref().unwrap() {
            DimValue::DimValue(n) => n.to_string(),
            DimValue::DimParam(p) => p.clone(),
        })
        .collect()
}

#[test]
fn a_dynamic_graph_exports_with_a_symbolic_batch_names_and_weights() {
    let model = mlp();
    let graph = no_grad(|| {
        compile(|x: &[Tensor]| vec![model.forward(&x[0])])
            .dynamic_batch()
            .dynamic_graph(&[Tensor::zeros([1, 4], DType::F32)])
            .unwrap()
    });
    let options = ExportOptions {
        input_names: vec!["features".into()],
        output_names: vec!["logits".into()],
        ..Default::default()
    };
    let onnx = export_dynamic(&graph, &options).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.onnx");
    save(&onnx, &path).unwrap();
    let read = ModelProto::decode(&*std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(read, onnx, "the file holds the model");

    assert_eq!(read.ir_version, Some(10));
    assert_eq!(read.opset_import[0].version, Some(21));
    assert_eq!(read.producer_name.as_deref(), Some("kiln"));
    let g = read.graph.unwrap();
    assert_eq!(g.input.len(), 1);
    assert_eq!(g.input[0].name.as_deref(), Some("features"));
    assert_eq!(dims(&g.input[0]), ["batch", "4"]);
    assert_eq!(g.output[0].name.as_deref(), Some("logits"));
    assert_eq!(dims(&g.output[0]), ["batch", "3"]);
    // Both weights and both biases, with their values.
    let weights: usize = g
        .initializer
        .iter()
        .map(|t| t.raw_data.as_ref().map_or(0, Vec::len))
        .sum();
    assert!(
        weights >= (4 * 8 + 8 + 8 * 3 + 3) * 4,
        "{weights} bytes of initializers"
    );
    let ops: Vec<&str> = g.node.iter().filter_map(|n| n.op_type.as_deref()).collect();
    assert_eq!(ops.iter().filter(|&&o| o == "MatMul").count(), 2, "{ops:?}");
    assert!(ops.contains(&"Relu"), "{ops:?}");
}

#[test]
fn a_fixed_graph_exports_with_fixed_dims() {
    let model = mlp();
    let graph = no_grad(|| {
        compile(|x: &[Tensor]| vec![model.forward(&x[0])])
            .graph(&[Tensor::zeros([2, 4], DType::F32)])
    });
    let onnx = export(&graph, &ExportOptions::default()).unwrap();
    let g = onnx.graph.unwrap();
    assert_eq!(g.input[0].name.as_deref(), Some("input__0"));
    assert_eq!(dims(&g.input[0]), ["2", "4"]);
    assert_eq!(dims(&g.output[0]), ["2", "3"]);
}

#[test]
fn what_does_not_export_is_an_error_that_names_it() {
    let model = mlp();
    let x = Tensor::zeros([2, 4], DType::F32);
    let graph = no_grad(|| {
        compile(|x: &[Tensor]| vec![model.forward(&x[0])]).graph(std::slice::from_ref(&x))
    });
    for opset in [16, 22] {
        let e = export(
            &graph,
            &ExportOptions {
                opset,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, OnnxError::Unsupported(_)), "{e}");
        assert!(e.to_string().contains(&format!("opset {opset}")), "{e}");
    }
    // Random sampling has no ONNX lowering that gives Kiln's numbers.
    let noisy = compile(|x: &[Tensor]| vec![x[0].add(&Tensor::randn([2, 4], DType::F32))])
        .graph(std::slice::from_ref(&x));
    let e = export(&noisy, &ExportOptions::default()).unwrap_err();
    assert!(e.to_string().contains("random"), "{e}");
    // A training step (it writes the weights) is not an inference graph.
    let trained = mlp();
    let mut opt = Sgd::new(trained.parameters(), 0.1);
    let mut step = compile(|x: &[Tensor]| {
        opt.zero_grad();
        let loss = trained.forward(&x[0]).mean_all();
        loss.backward();
        opt.step();
        vec![loss]
    });
    let e = export(&step.graph(&[x]), &ExportOptions::default()).unwrap_err();
    assert!(e.to_string().contains("training graph"), "{e}");
}
