//! Shape and layout ops, indexing, constants and casts. Shapes, axes, slice bounds and pads
//! must be known while importing (they are, in exported models: constants, or arithmetic on
//! `Shape` that the importer folds).

use super::{axis, broadcast, one, pad_dim_with, NodeIn, OpDef};
use crate::import::builder::{known_i64s, Builder, Value, R};
use crate::import::tensor::decode;
use kiln_kernels::ops::Op;
use kiln_kernels::storage::CpuStorage;
use kiln_kernels::{DType, OwnedOperand};

pub(super) const OPS: &[OpDef] = &[
    def!("Identity", |_, n| one(n.input(0)?.clone())),
    def!("Reshape", reshape, ["allowzero"]),
    def!("Flatten", flatten, ["axis"]),
    def!("Transpose", transpose, ["perm"]),
    def!("Squeeze", squeeze, ["axes"]),
    def!("Unsqueeze", unsqueeze, ["axes"]),
    def!("Concat", concat, ["axis"]),
    def!("Split", split, ["axis", "split", "num_outputs"]),
    def!("Slice", slice, ["starts", "ends", "axes"]),
    def!("Gather", gather, ["axis"]),
    def!("GatherElements", gather_elements, ["axis"]),
    def!("GatherND", gather_nd, ["batch_dims"]),
    def!("Shape", shape, ["start", "end"]),
    def!("Size", size),
    def!("Expand", expand),
    def!("Tile", tile),
    def!("Pad", pad, ["mode", "pads", "value"]),
    def!("Trilu", trilu, ["upper"]),
    def!(
        "Constant",
        constant,
        [
            "value",
            "value_float",
            "value_floats",
            "value_int",
            "value_ints"
        ]
    ),
    def!("ConstantOfShape", constant_of_shape, ["value"]),
    def!("Range", range),
];

/// Non-negative sizes from integers.
fn sizes(v: &[i64], what: &str) -> R<Vec<usize>> {
    v.iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("{what} {v:?} has a negative entry")))
        .collect()
}

/// A list of ints given as an attribute (older opsets) or as input `k` (newer ones).
fn attr_or_input(n: &NodeIn, name: &str, k: usize) -> R<Option<Vec<i64>>> {
    match (n.attrs.ints(name)?, n.ints(k)?) {
        (Some(_), Some(_)) => Err(format!("{name} given both as an attribute and an input")),
        (a, b) => Ok(a.or(b)),
    }
}

fn reshape(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let target = n.ints(1)?.ok_or("the shape input is missing")?;
    let allow_zero = n.attrs.int_or("allowzero", 0)? != 0;
    let mut shape = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &d) in target.iter().enumerate() {
        shape.push(match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            0 if !allow_zero => *x.shape().get(i).ok_or_else(|| {
                format!(
                    "shape {target:?} copies dim {i}, which the input {:?} lacks",
                    x.shape()
                )
            })?,
            d if d >= 0 => d as usize,
            _ => return Err(format!("shape {target:?} is not a shape")),
        });
    }
    let total: usize = x.shape().iter().product();
    if kiln_kernels::shape::checked_numel(&shape, 1).is_err() {
        return Err(format!("shape {target:?} is too large"));
    }
    if let Some(i) = infer {
        let known: usize = shape.iter().product();
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {:?} to {target:?}", x.shape()));
        }
        shape[i] = total / known;
    }
    one(b.reshape(x, &shape)?)
}

fn flatten(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let r = x.rank() as i64;
    let a = n.attrs.int_or("axis", 1)?;
    if a < -r || a > r {
        return Err(format!("axis {a} is out of range for rank {r}"));
    }
    let a = if a < 0 { a + r } else { a } as usize;
    let rows = x.shape()[..a].iter().product();
    let cols = x.shape()[a..].iter().product();
    one(b.reshape(x, &[rows, cols])?)
}

fn transpose(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let perm = match n.attrs.ints("perm")? {
        Some(p) => p
            .iter()
            .map(|&a| axis(a, x.rank()))
            .collect::<R<Vec<_>>>()?,
        None => (0..x.rank()).rev().collect(),
    };
    let mut seen = perm.clone();
    seen.sort_unstable();
    if seen != (0..x.rank()).collect::<Vec<_>>() {
        return Err(format!(
            "perm {perm:?} is not a permutation of {} dims",
            x.rank()
        ));
    }
    one(b.permute(x, &perm)?)
}

fn squeeze(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let dims: Vec<usize> = match attr_or_input(n, "axes", 1)? {
        Some(a) => a.iter().map(|&a| axis(a, x.rank())).collect::<R<_>>()?,
        None => (0..x.rank()).filter(|&d| x.shape()[d] == 1).collect(),
    };
    if let Some(&d) = dims.iter().find(|&&d| x.shape()[d] != 1) {
        return Err(format!("dim {d} of {:?} is not 1", x.shape()));
    }
    let shape: Vec<usize> = (0..x.rank())
        .filter(|d| !dims.contains(d))
        .map(|d| x.shape()[d])
        .collect();
    one(b.reshape(x, &shape)?)
}

fn unsqueeze(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let axes = attr_or_input(n, "axes", 1)?.ok_or("axes are missing")?;
    let rank = x.rank() + axes.len();
    let mut dims: Vec<usize> = axes.iter().map(|&a| axis(a, rank)).collect::<R<_>>()?;
    dims.sort_unstable();
    dims.dedup();
    if dims.len() != axes.len() {
        return Err(format!("axes {axes:?} repeat a dim"));
    }
    let mut rest = x.shape().iter();
    let shape: Vec<usize> = (0..rank)
        .map(|d| {
            if dims.contains(&d) {
                1
            } else {
                *rest.next().expect("rank adds up")
            }
        })
        .collect();
    one(b.reshape(x, &shape)?)
}

fn concat(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let first = n.input(0)?;
    let dim = axis(
        n.attrs.int("axis")?.ok_or("axis is required")?,
        first.rank(),
    )?;
    let parts: Vec<&Value> = (0..n.inputs.len()).map(|k| n.input(k)).collect::<R<_>>()?;
    if parts.len() == 1 {
        return one(first.clone());
    }
    if let Some(p) = parts.iter().find(|p| p.dtype() != first.dtype()) {
        return Err(format!(
            "inputs are {} and {}; ONNX requires one type",
            first.dtype(),
            p.dtype()
        ));
    }
    one(b.op(Op::Cat(dim), &parts)?)
}

fn split(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let dim = axis(n.attrs.int_or("axis", 0)?, x.rank())?;
    let len = x.shape()[dim];
    let parts = match (attr_or_input(n, "split", 1)?, n.attrs.int("num_outputs")?) {
        (Some(s), _) => sizes(&s, "split")?,
        (None, count) => {
            let k = count.map_or(n.outputs, |c| c.max(0) as usize);
            if k == 0 {
                return Err("no outputs to split into".into());
            }
            // Equal parts, the last one smaller when the size does not divide (opset 18).
            let part = len.div_ceil(k);
            (0..k)
                .map(|i| part.min(len.saturating_sub(i * part)))
                .collect()
        }
    };
    if parts.iter().sum::<usize>() != len {
        return Err(format!("split {parts:?} does not add up to {len}"));
    }
    let mut start = 0;
    let mut outs = Vec::new();
    for p in parts {
        outs.push(b.op(
            Op::Slice {
                dim,
                start,
                len: p,
                step: 1,
            },
            &[x],
        )?);
        start += p;
    }
    Ok(outs)
}

fn slice(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let (starts, ends, axes, steps) = if n.attrs.has("starts") {
        (
            n.attrs.ints("starts")?.unwrap_or_default(),
            n.attrs.ints("ends")?.ok_or("ends are missing")?,
            n.attrs.ints("axes")?,
            None,
        )
    } else {
        (
            n.ints(1)?.ok_or("starts are missing")?,
            n.ints(2)?.ok_or("ends are missing")?,
            n.ints(3)?,
            n.ints(4)?,
        )
    };
    let k = starts.len();
    let axes = axes.unwrap_or_else(|| (0..k as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; k]);
    if ends.len() != k || axes.len() != k || steps.len() != k {
        return Err(format!(
            "starts {starts:?}, ends {ends:?}, axes {axes:?} and steps {steps:?} differ in length"
        ));
    }
    let mut y = x.clone();
    for i in 0..k {
        let dim = axis(axes[i], x.rank())?;
        let d = x.shape()[dim] as i128;
        let (start, end, step) = (starts[i] as i128, ends[i] as i128, steps[i] as i128);
        let wrap = |v: i128| if v < 0 { v + d } else { v };
        if step > 0 {
            let s = wrap(start).clamp(0, d);
            let e = wrap(end).clamp(0, d);
            let len = if e > s { (e - s + step - 1) / step } else { 0 };
            y = b.op(
                Op::Slice {
                    dim,
                    start: s as usize,
                    len: len as usize,
                    step: step as usize,
                },
                &[&y],
            )?;
        } else if step < 0 {
            let s = wrap(start).clamp(0, d - 1);
            let e = wrap(end).clamp(-1, d - 1);
            let index: Vec<i64> = (0..)
                .map(|j| s + j * step)
                .take_while(|&p| p > e)
                .map(|p| p as i64)
                .collect();
            let idx = b.i64s(&index);
            y = b.op(Op::IndexSelect(dim), &[&y, &idx])?;
        } else {
            return Err("a step of 0".into());
        }
    }
    one(y)
}

/// Index values with negative entries counted from the end of a dim of `size`, checked.
fn wrap_indices(idx: &[i64], size: usize) -> R<Vec<i64>> {
    idx.iter()
        .map(|&i| {
            let j = if i < 0 { i + size as i64 } else { i };
            if (0..size as i64).contains(&j) {
                Ok(j)
            } else {
                Err(format!("index {i} is out of range for a dim of {size}"))
            }
        })
        .collect()
}

/// Indices computed by the graph as i64, negative ones counted from the end of a dim of
/// `size` (`where(i < 0, i + size, i)`); out-of-range ones are refused when the graph runs.
pub(super) fn wrap_at_run(b: &mut Builder, idx: &Value, size: usize) -> R<Value> {
    let i = b.cast(idx, DType::I64)?;
    let zero = b.scalar(0.0, DType::I64);
    let n = b.scalar(size as f64, DType::I64);
    let negative = b.binary(Op::Compare(kiln_kernels::ops::CmpOp::Lt), &i, &zero)?;
    let shifted = b.binary(Op::Add, &i, &n)?;
    b.op(Op::Where, &[&negative, &shifted, &i])
}

fn gather(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (x, idx) = (n.input(0)?, n.input(1)?);
    let dim = axis(n.attrs.int_or("axis", 0)?, x.rank())?;
    let count: usize = idx.shape().iter().product();
    let flat = match idx.known() {
        Some(v) => {
            let wrapped = wrap_indices(&known_i64s(v), x.shape()[dim])?;
            b.derived(
                OwnedOperand::dense(CpuStorage::I64(wrapped), &[count]),
                &[idx],
            )
        }
        None => {
            let i = wrap_at_run(b, idx, x.shape()[dim])?;
            b.reshape(&i, &[count])?
        }
    };
    let y = b.op(Op::IndexSelect(dim), &[x, &flat])?;
    let mut shape = x.shape()[..dim].to_vec();
    shape.extend_from_slice(idx.shape());
    shape.extend_from_slice(&x.shape()[dim + 1..]);
    one(b.reshape(&y, &shape)?)
}

fn gather_elements(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (x, idx) = (n.input(0)?, n.input(1)?);
    let dim = axis(n.attrs.int_or("axis", 0)?, x.rank())?;
    let index = match idx.known() {
        Some(v) => {
            let wrapped = wrap_indices(&known_i64s(v), x.shape()[dim])?;
            b.derived(
                OwnedOperand::dense(CpuStorage::I64(wrapped), idx.shape()),
                &[idx],
            )
        }
        None => wrap_at_run(b, idx, x.shape()[dim])?,
    };
    one(b.op(Op::Gather(dim), &[x, &index])?)
}

fn shape(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let r = x.rank() as i64;
    let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clampi(n.attrs.int_or("start", 0)?);
    let end = clampi(n.attrs.int_or("end", r)?);
    let dims: Vec<i64> = x.shape()[start..end.max(start)]
        .iter()
        .map(|&d| d as i64)
        .collect();
    let len = dims.len();
    one(b.dims_of(&dims, &[len]))
}

fn size(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let count = n.input(0)?.shape().iter().product::<usize>();
    one(b.dims_of(&[count as i64], &[]))
}

fn expand(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let target = sizes(&n.ints(1)?.ok_or("the shape input is missing")?, "shape")?;
    let out = broadcast(x.shape(), &target)?;
    if out == x.shape() {
        return one(x.clone());
    }
    one(b.op(Op::Expand(out.into_iter().collect()), &[x])?)
}

fn tile(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let reps = sizes(&n.ints(1)?.ok_or("repeats are missing")?, "repeats")?;
    if reps.len() != x.rank() {
        return Err(format!("repeats {reps:?} for rank {}", x.rank()));
    }
    let tiled: Vec<usize> = x
        .shape()
        .iter()
        .zip(&reps)
        .map(|(&d, &r)| d.saturating_mul(r))
        .collect();
    if kiln_kernels::shape::checked_numel(&tiled, x.dtype().size_in_bytes()).is_err() {
        return Err(format!("repeats {reps:?} make {tiled:?}, too large"));
    }
    // [d0, d1] → [1, d0, 1, d1] → [r0, d0, r1, d1] → [r0·d0, r1·d1]
    let inter: Vec<usize> = x.shape().iter().flat_map(|&d| [1, d]).collect();
    let wide: Vec<usize> = x
        .shape()
        .iter()
        .zip(&reps)
        .flat_map(|(&d, &r)| [r, d])
        .collect();
    let out: Vec<usize> = x.shape().iter().zip(&reps).map(|(&d, &r)| d * r).collect();
    let y = b.reshape(x, &inter)?;
    let y = b.op(Op::Expand(wide.into_iter().collect()), &[&y])?;
    let y = b.op(Op::Contiguous, &[&y])?;
    one(b.reshape(&y, &out)?)
}

fn pad(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let mode = n.attrs.string("mode")?.unwrap_or_else(|| "constant".into());
    if !matches!(mode.as_str(), "constant" | "reflect" | "edge" | "wrap") {
        return Err(format!(
            "mode {mode:?} (expected constant, reflect, edge or wrap)"
        ));
    }
    let pads = attr_or_input(n, "pads", 1)?.ok_or("pads are missing")?;
    // The padding value: input 2 (opset ≥ 11, known or computed by the graph), else the
    // `value` attribute.
    let fill = match n.opt(2) {
        Some(v) if v.shape().iter().product::<usize>() == 1 => {
            let v = b.cast(v, x.dtype())?;
            b.reshape(&v, &[])?
        }
        Some(v) => return Err(format!("constant_value of shape {:?}", v.shape())),
        None => b.scalar(n.attrs.float_or("value", 0.0)? as f64, x.dtype()),
    };
    let axes: Vec<usize> = match n.ints(3)? {
        Some(a) => a.iter().map(|&a| axis(a, x.rank())).collect::<R<_>>()?,
        None => (0..x.rank()).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(format!("pads {pads:?} for {} axes", axes.len()));
    }
    let mut y = x.clone();
    for (i, &dim) in axes.iter().enumerate() {
        let (before, after) = (pads[i], pads[i + axes.len()]);
        // Negative pads crop.
        let size = y.shape()[dim] as i64;
        let (cut_b, cut_a) = ((-before).max(0), (-after).max(0));
        if cut_b > 0 || cut_a > 0 {
            let len = size - cut_b - cut_a;
            if len < 0 {
                return Err(format!("pads {pads:?} crop more than dim {dim} holds"));
            }
            y = b.op(
                Op::Slice {
                    dim,
                    start: cut_b as usize,
                    len: len as usize,
                    step: 1,
                },
                &[&y],
            )?;
        }
        let (before, after) = (before.max(0) as usize, after.max(0) as usize);
        y = if mode == "constant" {
            pad_dim_with(b, &y, dim, before, after, &fill)?
        } else {
            let idx = border_indices(&mode, y.shape()[dim], before, after)?;
            let idx = b.constant(OwnedOperand::dense(
                CpuStorage::I64(idx.clone()),
                &[idx.len()],
            ));
            b.op(Op::IndexSelect(dim), &[&y, &idx])?
        };
    }
    one(y)
}

/// The input positions a dim of `n` padded by `before` and `after` reads in `mode`:
/// `reflect` mirrors without repeating the edge, `edge` repeats it, `wrap` continues from the
/// other end.
fn border_indices(mode: &str, n: usize, before: usize, after: usize) -> R<Vec<i64>> {
    if n == 0 && before + after > 0 {
        return Err(format!("{mode} padding of an empty dim"));
    }
    let n = n as i64;
    let reflect = |mut i: i64| {
        // Mirror about 0 and n − 1 until inside (a pad wider than the dim reflects again).
        if n == 1 {
            return 0;
        }
        let period = 2 * (n - 1);
        i = i.rem_euclid(period);
        if i >= n {
            period - i
        } else {
            i
        }
    };
    Ok((-(before as i64)..n + after as i64)
        .map(|i| match mode {
            "reflect" => reflect(i),
            "edge" => i.clamp(0, n - 1),
            _ => i.rem_euclid(n),
        })
        .collect())
}

fn trilu(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    if x.rank() < 2 {
        return Err(format!("input of rank {}", x.rank()));
    }
    let upper = n.attrs.int_or("upper", 1)? != 0;
    let k = n.ints(1)?.map_or(0, |v| v.first().copied().unwrap_or(0));
    let (rows, cols) = (x.shape()[x.rank() - 2], x.shape()[x.rank() - 1]);
    let keep = (0..rows * cols).map(|p| {
        let d = (p % cols) as i64 - (p / cols) as i64;
        if upper {
            d >= k
        } else {
            d <= k
        }
    });
    let mask = b.constant(OwnedOperand::dense(
        CpuStorage::Bool(keep.collect()),
        &[rows, cols],
    ));
    let zero = b.scalar(0.0, x.dtype());
    one(b.op(Op::Where, &[&mask, x, &zero])?)
}

fn constant(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let floats = |v: Vec<f32>, shape: &[usize]| OwnedOperand::dense(CpuStorage::F32(v), shape);
    let value = if let Some(t) = n.attrs.tensor("value")? {
        decode(t, None, "the value attribute").map_err(|e| e.to_string())?
    } else if n.attrs.has("value_float") {
        floats(vec![n.attrs.float_or("value_float", 0.0)?], &[])
    } else if let Some(v) = n.attrs.floats("value_floats")? {
        let len = v.len();
        floats(v, &[len])
    } else if let Some(v) = n.attrs.int("value_int")? {
        OwnedOperand::dense(CpuStorage::I64(vec![v]), &[])
    } else if let Some(v) = n.attrs.ints("value_ints")? {
        let len = v.len();
        OwnedOperand::dense(CpuStorage::I64(v), &[len])
    } else {
        return Err("no value (sparse and string constants are not supported)".into());
    };
    one(b.constant(value))
}

fn constant_of_shape(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let shape = sizes(&n.ints(0)?.ok_or("the shape input is missing")?, "shape")?;
    let fill = match n.attrs.tensor("value")? {
        Some(t) => decode(t, None, "the value attribute").map_err(|e| e.to_string())?,
        None => OwnedOperand::dense(CpuStorage::F32(vec![0.0]), &[1]),
    };
    if fill.operand().numel() != 1 {
        return Err("value must hold one element".into());
    }
    let scalar = b.constant(fill);
    let scalar = b.reshape(&scalar, &[])?;
    one(b.op(Op::Expand(shape.into_iter().collect()), &[&scalar])?)
}

fn range(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let (s, l, d) = (n.input(0)?, n.input(1)?, n.input(2)?);
    let dtype = s.dtype();
    let known = |k: usize, v: &Value| {
        let value = v
            .known()
            .map(crate::import::builder::known_f64s)
            .and_then(|v| v.first().copied());
        if value.is_none() {
            n.wanted.set(Some(k));
        }
        value.ok_or_else(|| "Range bounds must be known while importing".to_string())
    };
    let (start, limit, delta) = (known(0, s)?, known(1, l)?, known(2, d)?);
    if delta == 0.0 {
        return Err("a delta of 0".into());
    }
    let count = ((limit - start) / delta).ceil().max(0.0);
    if count > (1u64 << 31) as f64 {
        return Err(format!("{count} elements"));
    }
    let count = count as usize;
    let data = CpuStorage::from_f64s(dtype, (0..count).map(|i| start + i as f64 * delta));
    one(b.derived(OwnedOperand::dense(data, &[count]), &[s, l, d]))
}

/// `GatherND` without batch dims: the index tuples (the last dim of the indices, `k` long)
/// become row numbers of the data flattened over its first `k` dims, and one `IndexSelect`
/// picks them.
fn gather_nd(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    if n.attrs.int_or("batch_dims", 0)? != 0 {
        return Err("batch_dims other than 0 is not supported".into());
    }
    let (x, idx) = (n.input(0)?, n.input(1)?);
    let Some(&k) = idx.shape().last() else {
        return Err("indices of rank 0".into());
    };
    if k == 0 || k > x.rank() {
        return Err(format!("index tuples of {k} for data of rank {}", x.rank()));
    }
    let lead = &x.shape()[..k];
    let rows: usize = lead.iter().product();
    let mut flat_shape = vec![rows];
    flat_shape.extend_from_slice(&x.shape()[k..]);
    let flat = b.reshape(x, &flat_shape)?;
    // Row-major strides of the leading dims, and their sizes for negative indices.
    let strides: Vec<i64> = (0..k)
        .map(|i| lead[i + 1..].iter().product::<usize>() as i64)
        .collect();
    let sizes: Vec<i64> = lead.iter().map(|&d| d as i64).collect();
    let i = b.cast(idx, DType::I64)?;
    let zero = b.scalar(0.0, DType::I64);
    let negative = b.binary(Op::Compare(kiln_kernels::ops::CmpOp::Lt), &i, &zero)?;
    let size = b.i64s(&sizes);
    let shifted = b.binary(Op::Add, &i, &size)?;
    let i = b.op(Op::Where, &[&negative, &shifted, &i])?;
    let stride = b.i64s(&strides);
    let scaled = b.binary(Op::Mul, &i, &stride)?;
    let last: kiln_kernels::ops::Dims = [idx.rank() - 1].into_iter().collect();
    let row = b.op(
        Op::Sum {
            dims: last,
            keepdim: false,
        },
        &[&scaled],
    )?;
    let count: usize = row.shape().iter().product();
    let row_flat = b.reshape(&row, &[count])?;
    let y = b.op(Op::IndexSelect(0), &[&flat, &row_flat])?;
    let mut shape = idx.shape()[..idx.rank() - 1].to_vec();
    shape.extend_from_slice(&x.shape()[k..]);
    one(b.reshape(&y, &shape)?)
}
