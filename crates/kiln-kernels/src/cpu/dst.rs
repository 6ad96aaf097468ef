//! Where a kernel puts its output: a new buffer from the caching pool (eager ops), or the
//! existing buffer of a tensor it writes into ([`super::execute_into`], the graph executor's
//! planned buffers). Kernels take their output vector from a [`Dst`] instead of the pool, so
//! one kernel serves both.

use crate::pool;
use crate::storage::{CpuStorage, StorageElement};
use crate::with_storage;

/// A kernel's output destination (the CPU backend's [`crate::backend::Backend::Dst`]).
pub struct Dst {
    /// The buffer to reuse, until a kernel takes it.
    buf: Option<CpuStorage>,
    /// Address of that buffer's elements (to recognize it in the kernel's result).
    addr: usize,
}

fn addr(s: &CpuStorage) -> usize {
    with_storage!(s, v => v.as_ptr() as usize)
}

impl Dst {
    /// Outputs go to new buffers.
    pub fn fresh() -> Dst {
        Dst { buf: None, addr: 0 }
    }

    /// The first output of a matching dtype goes into `buf`.
    pub fn reuse(buf: CpuStorage) -> Dst {
        let addr = addr(&buf);
        Dst {
            buf: Some(buf),
            addr,
        }
    }

    /// An empty vector with room for `n` elements: the reused buffer when it fits, else one
    /// from the pool.
    pub(crate) fn take<T: StorageElement>(&mut self, n: usize) -> Vec<T> {
        if let Some(s) = self.buf.take() {
            if s.dtype() == T::DTYPE && s.capacity() >= n {
                let mut v = T::unwrap(s).expect("dst: dtype");
                v.clear();
                return v;
            }
            self.buf = Some(s);
        }
        pool::take(n)
    }

    /// A vector of `n` elements for a kernel that overwrites every one of them: left
    /// uninitialized for f32 and f64 (any bit pattern is a valid value, and a zero fill would
    /// be a whole extra pass over the output), zero-filled for other dtypes (bool has invalid
    /// bit patterns).
    pub(crate) fn for_overwrite<T: StorageElement>(&mut self, n: usize) -> Vec<T> {
        let mut v = self.take::<T>(n);
        super::scratch::set_len_for_overwrite(&mut v, n);
        v
    }

    /// `n` copies of `value` (see [`Dst::take`]).
    pub(crate) fn filled<T: StorageElement>(&mut self, n: usize, value: T) -> Vec<T> {
        let mut v = self.take(n);
        v.resize(n, value);
        v
    }

    /// The reused buffer holding the kernel's `result`, with its full length `len` again: the
    /// result itself when the kernel wrote into the buffer, else a copy of it into the buffer
    /// (a kernel path that allocated its own output).
    pub(crate) fn finish(self, result: CpuStorage, len: usize) -> CpuStorage {
        let mut out = match self.buf {
            None if addr(&result) == self.addr => result,
            Some(mut buf) => {
                copy_prefix(&mut buf, &result);
                buf
            }
            // The buffer was taken but not returned: keep the result, grown to the length.
            None => {
                let mut r = result;
                with_storage!(&mut r, v => v.resize(len, Default::default()));
                r
            }
        };
        // SAFETY: the buffer held `len` initialized elements before the kernel cleared it, and
        // its memory past the kernel's output was not touched since.
        with_storage!(&mut out, v => {
            assert!(v.capacity() >= len, "dst: buffer shrank");
            if v.len() < len {
                unsafe { v.set_len(len) }
            }
        });
        out
    }
}

fn copy_prefix(dst: &mut CpuStorage, src: &CpuStorage) {
    macro_rules! go {
        ($($v:ident),*) => {
            match (dst, src) {
                $((CpuStorage::$v(d), CpuStorage::$v(s)) => d[..s.len()].copy_from_slice(s),)*
                (d, s) => panic!("execute_into: output dtype {} vs kernel's {}", d.dtype(), s.dtype()),
            }
        };
    }
    go!(F32, F64, BF16, F16, I64, I32, U8, Bool, I8, I16, U16, U32, U64)
}

/// An output pointer shared by the pool's threads, each writing its own disjoint part of
/// the output through it.
#[derive(Clone, Copy)]
pub(super) struct SendPtr<T>(pub(super) *mut T);
// SAFETY: users write disjoint elements only (each at its call site's SAFETY comment).
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// Pointer `i` elements further (a method, so closures capture the `Send` wrapper).
    pub(super) fn at(self, i: usize) -> *mut T {
        // SAFETY: callers stay within the allocation the pointer came from.
        unsafe { self.0.add(i) }
    }
}
