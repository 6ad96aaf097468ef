//! Per-thread scratch vectors for kernels' temporaries (a transposed matmul operand, f64
//! accumulators): kept between calls, so a repeated op allocates them once per thread rather
//! than at every call (the graph executor's steady state allocates nothing).

use crate::storage::{CpuStorage, StorageElement};
use std::cell::RefCell;

thread_local! {
    static FREE: RefCell<Vec<CpuStorage>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with an empty vector of `T` whose capacity is kept from earlier calls on this
/// thread (the largest one of that type not in use).
pub(crate) fn with_vec<T: StorageElement, R>(f: impl FnOnce(&mut Vec<T>) -> R) -> R {
    let taken = FREE.with(|free| {
        let mut free = free.borrow_mut();
        let best = (0..free.len())
            .filter(|&i| free[i].dtype() == T::DTYPE)
            .max_by_key(|&i| free[i].capacity());
        best.map(|i| free.swap_remove(i))
    });
    let mut v = taken.map_or_else(Vec::new, |s| T::unwrap(s).expect("scratch: dtype"));
    v.clear();
    let r = f(&mut v);
    FREE.with(|free| free.borrow_mut().push(T::wrap(v)));
    r
}
