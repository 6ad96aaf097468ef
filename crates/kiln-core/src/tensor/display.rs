//! PyTorch-style printing: `tensor([[0.1000, 2.0000]], dtype=f32)`, eliding the middle of
//! large tensors.

use super::Tensor;
use std::fmt;

/// Above this many elements, show only `EDGE` items at each end of every dim.
const THRESHOLD: usize = 1000;
const EDGE: usize = 3;

enum Style {
    Int,
    /// All finite values are whole numbers: `1.`, `-2.`
    WholeFloat,
    Fixed,
    Sci,
    Bool,
}

fn style(t: &Tensor, vals: &[f64]) -> Style {
    if t.dtype() == crate::dtype::DType::Bool {
        return Style::Bool;
    }
    if !t.dtype().is_float() {
        return Style::Int;
    }
    let finite: Vec<f64> = vals.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.iter().all(|v| v.fract() == 0.0) {
        let max = finite.iter().fold(0f64, |m, v| m.max(v.abs()));
        return if max >= 1e8 {
            Style::Sci
        } else {
            Style::WholeFloat
        };
    }
    let nz: Vec<f64> = finite
        .iter()
        .map(|v| v.abs())
        .filter(|&v| v > 0.0)
        .collect();
    let max = nz.iter().fold(0f64, |m, &v| m.max(v));
    let min = nz.iter().fold(f64::INFINITY, |m, &v| m.min(v));
    if max >= 1e8 || (min < 1e-4 && min > 0.0) || (min > 0.0 && max / min > 1e3) {
        Style::Sci
    } else {
        Style::Fixed
    }
}

fn fmt_val(v: f64, s: &Style) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    match s {
        Style::Bool => (if v != 0.0 { "true" } else { "false" }).into(),
        Style::Int => format!("{}", v as i64),
        Style::WholeFloat => format!("{v:.0}."),
        Style::Fixed => format!("{v:.4}"),
        Style::Sci => {
            // PyTorch writes a signed two-digit exponent: 1.0000e-05, 2.5000e+02.
            let s = format!("{v:.4e}");
            let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
            let exp: i32 = exp.parse().unwrap_or(0);
            format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
        }
    }
}

/// Row-major positions shown for `shape` (with `None` where an ellipsis goes).
fn shown(size: usize, elide: bool) -> Vec<Option<usize>> {
    if elide && size > 2 * EDGE {
        (0..EDGE)
            .map(Some)
            .chain([None])
            .chain((size - EDGE..size).map(Some))
            .collect()
    } else {
        (0..size).map(Some).collect()
    }
}

#[allow(clippy::too_many_arguments)]
fn write_dim(
    out: &mut String,
    vals: &[String],
    shape: &[usize],
    base: usize,
    strides: &[usize],
    dim: usize,
    indent: usize,
    cell: &dyn Fn(&str) -> String,
    elide: bool,
) {
    out.push('[');
    let last = dim + 1 == shape.len();
    let items = shown(shape[dim], elide);
    for (j, item) in items.iter().enumerate() {
        if j > 0 {
            if last {
                out.push_str(", ");
            } else {
                out.push(',');
                out.push_str(&"\n".repeat(shape.len() - dim - 1));
                out.push_str(&" ".repeat(indent + 1));
            }
        }
        match item {
            None => out.push_str("..."),
            Some(i) => {
                let b = base + i * strides[dim];
                if last {
                    out.push_str(&cell(&vals[b]));
                } else {
                    write_dim(
                        out,
                        vals,
                        shape,
                        b,
                        strides,
                        dim + 1,
                        indent + 1,
                        cell,
                        elide,
                    );
                }
            }
        }
    }
    out.push(']');
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(id) = crate::trace::tracer_id(self.storage()) {
            // No values while tracing; say which graph value it is instead.
            return write!(
                f,
                "tensor(<traced %{id}>, shape={:?}, dtype={})",
                self.shape(),
                self.dtype()
            );
        }
        let vals = self.to_f64_vec();
        let elide = vals.len() > THRESHOLD;
        let st = style(self, &vals);
        // Integers print from their exact values (f64 loses digits above 2⁵³).
        let texts: Vec<String> = if matches!(st, Style::Int) {
            self.to_vec::<i64>().iter().map(|v| v.to_string()).collect()
        } else {
            vals.iter().map(|&v| fmt_val(v, &st)).collect()
        };
        let width = texts.iter().map(|s| s.len()).max().unwrap_or(1);
        let cell = |s: &str| format!("{s:>width$}");
        let mut out = String::from("tensor(");
        if self.rank() == 0 {
            out.push_str(&texts[0]);
        } else {
            let strides = crate::layout::contiguous_strides(self.shape());
            write_dim(
                &mut out,
                &texts,
                self.shape(),
                0,
                &strides,
                0,
                7,
                &cell,
                elide,
            );
        }
        out.push_str(&format!(", dtype={}", self.dtype()));
        if self.grad_fn().is_some() {
            out.push_str(&format!(
                ", grad_fn=<{}>",
                self.grad_fn().unwrap().op().name()
            ));
        } else if self.requires_grad() {
            out.push_str(", requires_grad=true");
        }
        out.push(')');
        f.write_str(&out)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor[shape={:?}, dtype={}, device={}{}]",
            self.shape(),
            self.dtype(),
            self.device(),
            if self.requires_grad() {
                ", requires_grad"
            } else {
                ""
            }
        )
    }
}
