//! Where the time of one eager `&y + &x` on 16 f32 elements goes: times each stage of
//! `dispatch` on its own (ns per call, median of 7 runs of `N` calls, and heap allocations
//! per call), for profiling the `eager_add16_us_per_op` key.
//!
//! `cargo run --release -p kiln-bench --example eager_breakdown [-- N [chain]]`
//! (`chain`: run only the benchmark's add chain, N adds at a time, e.g. under `perf record`)

use kiln::cpu::execute;
use kiln::layout::Layout;
use kiln::ops::{infer::infer, Op};
use kiln::storage::{CpuStorage, Storage};
use kiln::{DType, Tensor};
use kiln_bench::timing::bench;
use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The system allocator, counting allocations.
struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: AllocLayout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: AllocLayout) {
        System.dealloc(p, l)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (ns per call, heap allocations per call)
fn ns_per_call<R>(n: usize, mut f: impl FnMut() -> R) -> (f64, f64) {
    let before = ALLOCS.load(Ordering::Relaxed);
    let secs = bench(1, 7, || {
        for _ in 0..n {
            drop(black_box(f()));
        }
    });
    let allocs = (ALLOCS.load(Ordering::Relaxed) - before) as f64 / (8 * n) as f64;
    (secs / n as f64 * 1e9, allocs)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    kiln::set_num_threads(2);
    let x = Tensor::randn([16], DType::F32);
    if std::env::args().nth(2).as_deref() == Some("chain") {
        let (ns, allocs) = ns_per_call(1, || {
            let mut y = x.clone();
            for _ in 0..n {
                y = &y + &x;
            }
            y
        });
        println!(
            "chain: {:.1} ns/op, {:.2} allocs/op",
            ns / n as f64,
            allocs / n as f64
        );
        return;
    }
    let y = Tensor::randn([16], DType::F32);
    let shape: Vec<usize> = vec![16];
    let (storage, layout) = execute(&Op::Add, &[y.operand(), x.operand()], &shape, DType::F32);
    let rows: Vec<(&str, (f64, f64))> = vec![
        (
            "chain y = &y + &x (the benchmark)",
            ns_per_call(1, || {
                let mut y = x.clone();
                for _ in 0..n {
                    y = &y + &x;
                }
                y
            }),
        ),
        ("&y + &x, fresh operands", ns_per_call(n, || &y + &x)),
        (
            "  ops::infer (shape/dtype)",
            ns_per_call(n, || infer(&Op::Add, &[&y, &x])),
        ),
        (
            "  cpu::execute (kernel+storage)",
            ns_per_call(n, || {
                execute(&Op::Add, &[y.operand(), x.operand()], &shape, DType::F32)
            }),
        ),
        (
            "    Layout::broadcast_to",
            ns_per_call(n, || y.layout().broadcast_to(&shape)),
        ),
        (
            "    Storage::read guard",
            ns_per_call(n, || {
                drop(black_box(y.storage().read()));
            }),
        ),
        (
            "    Vec<f32> zip-collect (16)",
            ns_per_call(n, || {
                let (a, b) = (black_box([1f32; 16]), black_box([2f32; 16]));
                a.iter().zip(&b).map(|(p, q)| p + q).collect::<Vec<f32>>()
            }),
        ),
        (
            "    Arc<Storage> new+drop",
            ns_per_call(n, || Arc::new(Storage::cpu(CpuStorage::F32(Vec::new())))),
        ),
        (
            "    Layout::contiguous",
            ns_per_call(n, || Layout::contiguous(&shape)),
        ),
        (
            "  Tensor::from_storage (Arc<TensorImpl>)",
            ns_per_call(n, || Tensor::from_storage(storage.clone(), layout.clone())),
        ),
        (
            "  Tensor clone+drop (Arc bump)",
            ns_per_call(n, || x.clone()),
        ),
        (
            "  is_grad_enabled (TLS)",
            ns_per_call(n, kiln::autograd::is_grad_enabled),
        ),
        (
            "baseline: Box<[f32;16]> new+drop",
            ns_per_call(n, || Box::new(black_box([0f32; 16]))),
        ),
    ];
    println!("{:<42} {:>8} {:>8}", "stage", "ns/call", "allocs");
    for (name, (mut ns, mut allocs)) in rows {
        if name.starts_with("chain") {
            // One call is a whole chain of n adds.
            ns /= n as f64;
            allocs /= n as f64;
        }
        println!("{name:<42} {ns:>8.1} {allocs:>8.2}");
    }
}
