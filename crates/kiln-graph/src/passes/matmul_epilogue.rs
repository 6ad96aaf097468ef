//! Matmul epilogue fusion: an activation whose operand is a matmul read by nothing else
//! becomes one `matmul_act` node, whose kernel applies the activation to the product while it
//! is still in cache, into the same buffer (no second pass over memory, no second buffer).
//! The bias is already part of the matmul primitive.
//!
//! In a backward, an exact GELU's input gradient `gelu_backward(x, a @ b)` whose product is
//! read by nothing else becomes one `matmul_gelu_backward(a, b, x)` node, which computes the
//! product a block of rows at a time and writes over `x` where `x` dies: the whole product
//! is never held. In a GPT step that was an 8 MiB buffer at the step's peak (the first MLP
//! backward).
//!
//! A ReLU's input gradient `where(y > 0, a @ b, 0)` (`y` the ReLU's output) whose product is
//! read by nothing else becomes one `matmul_relu_backward(a, b, y)` node, which masks the
//! product while it is in cache instead of a second pass reading it back (an MLP step's two
//! hidden layers).
//!
//! Run again after rematerialization, it turns `a @ gelu(x)` whose GELU output nothing else
//! reads (a recomputed GELU feeding its weight gradient) into `matmul_gelu_rhs(a, x)`, which
//! takes the GELU a block of `x`'s rows at a time. Together the two keep a GPT step's MLP
//! backward from holding two 8 MiB temporaries next to the saved activations, so the step's
//! peak is no longer in its backward (live peak 83.3 → 82.0 MiB, now at the last forward
//! GELU).

use super::{constant_scalars, producers, use_counts, Pass};
use kiln_core::ops::{Activation, CmpOp, Op, UnaryOp};
use kiln_core::shape::Shape;
use kiln_core::trace::{Graph, ValueId};
use kiln_core::DType;

/// Rewrites `act(matmul(a, b[, bias]))` into `matmul_act(a, b[, bias])` (ReLU and GELU) when
/// the product has no other use (a training graph's GELU keeps its input for the backward,
/// so there only ReLU, whose backward reads its output, fuses), and
/// `gelu_backward(x, matmul(a, b))` into `matmul_gelu_backward(a, b, x)` and
/// `where(y > 0, matmul(a, b), 0)` into `matmul_relu_backward(a, b, y)` likewise.
pub struct MatmulEpilogue;

impl Pass for MatmulEpilogue {
    fn name(&self) -> &'static str {
        "matmul-epilogue"
    }

    fn run(&self, g: &mut Graph) -> bool {
        let uses = use_counts(g);
        let producer = producers(g);
        let mut absorbed = vec![false; g.nodes.len()];
        let types = g.types();
        let scalars = constant_scalars(g);
        for i in 0..g.nodes.len() {
            if let Some((product, compare, y)) = relu_backward(g, i, &producer, &uses, &scalars) {
                let shape_kept = g.nodes[i].shape == g.nodes[product].shape;
                if shape_kept
                    && fuse_product_epilogue(g, i, product, y, &types, Op::MatmulReluBackward)
                {
                    absorbed[product] = true;
                    // The mask, unless something else reads it.
                    absorbed[compare] |= uses[g.nodes[compare].id as usize] == 1;
                }
                continue;
            }
            if let Some((gelu, x)) = gelu_rhs(g, i, &producer, &uses, &types) {
                let a = g.nodes[i].args[0];
                let node = &mut g.nodes[i];
                node.op = Op::MatmulGeluRhs;
                node.args = [a, x].into_iter().collect();
                absorbed[gelu] = true;
                continue;
            }
            if g.nodes[i].op == Op::GeluBackward {
                // gelu_backward(x, g) with g = a @ b (no bias) read only here.
                let (x, product) = (g.nodes[i].args[0], g.nodes[i].args[1]);
                let Some(p) = producer[product as usize] else {
                    continue;
                };
                let alone = g.nodes[p].op == Op::Matmul
                    && g.nodes[p].args.len() == 2
                    && uses[product as usize] == 1;
                if alone && fuse_product_epilogue(g, i, p, x, &types, Op::MatmulGeluBackward) {
                    absorbed[p] = true;
                }
                continue;
            }
            let Some(act) = Activation::of(&g.nodes[i].op) else {
                continue;
            };
            let product = g.nodes[i].args[0];
            let Some(p) = producer[product as usize] else {
                continue;
            };
            if g.nodes[p].op != Op::Matmul || uses[product as usize] != 1 {
                continue;
            }
            let args = g.nodes[p].args.clone();
            let node = &mut g.nodes[i];
            node.op = Op::MatmulAct(act);
            node.args = args;
            absorbed[p] = true;
        }
        let mut k = 0;
        g.nodes.retain(|_| {
            k += 1;
            !absorbed[k - 1]
        });
        absorbed.contains(&true)
    }
}

/// Makes node `i` the product epilogue `op(a, b, x)` of the matmul `a @ b` at node
/// `product` (read only by node `i`, checked by the caller), when the operands, `x` and the
/// product are 2-D f32 and `x` has the product's shape (what the kernels take). Returns
/// whether it did.
fn fuse_product_epilogue(
    g: &mut Graph,
    i: usize,
    product: usize,
    x: ValueId,
    types: &[Option<(Shape, DType)>],
    op: Op,
) -> bool {
    let mm = &g.nodes[product];
    let fits = [mm.args[0], mm.args[1], x, mm.id]
        .into_iter()
        .all(|v| is_f32_matrix(types, v))
        && types[x as usize].as_ref().map(|t| &t.0) == Some(&mm.shape);
    if fits {
        let args = [mm.args[0], mm.args[1], x].into_iter().collect();
        let node = &mut g.nodes[i];
        node.op = op;
        node.args = args;
    }
    fits
}

/// Whether value `v` is a 2-D f32 tensor (what the GELU product kernels take).
fn is_f32_matrix(types: &[Option<(Shape, DType)>], v: ValueId) -> bool {
    types[v as usize]
        .as_ref()
        .is_some_and(|(s, d)| s.len() == 2 && *d == DType::F32)
}

/// For `where(y > 0, p, 0)` at node `i` with `p = a @ b` (no bias) read only there and both
/// zeros constant scalars: the product's and the comparison's node indices and `y`.
fn relu_backward(
    g: &Graph,
    i: usize,
    producer: &[Option<usize>],
    uses: &[usize],
    scalars: &[Option<f64>],
) -> Option<(usize, usize, ValueId)> {
    let node = &g.nodes[i];
    if node.op != Op::Where || node.args.len() != 3 {
        return None;
    }
    let (mask, product, zero) = (node.args[0], node.args[1], node.args[2]);
    let c = producer[mask as usize]?;
    let p = producer[product as usize]?;
    let is_zero = |v: ValueId| scalars[v as usize] == Some(0.0);
    let compare = &g.nodes[c];
    let mm = &g.nodes[p];
    let masks = compare.op == Op::Compare(CmpOp::Gt) && is_zero(compare.args[1]);
    let product_only_here =
        mm.op == Op::Matmul && mm.args.len() == 2 && uses[product as usize] == 1;
    // The kernel writes +0 where the mask is off.
    let plus_zero = scalars[zero as usize].is_some_and(|z| z.to_bits() == 0);
    (masks && product_only_here && plus_zero).then_some((p, c, compare.args[0]))
}

/// For `matmul(a, b)` at node `i` (2-D f32, no bias) whose `b` is an exact GELU's output read
/// only there (through reshapes that leave its shape as it was): the GELU's node index and
/// its input.
fn gelu_rhs(
    g: &Graph,
    i: usize,
    producer: &[Option<usize>],
    uses: &[usize],
    types: &[Option<(Shape, DType)>],
) -> Option<(usize, ValueId)> {
    let node = &g.nodes[i];
    if node.op != Op::Matmul || node.args.len() != 2 || node.dtype != DType::F32 {
        return None;
    }
    let b = node.args[1];
    let b_type = types[b as usize].as_ref()?;
    let mut v = b;
    loop {
        let p = producer[v as usize].filter(|_| uses[v as usize] == 1)?;
        match &g.nodes[p].op {
            Op::Reshape(_) => v = g.nodes[p].args[0],
            Op::Unary(UnaryOp::Gelu { tanh: false }) => {
                let x = g.nodes[p].args[0];
                let same = types[x as usize].as_ref() == Some(b_type);
                let matrices = is_f32_matrix(types, node.args[0]) && is_f32_matrix(types, b);
                return (same && matrices).then_some((p, x));
            }
            _ => return None,
        }
    }
}
