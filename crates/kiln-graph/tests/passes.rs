//! Each pass on small traced graphs: what it removes or rewrites, and that results stay equal.

use kiln_core::trace::{trace, ArgSpec, Graph};
use kiln_core::{DType, Tensor};
use kiln_graph::executor::Executable;
use kiln_graph::passes::{
    AlgebraicSimplify, CommonSubexpressions, ConstantFold, DeadCode, Pass,
};

fn spec(shape: &[usize]) -> ArgSpec {
    ArgSpec {
        shape: shape.to_vec(),
        dtype: DType::F64,
        requires_grad: false,
    }
}

fn count(g: &Graph, name: &str) -> usize {
    g.op_counts().get(name).copied().unwrap_or(0)
}

fn run(g: &Graph, args: &[Tensor]) -> Vec<f64> {
    Executable::new(g.clone()).run(args)[0].to_f64_vec()
}

#[test]
fn dce_removes_unused_nodes_but_keeps_random_draws() {
    let mut g = trace(&[spec(&[3])], |x| {
        let _unused = x[0].exp();
        let _noise = Tensor::rand([3], DType::F64);
        vec![x[0].sin()]
    });
    assert_eq!(g.nodes.len(), 3);
    assert!(DeadCode.run(&mut g));
    assert_eq!(count(&g, "exp"), 0);
    assert_eq!(count(&g, "random"), 1, "a skipped draw would shift later ones");
    assert_eq!(count(&g, "sin"), 1);
}

#[test]
fn cse_merges_repeated_expressions() {
    let mut g = trace(&[spec(&[4])], |x| {
        let a = x[0].exp();
        let b = x[0].exp();
        vec![&a + &b]
    });
    let x = Tensor::randn([4], DType::F64);
    let before = run(&g, &[x.clone()]);
    assert!(CommonSubexpressions.run(&mut g));
    DeadCode.run(&mut g);
    assert_eq!(count(&g, "exp"), 1);
    assert_eq!(run(&g, &[x]), before);
}

#[test]
fn constant_folding_evaluates_literal_subgraphs() {
    let mut g = trace(&[spec(&[2, 2])], |x| {
        let c = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [2, 2]);
        let k = (&c * 2.0).exp(); // literals only: folded
        vec![&x[0] + &k]
    });
    let x = Tensor::randn([2, 2], DType::F64);
    let before = run(&g, &[x.clone()]);
    assert!(ConstantFold::default().run(&mut g));
    DeadCode.run(&mut g);
    assert_eq!(g.nodes.len(), 1, "{g}");
    assert_eq!(count(&g, "add"), 1);
    assert_eq!(run(&g, &[x]), before);
}

#[test]
fn algebraic_identities_and_layout_chains() {
    let mut g = trace(&[spec(&[2, 3, 4])], |x| {
        let y = x[0].permute([1, 0, 2]).permute([1, 0, 2]); // identity
        let z = &(&y * 1.0) + 0.0; // affine(1, 0)
        let r = z.reshape([6, 4]).reshape([24]); // one reshape
        let one = Tensor::scalar(1.0, DType::F64);
        vec![(&r * &one).exp()]
    });
    let x = Tensor::randn([2, 3, 4], DType::F64);
    let before = run(&g, &[x.clone()]);
    assert!(AlgebraicSimplify.run(&mut g));
    DeadCode.run(&mut g);
    assert_eq!(count(&g, "permute"), 0, "{g}");
    assert_eq!(count(&g, "affine"), 0, "{g}");
    assert_eq!(count(&g, "mul"), 0, "{g}");
    assert_eq!(count(&g, "reshape"), 1, "{g}");
    assert_eq!(run(&g, &[x]), before);
}
