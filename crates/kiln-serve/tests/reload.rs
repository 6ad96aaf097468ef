//! The repository rescanned while serving: a new version loads and becomes the default, a
//! removed one is dropped (a request holding it keeps it until it answers), and a corrupt new
//! version is reported unavailable while the loaded ones keep serving.

use kiln::graph::artifact;
use kiln::prelude::*;
use kiln_serve::tensor::HostTensor;
use kiln_serve::Registry;
use std::path::Path;
use std::sync::Arc;

fn save(path: &Path, out: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let net = Sequential::new().append(Linear::new(4, out));
    let graph = no_grad(|| {
        compile(|x: &[Tensor]| vec![net.forward(&x[0])])
            .dynamic_batch()
            .dynamic_graph(&[Tensor::zeros([1, 4], DType::F32)])
            .unwrap()
    });
    artifact::save_dynamic(&graph, path).unwrap();
}

fn versions(r: &Registry) -> Vec<u64> {
    r.all().iter().map(|m| m.version).collect()
}

#[tokio::test]
async fn versions_come_and_go_without_disturbing_the_others() {
    let repo = tempfile::tempdir().unwrap();
    let m = repo.path().join("m");
    std::fs::write(repo.path().join("README"), b"not a model directory").unwrap();
    save(&m.join("1/model.kgraph"), 2);
    std::fs::write(
        repo.path().join("m/config.toml"),
        "version_policy = { all = true }",
    )
    .unwrap();
    let registry = Registry::load(repo.path()).unwrap();
    assert_eq!(versions(&registry), [1]);

    save(&m.join("2/model.kgraph"), 3);
    registry.reload().unwrap();
    assert_eq!(versions(&registry), [1, 2]);
    assert_eq!(
        registry.get("m", None).unwrap().version,
        2,
        "the default is the newest"
    );

    // A request holds version 1 while it is removed: it still answers.
    let held = registry.get("m", Some("1")).unwrap();
    std::fs::remove_dir_all(m.join("1")).unwrap();
    registry.reload().unwrap();
    assert_eq!(versions(&registry), [2]);
    assert!(registry.get("m", Some("1")).is_err());
    let x = HostTensor::from_bytes(DType::F32, &[1, 4], vec![0; 16]).unwrap();
    let (args, batch) = held.check_inputs(vec![("input__0".into(), x)]).unwrap();
    let out = held.infer(args, batch).await.unwrap();
    assert_eq!(out[0].shape, [1, 2]);

    // A corrupt version 3 is reported and not served; version 2 goes on.
    std::fs::create_dir_all(m.join("3")).unwrap();
    std::fs::write(m.join("3/model.kgraph"), b"garbage").unwrap();
    registry.reload().unwrap();
    assert_eq!(versions(&registry), [2]);
    let bad = registry.unavailable();
    assert_eq!(bad.len(), 1);
    assert_eq!((bad[0].model.as_str(), bad[0].version), ("m", Some(3)));
    assert_eq!(registry.get("m", None).unwrap().version, 2);
}

#[tokio::test]
async fn a_corrupt_latest_version_leaves_the_serving_one_loaded_until_it_is_fixed() {
    let repo = tempfile::tempdir().unwrap();
    let m = repo.path().join("m");
    save(&m.join("1/model.kgraph"), 2); // the default policy: the latest 1 version
    let registry = Registry::load(repo.path()).unwrap();
    let serving = registry.get("m", None).unwrap();
    assert_eq!(serving.version, 1);

    std::fs::create_dir_all(m.join("2")).unwrap();
    std::fs::write(m.join("2/model.kgraph"), b"garbage").unwrap();
    for _ in 0..2 {
        registry.reload().unwrap();
        assert_eq!(versions(&registry), [1], "version 1 still serves");
        let bad = registry.unavailable();
        assert_eq!((bad.len(), bad[0].version), (1, Some(2)), "{bad:?}");
    }
    assert!(
        Arc::ptr_eq(&registry.get("m", None).unwrap(), &serving),
        "the same loaded version 1, not a reload"
    );

    // Version 2 fixed (a new file): it loads and replaces version 1.
    save(&m.join("2/model.kgraph"), 3);
    registry.reload().unwrap();
    assert_eq!(versions(&registry), [2]);
    assert!(registry.unavailable().is_empty());
}
