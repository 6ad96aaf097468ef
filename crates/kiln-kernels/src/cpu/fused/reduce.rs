//! The reduction epilogue of a fused program ([`FusedReduce`]): the program runs tile by tile
//! as in `fused/mod.rs`, and each tile of its result is added into f64 accumulators of the reduced
//! output instead of being written out (the eager sum accumulates in f64 too).

use super::{chunking, for_each_tile, sources, Guards, Kernel};
use crate::cpu::simd::sum_f64;
use crate::cpu::strided::for_each_run_from;
use crate::cpu::threads;
use crate::operand::Operand;
use crate::ops::fused::{FusedProgram, FusedReduce};
use crate::shape::{broadcast_shapes, Shape};
use rayon::prelude::*;
use smallvec::{smallvec, SmallVec};

/// Runs `program`, whose result is summed as `r` says, over `inputs`; writes the sums into
/// `out` (the reduced shape's elements, row-major). Each chunk of tiles has its own
/// accumulators; they are added in chunk order, so a thread count always gives the same bits.
pub(super) fn reduce_into(
    program: &FusedProgram,
    r: &FusedReduce,
    inputs: &[Operand<'_>],
    out: &mut [f32],
) {
    let shape: Shape = inputs.iter().fold(Shape::new(), |s, t| {
        broadcast_shapes(&s, t.shape()).expect("fused: inputs broadcast")
    });
    let numel: usize = shape.iter().product();
    let m = out.len();
    if m == 0 {
        return;
    }
    let guards: Guards = inputs.iter().map(|t| t.storage().read()).collect();
    let sources = sources(inputs, &guards, &shape);
    let kernel = Kernel {
        program,
        sources: &sources,
        shape: &shape,
    };
    let strides = accumulator_strides(&shape, &r.dims);
    let result = program.n_inputs as usize + program.steps.len() - 1;
    let (per, chunks) = chunking(numel);
    crate::cpu::scratch::with_vec(|acc: &mut Vec<f64>| {
        acc.resize(chunks * m, 0.0);
        let run_chunk = |(c, part): (usize, &mut [f64])| {
            let start = c * per;
            for_each_tile(&kernel, start, per.min(numel - start), |at, n, regs| {
                accumulate(&regs[result][..n], at, &shape, &strides, part)
            });
        };
        if chunks > 1 {
            threads::install(|| acc.par_chunks_mut(m).enumerate().for_each(run_chunk));
        } else {
            run_chunk((0, &mut acc[..]));
        }
        for (j, o) in out.iter_mut().enumerate() {
            *o = (0..chunks).map(|c| acc[c * m + j]).sum::<f64>() as f32;
        }
    });
}

/// Per dim of the iteration shape: the stride of the output element it moves along (0 for a
/// summed dim), the output being the kept dims, row-major.
fn accumulator_strides(shape: &[usize], dims: &[usize]) -> SmallVec<[usize; 6]> {
    let mut strides = smallvec![0; shape.len()];
    let mut s = 1;
    for d in (0..shape.len()).rev() {
        if !dims.contains(&d) {
            strides[d] = s;
            s *= shape[d];
        }
    }
    strides
}

/// Adds `vals`, the results at iteration positions `start..start + vals.len()`, into their
/// output elements of `acc`, a run along the innermost dim at a time.
fn accumulate(vals: &[f32], start: usize, shape: &[usize], strides: &[usize], acc: &mut [f64]) {
    let inner_stride = strides.last().copied().unwrap_or(0);
    for_each_run_from(shape, strides, 0, start, vals.len(), |pos, done, run| {
        let v = &vals[done..done + run];
        if inner_stride == 0 {
            acc[pos] += sum_f64(v, |x| x as f64);
        } else {
            for (a, &x) in acc[pos..pos + run].iter_mut().zip(v) {
                *a += x as f64;
            }
        }
    });
}
