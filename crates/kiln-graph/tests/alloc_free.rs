//! After its first call, a compiled train step (forward, backward, optimizer update) runs
//! without a single heap allocation: counted by a global allocator over the 2nd to 6th calls
//! of `Executable::run_into`, for an MLP with Adam and a small GPT with AdamW, each compared
//! with the same model trained eagerly; and batch-1 inference over weights large enough that
//! its products are split across the pool's threads. (Its own test binary: the allocator counts every
//! thread, so nothing else may run meanwhile.)

mod common;

use common::{copy_params, TinyGpt};
use kiln_core::nn::functional as F;
use kiln_core::{DType, Tensor};
use kiln_graph::{CompileOptions, GraphCache};
use kiln_nn::layers::{Flatten, Linear, ReLU, Sequential};
use kiln_nn::optim::{Adam, AdamW, Optimizer};
use kiln_nn::Module;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Counts allocations while `COUNTING` is on: Kiln's own, and those made inside the `gemm`
/// crate (which allocates its packing buffers at every call, outside Kiln's control) or by
/// rayon when a call is handed to the pool (it boxes each spawned job).
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static OURS: AtomicUsize = AtomicUsize::new(0);
static IN_GEMM: AtomicUsize = AtomicUsize::new(0);
/// Where the first counted allocation came from.
static FIRST: Mutex<Option<String>> = Mutex::new(None);

thread_local! {
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if !COUNTING.load(Ordering::Relaxed) {
        return;
    }
    if kiln_core::cpu::gemm_calls_in_flight() > 0 || kiln_core::cpu::threads::spawning_now() {
        IN_GEMM.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if OURS.fetch_add(1, Ordering::Relaxed) == 0 && !CAPTURING.with(Cell::get) {
        CAPTURING.with(|c| c.set(true));
        let trace = std::backtrace::Backtrace::force_capture().to_string();
        *FIRST.lock().unwrap() = Some(trace);
        CAPTURING.with(|c| c.set(false));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Compiles one train step of `compiled`, calls it once, then counts allocations over five
/// more calls through `run_into`, checking each loss against an eager step of `eager`.
fn check<M: Module>(
    eager: &M,
    compiled: &M,
    make_opt: impl Fn(Vec<Tensor>) -> Box<dyn Optimizer>,
    batch: [Tensor; 2],
    classes: i64,
) {
    let train_step = |m: &M, opt: &mut dyn Optimizer, x: &Tensor, y: &Tensor| {
        opt.zero_grad();
        let logits = m.forward(x).reshape([-1, classes]);
        let loss = F::cross_entropy(&logits, y);
        loss.backward();
        opt.step();
        loss
    };
    copy_params(eager, compiled);
    let mut eager_opt = make_opt(eager.parameters());
    let mut opt = make_opt(compiled.parameters());
    let mut step = |b: &[Tensor]| vec![train_step(compiled, opt.as_mut(), &b[0], &b[1])];
    let mut cache = GraphCache::new(CompileOptions::default());
    let exe = cache.executable(&batch, &mut step);
    let first = exe.run(&batch)[0].item::<f32>();
    let eager_first = train_step(eager, eager_opt.as_mut(), &batch[0], &batch[1]);
    assert_eq!(first, eager_first.item::<f32>());
    let mut loss = [Tensor::scalar(0.0, DType::F32)];
    OURS.store(0, Ordering::Relaxed);
    IN_GEMM.store(0, Ordering::Relaxed);
    for _ in 0..5 {
        COUNTING.store(true, Ordering::Relaxed);
        exe.run_into(&batch, &mut loss);
        COUNTING.store(false, Ordering::Relaxed);
        let want = train_step(eager, eager_opt.as_mut(), &batch[0], &batch[1]).item::<f32>();
        let got = loss[0].item::<f32>();
        assert!((got - want).abs() <= 1e-5 * want.abs(), "{got} vs {want}");
    }
    let ours = OURS.load(Ordering::Relaxed);
    assert_eq!(
        ours,
        0,
        "allocations in calls 2-6 (first one from:\n{})",
        FIRST.lock().unwrap().take().unwrap_or_default()
    );
    eprintln!(
        "calls 2-6: {ours} allocations by Kiln, {} inside the gemm crate or rayon's spawn",
        IN_GEMM.load(Ordering::Relaxed)
    );
    for (p, q) in compiled.parameters().iter().zip(eager.parameters()) {
        for (a, b) in p.to_vec::<f32>().iter().zip(q.to_vec::<f32>()) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1e-2), "{a} vs {b}");
        }
    }
}

/// Compiles batch-1 inference of `net`, calls it twice (the second call packs the weights
/// it read unchanged, see `kiln-kernels`' `packed_weights.rs`), then counts allocations over
/// five more calls, checking each output against the eager forward.
fn check_inference(net: &Sequential, x: &Tensor) {
    let mut forward = |b: &[Tensor]| vec![net.forward(&b[0])];
    let mut cache = GraphCache::new(CompileOptions::default());
    let args = [x.clone()];
    let exe = kiln_core::no_grad(|| cache.executable(&args, &mut forward));
    let want = kiln_core::no_grad(|| net.forward(x)).to_vec::<f32>();
    exe.run(&args);
    let shape = exe.run(&args)[0].shape().to_vec();
    let mut out = [Tensor::zeros(shape, DType::F32)];
    OURS.store(0, Ordering::Relaxed);
    for _ in 0..5 {
        COUNTING.store(true, Ordering::Relaxed);
        exe.run_into(&args, &mut out);
        COUNTING.store(false, Ordering::Relaxed);
        for (a, b) in out[0].to_vec::<f32>().iter().zip(&want) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
    assert_eq!(
        OURS.load(Ordering::Relaxed),
        0,
        "allocations in inference calls 3-7 (first one from:\n{})",
        FIRST.lock().unwrap().take().unwrap_or_default()
    );
}

#[test]
fn compiled_train_steps_allocate_nothing_after_the_first_call() {
    // Batch-1 products over 300×512 and 512×256 weights: split into column blocks.
    let net = Sequential::new()
        .append(Linear::new(300, 512))
        .append(ReLU::new())
        .append(Linear::new(512, 256));
    check_inference(&net, &Tensor::randn([1, 300], DType::F32));
    let mlp = || {
        Sequential::new()
            .append(Flatten::new())
            .append(Linear::new(64, 32))
            .append(ReLU::new())
            .append(Linear::new(32, 10))
    };
    check(
        &mlp(),
        &mlp(),
        |p| Box::new(Adam::new(p, 1e-3)),
        [
            Tensor::randn([16, 1, 8, 8], DType::F32),
            Tensor::randint(0, 10, [16]),
        ],
        10,
    );
    check(
        &TinyGpt::new(),
        &TinyGpt::new(),
        |p| Box::new(AdamW::new(p, 3e-3)),
        [
            Tensor::randint(0, 32, [2, 8]),
            Tensor::randint(0, 32, [2, 8]).reshape([-1]),
        ],
        32,
    );
}
