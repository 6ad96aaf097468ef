//! Iteration over strided layouts in row-major order, one contiguous "run" at a time, so
//! kernels keep a tight inner loop whatever the strides.

use smallvec::SmallVec;

type Dims = SmallVec<[usize; 6]>;

/// Merges adjacent dims that are contiguous with each other in every operand, and drops
/// size-1 dims, so the innermost run is as long as possible.
fn coalesce<const N: usize>(shape: &[usize], strides: [&[usize]; N]) -> (Dims, [Dims; N]) {
    let mut out_shape = Dims::new();
    let mut out_strides: [Dims; N] = std::array::from_fn(|_| Dims::new());
    for d in 0..shape.len() {
        if shape[d] == 1 {
            continue;
        }
        if let Some(&last) = out_shape.last() {
            let mergeable =
                (0..N).all(|k| *out_strides[k].last().unwrap() == strides[k][d] * shape[d]);
            if mergeable {
                let r = out_shape.len() - 1;
                out_shape[r] = last * shape[d];
                for k in 0..N {
                    out_strides[k][r] = strides[k][d];
                }
                continue;
            }
        }
        out_shape.push(shape[d]);
        for k in 0..N {
            out_strides[k].push(strides[k][d]);
        }
    }
    (out_shape, out_strides)
}

/// Calls `f(start, offsets, strides, len)` for each innermost run of the row-major traversal
/// of `shape`: `start` is the row-major index of the run's first element, and operand `k`'s
/// elements in the run are at `offsets[k] + i * strides[k]` for `i < len`.
pub fn for_each_run<const N: usize>(
    shape: &[usize],
    strides: [&[usize]; N],
    offsets: [usize; N],
    mut f: impl FnMut(usize, [usize; N], [usize; N], usize),
) {
    let numel: usize = shape.iter().product();
    if numel == 0 {
        return;
    }
    let (shape, strides) = coalesce(shape, strides);
    let rank = shape.len();
    if rank == 0 {
        f(0, offsets, [0; N], 1);
        return;
    }
    let inner = shape[rank - 1];
    let inner_strides: [usize; N] = std::array::from_fn(|k| strides[k][rank - 1]);
    let outer = numel / inner;
    let mut idx: Dims = SmallVec::from_elem(0, rank - 1);
    let mut offs = offsets;
    for o in 0..outer {
        f(o * inner, offs, inner_strides, inner);
        for d in (0..rank - 1).rev() {
            idx[d] += 1;
            for k in 0..N {
                offs[k] += strides[k][d];
            }
            if idx[d] < shape[d] {
                break;
            }
            for k in 0..N {
                offs[k] -= strides[k][d] * shape[d];
            }
            idx[d] = 0;
        }
    }
}

/// Calls `f(pos, done, run)` for the row-major positions `start..start + len` of `shape`,
/// cut into runs at the end of the innermost dim: `pos` is the strided index
/// (`offset + Σ index·strides`) of the run's first position, `done` how many positions came
/// before it, `run` its length; along a run the index moves by the innermost stride (a
/// rank-0 shape is one run of stride 0).
pub fn for_each_run_from(
    shape: &[usize],
    strides: &[usize],
    offset: usize,
    start: usize,
    len: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    let rank = shape.len();
    if rank == 0 {
        if len > 0 {
            f(offset, 0, len);
        }
        return;
    }
    let mut idx: Dims = SmallVec::from_elem(0, rank);
    let mut rem = start;
    for d in (0..rank).rev() {
        idx[d] = rem % shape[d];
        rem /= shape[d];
    }
    let mut pos = offset + idx.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>();
    let (inner, inner_stride) = (shape[rank - 1], strides[rank - 1]);
    let mut done = 0;
    while done < len {
        let run = (inner - idx[rank - 1]).min(len - done);
        f(pos, done, run);
        done += run;
        // Advance the index by `run`: the inner dim wraps, carrying outward.
        pos += run * inner_stride;
        idx[rank - 1] += run;
        let mut d = rank - 1;
        while idx[d] == shape[d] && d > 0 {
            pos -= shape[d] * strides[d];
            idx[d] = 0;
            d -= 1;
            idx[d] += 1;
            pos += strides[d];
        }
    }
}

/// Storage indices of a strided layout in row-major order.
pub fn offsets(shape: &[usize], strides: &[usize], offset: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(shape.iter().product());
    for_each_run(shape, [strides], [offset], |_, [o], [s], len| {
        out.extend((0..len).map(|i| o + i * s));
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_from_a_position_match_the_index_arithmetic() {
        let (shape, strides, offset) = ([3usize, 4, 5], [1usize, 15, 3], 7);
        let at = |mut i: usize| {
            let mut pos = offset;
            for d in (0..3).rev() {
                pos += (i % shape[d]) * strides[d];
                i /= shape[d];
            }
            pos
        };
        for (start, len) in [(0, 60), (7, 30), (13, 1), (58, 2), (4, 0)] {
            let mut seen = Vec::new();
            for_each_run_from(&shape, &strides, offset, start, len, |pos, done, run| {
                assert!((1..=5).contains(&run));
                assert_eq!(done, seen.len());
                seen.extend((0..run).map(|i| pos + i * strides[2]));
            });
            let want: Vec<usize> = (start..start + len).map(at).collect();
            assert_eq!(seen, want, "start {start} len {len}");
        }
        let mut rank0 = Vec::new();
        for_each_run_from(&[], &[], 9, 0, 1, |pos, done, run| {
            rank0.push((pos, done, run))
        });
        assert_eq!(rank0, [(9, 0, 1)]);
    }

    #[test]
    fn transposed_traversal() {
        // [2, 3] transposed: shape [3, 2] strides [1, 3]
        assert_eq!(offsets(&[3, 2], &[1, 3], 0), vec![0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn contiguous_is_one_run() {
        let mut runs = 0;
        for_each_run(&[4, 5, 6], [&[30, 6, 1]], [0], |_, _, _, len| {
            runs += 1;
            assert_eq!(len, 120);
        });
        assert_eq!(runs, 1);
    }
}
