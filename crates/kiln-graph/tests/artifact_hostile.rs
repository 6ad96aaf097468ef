//! Hand-edited graph files that the loader once accepted and that then crashed or misbehaved
//! at `run` (issue 20): each is now refused by `artifact::load` with a typed error that names
//! the node, without a panic.

use kiln_core::nn::functional as F;
use kiln_core::ops::fused::{FusedProgram, FusedStep, FusedStore};
use kiln_core::ops::{Distribution, Op, UnaryOp};
use kiln_core::{no_grad, DType, Tensor};
use kiln_graph::artifact::{self, ArtifactError, LoadOptions};
use kiln_graph::compile;
use kiln_nn::layers::{Linear, ReLU, Sequential};
use kiln_nn::Module;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// 2^62 + 3: times 4 it wraps to 12 in 64-bit arithmetic.
const WRAPS_TO_12: usize = (1 << 62) + 3;

/// The MLP 6-10-4 the saved graphs run.
fn mlp() -> Sequential {
    Sequential::new()
        .append(Linear::new(6, 10))
        .append(ReLU::new())
        .append(Linear::new(10, 4))
}

/// A valid graph file: softmax(MLP(x)) for x: f32[2, 6].
fn saved_graph(dir: &Path) -> PathBuf {
    let net = mlp();
    let path = dir.join("mlp.kgraph");
    let graph = no_grad(|| {
        let mut f = compile(|xs: &[Tensor]| vec![F::softmax(&net.forward(&xs[0]), -1)]);
        f.graph(&[Tensor::randn([2, 6], DType::F32)])
    });
    artifact::save(&graph, &path).unwrap();
    path
}

/// The graph JSON of a saved file, edited by `edit`, written to `name` beside it.
fn edited(path: &Path, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let (sd, mut meta) = kiln_nn::checkpoint::load_with_metadata(path).unwrap();
    let mut graph: Value = serde_json::from_str(&meta["kiln.graph"]).unwrap();
    edit(&mut graph);
    meta.insert("kiln.graph".into(), graph.to_string());
    let out = path.with_file_name(name);
    kiln_nn::checkpoint::save_with_metadata(&sd, &out, &meta).unwrap();
    out
}

/// The id of the graph's argument and of its first weight.
fn arg_and_weight(g: &Value) -> (u64, u64) {
    let find = |kind: &str| {
        g["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["kind"] == kind)
            .map(|i| i["id"].as_u64().unwrap())
            .unwrap()
    };
    (find("arg"), find("weight"))
}

fn node(id: u64, op: Op, args: &[u64], shape: &[usize], dtype: DType) -> Value {
    json!({
        "id": id,
        "op": serde_json::to_value(op).unwrap(),
        "args": args,
        "shape": shape,
        "dtype": serde_json::to_value(dtype).unwrap(),
        "fresh_random": false,
    })
}

/// Appends nodes and makes the last one the only output.
fn append(g: &mut Value, nodes: Vec<Value>) {
    let last = nodes.last().unwrap()["id"].clone();
    g["nodes"].as_array_mut().unwrap().extend(nodes);
    g["outputs"] = json!([last]);
}

fn malformed_message(path: &Path) -> String {
    match artifact::load(path) {
        Err(e @ ArtifactError::Malformed { .. }) => e.to_string(),
        Err(e) => panic!("expected a malformed-graph error, got {e}"),
        Ok(_) => panic!("{} was accepted", path.display()),
    }
}

#[test]
fn a_reshape_whose_element_count_wraps_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = edited(&saved_graph(dir.path()), "wrap.kgraph", |g| {
        let (x, _) = arg_and_weight(g);
        append(
            g,
            vec![
                node(
                    900,
                    Op::Reshape([4, WRAPS_TO_12].into_iter().collect()),
                    &[x],
                    &[4, WRAPS_TO_12],
                    DType::F32,
                ),
                node(901, Op::Matmul, &[900, 900], &[4, WRAPS_TO_12], DType::F32),
            ],
        )
    });
    let msg = malformed_message(&p);
    assert!(
        msg.contains("%900: reshape: cannot reshape [2, 6]"),
        "{msg}"
    );
}

#[test]
fn a_gather_dim_past_the_rank_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = edited(&saved_graph(dir.path()), "gather.kgraph", |g| {
        let (x, _) = arg_and_weight(g);
        append(
            g,
            vec![
                node(900, Op::Cast(DType::I64), &[x], &[2, 6], DType::I64),
                node(901, Op::Gather(2), &[x, 900], &[2, 6], DType::F32),
            ],
        )
    });
    let msg = malformed_message(&p);
    assert!(msg.contains("%901: gather: dim 2 is out of range"), "{msg}");
}

#[test]
fn random_and_expanded_values_past_the_memory_bound_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_graph(dir.path());
    // 2^58 f32 values: 1 EiB, within isize::MAX but far past any machine.
    let random = edited(&path, "random.kgraph", |g| {
        let op = Op::Random {
            dist: Distribution::Normal,
            shape: [1usize << 58].into_iter().collect(),
            dtype: DType::F32,
            seed: 0,
            offset: 0,
        };
        append(g, vec![node(900, op, &[], &[1 << 58], DType::F32)]);
    });
    // A stride-0 view costs nothing, but the op that reads it writes 48 TiB.
    let expand = edited(&path, "expand.kgraph", |g| {
        let (x, _) = arg_and_weight(g);
        let big = [1usize << 40, 2, 6];
        append(
            g,
            vec![
                node(
                    900,
                    Op::Expand(big.into_iter().collect()),
                    &[x],
                    &big,
                    DType::F32,
                ),
                node(901, Op::Unary(UnaryOp::Exp), &[900], &big, DType::F32),
            ],
        );
    });
    for p in [random, expand] {
        match artifact::load(&p) {
            Err(ArtifactError::TooLarge { needed, limit, .. }) => {
                assert!(needed > limit && limit >= 1 << 30, "{needed} vs {limit}")
            }
            Err(e) => panic!("{}: expected TooLarge, got {e}", p.display()),
            Ok(_) => panic!("{} was accepted", p.display()),
        }
    }
    // The bound is the caller's to set: a small one refuses the valid graph too.
    let tight = LoadOptions {
        max_buffer_bytes: Some(16),
    };
    assert!(matches!(
        artifact::load_with(&path, tight),
        Err(ArtifactError::TooLarge { .. })
    ));
    assert!(artifact::load(&path).is_ok());
}

#[test]
fn a_node_that_writes_into_a_weight_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_graph(dir.path());
    let p = edited(&path, "store.kgraph", |g| {
        let (_, w) = arg_and_weight(g);
        let shape: Vec<usize> = g["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == w)
            .map(|i| serde_json::from_value(i["shape"].clone()).unwrap())
            .unwrap();
        // w ← exp(w) at every call: two identical runs would differ.
        let program = FusedProgram {
            n_inputs: 1,
            steps: vec![FusedStep::Unary {
                op: UnaryOp::Exp,
                x: 0,
            }],
            stores: vec![FusedStore { reg: 1, input: 0 }],
            reduce: None,
        };
        append(
            g,
            vec![node(
                900,
                Op::Fused(Box::new(program)),
                &[w],
                &shape,
                DType::F32,
            )],
        );
    });
    let msg = malformed_message(&p);
    assert!(
        msg.contains("%900: fused writes into its operands"),
        "{msg}"
    );
}

#[test]
fn an_index_out_of_range_at_run_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gather.kgraph");
    let graph = no_grad(|| {
        let mut f = compile(|xs: &[Tensor]| vec![xs[0].gather(1, &xs[1]).exp()]);
        f.graph(&[
            Tensor::randn([2, 3], DType::F32),
            Tensor::zeros([2, 2], DType::I64),
        ])
    });
    artifact::save(&graph, &path).unwrap();
    let loaded = artifact::load(&path).unwrap();
    let x = Tensor::randn([2, 3], DType::F32);
    let bad = Tensor::from_vec(vec![0i64, 1, 5, 2], [2, 2]);
    let err = loaded.run(&[x.clone(), bad]).unwrap_err();
    assert!(
        matches!(err, ArtifactError::Run(_))
            && err
                .to_string()
                .contains("gather: index 5 is out of range for dim 1 of size 3"),
        "{err}"
    );
    // The graph stays usable.
    let good = Tensor::from_vec(vec![0i64, 1, 2, 2], [2, 2]);
    let out = loaded.run(&[x.clone(), good.clone()]).unwrap();
    assert_eq!(
        out[0].to_vec::<f32>(),
        x.gather(1, &good).exp().to_vec::<f32>()
    );
}

/// A graph file with a symbolic batch: the MLP of [`saved_graph`] traced with one.
fn saved_dynamic_graph(dir: &Path) -> PathBuf {
    let net = mlp();
    let path = dir.join("mlp-dynamic.kgraph");
    let graph = no_grad(|| {
        let mut f =
            compile(|xs: &[Tensor]| vec![F::softmax(&net.forward(&xs[0]), -1)]).dynamic_batch();
        f.dynamic_graph(&[Tensor::randn([2, 6], DType::F32)])
            .unwrap()
    });
    artifact::save_dynamic(&graph, &path).unwrap();
    path
}

#[test]
fn a_damaged_batch_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_dynamic_graph(dir.path());
    assert!(artifact::load(&path).unwrap().dynamic_batch());
    type Edit = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "traced-1.kgraph",
            Box::new(|g| g["batch"]["traced"] = json!(1)),
            "traced at a batch size of 2 or more",
        ),
        (
            "traced-huge.kgraph",
            Box::new(|g| g["batch"]["traced"] = json!(u64::MAX)),
            "batch",
        ),
        (
            "no-such-arg.kgraph",
            Box::new(|g| g["batch"]["args"] = json!([5])),
            "batch argument 5 does not exist",
        ),
        (
            "wrong-dims.kgraph",
            Box::new(|g| g["batch"]["output_dims"][0][1] = json!({"mul": 1, "add": 0})),
            "do not match the graph",
        ),
    ];
    for (name, edit, says) in cases {
        let bad = edited(&path, name, edit);
        match artifact::load(&bad) {
            Err(e @ (ArtifactError::Malformed { .. } | ArtifactError::NotAGraph { .. })) => {
                assert!(e.to_string().contains(says), "{name}: {e}")
            }
            Err(e) => panic!("{name}: unexpected error {e}"),
            Ok(_) => panic!("{name}: accepted"),
        }
    }
    // A batch of 0 is a typed error, not a panic.
    let loaded = artifact::load(&path).unwrap();
    assert!(loaded.run(&[Tensor::zeros([0, 6], DType::F32)]).is_err());
}
