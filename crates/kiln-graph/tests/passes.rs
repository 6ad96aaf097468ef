//! Each pass on small traced graphs: what it removes or rewrites, and that results stay equal.

use kiln_core::trace::{trace, ArgSpec, Graph, InputKind};
use kiln_core::{DType, Tensor};
use kiln_graph::executor::Executable;
use kiln_graph::passes::{
    AlgebraicSimplify, CommonSubexpressions, ConstantFold, DeadCode, ElementwiseFusion,
    MatmulEpilogue, Pass, Rematerialize, SinkReshapes, SinkToUse, StoreFusion,
};

fn spec(shape: &[usize]) -> ArgSpec {
    ArgSpec {
        shape: shape.to_vec(),
        dtype: DType::F64,
        requires_grad: false,
    }
}

fn f32spec(shape: &[usize]) -> ArgSpec {
    ArgSpec {
        dtype: DType::F32,
        ..spec(shape)
    }
}

/// Random arguments of the specs' shapes and dtypes.
fn randn_args(specs: &[ArgSpec]) -> Vec<Tensor> {
    specs
        .iter()
        .map(|s| Tensor::randn(s.shape.clone(), s.dtype))
        .collect()
}

fn count(g: &Graph, name: &str) -> usize {
    g.op_counts().get(name).copied().unwrap_or(0)
}

/// Every output of `g` on `args`, as f64.
fn run_outputs(g: &Graph, args: &[Tensor]) -> Vec<Vec<f64>> {
    Executable::new(g.clone())
        .run(args)
        .iter()
        .map(Tensor::to_f64_vec)
        .collect()
}

/// Largest |a − b| / (1 + |a|): f32 sums reordered by a pass differ by a few ulp of the
/// terms, which a plain relative difference would magnify where the sum cancels.
fn max_scaled_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1.0 + x.abs()))
        .fold(0.0, f64::max)
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
    assert_eq!(
        count(&g, "random"),
        1,
        "a skipped draw would shift later ones"
    );
    assert_eq!(count(&g, "sin"), 1);
}

#[test]
fn dce_keeps_arguments_the_function_does_not_read() {
    // The signature is not dead code: a saved or imported graph still takes the argument.
    let mut g = trace(&[spec(&[3]), spec(&[3])], |x| vec![x[1].sin()]);
    DeadCode.run(&mut g);
    let args: Vec<_> = g
        .inputs
        .iter()
        .filter(|i| matches!(i.kind, InputKind::Arg(_)))
        .collect();
    assert_eq!(args.len(), 2);
    let (a, b) = (
        Tensor::randn([3], DType::F64),
        Tensor::randn([3], DType::F64),
    );
    assert_eq!(run(&g, &[a, b.clone()]), b.sin().to_f64_vec());
}

#[test]
fn cse_merges_repeated_expressions() {
    let mut g = trace(&[spec(&[4])], |x| {
        let a = x[0].exp();
        let b = x[0].exp();
        vec![&a + &b]
    });
    let x = Tensor::randn([4], DType::F64);
    let before = run(&g, std::slice::from_ref(&x));
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
    let before = run(&g, std::slice::from_ref(&x));
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
    let before = run(&g, std::slice::from_ref(&x));
    assert!(AlgebraicSimplify.run(&mut g));
    DeadCode.run(&mut g);
    assert_eq!(count(&g, "permute"), 0, "{g}");
    assert_eq!(count(&g, "affine"), 0, "{g}");
    assert_eq!(count(&g, "mul"), 0, "{g}");
    assert_eq!(count(&g, "reshape"), 1, "{g}");
    assert_eq!(run(&g, &[x]), before);
}

#[test]
fn a_sum_of_slice_scatters_that_tile_the_output_becomes_one_cat() {
    // The gradient of a split (q, k, v = qkv.chunk(3)): each part scattered into zeros of the
    // full size, then summed. Parts in any order, of different widths.
    let scatter = |x: &Tensor, start: usize| Tensor::slice_scatter_zeros(x, 1, start, 1, 9);
    let specs = [spec(&[4, 2]), spec(&[4, 3]), spec(&[4, 4])];
    let mut g = trace(&specs, |x| {
        let sum = &(&scatter(&x[2], 5) + &scatter(&x[0], 0)) + &scatter(&x[1], 2);
        vec![sum.exp()]
    });
    let args = [
        Tensor::randn([4, 2], DType::F64),
        Tensor::randn([4, 3], DType::F64),
        Tensor::randn([4, 4], DType::F64),
    ];
    let before = run(&g, &args);
    assert!(AlgebraicSimplify.run(&mut g));
    DeadCode.run(&mut g);
    assert_eq!(count(&g, "cat"), 1, "{g}");
    assert_eq!(count(&g, "slice_scatter"), 0, "{g}");
    assert_eq!(count(&g, "add"), 0, "{g}");
    assert_eq!(run(&g, &args), before);

    // Overlapping parts, a gap, or a part also read elsewhere: the sum stays.
    let sized =
        |x: &Tensor, start: usize, size: usize| Tensor::slice_scatter_zeros(x, 1, start, 1, size);
    let overlapping = trace(&specs, |x| {
        vec![&(&sized(&x[0], 0, 8) + &sized(&x[1], 1, 8)) + &sized(&x[2], 4, 8)]
    });
    let gap = trace(&specs, |x| {
        vec![&(&sized(&x[0], 0, 10) + &sized(&x[1], 2, 10)) + &sized(&x[2], 6, 10)]
    });
    let shared = trace(&specs, |x| {
        let part = scatter(&x[2], 5);
        let sum = &(&part + &scatter(&x[0], 0)) + &scatter(&x[1], 2);
        vec![sum, part]
    });
    for mut g in [overlapping, gap, shared] {
        AlgebraicSimplify.run(&mut g);
        assert_eq!(count(&g, "cat"), 0, "{g}");
    }
}

#[test]
fn matmul_epilogue_fuses_an_activation_into_the_matmul_it_alone_reads() {
    use kiln_core::nn::functional as F;
    let mut g = trace(
        &[spec(&[8, 6]), spec(&[5, 6]), spec(&[5]), spec(&[6, 4])],
        |x| {
            let h = F::linear(&x[0], &x[1], Some(&x[2])).relu(); // fused, with its bias
            let z = x[0].matmul(&x[3]);
            let kept = &z.gelu() + &z; // the product is read twice: stays a matmul
            vec![h, x[0].matmul(&x[3]).gelu(), kept]
        },
    );
    let args = [
        Tensor::randn([8, 6], DType::F64),
        Tensor::randn([5, 6], DType::F64),
        Tensor::randn([5], DType::F64),
        Tensor::randn([6, 4], DType::F64),
    ];
    let before: Vec<Vec<f64>> = run_outputs(&g, &args);
    assert!(MatmulEpilogue.run(&mut g));
    assert_eq!(count(&g, "matmul_relu"), 1, "{g}");
    assert_eq!(count(&g, "matmul_gelu"), 1, "{g}");
    assert_eq!(count(&g, "matmul"), 1, "{g}");
    assert_eq!(count(&g, "relu") + count(&g, "gelu"), 1, "{g}");
    let after: Vec<Vec<f64>> = run_outputs(&g, &args);
    assert_eq!(before, after);
    assert!(!MatmulEpilogue.run(&mut g), "nothing left to fuse");
}

#[test]
fn a_gelu_gradient_of_a_product_becomes_one_blocked_node_that_runs_in_place() {
    use kiln_core::ops::{dispatch, Op};
    use kiln_graph::inplace::InPlace;
    // gelu_backward(x, dy @ w), as a GELU's VJP after a Linear builds it; 1100 rows of 600 make
    // two row blocks, the second partial. A product read twice stays a matmul.
    let specs = [
        f32spec(&[1100, 64]),
        f32spec(&[64, 600]),
        f32spec(&[1100, 600]),
    ];
    let graph = |read_twice: bool| {
        trace(&specs, |x| {
            let product = x[0].matmul(&x[1]);
            let dx = dispatch(Op::GeluBackward, &[&x[2].exp(), &product]);
            if read_twice {
                vec![dx, product]
            } else {
                vec![dx]
            }
        })
    };
    let args = randn_args(&specs);
    let mut g = graph(false);
    let before = run(&g, &args);
    assert!(MatmulEpilogue.run(&mut g));
    assert_eq!(count(&g, "matmul_gelu_backward"), 1, "{g}");
    assert_eq!(count(&g, "matmul") + count(&g, "gelu_backward"), 0, "{g}");
    // exp(x) dies at the node: the node writes over it.
    let k = g
        .nodes
        .iter()
        .position(|n| n.op == Op::MatmulGeluBackward)
        .unwrap();
    let plan = Executable::new(g.clone()).plan().in_place.clone();
    assert_eq!(plan[k], Some(InPlace::Operand(g.nodes[k].args[2])));
    let after = run(&g, &args);
    let worst = max_scaled_diff(&before, &after);
    assert!(worst < 1e-6, "blocked product differs by {worst:e}");

    let mut g = graph(true);
    assert!(!MatmulEpilogue.run(&mut g), "{g}");
}

#[test]
fn a_relu_gradient_of_a_product_becomes_one_masked_product() {
    // where(relu(h) > 0, dy @ w, 0), as a ReLU's VJP after a Linear builds it: the same bits
    // after the rewrite. A product read twice, a non-zero threshold or a non-zero fill stay.
    let specs = [f32spec(&[96, 20]), f32spec(&[20, 300]), f32spec(&[96, 300])];
    let graph = |read_twice: bool, threshold: f64, fill: f64| {
        trace(&specs, |x| {
            let product = x[0].matmul(&x[1]);
            let y = x[2].relu();
            let mask = y.gt(&Tensor::scalar(threshold, DType::F32));
            let dx = Tensor::where_(&mask, &product, &Tensor::scalar(fill, DType::F32));
            if read_twice {
                vec![dx, product]
            } else {
                vec![dx]
            }
        })
    };
    let args = randn_args(&specs);
    let mut g = graph(false, 0.0, 0.0);
    let before = run(&g, &args);
    assert!(MatmulEpilogue.run(&mut g));
    assert_eq!(count(&g, "matmul_relu_backward"), 1, "{g}");
    let left = count(&g, "matmul") + count(&g, "where") + count(&g, "compare");
    assert_eq!(left, 0, "{g}");
    assert_eq!(before, run(&g, &args));
    for (read_twice, threshold, fill) in [(true, 0.0, 0.0), (false, 0.5, 0.0), (false, 0.0, 0.5)] {
        let mut g = graph(read_twice, threshold, fill);
        assert!(!MatmulEpilogue.run(&mut g), "{g}");
    }
}

#[test]
fn a_product_with_a_gelu_read_only_there_becomes_one_blocked_node() {
    // dy^T @ gelu(h), as a recomputed GELU feeds its weight gradient (through a reshape pair).
    let specs = [f32spec(&[1100, 48]), f32spec(&[1100, 600])];
    let graph = |keep_gelu: bool| {
        trace(&specs, |x| {
            let gelu = x[1].gelu().reshape([100, 11, 600]).reshape([1100, 600]);
            let dw = x[0].t().matmul(&gelu);
            if keep_gelu {
                vec![dw, gelu]
            } else {
                vec![dw]
            }
        })
    };
    let args = randn_args(&specs);
    let mut g = graph(false);
    let before = run(&g, &args);
    assert!(MatmulEpilogue.run(&mut g));
    DeadCode.run(&mut g);
    assert_eq!(count(&g, "matmul_gelu_rhs"), 1, "{g}");
    assert_eq!(count(&g, "matmul") + count(&g, "gelu"), 0, "{g}");
    let after = run(&g, &args);
    let worst = max_scaled_diff(&before, &after);
    // f32 sums over 1100 terms in another order: ~4e-5 apart (see the kernel's own test).
    assert!(worst < 1e-4, "blocked product differs by {worst:e}");

    let mut g = graph(true);
    assert!(!MatmulEpilogue.run(&mut g), "{g}");
}

#[test]
fn fusion_turns_elementwise_chains_into_one_node() {
    // A softmax-like chain with a broadcast operand, a mask and a where.
    let mut g = trace(&[f32spec(&[64, 700]), f32spec(&[64, 1])], |x| {
        let centered = &x[0] - &x[1];
        let e = centered.exp();
        let mask = centered.gt_scalar(0.0);
        let y = Tensor::where_(&mask, &e, &(&e * 0.5));
        vec![(&y.relu() + 1.0).sqrt()]
    });
    let a = Tensor::randn([64, 700], DType::F32);
    let b = Tensor::randn([64, 1], DType::F32);
    let before = Executable::new(g.clone()).run(&[a.clone(), b.clone()])[0].to_vec::<f32>();
    let nodes = g.nodes.len();
    assert!(ElementwiseFusion.run(&mut g));
    // `centered` and `e` have two uses each, so they stay materialized: sub, exp, and the
    // gt→where→relu→add→sqrt chain (mask and where fused) as one node.
    assert_eq!((nodes, g.nodes.len()), (8, 3), "{g}");
    assert_eq!(count(&g, "fused"), 1);
    // Large enough (44,800 elements) to run on several threads in tiles.
    let after = Executable::new(g.clone()).run(&[a, b])[0].to_vec::<f32>();
    for (p, q) in before.iter().zip(&after) {
        assert!((p - q).abs() <= 1e-6 * q.abs().max(1.0), "{p} vs {q}");
    }
}

#[test]
fn fused_scalar_operands_are_the_same_value_in_every_tile_and_thread() {
    // 70,000 elements: several threads, each over many tiles, the last one ragged. The 0-d
    // operand is filled once per chunk of tiles; the row operand is broadcast per tile.
    let mut g = trace(
        &[f32spec(&[70, 1000]), f32spec(&[]), f32spec(&[1, 1000])],
        |x| vec![&(&(&x[0] * &x[1]).relu() + &x[2].abs()) / &x[1]],
    );
    let args = [
        Tensor::randn([70, 1000], DType::F32),
        Tensor::scalar(1.5, DType::F32),
        Tensor::randn([1, 1000], DType::F32),
    ];
    let before = Executable::new(g.clone()).run(&args)[0].to_vec::<f32>();
    assert!(ElementwiseFusion.run(&mut g));
    assert_eq!(count(&g, "fused"), 1, "{g}");
    let after = Executable::new(g.clone()).run(&args)[0].to_vec::<f32>();
    assert_eq!(before, after);
}

#[test]
fn fusion_takes_a_sum_of_the_chain_in_as_its_reduction_epilogue() {
    // Large enough to run in chunks on several threads; sums over leading, trailing, middle
    // and all dims, with keepdim and broadcast operands.
    let mut g = trace(
        &[
            f32spec(&[128, 300]),
            f32spec(&[128, 300]),
            f32spec(&[300]),
            f32spec(&[8, 70, 130]),
            f32spec(&[1, 70, 1]),
            f32spec(&[4, 5000]),
        ],
        |x| {
            let (a, b) = (&x[0], &x[1]);
            vec![
                (&(a * b) + &x[2]).sum(&[0][..], false),
                (a * b).relu().sum(&[1][..], true),
                (a - b).square().sum(&[0, 1][..], false),
                (&x[3] * &x[4]).exp().sum(&[0, 2][..], true),
                // Reduces only 4×: stays a separate sum.
                (&x[5] * &x[5]).sum(&[0][..], false),
            ]
        },
    );
    let args = [
        Tensor::randn([128, 300], DType::F32),
        Tensor::randn([128, 300], DType::F32),
        Tensor::randn([300], DType::F32),
        Tensor::randn([8, 70, 130], DType::F32),
        Tensor::randn([1, 70, 1], DType::F32),
        Tensor::randn([4, 5000], DType::F32),
    ];
    let run_all = |g: &Graph| -> Vec<Vec<f32>> {
        Executable::new(g.clone())
            .run(&args)
            .iter()
            .map(|t| t.to_vec::<f32>())
            .collect()
    };
    let before = run_all(&g);
    assert!(ElementwiseFusion.run(&mut g));
    DeadCode.run(&mut g);
    assert_eq!(count(&g, "fused"), 4, "{g}");
    assert_eq!(count(&g, "sum"), 1, "{g}");
    let after = run_all(&g);
    for (k, (p, q)) in before.iter().zip(&after).enumerate() {
        assert_eq!(p.len(), q.len());
        for (x, y) in p.iter().zip(q) {
            assert!(
                (x - y).abs() <= 1e-6 * y.abs().max(1.0),
                "output {k}: {x} vs {y}"
            );
        }
    }
}

#[test]
fn fusion_keeps_values_used_elsewhere() {
    let f32spec = ArgSpec {
        shape: vec![5, 3],
        dtype: DType::F32,
        requires_grad: false,
    };
    let mut g = trace(&[f32spec], |x| {
        let e = x[0].exp(); // used twice: stays materialized
        let s = e.sum([1], true);
        vec![&(&e * 2.0) + &s, s]
    });
    let x = Tensor::randn([5, 3], DType::F32);
    let before = Executable::new(g.clone()).run(std::slice::from_ref(&x));
    ElementwiseFusion.run(&mut g);
    assert_eq!(count(&g, "exp"), 1, "{g}");
    let after = Executable::new(g.clone()).run(&[x]);
    assert_eq!(before[0].to_vec::<f32>(), after[0].to_vec::<f32>());
    assert_eq!(before[1].to_vec::<f32>(), after[1].to_vec::<f32>());
}

#[test]
fn remat_recomputes_a_value_next_to_far_reads_when_its_operand_is_live_there() {
    // h = exp(x) (512 KiB) is read at once and again after a long chain; x is read at the end
    // anyway, so h is recomputed there instead of kept across the chain.
    let chain = |h: &Tensor| {
        let mut y = h.sin();
        for _ in 0..40 {
            y = y.cos();
        }
        y
    };
    let mut g = trace(&[spec(&[256, 256])], |x| {
        let h = x[0].exp();
        let y = chain(&h);
        vec![&(&y * &h) + &x[0]]
    });
    let x = Tensor::randn([256, 256], DType::F64);
    let before = run(&g, std::slice::from_ref(&x));
    assert!(Rematerialize::default().run(&mut g));
    assert_eq!(count(&g, "exp"), 2);
    // The copy sits right before its reader, the product.
    let mul = g.nodes.iter().position(|n| n.op.name() == "mul").unwrap();
    assert_eq!(g.nodes[mul - 1].op.name(), "exp");
    assert_eq!(run(&g, &[x]), before);

    // When the operand is dead by then (here sin(x), read only by exp), keeping h is cheaper.
    let mut g = trace(&[spec(&[256, 256])], |x| {
        let h = x[0].sin().exp();
        let y = chain(&h);
        vec![&y * &h]
    });
    assert!(!Rematerialize::default().run(&mut g));
}

#[test]
fn remat_recomputes_a_large_matmul_only_for_reads_far_into_the_graph() {
    // h = x @ w is 8 MiB (f64 [1024, 1024]); x and w are read at the end anyway.
    let graph = |chain_len: usize, tail_len: usize| {
        trace(&[spec(&[1024, 64]), spec(&[64, 1024]), spec(&[4])], |x| {
            let h = x[0].matmul(&x[1]);
            let early = h.sum(&[0][..], false);
            let mut y = x[2].sin();
            for _ in 0..chain_len {
                y = y.cos();
            }
            let late = (&h * 2.0).sum(&[1][..], false);
            for _ in 0..tail_len {
                y = y.cos();
            }
            vec![
                early,
                &late + &x[0].sum(&[1][..], false),
                &y + &x[1].sum(&[0, 1][..], false),
            ]
        })
    };
    let args = [
        Tensor::randn([1024, 64], DType::F64),
        Tensor::randn([64, 1024], DType::F64),
        Tensor::randn([4], DType::F64),
    ];
    let with_matmuls = Rematerialize { matmuls: true };
    let mut g = graph(60, 0);
    let before: Vec<Vec<f64>> = run_outputs(&g, &args);
    assert!(with_matmuls.run(&mut g), "{g}");
    assert_eq!(count(&g, "matmul"), 2, "{g}");
    let after: Vec<Vec<f64>> = run_outputs(&g, &args);
    assert_eq!(before, after);
    // Off by default: the product is kept.
    let mut g = graph(60, 0);
    Rematerialize::default().run(&mut g);
    assert_eq!(count(&g, "matmul"), 1, "{g}");
    // The same distance in a graph over five times longer: the product is kept.
    let mut g = graph(60, 300);
    with_matmuls.run(&mut g);
    assert_eq!(count(&g, "matmul"), 1, "{g}");
}

#[test]
fn reshape_sinking_runs_elementwise_ops_on_the_reshapes_sources() {
    // Two [6, 4] products viewed as [2, 3, 4], multiplied: the mul moves onto the products and
    // its result is reshaped; a reshape of differently shaped sources is left alone.
    let args = [spec(&[6, 5]), spec(&[5, 4]), spec(&[2, 12])];
    let mut g = trace(&args, |x| {
        let a = x[0].matmul(&x[1]).reshape([2, 3, 4]);
        let b = x[0].matmul(&x[1]).exp().reshape([2, 3, 4]);
        let c = x[2].reshape([2, 3, 4]);
        vec![&(&a * &b) + &c]
    });
    let inputs = [
        Tensor::randn([6, 5], DType::F64),
        Tensor::randn([5, 4], DType::F64),
        Tensor::randn([2, 12], DType::F64),
    ];
    let before = run(&g, &inputs);
    assert!(SinkReshapes.run(&mut g));
    DeadCode.run(&mut g);
    let mul = g.nodes.iter().find(|n| n.op.name() == "mul").unwrap();
    assert_eq!(
        &mul.shape[..],
        &[6, 4],
        "the mul runs on the [6, 4] sources"
    );
    let add = g.nodes.iter().find(|n| n.op.name() == "add").unwrap();
    assert_eq!(
        &add.shape[..],
        &[2, 3, 4],
        "sources of two shapes: left alone"
    );
    assert_eq!(run(&g, &inputs), before);
    assert!(!SinkReshapes.run(&mut g), "nothing left to move");
}

/// A momentum-style update traced over captured state: `m ← 0.9·m + 0.1·g`, then
/// `p ← p − 0.01·m` (reading the new `m`), and optionally `m` read once more afterwards.
fn momentum_graph(m: &Tensor, p: &Tensor, read_m_after: bool) -> Graph {
    let f32spec = ArgSpec {
        shape: vec![40_000],
        dtype: DType::F32,
        requires_grad: false,
    };
    trace(&[f32spec], |x| {
        m.copy_(&(&(m * 0.9) + &(&x[0] * 0.1)));
        p.copy_(&(p - &(m * 0.01)));
        if read_m_after {
            vec![m.sum([0], false)]
        } else {
            vec![]
        }
    })
}

#[test]
fn store_fusion_merges_a_state_update_into_its_reader_and_stores_it_in_place() {
    let grad = Tensor::randn([40_000], DType::F32);
    let (m0, p0) = (
        Tensor::randn([40_000], DType::F32),
        Tensor::randn([40_000], DType::F32),
    );
    // The expected state after one step, computed elementwise in f32.
    let (gv, mv, pv) = (grad.to_vec::<f32>(), m0.to_vec::<f32>(), p0.to_vec::<f32>());
    let m1: Vec<f32> = mv.iter().zip(&gv).map(|(m, g)| m * 0.9 + g * 0.1).collect();
    let p1: Vec<f32> = pv.iter().zip(&m1).map(|(p, m)| p - m * 0.01).collect();

    let (m, p) = (m0.copy(), p0.copy());
    let mut g = momentum_graph(&m, &p, false);
    ElementwiseFusion.run(&mut g);
    assert_eq!(count(&g, "fused"), 2, "{g}");
    assert!(StoreFusion.run(&mut g));
    DeadCode.run(&mut g);
    // One loop: m' is stored into m as it is computed, and the update of m is a no-op.
    assert_eq!(count(&g, "fused"), 1, "{g}");
    assert!(g.to_string().contains("store("), "{g}");
    Executable::new(g).run(std::slice::from_ref(&grad));
    for (got, want) in [(m.to_vec::<f32>(), &m1), (p.to_vec::<f32>(), &p1)] {
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}

#[test]
fn store_fusion_leaves_a_state_value_read_elsewhere_alone() {
    let (m, p) = (
        Tensor::randn([40_000], DType::F32),
        Tensor::randn([40_000], DType::F32),
    );
    let mut g = momentum_graph(&m, &p, true);
    ElementwiseFusion.run(&mut g);
    let fused = count(&g, "fused");
    assert!(!StoreFusion.run(&mut g), "m' is also summed: {g}");
    assert_eq!(count(&g, "fused"), fused);
}

#[test]
fn sinking_moves_a_large_result_next_to_its_reader_and_lowers_the_live_peak() {
    // `big` (64×4096, from an argument read later anyway and a captured weight) is made
    // first but read last; meanwhile a chain of 64×64 values lives and dies. Made just before
    // its reader, it no longer overlaps that chain.
    let w = Tensor::randn([64, 4096], DType::F32);
    let mut g = trace(&[f32spec(&[64, 64])], |x| {
        let big = x[0].matmul(&w);
        let mut h = x[0].exp();
        for _ in 0..4 {
            h = h.matmul(&x[0]).tanh();
        }
        vec![&big.sum([1], true) + &h.sum([1], true)]
    });
    let args = [Tensor::randn([64, 64], DType::F32).mul_scalar(0.1)];
    let before = Executable::new(g.clone());
    let y0 = before.run(&args)[0].to_vec::<f32>();
    assert!(SinkToUse.run(&mut g));
    let big_at = g.nodes.iter().position(|n| n.shape[..] == [64, 4096]);
    let reader_at = g.nodes.iter().position(|n| n.shape[..] == [64, 1]);
    assert_eq!(big_at.map(|i| i + 1), reader_at, "{g}");
    let after = Executable::new(g.clone());
    assert!(
        after.plan().live_peak_bytes < before.plan().live_peak_bytes,
        "{} vs {}",
        after.plan().live_peak_bytes,
        before.plan().live_peak_bytes
    );
    assert_eq!(after.run(&args)[0].to_vec::<f32>(), y0);
    // Nothing left to move.
    assert!(!SinkToUse.run(&mut g));
}
