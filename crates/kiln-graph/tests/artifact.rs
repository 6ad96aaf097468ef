//! Shipping a compiled inference graph: save with weights, load with no model code, run;
//! malformed files give typed errors.

use kiln_core::nn::functional as F;
use kiln_core::{no_grad, DType, Tensor};
use kiln_graph::artifact::{self, ArtifactError};
use kiln_graph::compile;
use kiln_nn::layers::{Linear, ReLU, Sequential};
use kiln_nn::{Module, ModuleBase};

fn model() -> Sequential {
    Sequential::new()
        .append(Linear::new(6, 10))
        .append(ReLU::new())
        .append(Linear::new(10, 4))
}

fn saved_graph(dir: &std::path::Path) -> (std::path::PathBuf, Sequential) {
    let net = model();
    let path = dir.join("mlp.kgraph");
    let x = Tensor::randn([2, 6], DType::F32);
    let graph = no_grad(|| {
        let mut f = compile(|xs: &[Tensor]| vec![F::softmax(&net.forward(&xs[0]), -1)]);
        f.graph(&[x])
    });
    artifact::save(&graph, &path).unwrap();
    (path, net)
}

#[test]
fn saved_graph_runs_without_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let (path, net) = saved_graph(dir.path());
    let x = Tensor::randn([2, 6], DType::F32);
    let expected = no_grad(|| F::softmax(&net.forward(&x), -1));
    drop(net);
    let loaded = artifact::load(&path).unwrap();
    assert_eq!(loaded.signature(), &[(vec![2, 6], DType::F32)]);
    let got = loaded.run(&[x]).unwrap();
    let (a, b) = (got[0].to_vec::<f32>(), expected.to_vec::<f32>());
    for (p, q) in a.iter().zip(&b) {
        assert!((p - q).abs() < 1e-6, "{a:?} vs {b:?}");
    }
    let err = loaded
        .run(&[Tensor::zeros([3, 6], DType::F32)])
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::BadArgument { index: 0, .. }),
        "{err}"
    );
}

#[test]
fn train_steps_cannot_be_saved() {
    let net = model();
    let mut f = compile(|xs: &[Tensor]| {
        let loss = net.forward(&xs[0]).sum_all();
        loss.backward();
        vec![loss]
    });
    let g = f.graph(&[Tensor::randn([2, 6], DType::F32)]);
    let err = artifact::save(&g, std::env::temp_dir().join("never.kgraph")).unwrap_err();
    assert!(matches!(err, ArtifactError::NotInference));
}

/// Rewrites the JSON graph in a saved file's header (same weights).
fn with_graph_json(path: &std::path::Path, edit: impl Fn(String) -> String) {
    let (sd, mut meta) = kiln_nn::checkpoint::load_with_metadata(path).unwrap();
    let json = meta.remove("kiln.graph").unwrap();
    meta.insert("kiln.graph".into(), edit(json));
    meta.remove("format");
    kiln_nn::checkpoint::save_with_metadata(&sd, path, &meta).unwrap();
}

#[test]
fn malformed_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = saved_graph(dir.path());
    let bytes = std::fs::read(&path).unwrap();

    // Truncated.
    let p = dir.path().join("truncated.kgraph");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        artifact::load(&p),
        Err(ArtifactError::Checkpoint(_))
    ));

    // A plain checkpoint, not a graph.
    let p = dir.path().join("plain.safetensors");
    kiln_nn::checkpoint::save(&model().state_dict(), &p).unwrap();
    assert!(matches!(
        artifact::load(&p),
        Err(ArtifactError::NotAGraph { .. })
    ));

    // Broken JSON.
    let p = dir.path().join("json.kgraph");
    std::fs::copy(&path, &p).unwrap();
    with_graph_json(&p, |j| j[..j.len() - 3].to_string());
    let e = artifact::load(&p).err().unwrap();
    assert!(matches!(e, ArtifactError::Malformed { .. }), "{e}");

    // A node whose declared shape disagrees with its op.
    let p = dir.path().join("shape.kgraph");
    std::fs::copy(&path, &p).unwrap();
    with_graph_json(&p, |j| j.replacen("\"shape\":[2,4]", "\"shape\":[2,5]", 1));
    let e = artifact::load(&p).err().unwrap();
    assert!(e.to_string().contains("malformed graph"), "{e}");

    // An operand that does not exist, and an op applied to the wrong types (caught, no crash).
    let p = dir.path().join("operand.kgraph");
    std::fs::copy(&path, &p).unwrap();
    with_graph_json(&p, |j| j.replacen("\"args\":[", "\"args\":[999,", 1));
    let e = artifact::load(&p).err().unwrap();
    assert!(matches!(e, ArtifactError::Malformed { .. }), "{e}");
}
