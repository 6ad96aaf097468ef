//! Kernel of [`Op::Fused`]: runs a fused elementwise program tile by tile, so every
//! intermediate of the chain lives in a small buffer in L1 instead of a full-size tensor.

use super::threads;
use crate::ops::fused::{FusedProgram, FusedStep};
use crate::ops::{CmpOp, Op};
use crate::storage::CpuStorage;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Elements per tile: registers of this many f32 stay in L1 for programs of ~20 steps.
const TILE: usize = 512;

/// One input, readable as f32 at any output position.
struct Source<'a> {
    data: Data<'a>,
    offset: usize,
    /// Strides against the output shape (0 along broadcast dims).
    strides: Vec<usize>,
    /// Dense and of the output shape: tiles are plain sub-slices.
    dense: bool,
}

enum Data<'a> {
    F32(&'a [f32]),
    Bool(&'a [bool]),
}

/// Runs `program` over `inputs` into a new f32 buffer of `shape`. Never inlined: the eager
/// kernel dispatch stays small.
#[inline(never)]
pub fn fused(program: &FusedProgram, inputs: &[&Tensor], shape: &[usize]) -> CpuStorage {
    let guards: Vec<_> = inputs.iter().map(|t| t.storage().read()).collect();
    let sources: Vec<Source<'_>> = inputs
        .iter()
        .zip(&guards)
        .map(|(t, g)| {
            let layout = t.layout().broadcast_to(shape);
            let dense = t.shape() == shape && t.is_contiguous();
            let data = match &**g {
                CpuStorage::F32(v) => Data::F32(v),
                CpuStorage::Bool(v) => Data::Bool(v),
                other => unreachable!("fused: input dtype {}", other.dtype()),
            };
            Source {
                data,
                offset: layout.offset,
                strides: layout.strides.to_vec(),
                dense,
            }
        })
        .collect();
    let numel: usize = shape.iter().product();
    let mut out: Vec<f32> = super::pool::take(numel);
    // SAFETY: every element is written below before the buffer is read.
    #[allow(clippy::uninit_vec)]
    unsafe {
        out.set_len(numel)
    };
    let run_tiles = |start: usize, chunk: &mut [f32]| {
        let n_regs = program.n_inputs as usize + program.steps.len();
        let mut regs = vec![[0f32; TILE]; n_regs];
        for (k, tile) in chunk.chunks_mut(TILE).enumerate() {
            run_tile(program, &sources, shape, start + k * TILE, tile, &mut regs);
        }
    };
    if numel >= threads::GRAIN {
        // Chunks of whole tiles, a few per thread for balance.
        let per = (numel / (threads::num_threads() * 4)).div_ceil(TILE).max(1) * TILE;
        threads::install(|| {
            out.par_chunks_mut(per)
                .enumerate()
                .for_each(|(i, c)| run_tiles(i * per, c))
        });
    } else {
        run_tiles(0, &mut out);
    }
    CpuStorage::F32(out)
}

fn run_tile(
    program: &FusedProgram,
    sources: &[Source<'_>],
    shape: &[usize],
    start: usize,
    dst: &mut [f32],
    regs: &mut [[f32; TILE]],
) {
    let len = dst.len();
    for (r, src) in sources.iter().enumerate() {
        load(src, shape, start, &mut regs[r][..len]);
    }
    let base = program.n_inputs as usize;
    for (k, step) in program.steps.iter().enumerate() {
        let (done, rest) = regs.split_at_mut(base + k);
        let out = &mut rest[0][..len];
        match step {
            FusedStep::Unary { op, x } => unary(op, &done[*x as usize][..len], out),
            FusedStep::Binary { op, a, b } => binary(
                op,
                &done[*a as usize][..len],
                &done[*b as usize][..len],
                out,
            ),
            FusedStep::Where { c, a, b } => {
                let (c, a, b) = (&done[*c as usize], &done[*a as usize], &done[*b as usize]);
                for i in 0..len {
                    out[i] = if c[i] != 0.0 { a[i] } else { b[i] };
                }
            }
            FusedStep::Copy { x } => out.copy_from_slice(&done[*x as usize][..len]),
        }
    }
    dst.copy_from_slice(&regs[base + program.steps.len() - 1][..len]);
}

/// Reads the source's values at output positions `start..start + dst.len()`.
fn load(src: &Source<'_>, shape: &[usize], start: usize, dst: &mut [f32]) {
    if src.dense {
        let at = src.offset + start;
        let n = dst.len();
        match src.data {
            Data::F32(v) => dst.copy_from_slice(&v[at..at + n]),
            Data::Bool(v) => {
                for (d, &b) in dst.iter_mut().zip(&v[at..at + n]) {
                    *d = b as u8 as f32;
                }
            }
        }
        return;
    }
    // Walk the output index space from `start`, innermost dim fastest.
    let rank = shape.len();
    if rank == 0 {
        dst[0] = get(src, src.offset);
        return;
    }
    let mut idx = vec![0usize; rank];
    let mut rem = start;
    for d in (0..rank).rev() {
        idx[d] = rem % shape[d];
        rem /= shape[d];
    }
    let mut pos = src.offset
        + idx
            .iter()
            .zip(&src.strides)
            .map(|(i, s)| i * s)
            .sum::<usize>();
    let inner = shape[rank - 1];
    let inner_stride = src.strides[rank - 1];
    let mut written = 0;
    while written < dst.len() {
        let run = (inner - idx[rank - 1]).min(dst.len() - written);
        match src.data {
            Data::F32(v) if inner_stride == 0 => dst[written..written + run].fill(v[pos]),
            Data::F32(v) if inner_stride == 1 => {
                dst[written..written + run].copy_from_slice(&v[pos..pos + run])
            }
            _ => {
                for (i, d) in dst[written..written + run].iter_mut().enumerate() {
                    *d = get(src, pos + i * inner_stride);
                }
            }
        }
        written += run;
        // Advance the multi-index by `run`: the inner dim wraps, carrying outward.
        pos += run * inner_stride;
        idx[rank - 1] += run;
        let mut d = rank - 1;
        while idx[d] == shape[d] && d > 0 {
            pos -= shape[d] * src.strides[d];
            idx[d] = 0;
            d -= 1;
            idx[d] += 1;
            pos += src.strides[d];
        }
    }
}

#[inline]
fn get(src: &Source<'_>, i: usize) -> f32 {
    match src.data {
        Data::F32(v) => v[i],
        Data::Bool(v) => v[i] as u8 as f32,
    }
}

fn unary(op: &Op, x: &[f32], out: &mut [f32]) {
    macro_rules! map {
        ($f:expr) => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = $f(v);
            }
        };
    }
    match op {
        // The same vectorized kernels the eager ops use, so fused and eager results agree.
        Op::Exp => super::simd::exp(x, out),
        Op::Log => map!(|v: f32| v.ln()),
        Op::Sin => map!(|v: f32| v.sin()),
        Op::Cos => map!(|v: f32| v.cos()),
        Op::Tanh => map!(|v: f32| v.tanh()),
        Op::Sigmoid => map!(|v: f32| 1.0 / (1.0 + (-v).exp())),
        Op::Erf => super::simd::erf(x, out),
        Op::Relu => map!(|v: f32| if v > 0.0 || v.is_nan() { v } else { 0.0 }),
        Op::Gelu { tanh: false } => super::simd::gelu(x, out),
        Op::Gelu { tanh: true } => {
            let k = (2.0f64 / std::f64::consts::PI).sqrt() as f32;
            map!(|v: f32| 0.5 * v * (1.0 + (k * (v + 0.044715 * v * v * v)).tanh()))
        }
        Op::Abs => map!(|v: f32| v.abs()),
        Op::Sign => map!(|v: f32| if v > 0.0 {
            1.0
        } else if v < 0.0 {
            -1.0
        } else {
            v
        }),
        Op::Affine { mul, add } => {
            let (m, a) = (*mul as f32, *add as f32);
            map!(|v: f32| v * m + a)
        }
        Op::PowScalar(p) => match *p {
            2.0 => map!(|v: f32| v * v),
            0.5 => map!(|v: f32| v.sqrt()),
            -0.5 => map!(|v: f32| 1.0 / v.sqrt()),
            -1.0 => map!(|v: f32| 1.0 / v),
            p => {
                let p = p as f32;
                map!(|v: f32| v.powf(p))
            }
        },
        Op::Clamp { min, max } => {
            let lo = min.map_or(f32::NEG_INFINITY, |m| m as f32);
            let hi = max.map_or(f32::INFINITY, |m| m as f32);
            map!(|v: f32| if v < lo {
                lo
            } else if v > hi {
                hi
            } else {
                v
            })
        }
        _ => unreachable!("fused: {} is not a unary step", op.name()),
    }
}

fn binary(op: &Op, a: &[f32], b: &[f32], out: &mut [f32]) {
    macro_rules! zip {
        ($f:expr) => {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = $f(x, y);
            }
        };
    }
    let flag = |c: bool| c as u8 as f32;
    match op {
        Op::Add => zip!(|x: f32, y: f32| x + y),
        Op::Sub => zip!(|x: f32, y: f32| x - y),
        Op::Mul => zip!(|x: f32, y: f32| x * y),
        Op::Div => zip!(|x: f32, y: f32| x / y),
        Op::Pow => zip!(|x: f32, y: f32| x.powf(y)),
        Op::Maximum => zip!(|x: f32, y: f32| if x.is_nan() || x >= y { x } else { y }),
        Op::Minimum => zip!(|x: f32, y: f32| if x.is_nan() || x <= y { x } else { y }),
        Op::Compare(c) => match c {
            CmpOp::Eq => zip!(|x: f32, y: f32| flag(x == y)),
            CmpOp::Ne => zip!(|x: f32, y: f32| flag(x != y)),
            CmpOp::Lt => zip!(|x: f32, y: f32| flag(x < y)),
            CmpOp::Le => zip!(|x: f32, y: f32| flag(x <= y)),
            CmpOp::Gt => zip!(|x: f32, y: f32| flag(x > y)),
            CmpOp::Ge => zip!(|x: f32, y: f32| flag(x >= y)),
        },
        _ => unreachable!("fused: {} is not a binary step", op.name()),
    }
}
