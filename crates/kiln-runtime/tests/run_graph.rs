//! The runtime on its own: a graph built by hand (no tracer, no tensor), run by the executor,
//! saved and loaded as a graph file. Expected values are worked out by hand in the comments.

use kiln_kernels::cpu::to_contiguous_vec;
use kiln_kernels::ops::{Op, UnaryOp};
use kiln_kernels::storage::StorageElement;
use kiln_kernels::{DType, OwnedOperand};
use kiln_runtime::artifact::{self, ArtifactError};
use kiln_runtime::{Executable, Graph, Input, InputKind, Node};

fn dense(values: Vec<f32>, shape: &[usize]) -> OwnedOperand {
    OwnedOperand::dense(f32::wrap(values), shape)
}

fn values(v: &OwnedOperand) -> Vec<f32> {
    to_contiguous_vec::<f32>(v.operand())
}

fn node(id: u32, op: Op, args: &[u32], shape: &[usize]) -> Node {
    Node {
        id,
        op,
        args: args.iter().copied().collect(),
        shape: shape.iter().copied().collect(),
        dtype: DType::F32,
        fresh_random: false,
    }
}

/// relu(x @ w) and its transpose (a view of the same buffer), x an argument, w a weight.
fn graph() -> Graph {
    let inputs = vec![
        Input {
            id: 0,
            kind: InputKind::Arg(0),
            value: None,
            shape: [2, 3].into_iter().collect(),
            dtype: DType::F32,
        },
        Input {
            id: 1,
            kind: InputKind::State,
            value: Some(dense(vec![1., 0., 0., 1., 1., 1.], &[3, 2])),
            shape: [3, 2].into_iter().collect(),
            dtype: DType::F32,
        },
    ];
    let nodes = vec![
        node(2, Op::Matmul, &[0, 1], &[2, 2]),
        node(3, Op::Unary(UnaryOp::Relu), &[2], &[2, 2]),
        node(4, Op::Permute([1, 0].into_iter().collect()), &[3], &[2, 2]),
    ];
    Graph::inference(inputs, nodes, vec![3, 4])
}

#[test]
fn executor_runs_a_hand_built_graph_and_keeps_lent_results() {
    let exe = Executable::new(graph());
    let bufs = exe.buffers();
    // x @ w = [[1+3, 2+3], [-4-6, 5-6]] = [[4, 5], [-10, -1]]; relu: [[4, 5], [0, 0]].
    let x = dense(vec![1., 2., 3., -4., 5., -6.], &[2, 3]);
    exe.run(&bufs, &[x.operand()][..]).unwrap();
    assert_eq!(values(bufs.value(3)), [4., 5., 0., 0.]);
    assert_eq!(values(bufs.value(4)), [4., 0., 5., 0.]);
    assert!(!bufs.escaped());
    // A result lent out and kept is reported, so the caller can move to fresh buffers.
    let kept = bufs.value(3).clone();
    assert!(bufs.escaped());
    drop(kept);
    assert!(!bufs.escaped());
}

#[test]
fn graph_file_round_trip_runs_without_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.kgraph");
    artifact::save(&graph(), &path).unwrap();
    let loaded = artifact::load(&path).unwrap();
    assert_eq!(loaded.signature(), &[(vec![2, 3], DType::F32)]);
    let x = dense(vec![1., 2., 3., -4., 5., -6.], &[2, 3]);
    let first = loaded.run(&[x.operand()]).unwrap();
    assert_eq!(values(&first[0]), [4., 5., 0., 0.]);
    // The first call's outputs are still held: the second call must not write under them.
    // x2 @ w = [[0+1, 1+1], [2+3, 3+3]] = [[1, 2], [5, 6]].
    let x2 = dense(vec![0., 1., 1., 2., 3., 3.], &[2, 3]);
    let second = loaded.run(&[x2.operand()]).unwrap();
    assert_eq!(values(&second[0]), [1., 2., 5., 6.]);
    assert_eq!(values(&second[1]), [1., 5., 2., 6.]);
    assert_eq!(values(&first[0]), [4., 5., 0., 0.]);
    let wrong = dense(vec![0.; 4], &[2, 2]);
    assert!(matches!(
        loaded.run(&[wrong.operand()]),
        Err(ArtifactError::BadArgument { index: 0, .. })
    ));
}

#[test]
fn unary_ops_keep_the_names_graph_files_gave_them_before_their_enum() {
    use kiln_kernels::ops::fused::FusedStep;
    // serde's externally tagged form of the former flat variants `Op::Exp`, `Op::Gelu {..}`,
    // `Op::Affine {..}`, as graph files written before `Op::Unary` hold them.
    let cases = [
        (Op::Unary(UnaryOp::Exp), r#""Exp""#),
        (
            Op::Unary(UnaryOp::Gelu { tanh: false }),
            r#"{"Gelu":{"tanh":false}}"#,
        ),
        (
            Op::Unary(UnaryOp::Affine { mul: 2.0, add: 1.0 }),
            r#"{"Affine":{"mul":2.0,"add":1.0}}"#,
        ),
        (Op::Unary(UnaryOp::PowScalar(0.5)), r#"{"PowScalar":0.5}"#),
        (Op::Add, r#""Add""#),
    ];
    for (op, json) in cases {
        assert_eq!(serde_json::to_string(&op).unwrap(), json);
        assert_eq!(serde_json::from_str::<Op>(json).unwrap(), op);
    }
    let step = FusedStep::Unary {
        op: UnaryOp::Exp,
        x: 0,
    };
    assert_eq!(
        serde_json::to_string(&step).unwrap(),
        r#"{"Unary":{"op":"Exp","x":0}}"#
    );
    assert!(serde_json::from_str::<Op>(r#""NoSuchOp""#).is_err());
}
