//! PyTorch reference fixtures (`tests/fixtures/core_fixtures.json`, made by
//! `tests/fixtures/make_fixtures.py`): every case runs through Kiln in f64 and its outputs and
//! gradients of `(out * grad_weight).sum()` are compared with tight tolerances.
//!
//! One test per op family; each runs every case of its ops twice — with the fixture's dense
//! inputs and with the same values behind non-contiguous (transposed) layouts — and reports
//! all failing cases at once.

use kiln_core::nn::functional as F;
use kiln_core::nn::functional::{CrossEntropyOptions, KlDivReduction, NllLossOptions, Reduction};
use kiln_core::{DType, Tensor};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

const ATOL: f64 = 1e-10;
const RTOL: f64 = 1e-9;

#[derive(Deserialize)]
struct TensorData {
    shape: Vec<usize>,
    dtype: String,
    data: Vec<Value>,
}

impl TensorData {
    fn to_tensor(&self) -> Tensor {
        match self.dtype.as_str() {
            "f64" => {
                let v: Vec<f64> = self.data.iter().map(|x| x.as_f64().unwrap()).collect();
                Tensor::from_vec(v, self.shape.as_slice())
            }
            "i64" => {
                let v: Vec<i64> = self.data.iter().map(|x| x.as_i64().unwrap()).collect();
                Tensor::from_vec(v, self.shape.as_slice())
            }
            "bool" => {
                let v: Vec<bool> = self.data.iter().map(|x| x.as_bool().unwrap()).collect();
                Tensor::from_vec(v, self.shape.as_slice())
            }
            d => panic!("fixture: unknown dtype {d}"),
        }
    }
}

#[derive(Deserialize)]
struct Case {
    op: String,
    params: Map<String, Value>,
    inputs: BTreeMap<String, TensorData>,
    outputs: BTreeMap<String, TensorData>,
    #[serde(default)]
    grads: BTreeMap<String, TensorData>,
}

fn cases() -> &'static BTreeMap<String, Case> {
    static CASES: OnceLock<BTreeMap<String, Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/core_fixtures.json"
        );
        let text = std::fs::read_to_string(path).expect("read core_fixtures.json");
        serde_json::from_str(&text).expect("parse core_fixtures.json")
    })
}

/// A case's inputs (as Kiln tensors) and params, handed to the Kiln implementation.
struct Ctx<'a> {
    op: &'a str,
    params: &'a Map<String, Value>,
    inputs: HashMap<String, Tensor>,
}

impl Ctx<'_> {
    fn t(&self, name: &str) -> &Tensor {
        self.inputs
            .get(name)
            .unwrap_or_else(|| panic!("case has no input {name}"))
    }
    fn opt(&self, name: &str) -> Option<&Tensor> {
        self.inputs.get(name)
    }
    fn has(&self, key: &str) -> bool {
        self.params.get(key).is_some_and(|v| !v.is_null())
    }
    fn f64(&self, key: &str, default: f64) -> f64 {
        self.params
            .get(key)
            .and_then(Value::as_f64)
            .unwrap_or(default)
    }
    fn i64(&self, key: &str, default: i64) -> i64 {
        self.params
            .get(key)
            .and_then(Value::as_i64)
            .unwrap_or(default)
    }
    fn bool(&self, key: &str, default: bool) -> bool {
        self.params
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(default)
    }
    fn str(&self, key: &str, default: &str) -> String {
        self.params
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    }
    /// An int or a list of ints.
    fn ints(&self, key: &str) -> Option<Vec<i64>> {
        match self.params.get(key)? {
            Value::Array(a) => Some(a.iter().map(|v| v.as_i64().unwrap()).collect()),
            v => Some(vec![v.as_i64()?]),
        }
    }
    fn usizes(&self, key: &str) -> Vec<usize> {
        self.ints(key)
            .unwrap_or_else(|| panic!("missing param {key}"))
            .iter()
            .map(|&v| v as usize)
            .collect()
    }
    /// A 2-D spatial param (`[a, b]` or `[a]` / `a` for both).
    fn pair(&self, key: &str, default: usize) -> [usize; 2] {
        match self.ints(key) {
            None => [default; 2],
            Some(v) if v.len() == 1 => [v[0] as usize; 2],
            Some(v) => [v[0] as usize, v[1] as usize],
        }
    }
    /// A 1-D spatial param (`[a]` or `a`).
    fn single(&self, key: &str, default: usize) -> usize {
        self.ints(key).map_or(default, |v| v[0] as usize)
    }
    fn reduction(&self) -> Reduction {
        match self.str("reduction", "mean").as_str() {
            "none" => Reduction::None,
            "mean" => Reduction::Mean,
            "sum" => Reduction::Sum,
            r => panic!("unknown reduction {r}"),
        }
    }
}

type Outputs = Vec<(&'static str, Tensor)>;

fn out(t: Tensor) -> Outputs {
    vec![("out", t)]
}

/// Same values, non-contiguous layout: the transpose of a dense transposed copy.
fn strided(t: &Tensor) -> Tensor {
    if t.rank() < 2 {
        return t.clone();
    }
    let r = t.rank();
    let view = t.transpose(r - 2, r - 1).copy().transpose(r - 2, r - 1);
    view.detach()
}

fn compare(what: &str, got: &Tensor, want: &TensorData) -> Result<(), String> {
    if got.shape() != want.shape.as_slice() {
        return Err(format!(
            "{what}: shape {:?}, expected {:?}",
            got.shape(),
            want.shape
        ));
    }
    match want.dtype.as_str() {
        "f64" => {
            if got.dtype() != DType::F64 {
                return Err(format!("{what}: dtype {}, expected f64", got.dtype()));
            }
            let g = got.to_vec::<f64>();
            let mut worst: Option<(usize, f64, f64)> = None;
            let mut bad = 0;
            for (i, (a, e)) in g.iter().zip(&want.data).enumerate() {
                let e = e.as_f64().unwrap();
                let ok = (a - e).abs() <= ATOL + RTOL * e.abs();
                if !ok {
                    bad += 1;
                    if worst.is_none_or(|(_, wa, we)| (a - e).abs() > (wa - we).abs()) {
                        worst = Some((i, *a, e));
                    }
                }
            }
            match worst {
                None => Ok(()),
                Some((i, a, e)) => Err(format!(
                    "{what}: {bad}/{} values off; worst at {i}: got {a:.17e}, expected {e:.17e} (diff {:.3e})",
                    g.len(),
                    (a - e).abs()
                )),
            }
        }
        "i64" => {
            let g = got.to_vec::<i64>();
            let e: Vec<i64> = want.data.iter().map(|v| v.as_i64().unwrap()).collect();
            if got.dtype() != DType::I64 || g != e {
                return Err(format!(
                    "{what}: got {} {g:?}, expected i64 {e:?}",
                    got.dtype()
                ));
            }
            Ok(())
        }
        "bool" => {
            let g = got.to_vec::<bool>();
            let e: Vec<bool> = want.data.iter().map(|v| v.as_bool().unwrap()).collect();
            if got.dtype() != DType::Bool || g != e {
                return Err(format!("{what}: got {g:?}, expected {e:?}"));
            }
            Ok(())
        }
        d => Err(format!("{what}: unknown dtype {d}")),
    }
}

fn check_case(
    case: &Case,
    strided_inputs: bool,
    f: &dyn Fn(&Ctx) -> Outputs,
) -> Result<(), Vec<String>> {
    let mut inputs = HashMap::new();
    for (name, data) in &case.inputs {
        let mut t = data.to_tensor();
        if strided_inputs && name != "grad_weight" {
            t = strided(&t);
        }
        if case.grads.contains_key(name) {
            t.requires_grad_(true);
        }
        inputs.insert(name.clone(), t);
    }
    let ctx = Ctx {
        op: &case.op,
        params: &case.params,
        inputs,
    };
    let outputs = f(&ctx);
    let mut errors = Vec::new();
    for (name, want) in &case.outputs {
        match outputs.iter().find(|(n, _)| n == name) {
            Some((_, got)) => {
                if let Err(e) = compare(name, got, want) {
                    errors.push(e);
                }
            }
            None => errors.push(format!("output {name} not produced")),
        }
    }
    if !case.grads.is_empty() {
        let out = &outputs.iter().find(|(n, _)| *n == "out").expect("out").1;
        (out * ctx.t("grad_weight")).sum_all().backward();
        for (name, want) in &case.grads {
            let leaf = ctx.t(name);
            let g = leaf.grad().unwrap_or_else(|| leaf.zeros_like());
            if let Err(e) = compare(&format!("grad {name}"), &g, want) {
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "panic".to_string()
    }
}

/// Runs every case whose op is in `ops` (dense and strided), failing with the list of all
/// failing cases.
fn run_family(ops: &[&str], f: impl Fn(&Ctx) -> Outputs) {
    let mut failures = Vec::new();
    let mut count = 0;
    for (name, case) in cases().iter().filter(|(_, c)| ops.contains(&c.op.as_str())) {
        count += 1;
        for strided_inputs in [false, true] {
            let label = if strided_inputs {
                format!("{name} [strided]")
            } else {
                name.clone()
            };
            match catch_unwind(AssertUnwindSafe(|| check_case(case, strided_inputs, &f))) {
                Ok(Ok(())) => {}
                Ok(Err(errs)) => failures.push(format!("{label}: {}", errs.join("; "))),
                Err(p) => failures.push(format!("{label}: panicked: {}", panic_message(p))),
            }
        }
    }
    assert!(count > 0, "no fixture cases for {ops:?}");
    eprintln!("{ops:?}: {count} cases");
    assert!(
        failures.is_empty(),
        "{} failing runs ({count} cases × dense/strided) for {ops:?}:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

const FAMILIES: &[&[&str]] = &[
    MATMUL, CONV, POOL, NORM, SOFTMAX, LOSS, ATTENTION, ACTIVATION, REDUCTION, INDEXING,
];
const MATMUL: &[&str] = &["matmul", "linear"];
const CONV: &[&str] = &["conv1d", "conv2d", "conv_transpose2d"];
const POOL: &[&str] = &["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"];
const NORM: &[&str] = &["layer_norm", "rms_norm", "group_norm", "batch_norm"];
const SOFTMAX: &[&str] = &["softmax", "log_softmax"];
const LOSS: &[&str] = &[
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy",
    "kl_div",
];
const ATTENTION: &[&str] = &["scaled_dot_product_attention"];
const ACTIVATION: &[&str] = &["gelu", "silu", "softplus", "sigmoid", "tanh"];
const REDUCTION: &[&str] = &["logsumexp", "var", "std", "prod"];
const INDEXING: &[&str] = &[
    "embedding",
    "one_hot",
    "tril",
    "triu",
    "gather",
    "scatter_add",
    "index_select",
];

#[test]
fn every_fixture_op_is_covered() {
    let known: Vec<&str> = FAMILIES.iter().flat_map(|f| f.iter().copied()).collect();
    let missing: Vec<String> = cases()
        .iter()
        .filter(|(_, c)| !known.contains(&c.op.as_str()))
        .map(|(n, c)| format!("{n} ({})", c.op))
        .collect();
    assert!(
        missing.is_empty(),
        "fixture cases with no test: {missing:?}"
    );
}

#[test]
fn fixtures_matmul() {
    run_family(MATMUL, |c| {
        if c.op == "linear" {
            return out(F::linear(c.t("input"), c.t("weight"), c.opt("bias")));
        }
        let b = c.t("other");
        let b = if c.bool("transpose_b", false) {
            b.transpose(-1, -2)
        } else {
            b.clone()
        };
        out(c.t("input").matmul(&b))
    });
}

#[test]
fn fixtures_conv() {
    run_family(CONV, |c| {
        let (x, w, b) = (c.t("input"), c.t("weight"), c.opt("bias"));
        let groups = c.i64("groups", 1) as usize;
        out(match c.op {
            "conv1d" => F::conv1d(
                x,
                w,
                b,
                c.single("stride", 1),
                c.single("padding", 0),
                c.single("dilation", 1),
                groups,
            ),
            "conv2d" => F::conv2d(
                x,
                w,
                b,
                c.pair("stride", 1),
                c.pair("padding", 0),
                c.pair("dilation", 1),
                groups,
            ),
            _ => F::conv_transpose2d(
                x,
                w,
                b,
                c.pair("stride", 1),
                c.pair("padding", 0),
                c.pair("output_padding", 0),
                groups,
                c.pair("dilation", 1),
            ),
        })
    });
}

#[test]
fn fixtures_pool() {
    run_family(POOL, |c| {
        let x = c.t("input");
        if c.has("output_size") {
            return out(F::adaptive_avg_pool2d(x, c.pair("output_size", 1)));
        }
        let kernel = c.pair("kernel_size", 1);
        let stride = if c.has("stride") {
            Some(F::Pair(c.pair("stride", 1)))
        } else {
            None
        };
        if c.has("count_include_pad") || c.op == "avg_pool2d" {
            return out(F::avg_pool2d(
                x,
                kernel,
                stride,
                c.pair("padding", 0),
                c.bool("ceil_mode", false),
                c.bool("count_include_pad", true),
                c.ints("divisor_override").map(|v| v[0] as usize),
            ));
        }
        let (o, idx) = F::max_pool2d_with_indices(
            x,
            kernel,
            stride,
            c.pair("padding", 0),
            c.pair("dilation", 1),
            c.bool("ceil_mode", false),
        );
        let plain = F::max_pool2d(
            x,
            kernel,
            stride,
            c.pair("padding", 0),
            c.pair("dilation", 1),
            c.bool("ceil_mode", false),
        );
        assert_eq!(plain.to_vec::<f64>(), o.to_vec::<f64>());
        vec![("out", o), ("indices", idx)]
    });
}

#[test]
fn fixtures_norm() {
    run_family(NORM, |c| {
        let x = c.t("input");
        let eps = c.f64("eps", 1e-5);
        if c.has("training") {
            let (rm, rv) = (c.t("running_mean"), c.t("running_var"));
            let training = c.bool("training", false);
            let y = F::batch_norm(
                x,
                Some(rm),
                Some(rv),
                c.opt("weight"),
                c.opt("bias"),
                training,
                c.f64("momentum", 0.1),
                eps,
            );
            return vec![
                ("out", y),
                ("running_mean", rm.clone()),
                ("running_var", rv.clone()),
            ];
        }
        if c.has("num_groups") {
            let g = c.i64("num_groups", 1) as usize;
            return out(F::group_norm(x, g, c.opt("weight"), c.opt("bias"), eps));
        }
        let ns = c.usizes("normalized_shape");
        if c.op == "rms_norm" {
            out(F::rms_norm(x, &ns, c.opt("weight"), eps))
        } else {
            out(F::layer_norm(x, &ns, c.opt("weight"), c.opt("bias"), eps))
        }
    });
}

#[test]
fn fixtures_softmax() {
    run_family(SOFTMAX, |c| {
        let dim = c.i64("dim", -1);
        if c.op == "softmax" {
            out(F::softmax(c.t("input"), dim))
        } else {
            out(F::log_softmax(c.t("input"), dim))
        }
    });
}

#[test]
fn fixtures_loss() {
    run_family(LOSS, |c| {
        let (x, t) = (c.t("input"), c.t("target"));
        let r = if c.op == "kl_div" {
            Reduction::None // kl_div has its own reductions, below
        } else {
            c.reduction()
        };
        let op = c.op;
        out(match op {
            "cross_entropy" => F::cross_entropy_with(
                x,
                t,
                &CrossEntropyOptions {
                    weight: c.opt("weight").cloned(),
                    ignore_index: Some(c.i64("ignore_index", -100)),
                    label_smoothing: c.f64("label_smoothing", 0.0),
                    reduction: r,
                },
            ),
            "nll_loss" => F::nll_loss(
                x,
                t,
                &NllLossOptions {
                    weight: c.opt("weight").cloned(),
                    ignore_index: Some(c.i64("ignore_index", -100)),
                    reduction: r,
                },
            ),
            "mse_loss" => F::mse_loss(x, t, r),
            "l1_loss" => F::l1_loss(x, t, r),
            "smooth_l1_loss" => F::smooth_l1_loss(x, t, r, c.f64("beta", 1.0)),
            "huber_loss" => F::huber_loss(x, t, r, c.f64("delta", 1.0)),
            "binary_cross_entropy" => F::binary_cross_entropy(x, t, c.opt("weight"), r),
            "binary_cross_entropy_with_logits" => {
                F::binary_cross_entropy_with_logits(x, t, c.opt("weight"), r, c.opt("pos_weight"))
            }
            "kl_div" => {
                let red = match c.str("reduction", "mean").as_str() {
                    "batchmean" => KlDivReduction::BatchMean,
                    "mean" => KlDivReduction::Mean,
                    "sum" => KlDivReduction::Sum,
                    _ => KlDivReduction::None,
                };
                F::kl_div(x, t, red, c.bool("log_target", false))
            }
            other => panic!("unhandled loss {other}"),
        })
    });
}

#[test]
fn fixtures_attention() {
    run_family(ATTENTION, |c| {
        let scale = c.has("scale").then(|| c.f64("scale", 1.0));
        out(F::scaled_dot_product_attention(
            c.t("query"),
            c.t("key"),
            c.t("value"),
            c.opt("attn_mask"),
            c.bool("is_causal", false),
            scale,
        ))
    });
}

#[test]
fn fixtures_activation() {
    run_family(ACTIVATION, |c| {
        let x = c.t("input");
        let op = c.op;
        out(match op {
            "gelu" => F::gelu(x, c.str("approximate", "none") == "tanh"),
            "silu" => F::silu(x),
            "softplus" => F::softplus(x, c.f64("beta", 1.0), c.f64("threshold", 20.0)),
            "sigmoid" => F::sigmoid(x),
            "tanh" => F::tanh(x),
            other => panic!("unhandled activation {other}"),
        })
    });
}

#[test]
fn fixtures_reduction() {
    run_family(REDUCTION, |c| {
        let x = c.t("input");
        let keepdim = c.bool("keepdim", false);
        let op = c.op;
        out(match op {
            "logsumexp" => x.logsumexp(c.ints("dim").unwrap(), keepdim),
            "var" | "std" => {
                let unbiased = c.bool("unbiased", true);
                let v = match c.ints("dim") {
                    Some(d) => x.var(d, unbiased, keepdim),
                    None => x.var_all(unbiased),
                };
                if op == "std" {
                    v.sqrt()
                } else {
                    v
                }
            }
            "prod" => x.prod([c.i64("dim", 0)], keepdim),
            other => panic!("unhandled reduction {other}"),
        })
    });
}

#[test]
fn fixtures_indexing() {
    run_family(INDEXING, |c| {
        let x = c.t("input");
        let op = c.op;
        let dim = c.i64("dim", 0);
        out(match op {
            "embedding" => F::embedding(
                x,
                c.t("weight"),
                c.has("padding_idx").then(|| c.i64("padding_idx", 0)),
            ),
            "one_hot" => {
                let n = c.i64("num_classes", -1);
                F::one_hot(x, (n >= 0).then_some(n as usize))
            }
            "tril" => x.tril(c.i64("diagonal", 0)),
            "triu" => x.triu(c.i64("diagonal", 0)),
            "gather" => x.gather(dim, c.t("index")),
            "scatter_add" => x.scatter_add(dim, c.t("index"), c.t("src")),
            "index_select" => x.index_select(dim, c.t("index")),
            other => panic!("unhandled indexing op {other}"),
        })
    });
}
