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
