//! Batched matmul with broadcast batch dims on top of the `gemm` crate (runtime-dispatched
//! AVX-512 with the `x86-v4` feature); strided operands such as transposed views are read in
//! place, never copied.

use super::strided::for_each_run;
use super::threads;
use super::{cast_if, num::Num};
use crate::dtype::DType;
use crate::layout::Layout;
use crate::storage::CpuStorage;
use crate::tensor::Tensor;
use gemm::Parallelism;
use half::f16;
use rayon::prelude::*;

/// Flops below which a single matmul stays on the calling thread.
const PARALLEL_FLOPS: usize = 1 << 22;

struct Geometry {
    m: usize,
    n: usize,
    k: usize,
    a_rs: isize,
    a_cs: isize,
    b_rs: isize,
    b_cs: isize,
    /// (a offset, b offset) per batch entry, row-major over the output batch dims.
    pairs: Vec<(usize, usize)>,
}

fn geometry(a: &Layout, b: &Layout, shape: &[usize]) -> Geometry {
    let r = shape.len();
    let (m, n) = (shape[r - 2], shape[r - 1]);
    let k = a.shape[a.rank() - 1];
    let batch = &shape[..r - 2];
    let mut sa: Vec<usize> = batch.to_vec();
    sa.extend([m, k]);
    let mut sb: Vec<usize> = batch.to_vec();
    sb.extend([k, n]);
    let la = a.broadcast_to(&sa);
    let lb = b.broadcast_to(&sb);
    let mut pairs = Vec::new();
    for_each_run(
        batch,
        [&la.strides[..r - 2], &lb.strides[..r - 2]],
        [la.offset, lb.offset],
        |_, [oa, ob], [s1, s2], len| {
            pairs.extend((0..len).map(|i| (oa + i * s1, ob + i * s2)));
        },
    );
    Geometry {
        m,
        n,
        k,
        a_rs: la.strides[r - 2] as isize,
        a_cs: la.strides[r - 1] as isize,
        b_rs: lb.strides[r - 2] as isize,
        b_cs: lb.strides[r - 1] as isize,
        pairs,
    }
}

#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// Pointer `i` elements further (a method, so closures capture the `Send` wrapper).
    fn at(self, i: usize) -> *mut T {
        // SAFETY: callers stay within the allocation the pointer came from.
        unsafe { self.0.add(i) }
    }
}

fn gemm_typed<T: Num>(a: &[T], b: &[T], g: &Geometry) -> Vec<T> {
    let (m, n, k) = (g.m, g.n, g.k);
    let mut out = super::pool::filled(g.pairs.len() * m * n, T::zero());
    if m * n == 0 {
        return out;
    }
    let flops = 2 * m * n * k;
    let run = |dst: *mut T, (oa, ob): (usize, usize), par: Parallelism| {
        // SAFETY: offsets and strides come from layouts validated against the storages; dst
        // is a distinct m×n block of `out`.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst,
                1,
                n as isize,
                false,
                a.as_ptr().add(oa),
                g.a_cs,
                g.a_rs,
                b.as_ptr().add(ob),
                g.b_cs,
                g.b_rs,
                T::zero(),
                T::one(),
                false,
                false,
                false,
                par,
            )
        }
    };
    let base = SendPtr(out.as_mut_ptr());
    let total = flops * g.pairs.len();
    if total < PARALLEL_FLOPS {
        for (i, &p) in g.pairs.iter().enumerate() {
            run(base.at(i * m * n), p, Parallelism::None);
        }
    } else if g.pairs.len() >= 2 * threads::num_threads() || flops < PARALLEL_FLOPS {
        threads::install(|| {
            g.pairs
                .par_iter()
                .enumerate()
                .for_each(|(i, &p)| run(base.at(i * m * n), p, Parallelism::None))
        });
    } else {
        let nt = threads::num_threads();
        threads::install(|| {
            for (i, &p) in g.pairs.iter().enumerate() {
                run(base.at(i * m * n), p, Parallelism::Rayon(nt));
            }
        });
    }
    out
}

fn naive<T: Num>(a: &[T], b: &[T], g: &Geometry) -> Vec<T> {
    let (m, n, k) = (g.m, g.n, g.k);
    let mut out = Vec::with_capacity(g.pairs.len() * m * n);
    for &(oa, ob) in &g.pairs {
        for i in 0..m {
            for j in 0..n {
                let mut acc = T::zero();
                for p in 0..k {
                    let x = a[(oa as isize + i as isize * g.a_rs + p as isize * g.a_cs) as usize];
                    let y = b[(ob as isize + p as isize * g.b_rs + j as isize * g.b_cs) as usize];
                    acc = acc.add(x.mul(y));
                }
                out.push(acc);
            }
        }
    }
    out
}

fn typed<T: Num>(
    a: &Tensor,
    b: &Tensor,
    shape: &[usize],
    f: fn(&[T], &[T], &Geometry) -> Vec<T>,
) -> CpuStorage {
    let g = geometry(a.layout(), b.layout(), shape);
    let (ga, gb) = (a.storage().read(), b.storage().read());
    T::wrap(f(T::slice(&ga).unwrap(), T::slice(&gb).unwrap(), &g))
}

/// `a @ b` for rank ≥ 2 operands with broadcast batch dims.
pub fn matmul(a: &Tensor, b: &Tensor, shape: &[usize]) -> CpuStorage {
    match a.dtype() {
        DType::F32 => typed::<f32>(a, b, shape, gemm_typed),
        DType::F64 => typed::<f64>(a, b, shape, gemm_typed),
        DType::F16 => typed::<f16>(a, b, shape, gemm_typed),
        DType::BF16 => {
            let r = typed::<f32>(
                &cast_if(a, DType::F32),
                &cast_if(b, DType::F32),
                shape,
                gemm_typed,
            );
            let CpuStorage::F32(v) = r else {
                unreachable!()
            };
            super::copy::cast(&Tensor::from_vec(v, shape), DType::BF16)
        }
        DType::I64 => typed::<i64>(a, b, shape, naive),
        DType::I32 => typed::<i32>(a, b, shape, naive),
        DType::U8 => typed::<u8>(a, b, shape, naive),
        DType::Bool => unreachable!("matmul: bool"),
    }
}
