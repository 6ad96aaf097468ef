//! An op added to the unary family (`log1p`, declared in `kiln-kernels/src/ops/unary.rs`
//! alone) works in graph mode with no other change: traced with its gradient, fused by the
//! compiler, and saved in a graph file that loads and runs.

mod common;

use common::max_rel_diff;
use kiln_core::ops::UnaryOp;
use kiln_core::{DType, Generator, Tensor};
use kiln_graph::{artifact, compile};

/// `sum(log1p(x)²)` and its gradient `2·log1p(x) / (1 + x)`.
fn loss_and_grad(x: &Tensor) -> (Tensor, Tensor) {
    let x = x.detach().requires_grad_(true);
    let l = x.unary(UnaryOp::Log1p).pow_scalar(2.0).sum_all();
    l.backward();
    (l.detach(), x.grad().unwrap())
}

#[test]
fn log1p_compiles_with_its_gradient_and_ships_in_a_graph_file() {
    let x = Tensor::rand_with([8, 16], DType::F32, &mut Generator::new(3)).affine(3.0, -0.5);
    let mut step = compile(|xs: &[Tensor]| {
        let (l, g) = loss_and_grad(&xs[0]);
        vec![l, g]
    });
    let got = step.call(std::slice::from_ref(&x));
    let (want_l, want_g) = loss_and_grad(&x);
    assert!(max_rel_diff(&got[0], &want_l) < 1e-5);
    assert!(max_rel_diff(&got[1], &want_g) < 1e-5);
    let text = step.graph(std::slice::from_ref(&x)).to_string();
    assert!(text.contains("log1p"), "{text}");

    let mut infer = compile(|xs: &[Tensor]| vec![xs[0].unary(UnaryOp::Log1p).affine(2.0, 1.0)]);
    let graph = kiln_core::no_grad(|| infer.graph(std::slice::from_ref(&x)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log1p.kgraph");
    artifact::save(&graph, &path).unwrap();
    let loaded = artifact::load(&path).unwrap();
    let out = loaded.run(std::slice::from_ref(&x)).unwrap();
    assert!(max_rel_diff(&out[0], &x.unary(UnaryOp::Log1p).affine(2.0, 1.0)) < 1e-6);
}
