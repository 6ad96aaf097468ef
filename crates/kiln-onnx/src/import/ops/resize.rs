//! `Resize` (and the older `Upsample`): nearest, linear and cubic interpolation with every
//! coordinate transformation mode, antialiasing, `exclude_outside`, crop-and-resize regions,
//! axes and aspect-ratio policies.
//!
//! Interpolation is separable, and with the scales or sizes known while importing each axis's
//! weights are constants: an output position reads a few input positions with fixed
//! coefficients. So each resized axis becomes one gather (nearest neighbour, exact for every
//! dtype) or one product with a constant `[in, out]` weight matrix (linear, cubic), the
//! coefficients computed as ONNX's reference computes them.

use super::{axis, one, NodeIn, OpDef};
use crate::import::builder::{Builder, Value, R};
use kiln_kernels::ops::Op;
use kiln_kernels::storage::CpuStorage;
use kiln_kernels::{DType, OwnedOperand};

const ATTRS: &[&str] = &[
    "mode",
    "coordinate_transformation_mode",
    "cubic_coeff_a",
    "exclude_outside",
    "extrapolation_value",
    "nearest_mode",
    "antialias",
    "axes",
    "keep_aspect_ratio_policy",
];

pub(super) const OPS: &[OpDef] = &[
    def!("Resize", resize, ATTRS),
    def!("Upsample", resize, ["mode"]),
];

/// How output positions map to input coordinates.
#[derive(Clone, Copy, PartialEq)]
enum Coordinates {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfCropAndResize,
}

/// The interpolation and its parameters.
#[derive(Clone, Copy)]
enum Kernel {
    /// Nearest neighbour with its rounding rule.
    Nearest(Rounding),
    Linear {
        antialias: bool,
    },
    Cubic {
        a: f64,
        antialias: bool,
    },
}

#[derive(Clone, Copy)]
enum Rounding {
    PreferFloor,
    PreferCeil,
    Floor,
    Ceil,
}

impl Kernel {
    /// The coefficients of the neighbours of a position whose fractional part is `ratio`
    /// (1 at an integer), for an axis scaled by `scale`.
    fn coeffs(self, ratio: f64, scale: f64) -> Vec<f64> {
        match self {
            Kernel::Nearest(r) => {
                if ratio.fract() == 0.0 {
                    return vec![0.0, 1.0];
                }
                let up = match r {
                    Rounding::PreferFloor => ratio > 0.5,
                    Rounding::PreferCeil => ratio >= 0.5,
                    Rounding::Floor => false,
                    Rounding::Ceil => true,
                };
                if up {
                    vec![0.0, 1.0]
                } else {
                    vec![1.0, 0.0]
                }
            }
            Kernel::Linear { antialias: false } => vec![1.0 - ratio, ratio],
            Kernel::Linear { antialias: true } => {
                let s = scale.min(1.0);
                let start = (-1.0 / s).floor() as i64 + 1;
                let footprint = 2 - 2 * start;
                let c: Vec<f64> = (start..start + footprint)
                    .map(|i| (1.0 - ((i as f64 - ratio) * s).abs()).clamp(0.0, 1.0))
                    .collect();
                normalized(c)
            }
            Kernel::Cubic {
                a,
                antialias: false,
            } => {
                let r = ratio;
                let q = 1.0 - r;
                vec![
                    ((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
                    ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
                    ((a + 2.0) * q - (a + 3.0)) * q * q + 1.0,
                    ((a * (q + 1.0) - 5.0 * a) * (q + 1.0) + 8.0 * a) * (q + 1.0) - 4.0 * a,
                ]
            }
            Kernel::Cubic { a, antialias: true } => {
                let s = scale.min(1.0);
                let f = |x: f64| {
                    let x = x.abs();
                    let (x2, x3) = (x * x, x * x * x);
                    if x <= 1.0 {
                        (a + 2.0) * x3 - (a + 3.0) * x2 + 1.0
                    } else if x < 2.0 {
                        a * x3 - 5.0 * a * x2 + 8.0 * a * x - 4.0 * a
                    } else {
                        0.0
                    }
                };
                let start = (-2.0 / s).floor() as i64 + 1;
                let end = 2 - start;
                normalized((start..end).map(|i| f(s * (i as f64 - ratio))).collect())
            }
        }
    }
}

fn normalized(c: Vec<f64>) -> Vec<f64> {
    let sum: f64 = c.iter().sum();
    c.into_iter().map(|v| v / sum).collect()
}

/// One resized axis: per output position, its (input position, weight) pairs and whether
/// it lies outside a crop region (then it takes the extrapolation value).
struct AxisWeights {
    rows: Vec<Vec<(usize, f64)>>,
    outside: Vec<bool>,
}

/// The weights of one axis of `input` positions resized to `output` by `scale`, as ONNX's
/// reference `_interpolate_1d_along_axis` computes them.
fn axis_weights(
    input: usize,
    output: usize,
    scale: f64,
    kernel: Kernel,
    coords: Coordinates,
    roi: (f64, f64),
    exclude_outside: bool,
) -> AxisWeights {
    let width = scale * input as f64;
    let mut rows = Vec::with_capacity(output);
    let mut outside = Vec::with_capacity(output);
    for y in 0..output {
        let y = y as f64;
        let x = match coords {
            Coordinates::AlignCorners if width == 1.0 => 0.0,
            Coordinates::AlignCorners => y * (input as f64 - 1.0) / (width - 1.0),
            Coordinates::Asymmetric => y / scale,
            Coordinates::TfCropAndResize => {
                let span = (roi.1 - roi.0) * (input as f64 - 1.0);
                let x = if width == 1.0 {
                    span / 2.0
                } else {
                    y * span / (width - 1.0)
                };
                x + roi.0 * (input as f64 - 1.0)
            }
            Coordinates::PytorchHalfPixel if width == 1.0 => -0.5,
            Coordinates::PytorchHalfPixel | Coordinates::HalfPixel => (y + 0.5) / scale - 0.5,
            Coordinates::HalfPixelSymmetric => {
                let adjustment = output as f64 / width;
                let offset = input as f64 / 2.0 * (1.0 - adjustment);
                offset + (y + 0.5) / scale - 0.5
            }
        };
        outside.push(coords == Coordinates::TfCropAndResize && (x < 0.0 || x > input as f64 - 1.0));
        let ratio = if x == x.floor() { 1.0 } else { x - x.floor() };
        let mut c = kernel.coeffs(ratio, scale);
        let n = c.len() as i64;
        let pad = (n + 1) / 2;
        let xp = x + pad as f64;
        let p = xp.floor() as i64;
        let frac = xp - p as f64;
        let off = if n % 2 == 0 {
            if frac == 0.0 {
                -(n / 2)
            } else {
                -(n / 2) + 1
            }
        } else {
            let base = -((n - 1) / 2);
            if frac <= 0.5 {
                base
            } else {
                base + 1
            }
        };
        let first = p + off - pad;
        let idx: Vec<i64> = (0..n).map(|k| first + k).collect();
        if exclude_outside {
            for (w, &i) in c.iter_mut().zip(&idx) {
                if i < 0 || i >= input as i64 {
                    *w = 0.0;
                }
            }
            let sum: f64 = c.iter().sum();
            let sum = if sum == 0.0 { 1.0 } else { sum };
            c.iter_mut().for_each(|w| *w /= sum);
        }
        rows.push(
            idx.iter()
                .zip(c)
                .map(|(&i, w)| (i.clamp(0, input as i64 - 1) as usize, w))
                .collect(),
        );
    }
    AxisWeights { rows, outside }
}

/// `x` resized along `dim` by `w`.
fn apply_axis(b: &mut Builder, x: &Value, dim: usize, w: &AxisWeights, fill: f64) -> R<Value> {
    let input = x.shape()[dim];
    let output = w.rows.len();
    let any_outside = w.outside.iter().any(|&o| o);
    // Nearest neighbour (one input with weight 1 per output): a gather, exact in any dtype.
    let picks: Option<Vec<i64>> = w
        .rows
        .iter()
        .map(|r| {
            let mut nz = r.iter().filter(|(_, c)| *c != 0.0);
            match (nz.next(), nz.next()) {
                (Some(&(i, 1.0)), None) => Some(i as i64),
                _ => None,
            }
        })
        .collect();
    let dtype = x.dtype();
    let y = match picks {
        Some(p) if !any_outside => {
            let idx = b.constant(OwnedOperand::dense(CpuStorage::I64(p), &[output]));
            return b.op(Op::IndexSelect(dim), &[x, &idx]);
        }
        _ => {
            // A product with the [in, out] weights, over the axis moved last.
            let work = if dtype.is_float() { dtype } else { DType::F64 };
            let mut m = vec![0.0; input * output];
            for (o, row) in w.rows.iter().enumerate() {
                for &(i, c) in row {
                    m[i * output + o] += c;
                }
            }
            let m = b.constant(OwnedOperand::dense(
                CpuStorage::from_f64s(work, m.into_iter()),
                &[input, output],
            ));
            let r = x.rank();
            let mut perm: Vec<usize> = (0..r).filter(|&d| d != dim).collect();
            perm.push(dim);
            let xf = b.cast(x, work)?;
            let t = b.permute(&xf, &perm)?;
            let t = b.op(Op::Matmul, &[&t, &m])?;
            let mut back = vec![0; r];
            for (k, &d) in perm.iter().enumerate() {
                back[d] = k;
            }
            b.permute(&t, &back)?
        }
    };
    let y = if any_outside {
        let mut shape = vec![1; x.rank()];
        shape[dim] = output;
        let mask = b.constant(OwnedOperand::dense(
            CpuStorage::Bool(w.outside.clone()),
            &shape,
        ));
        let e = b.scalar(fill, y.dtype());
        b.op(Op::Where, &[&mask, &e, &y])?
    } else {
        y
    };
    if dtype.is_float() {
        return b.cast(&y, dtype);
    }
    // Integers: saturated to the type's range, then truncated as NumPy's cast.
    let (lo, hi) = super::int_limits(dtype).expect("an integer dtype");
    let y = b.unary(
        &y,
        kiln_kernels::ops::UnaryOp::Clamp {
            min: Some(lo),
            max: Some(hi),
        },
    )?;
    b.cast(&y, dtype)
}

fn resize(b: &mut Builder, n: &NodeIn) -> R<Vec<Value>> {
    let x = n.input(0)?;
    let r = x.rank();
    let old = n.opset < 11;
    let mode = n.attrs.string("mode")?.unwrap_or_else(|| "nearest".into());
    let a = n.attrs.float_or("cubic_coeff_a", -0.75)? as f64;
    let antialias = n.attrs.int_or("antialias", 0)? != 0;
    let kernel = match mode.as_str() {
        "nearest" if antialias => return Err("antialias with mode nearest".into()),
        "nearest" => Kernel::Nearest(
            match n
                .attrs
                .string("nearest_mode")?
                .as_deref()
                // Upsample and Resize-10 take the floor (their only rule).
                .unwrap_or(if old { "floor" } else { "round_prefer_floor" })
            {
                "round_prefer_floor" => Rounding::PreferFloor,
                "round_prefer_ceil" => Rounding::PreferCeil,
                "floor" => Rounding::Floor,
                "ceil" => Rounding::Ceil,
                m => return Err(format!("nearest_mode={m:?}")),
            },
        ),
        "linear" | "bilinear" | "trilinear" => Kernel::Linear { antialias },
        "cubic" | "bicubic" => Kernel::Cubic { a, antialias },
        m => return Err(format!("mode={m:?} (expected nearest, linear or cubic)")),
    };
    let default_coords = if old { "asymmetric" } else { "half_pixel" };
    let coords = match n
        .attrs
        .string("coordinate_transformation_mode")?
        .as_deref()
        .unwrap_or(default_coords)
    {
        "half_pixel" => Coordinates::HalfPixel,
        "half_pixel_symmetric" => Coordinates::HalfPixelSymmetric,
        "pytorch_half_pixel" => Coordinates::PytorchHalfPixel,
        "align_corners" => Coordinates::AlignCorners,
        "asymmetric" => Coordinates::Asymmetric,
        "tf_crop_and_resize" => Coordinates::TfCropAndResize,
        m => return Err(format!("coordinate_transformation_mode={m:?}")),
    };
    let axes: Vec<usize> = match n.attrs.ints("axes")? {
        Some(v) => v.iter().map(|&d| axis(d, r)).collect::<R<_>>()?,
        None => (0..r).collect(),
    };
    let (roi, scales, sizes) = if old {
        (None, n.floats(1)?, None)
    } else {
        (
            n.floats(1)?,
            n.floats(2)?,
            n.opt(3)
                .filter(|v| v.shape().iter().product::<usize>() > 0)
                .map(|_| n.ints(3))
                .transpose()?
                .flatten(),
        )
    };
    let inputs: Vec<f64> = x.shape().iter().map(|&d| d as f64).collect();
    let mut scale = vec![1.0; r];
    let mut out: Vec<usize> = x.shape().to_vec();
    match (scales, sizes) {
        (Some(s), None) => {
            if s.len() != axes.len() {
                return Err(format!("{} scales for {} axes", s.len(), axes.len()));
            }
            for (&d, &v) in axes.iter().zip(&s) {
                if v <= 0.0 {
                    return Err(format!("scale {v} is not positive"));
                }
                scale[d] = v;
                out[d] = (v * inputs[d]) as usize;
            }
        }
        (None, Some(s)) => {
            if s.len() != axes.len() {
                return Err(format!("{} sizes for {} axes", s.len(), axes.len()));
            }
            for (&d, &v) in axes.iter().zip(&s) {
                out[d] = usize::try_from(v).map_err(|_| format!("negative size {v}"))?;
                scale[d] = out[d] as f64 / inputs[d];
            }
            let policy = n
                .attrs
                .string("keep_aspect_ratio_policy")?
                .unwrap_or_else(|| "stretch".into());
            let pick = match policy.as_str() {
                "stretch" => None,
                "not_larger" => Some(f64::min as fn(f64, f64) -> f64),
                "not_smaller" => Some(f64::max as fn(f64, f64) -> f64),
                p => return Err(format!("keep_aspect_ratio_policy={p:?}")),
            };
            if let Some(pick) = pick {
                let s = axes.iter().map(|&d| scale[d]).reduce(pick).unwrap_or(1.0);
                for &d in &axes {
                    scale[d] = s;
                    out[d] = (s * inputs[d] + 0.5) as usize;
                }
            }
        }
        (Some(_), Some(_)) => return Err("both scales and sizes are given".into()),
        (None, None) => return Err("neither scales nor sizes is given".into()),
    }
    let roi_of = |d: usize| -> R<(f64, f64)> {
        match &roi {
            None => Ok((0.0, 1.0)),
            Some(v) if v.len() == 2 * axes.len() => {
                let k = axes.iter().position(|&a| a == d).expect("a resized axis");
                Ok((v[k], v[axes.len() + k]))
            }
            Some(v) => Err(format!("roi of {} values for {} axes", v.len(), axes.len())),
        }
    };
    if coords == Coordinates::TfCropAndResize && roi.is_none() {
        return Err("tf_crop_and_resize needs roi".into());
    }
    let fill = n.attrs.float_or("extrapolation_value", 0.0)? as f64;
    let exclude = n.attrs.int_or("exclude_outside", 0)? != 0;
    let mut y = x.clone();
    for &d in &axes {
        let region = roi_of(d)?;
        let same = (scale[d] - 1.0).abs() < 1e-9
            && out[d] == x.shape()[d]
            && (coords != Coordinates::TfCropAndResize || region == (0.0, 1.0));
        if same {
            continue;
        }
        if x.shape()[d] == 0 {
            return Err(format!("axis {d} is empty"));
        }
        let w = axis_weights(
            x.shape()[d],
            out[d],
            scale[d],
            kernel,
            coords,
            region,
            exclude,
        );
        y = apply_axis(b, &y, d, &w, fill)?;
    }
    one(y)
}
