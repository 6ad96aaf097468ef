//! Scratch vectors for kernels' temporaries (a transposed matmul operand, f64 accumulators):
//! kept between calls, so a repeated op allocates them once rather than at every call (the
//! graph executor's steady state allocates nothing). One pool for all threads: a graph's
//! schedule runs on whichever pool thread picks it up, and a per-thread pool would allocate
//! again on each thread it had not run on before.

use crate::dtype::DType;
use crate::storage::{CpuStorage, StorageElement};
use parking_lot::Mutex;

static FREE: Mutex<Vec<CpuStorage>> = Mutex::new(Vec::new());

/// Runs `f` with an empty vector of `T` whose capacity is kept from earlier calls (the
/// largest one of that type not in use).
pub(crate) fn with_vec<T: StorageElement, R>(f: impl FnOnce(&mut Vec<T>) -> R) -> R {
    let taken = {
        let mut free = FREE.lock();
        let best = (0..free.len())
            .filter(|&i| free[i].dtype() == T::DTYPE)
            .max_by_key(|&i| free[i].capacity());
        best.map(|i| free.swap_remove(i))
    };
    let mut v = taken.map_or_else(Vec::new, |s| T::unwrap(s).expect("scratch: dtype"));
    v.clear();
    let r = f(&mut v);
    FREE.lock().push(T::wrap(v));
    r
}

static KEPT: Mutex<Vec<Box<dyn std::any::Any + Send>>> = Mutex::new(Vec::new());

/// Runs `f` with a `T` kept from earlier calls (a kernel's per-call tables: their vectors
/// keep their capacity), or a new default one; like [`with_vec`] for types that are not
/// storage vectors. `f` overwrites what it reads.
pub(crate) fn with_kept<T: Default + Send + 'static, R>(f: impl FnOnce(&mut T) -> R) -> R {
    let taken = {
        let mut kept = KEPT.lock();
        kept.iter()
            .position(|b| b.is::<T>())
            .map(|i| kept.swap_remove(i))
    };
    let mut boxed = taken.unwrap_or_else(|| Box::new(T::default()));
    let r = f(boxed.downcast_mut::<T>().expect("scratch: kept type"));
    KEPT.lock().push(boxed);
    r
}

/// Makes `v` hold `n` elements that the caller overwrites before reading any (a kernel's
/// output, a scratch operand copy): left uninitialized for f32 and f64 (any bit pattern is a
/// valid value, and a zero fill would be a whole extra pass), zero-filled for other dtypes
/// (bool has invalid bit patterns).
#[allow(clippy::uninit_vec)] // f32 and f64 have no invalid bit patterns; see above.
pub(crate) fn set_len_for_overwrite<T: StorageElement>(v: &mut Vec<T>, n: usize) {
    if !matches!(T::DTYPE, DType::F32 | DType::F64) {
        v.clear();
        v.resize(n, T::zero());
        return;
    }
    v.clear();
    v.reserve(n);
    // SAFETY: T is f32 or f64, the capacity is at least n, and the caller writes every
    // element before reading it.
    unsafe { v.set_len(n) };
}
