//! Spectral ops: `DFT` (forward, inverse, one-sided, the inverse of a one-sided spectrum),
//! `STFT`, and the Hann, Hamming and Blackman windows. A transform of known length is a
//! product with constant cosine and sine matrices (computed in f64), so it runs on Kiln's
//! matrix product and has a gradient.

use super::{axis, one, NodeIn, OpDef};
use crate::import::builder::{Builder, Value, R};
use crate::import::tensor::kiln_dtype;
use kiln_kernels::ops::Op;
use kiln_kernels::storage::CpuStorage;
use kiln_kernels::{DType, OwnedOperand};
use std::f64::consts::PI;

pub(super) const OPS: &[OpDef] = &[
    def!("DFT", dft, ["axis", "inverse", "onesided"]),
    def!("STFT", stft, ["onesided"]),
    def!("HannWindow", |b, n| window(b, n, &[0.5, 0.5]), WINDOW),
    def!(
        "HammingWindow",
        |b, n| window(b, n, &[25.0 / 46.0, 21.0 / 46.0]),
        WINDOW
    ),
    def!(
        "BlackmanWindow",
        |b, n| window(b, n, &[0.42, 0.5, 0.08]),
        WINDOW
    ),
];

const WINDOW: &[&str] = &["output_datatype", "periodic"];

/// A `[rows, cols]` constant of `f(row, col)` in `dtype`.
fn matrix(
    b: &Builder,
    rows: usize,
    cols: usize,
    dtype: DType,
    f: impl Fn(usize, usize) -> f64,
) -> Value {
    let v = (0..rows * cols).map(|p| f(p / cols, p % cols));
    b.constant(OwnedOperand::dense(
        CpuStorage::from_f64s(dtype, v),
        &[rows, cols],
    ))
}

/// `x` ([…, n] along its last dim) times a `[n, k]` matrix, along `dim` of `v`'s shape.
fn along(b: &mut Builder, v: &Value, dim: usize, m: &Value) -> R<Value> {
    let r = v.rank();
    let mut perm: Vec<usize> = (0..r).filter(|&d| d != dim).collect();
    perm.push(dim);
    let t = b.permute(v, &perm)?;
    let y = b.op(Op::Matmul, &[&t, m])?;
    let mut back = vec![0; r];
    for (k, &d) in perm.iter().enumerate() {
        back[d] = k;
    }
    b.permute(&y, &back)
}

/// The real and imaginary parts of a `[…, 1 | 2]` signal, the last dim dropped.
fn parts(b: &mut Builder, x: &Value) -> R<(Value, Option<Value>)> {
    let r = x.rank();
    let shape = x.shape()[..r - 1].to_vec();
    let part = |b: &mut Builder, k: usize| -> R<Value> {
        let s = b.op(
            Op::Slice {
                dim: r - 1,
                start: k,
                len: 1,
                step: 1,
            },
            &[x],
        )?;
        b.reshape(&s, &shape)
    };
    match x.shape()[r - 1] {
        1 => Ok((part(b, 0)?, None)),
        2 => Ok((part(b, 0)?, Some(part(b, 1)?))),
        c => Err(format!("last dim {c}: expected 1 (real) or 2 (complex)")),
    }
}

/// `re` and `im` stacked as a last dim of 2.
fn complex(b: &mut Builder, re: &Value, im: &Value) -> R<Value> {
    let mut s = re.shape().to_vec();
    s.push(1);
    let (re, im) = (b.reshape(re, &s)?, b.reshape(im, &s)?);
    b.op(Op::Cat(s.len() - 1), &[&re, &im])
}

/// The DFT of `(re, im)` along `dim` (of length `n_in`, cut or zero-padded to `len`),
/// `bins` outputs, inverse or forward.
fn transform(
    b: &mut Builder,
    (re, im): (&Value, Option<&Value>),
    dim: usize,
    len: usize,
    bins: usize,
    inverse: bool,
) -> R<(Value, Value)> {
    let n_in = re.shape()[dim];
    let d = re.dtype();
    let (sign, scale) = if inverse {
        (1.0, 1.0 / len as f64)
    } else {
        (-1.0, 1.0)
    };
    // Entry [n, k]: e^{±2πi·kn/len}, zero for the inputs past len.
    let angle = |n: usize, k: usize| 2.0 * PI * ((k * n) % len) as f64 / len as f64;
    let live = |n: usize| (n < len) as u8 as f64;
    let cos = matrix(b, n_in, bins, d, |n, k| live(n) * scale * angle(n, k).cos());
    let sin = matrix(b, n_in, bins, d, |n, k| {
        live(n) * scale * sign * angle(n, k).sin()
    });
    // (a + ib)(c + is) = (ac − bs) + i(as + bc)
    let ac = along(b, re, dim, &cos)?;
    let a_s = along(b, re, dim, &sin)?;
    Ok(match im {
        None => (ac, a_s),
        Some(im) => {
            let bs = along(b, im, dim, &sin)?;
            let bc = along(b, im, dim, &cos)?;
            (b.binary(Op::Sub, &ac, &bs)?, b.binary(Op::Add, &a_s, &bc)?)
        }
    })
}

fn dft(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    if !x.dtype().is_float() || x.rank() < 2 {
        return Err(format!(
            "input {:?} {}; expected […, 1 | 2] floats",
            x.shape(),
            x.dtype()
        ));
    }
    let r = x.rank();
    let a = if n.opset >= 20 {
        n.ints(2)?.and_then(|v| v.first().copied()).unwrap_or(-2)
    } else {
        n.attrs.int_or("axis", 1)?
    };
    let dim = axis(a, r)?;
    if dim == r - 1 {
        return Err("the axis is the real/imaginary dim".into());
    }
    let inverse = n.attrs.int_or("inverse", 0)? != 0;
    let onesided = n.attrs.int_or("onesided", 0)? != 0;
    let n_in = x.shape()[dim];
    let len = match n.ints(1)?.and_then(|v| v.first().copied()) {
        Some(l) if l > 0 => l as usize,
        Some(l) => return Err(format!("dft_length {l}")),
        None if inverse && onesided => 2 * n_in.saturating_sub(1),
        None => n_in,
    };
    if len == 0 {
        return Err("a transform of length 0".into());
    }
    let (re, im) = parts(b, x)?;
    if inverse && onesided {
        // The inverse of a one-sided spectrum: bins 0..=len/2, each but the first (and a
        // Nyquist bin) standing for itself and its conjugate; the result is real.
        let half = len / 2 + 1;
        let d = re.dtype();
        let weight = |k: usize| {
            if k == 0 || (len.is_multiple_of(2) && k == len / 2) {
                1.0
            } else {
                2.0
            }
        };
        let angle = |k: usize, t: usize| 2.0 * PI * ((k * t) % len) as f64 / len as f64;
        let live = |k: usize| (k < half) as u8 as f64;
        let s = 1.0 / len as f64;
        let cos = matrix(b, n_in, len, d, |k, t| {
            live(k) * s * weight(k) * angle(k, t).cos()
        });
        let sin = matrix(b, n_in, len, d, |k, t| {
            -live(k) * s * weight(k) * angle(k, t).sin()
        });
        let mut y = along(b, &re, dim, &cos)?;
        if let Some(im) = &im {
            let t = along(b, im, dim, &sin)?;
            y = b.binary(Op::Add, &y, &t)?;
        }
        let mut shape = y.shape().to_vec();
        shape.push(1);
        return one(b.reshape(&y, &shape)?);
    }
    let bins = if onesided && !inverse {
        len / 2 + 1
    } else {
        len
    };
    let (yr, yi) = transform(b, (&re, im.as_ref()), dim, len, bins, inverse)?;
    one(complex(b, &yr, &yi)?)
}

fn stft(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let signal = n.input(0)?;
    if signal.rank() != 3 || !signal.dtype().is_float() {
        return Err(format!(
            "signal {:?}; expected [batch, length, 1 | 2]",
            signal.shape()
        ));
    }
    let step = match n.ints(1)?.as_deref() {
        Some([s]) if *s > 0 => *s as usize,
        s => return Err(format!("frame_step {s:?}")),
    };
    let win = n.opt(2);
    let frame = match (n.ints(3)?.and_then(|v| v.first().copied()), win) {
        (Some(l), _) if l > 0 => l as usize,
        (None, Some(w)) => w.shape().iter().product(),
        (l, _) => return Err(format!("frame_length {l:?} and no window")),
    };
    let onesided = n.attrs.int_or("onesided", 1)? != 0;
    let (batch, length) = (signal.shape()[0], signal.shape()[1]);
    if frame > length {
        return Err(format!("frames of {frame} from a signal of {length}"));
    }
    let frames = (length - frame) / step + 1;
    // The frames gathered along the length: [batch, frames·frame, 1|2] → [batch, frames, frame, c].
    let idx: Vec<i64> = (0..frames)
        .flat_map(|f| (0..frame).map(move |t| (f * step + t) as i64))
        .collect();
    let idx = b.constant(OwnedOperand::dense(CpuStorage::I64(idx), &[frames * frame]));
    let picked = b.op(Op::IndexSelect(1), &[signal, &idx])?;
    let c = signal.shape()[2];
    let framed = b.reshape(&picked, &[batch, frames, frame, c])?;
    let (mut re, mut im) = parts(b, &framed)?;
    if let Some(w) = win {
        let w = b.reshape(w, &[frame])?;
        let w = b.cast(&w, re.dtype())?;
        re = b.binary(Op::Mul, &re, &w)?;
        im = match im {
            Some(i) => Some(b.binary(Op::Mul, &i, &w)?),
            None => None,
        };
    }
    let bins = if onesided { frame / 2 + 1 } else { frame };
    let (yr, yi) = transform(b, (&re, im.as_ref()), 2, frame, bins, false)?;
    one(complex(b, &yr, &yi)?)
}

/// `Σ_j (−1)^j a_j cos(2πjn/N)` over `size` points, N = size (periodic) or size − 1.
fn window(b: &mut Builder, n: &NodeIn, a: &[f64]) -> R<Vec<Value>> {
    let size = match n.ints(0)?.as_deref() {
        Some([s]) if *s > 0 => *s as usize,
        s => return Err(format!("size {s:?}")),
    };
    let periodic = n.attrs.int_or("periodic", 1)? != 0;
    let dtype = match n.attrs.int("output_datatype")? {
        Some(t) => kiln_dtype(t as i32, "output_datatype").map_err(|e| e.to_string())?,
        None => DType::F32,
    };
    let span = if periodic {
        size
    } else {
        size.saturating_sub(1)
    }
    .max(1) as f64;
    let v = (0..size).map(|i| {
        a.iter()
            .enumerate()
            .map(|(j, &c)| {
                let s = if j % 2 == 0 { 1.0 } else { -1.0 };
                s * c * (2.0 * PI * j as f64 * i as f64 / span).cos()
            })
            .sum::<f64>()
    });
    one(b.constant(OwnedOperand::dense(
        CpuStorage::from_f64s(dtype, v),
        &[size],
    )))
}
