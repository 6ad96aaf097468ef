//! A caching allocator for large tensor buffers. Training repeats the same shapes every step;
//! handing a freed buffer to the next op of the same size avoids the allocator's fresh
//! `mmap` for each large temporary and the page faults of touching it (measured at ~15% of a
//! transformer step without this cache).

use crate::dtype::DType;
use crate::storage::{CpuStorage, StorageElement};
use parking_lot::Mutex;
use std::collections::HashMap;

/// Buffers smaller than this go straight to the system allocator (fast for small sizes).
const MIN_BYTES: usize = 64 * 1024;
/// Most bytes kept in the cache; beyond it freed buffers are released.
const MAX_CACHED_BYTES: usize = 256 << 20;

struct Cache {
    free: HashMap<(DType, usize), Vec<CpuStorage>>,
    bytes: usize,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// An empty vector with capacity for exactly `n` elements, reused from a freed tensor when one
/// of that size is cached.
pub fn take<T: StorageElement>(n: usize) -> Vec<T> {
    let bytes = n * std::mem::size_of::<T>();
    if bytes >= MIN_BYTES {
        let mut guard = CACHE.lock();
        if let Some(cache) = guard.as_mut() {
            if let Some(list) = cache.free.get_mut(&(T::DTYPE, n)) {
                if let Some(s) = list.pop() {
                    cache.bytes -= bytes;
                    drop(guard);
                    let mut v = T::unwrap(s).expect("pool: dtype key mismatch");
                    v.clear();
                    return v;
                }
            }
        }
    }
    Vec::with_capacity(n)
}

/// A vector of `n` copies of `value`, from the cache when possible.
pub fn filled<T: StorageElement>(n: usize, value: T) -> Vec<T> {
    let mut v = take(n);
    v.resize(n, value);
    v
}

/// Offers a freed buffer to the cache (kept only if large and the cache has room).
pub fn recycle(s: CpuStorage) {
    let (dtype, cap) = (s.dtype(), s.capacity());
    let bytes = cap * dtype.size_in_bytes();
    if bytes < MIN_BYTES {
        return;
    }
    let mut guard = CACHE.lock();
    let cache = guard.get_or_insert_with(|| Cache {
        free: HashMap::new(),
        bytes: 0,
    });
    if cache.bytes + bytes > MAX_CACHED_BYTES {
        return;
    }
    cache.bytes += bytes;
    cache.free.entry((dtype, cap)).or_default().push(s);
}

/// Releases every cached buffer to the system.
pub fn clear() {
    *CACHE.lock() = None;
}

/// Bytes currently held in the cache.
pub fn cached_bytes() -> usize {
    CACHE.lock().as_ref().map(|c| c.bytes).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_are_reused_exactly_by_size() {
        let n = 100_003; // unlikely to collide with other tests' sizes
        let v: Vec<f32> = filled(n, 1.0);
        let ptr = v.as_ptr();
        recycle(CpuStorage::F32(v));
        let w: Vec<f32> = take(n);
        assert_eq!(w.as_ptr(), ptr);
        assert!(w.is_empty() && w.capacity() >= n);
        let small: Vec<f32> = take(10);
        assert_eq!(small.capacity(), 10);
    }
}
