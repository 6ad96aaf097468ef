//! The ONNX ops Kiln imports, each a function from a node's inputs and attributes to Kiln
//! ops, grouped by kind. The table lists every op with the attributes its function reads: any
//! other attribute on a node is refused, so an attribute the importer does not know can never
//! change a result silently.

/// One table entry: `def!("Op", import_fn)`, with the attributes it reads as a list
/// (`[..]`) or a shared constant.
macro_rules! def {
    ($name:literal, $f:expr) => {
        def!($name, $f, [])
    };
    ($name:literal, $f:expr, [$($a:literal),*]) => {
        OpDef { name: $name, attrs: &[$($a),*], import: $f }
    };
    ($name:literal, $f:expr, $attrs:ident) => {
        OpDef { name: $name, attrs: $attrs, import: $f }
    };
}

mod attention;
mod cast;
mod einsum;
mod elementwise;
mod grid_sample;
mod integer;
mod loss;
mod nn;
mod norm;
mod pool;
mod quantize;
mod rearrange;
mod recurrent;
mod reduce;
mod resize;
mod select;
mod sequence;
mod shape;
mod spectral;

use super::attrs::Attrs;
use super::builder::{known_i64s, Builder, Value, R};
use kiln_kernels::ops::Op;

/// One node being imported.
pub(crate) struct NodeIn<'a> {
    /// Its inputs; `None` for an optional input left out (an empty name).
    pub inputs: Vec<Option<Value>>,
    /// Its attributes.
    pub attrs: Attrs<'a>,
    /// How many outputs the model reads (trailing optional outputs may be left out).
    pub outputs: usize,
    /// The model's opset of the default domain.
    pub opset: i64,
    /// Per input: how many nodes (and graph outputs) read it in the whole model.
    pub readers: Vec<usize>,
    /// The input [`NodeIn::ints`] needed known and found computed by the graph.
    pub wanted: std::cell::Cell<Option<usize>>,
    /// Per input: the ONNX element type the model declares for it, when it declares one
    /// (a narrow type's values are held in a wider dtype).
    pub declared: Vec<Option<i32>>,
}

impl NodeIn<'_> {
    /// Input `k`, which the op requires.
    pub fn input(&self, k: usize) -> R<&Value> {
        self.opt(k).ok_or_else(|| format!("input {k} is missing"))
    }

    /// Input `k`, if given.
    pub fn opt(&self, k: usize) -> Option<&Value> {
        self.inputs.get(k).and_then(Option::as_ref)
    }

    /// Input `k` as integers, which must be known while importing (a shape, axes, pads).
    pub fn ints(&self, k: usize) -> R<Option<Vec<i64>>> {
        match self.opt(k) {
            None => Ok(None),
            Some(v) => match v.known() {
                Some(c) => Ok(Some(known_i64s(c))),
                None => {
                    self.wanted.set(Some(k));
                    Err(format!(
                    "input {k} must be known while importing (computed from the model's weights \
                     and shapes), but it depends on the graph's inputs"
                    ))
                }
            },
        }
    }

    /// Input `k` as floats known while importing (scales, a ratio); `None` when absent or
    /// empty. A model input is asked for by value, as [`NodeIn::ints`] does.
    pub fn floats(&self, k: usize) -> R<Option<Vec<f64>>> {
        match self.opt(k) {
            Some(v) if v.shape().iter().product::<usize>() == 0 => Ok(None),
            Some(v) => match v.known() {
                Some(c) => Ok(Some(crate::import::builder::known_f64s(c))),
                None => {
                    self.ints(k)?;
                    Err(format!("input {k} must be known while importing"))
                }
            },
            None => Ok(None),
        }
    }

    /// The narrow ONNX type input `k` is declared as, if it is one.
    pub fn narrow(&self, k: usize) -> Option<crate::import::narrow::Narrow> {
        self.declared
            .get(k)
            .copied()
            .flatten()
            .and_then(crate::import::narrow::Narrow::of)
    }

    /// Refuses outputs past the first `n` that the model reads.
    pub fn outputs_at_most(&self, n: usize) -> R<()> {
        if self.outputs > n {
            return Err(format!(
                "output {} is read, but only the first {n} are supported",
                self.outputs - 1
            ));
        }
        Ok(())
    }
}

/// An op's import function.
type Import = fn(&mut Builder, &NodeIn) -> R<Vec<Value>>;

/// One op of the default domain that Kiln imports.
pub(crate) struct OpDef {
    /// The ONNX op type.
    pub name: &'static str,
    /// The attributes its function reads.
    pub attrs: &'static [&'static str],
    /// The function.
    pub import: Import,
}

/// Every op table.
fn all() -> impl Iterator<Item = &'static OpDef> {
    [
        elementwise::OPS,
        einsum::OPS,
        grid_sample::OPS,
        integer::OPS,
        attention::OPS,
        cast::OPS,
        nn::OPS,
        norm::OPS,
        pool::OPS,
        loss::OPS,
        quantize::OPS,
        rearrange::OPS,
        recurrent::OPS,
        reduce::OPS,
        resize::OPS,
        select::OPS,
        sequence::OPS,
        shape::OPS,
        spectral::OPS,
    ]
    .into_iter()
    .flatten()
}

/// Every op Kiln imports, by name.
pub(crate) fn find(name: &str) -> Option<&'static OpDef> {
    all().find(|d| d.name == name)
}

/// The names of the ops Kiln imports, sorted.
pub fn supported() -> Vec<&'static str> {
    let mut v: Vec<_> = all().map(|d| d.name).collect();
    v.sort_unstable();
    v
}

/// `x` rounded toward zero (C's and NumPy's float-to-integer conversion).
pub(crate) fn toward_zero(b: &mut Builder, x: &Value) -> R<Value> {
    let zero = b.scalar(0.0, x.dtype());
    let neg = b.binary(Op::Compare(kiln_kernels::ops::CmpOp::Lt), x, &zero)?;
    let up = b.unary(x, kiln_kernels::ops::UnaryOp::Ceil)?;
    let down = b.unary(x, kiln_kernels::ops::UnaryOp::Floor)?;
    b.op(Op::Where, &[&neg, &up, &down])
}

/// The smallest and largest value of an integer dtype (as f64); `None` for the others.
pub(crate) fn int_limits(d: kiln_kernels::DType) -> Option<(f64, f64)> {
    use kiln_kernels::DType::*;
    Some(match d {
        U8 => (0.0, u8::MAX as f64),
        I8 => (i8::MIN as f64, i8::MAX as f64),
        U16 => (0.0, u16::MAX as f64),
        I16 => (i16::MIN as f64, i16::MAX as f64),
        U32 => (0.0, u32::MAX as f64),
        I32 => (i32::MIN as f64, i32::MAX as f64),
        U64 => (0.0, u64::MAX as f64),
        I64 => (i64::MIN as f64, i64::MAX as f64),
        _ => return None,
    })
}

/// An ONNX axis (negative counts from the end) as a dim of a rank-`rank` value.
pub(crate) fn axis(a: i64, rank: usize) -> R<usize> {
    let r = rank as i64;
    if a < -r || a >= r.max(1) {
        return Err(format!("axis {a} is out of range for rank {rank}"));
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

/// One output.
pub(crate) fn one(v: Value) -> R<Vec<Value>> {
    Ok(vec![v])
}

/// The broadcast shape of two shapes (NumPy's rule, the kernels' own).
pub(crate) fn broadcast(a: &[usize], b: &[usize]) -> R<Vec<usize>> {
    kiln_kernels::shape::broadcast_shapes(a, b)
        .map(|s| s.to_vec())
        .ok_or_else(|| format!("shapes {a:?} and {b:?} cannot be broadcast together"))
}

/// `x` padded along `dim` with `before` and `after` entries of `value` (a constant block on
/// each side, joined by one concatenation).
pub(crate) fn pad_dim(
    b: &mut Builder,
    x: &Value,
    dim: usize,
    before: usize,
    after: usize,
    value: f64,
) -> R<Value> {
    let fill = b.scalar(value, x.dtype());
    pad_dim_with(b, x, dim, before, after, &fill)
}

/// [`pad_dim`] with the padding value a 0-d value (known, or computed by the graph).
pub(crate) fn pad_dim_with(
    b: &mut Builder,
    x: &Value,
    dim: usize,
    before: usize,
    after: usize,
    fill: &Value,
) -> R<Value> {
    if before == 0 && after == 0 {
        return Ok(x.clone());
    }
    let mut parts = Vec::new();
    let block = |b: &mut Builder, len: usize| -> R<Value> {
        let mut shape = x.shape().to_vec();
        shape[dim] = len;
        b.op(Op::Expand(shape.iter().copied().collect()), &[fill])
    };
    if before > 0 {
        parts.push(block(b, before)?);
    }
    parts.push(x.clone());
    if after > 0 {
        parts.push(block(b, after)?);
    }
    let refs: Vec<&Value> = parts.iter().collect();
    b.op(Op::Cat(dim), &refs)
}
