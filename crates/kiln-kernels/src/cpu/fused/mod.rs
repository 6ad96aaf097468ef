//! Kernel of [`crate::ops::Op::Fused`]: runs a fused elementwise program tile by tile, so every
//! intermediate of the chain lives in a small buffer in L1 instead of a full-size tensor.

mod reduce;

use super::binary::binary_f32_slice;
use super::simd;
use super::strided::for_each_run_from;
use super::threads;
use super::unary::unary_f32_slice;
use crate::operand::Operand;
use crate::ops::fused::{FusedProgram, FusedStep};
use crate::storage::CpuStorage;
use rayon::prelude::*;
use smallvec::SmallVec;
use std::mem::MaybeUninit;

/// Read guards of the inputs' storages, held while the kernel runs.
pub(super) type Guards<'a> = SmallVec<[parking_lot::RwLockReadGuard<'a, CpuStorage>; 8]>;

/// Elements per tile: registers of this many f32 stay in L1 for programs of ~20 steps.
pub(super) const TILE: usize = 512;
/// Registers a program may use before its tiles are allocated on the heap.
const INLINE_REGS: usize = 24;

/// One input, readable as f32 at any output position. Raw pointers, not slices: with
/// [`fused_into`] the output may be one of the inputs, written tile by tile after that tile
/// is read (the storage guards are held for the whole kernel).
pub(super) struct Source {
    data: Data,
    offset: usize,
    /// Strides against the output shape (0 along broadcast dims).
    strides: crate::layout::Strides,
    /// Dense and of the output shape: tiles are plain sub-slices.
    dense: bool,
    /// One value everywhere (every stride 0, e.g. a broadcast scalar): its register is
    /// filled once per chunk of tiles, not at every tile.
    uniform: bool,
}

#[derive(Clone, Copy)]
enum Data {
    F32(*const f32, usize),
    Bool(*const bool, usize),
}

// SAFETY: the pointers refer to storages the caller keeps alive and read-locked (or, for the
// aliased output, owned) for the whole kernel; threads read disjoint-or-shared data and write
// disjoint output ranges.
unsafe impl Sync for Source {}
unsafe impl Send for Source {}

/// The output pointer, shared by the worker threads (each writes its own range).
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
unsafe impl Sync for OutPtr {}
unsafe impl Send for OutPtr {}

impl OutPtr {
    /// The address of element `i` (a method, so closures capture the whole `Send` wrapper).
    fn at(self, i: usize) -> *mut f32 {
        // SAFETY: callers stay inside the output buffer.
        unsafe { self.0.add(i) }
    }
}

/// Runs `program` over `inputs` into a new f32 buffer of `shape`. Never inlined: the eager
/// kernel dispatch stays small.
#[inline(never)]
pub fn fused(program: &FusedProgram, inputs: &[Operand<'_>], shape: &[usize]) -> CpuStorage {
    let numel: usize = shape.iter().product();
    let mut out: Vec<f32> = crate::pool::take(numel);
    // SAFETY: every element is written by `run` (or the reduction) before the buffer is read.
    #[allow(clippy::uninit_vec)]
    unsafe {
        out.set_len(numel)
    };
    if let Some(r) = &program.reduce {
        reduce::reduce_into(program, r, inputs, &mut out);
        return CpuStorage::F32(out);
    }
    let stores = store_targets(program, inputs, shape);
    let guards: Guards = inputs.iter().map(|t| t.storage().read()).collect();
    let sources = sources(inputs, &guards, shape);
    run(program, &sources, shape, OutPtr(out.as_mut_ptr()), &stores);
    drop(guards);
    CpuStorage::F32(out)
}

/// Runs `program` writing into `out` (dense f32 of the broadcast shape, offset 0), which may
/// be one of the inputs — the graph executor's in-place update of a value that dies here.
/// Panics unless every input sharing `out`'s storage is `out` itself (same dense layout).
#[inline(never)]
pub fn fused_into(program: &FusedProgram, inputs: &[Operand<'_>], out: Operand<'_>) {
    let shape = out.shape();
    assert!(
        out.dtype() == crate::dtype::DType::F32 && out.is_contiguous() && out.layout().offset == 0,
        "fused_into: the output must be a dense f32 tensor"
    );
    if let Some(r) = &program.reduce {
        if inputs.iter().any(|t| t.shares_storage(out)) {
            panic!("fused_into: an input aliases the output of a reduction");
        }
        let numel = out.numel();
        let ptr = dense_f32_ptr(out, "fused_into: output");
        // SAFETY: `out` is dense f32 at offset 0 with `numel` elements, checked above, and no
        // input shares its storage.
        let out = unsafe { std::slice::from_raw_parts_mut(ptr, numel) };
        return reduce::reduce_into(program, r, inputs, out);
    }
    for t in inputs {
        if t.shares_storage(out) && (t.layout() != out.layout()) {
            panic!("fused_into: an input aliases the output with another layout");
        }
    }
    let out_ptr = OutPtr(dense_f32_ptr(out, "fused_into: output"));
    let stores = store_targets(program, inputs, shape);
    if stores.iter().any(|(_, p)| p.0 == out_ptr.0) {
        panic!("fused_into: a store targets the output");
    }
    let guards: Guards = inputs.iter().map(|t| t.storage().read()).collect();
    let sources = sources(inputs, &guards, shape);
    run(program, &sources, shape, out_ptr, &stores);
}

/// The address of dense f32 `t`'s first element, taken under a write lock (which bumps the
/// storage's version: the buffer is about to change). The buffer stays put while `t` lives.
fn dense_f32_ptr(t: Operand<'_>, what: &str) -> *mut f32 {
    let mut guard = t.storage().write();
    match &mut *guard {
        CpuStorage::F32(v) => {
            assert!(
                v.len() >= t.layout().offset + t.numel(),
                "{what}: storage size"
            );
            // SAFETY: the offset is inside the buffer (checked).
            unsafe { v.as_mut_ptr().add(t.layout().offset) }
        }
        other => unreachable!("{what}: dtype {}", other.dtype()),
    }
}

/// Per store of `program`: the step register and where its input's elements start.
fn store_targets(
    program: &FusedProgram,
    inputs: &[Operand<'_>],
    shape: &[usize],
) -> SmallVec<[(usize, OutPtr); 4]> {
    program
        .stores
        .iter()
        .map(|st| {
            let t = inputs[st.input as usize];
            assert!(
                t.dtype() == crate::dtype::DType::F32 && t.shape() == shape && t.is_contiguous(),
                "fused: store target {} must be dense f32 of shape {shape:?}, got {} {:?}",
                st.input,
                t.dtype(),
                t.shape()
            );
            for (k, other) in inputs.iter().enumerate() {
                if k != st.input as usize && other.shares_storage(t) && other.layout() != t.layout()
                {
                    panic!(
                        "fused: input {k} aliases store target {} with another layout",
                        st.input
                    );
                }
            }
            (
                st.reg as usize,
                OutPtr(dense_f32_ptr(t, "fused: store target")),
            )
        })
        .collect()
}

pub(super) fn sources(
    inputs: &[Operand<'_>],
    guards: &[parking_lot::RwLockReadGuard<'_, CpuStorage>],
    shape: &[usize],
) -> SmallVec<[Source; 8]> {
    inputs
        .iter()
        .zip(guards)
        .map(|(t, g)| {
            let layout = t.layout().broadcast_to(shape);
            let dense = t.shape() == shape && t.is_contiguous();
            let data = match &**g {
                CpuStorage::F32(v) => Data::F32(v.as_ptr(), v.len()),
                CpuStorage::Bool(v) => Data::Bool(v.as_ptr(), v.len()),
                other => unreachable!("fused: input dtype {}", other.dtype()),
            };
            let uniform = !dense && layout.strides.iter().all(|&s| s == 0);
            Source {
                data,
                offset: layout.offset,
                strides: layout.strides,
                dense,
                uniform,
            }
        })
        .collect()
}

fn run(
    program: &FusedProgram,
    sources: &[Source],
    shape: &[usize],
    out: OutPtr,
    stores: &[(usize, OutPtr)],
) {
    let numel: usize = shape.iter().product();
    let kernel = Kernel {
        program,
        sources,
        shape,
    };
    let result = program.n_inputs as usize + program.steps.len() - 1;
    let (per, chunks) = chunking(numel);
    let run_chunk = |c: usize| {
        let start = c * per;
        for_each_tile(&kernel, start, per.min(numel - start), |at, n, regs| {
            // SAFETY: `at..at + n` is inside the output and owned by this chunk; the tile's
            // inputs were read into registers before any of this is written.
            unsafe { std::ptr::copy_nonoverlapping(regs[result].as_ptr(), out.at(at), n) };
            for &(reg, target) in stores {
                // SAFETY: as for the output: the target is dense of the output's shape and
                // this tile of it was read (if at all) before the steps ran.
                unsafe { std::ptr::copy_nonoverlapping(regs[reg].as_ptr(), target.at(at), n) };
            }
        });
    };
    if chunks > 1 {
        threads::install(|| (0..chunks).into_par_iter().for_each(run_chunk));
    } else {
        run_chunk(0);
    }
}

/// How `numel` elements split into chunks of whole tiles: (elements per chunk, chunks). One
/// chunk below [`threads::GRAIN`] or with one thread (no hand-off to the pool), else a few
/// per thread for balance.
pub(super) fn chunking(numel: usize) -> (usize, usize) {
    let threads = threads::num_threads();
    if numel < threads::GRAIN || threads < 2 {
        return (numel.max(1), 1);
    }
    let per = (numel / (threads * 4)).div_ceil(TILE).max(1) * TILE;
    (per, numel.div_ceil(per))
}

/// Runs the program over elements `start..start + len` tile by tile, calling
/// `f(tile start, tile length, registers)` after each tile's steps (the result is in the last
/// register).
pub(super) fn for_each_tile(
    kernel: &Kernel,
    start: usize,
    len: usize,
    mut f: impl FnMut(usize, usize, &[[f32; TILE]]),
) {
    let program = kernel.program;
    let n_regs = program.n_inputs as usize + program.steps.len();
    // On the stack for programs of up to INLINE_REGS registers (no allocation per call),
    // made in place: a SmallVec this large is copied when it is moved.
    let mut inline = [const { MaybeUninit::<[f32; TILE]>::uninit() }; INLINE_REGS];
    let mut heap: Vec<[f32; TILE]>;
    let regs: &mut [[f32; TILE]] = if n_regs <= INLINE_REGS {
        for r in &mut inline[..n_regs] {
            r.write([0f32; TILE]);
        }
        // SAFETY: the first `n_regs` entries were initialized just above.
        unsafe { std::slice::from_raw_parts_mut(inline.as_mut_ptr().cast(), n_regs) }
    } else {
        heap = vec![[0f32; TILE]; n_regs];
        &mut heap
    };
    for (src, reg) in kernel.sources.iter().zip(regs.iter_mut()) {
        if src.uniform {
            reg.fill(get(src, src.offset));
        }
    }
    let mut at = start;
    while at < start + len {
        let n = TILE.min(start + len - at);
        prefetch_tile(kernel.sources, at + n, TILE.min(start + len - (at + n)));
        run_tile_best(kernel, at, n, regs);
        f(at, n, regs);
        at += n;
    }
}

/// [`run_tile`] compiled for the widest vector unit the CPU has ([`simd::widest!`]); the same
/// IEEE operations either way, so the same bits.
fn run_tile_best(k: &Kernel, start: usize, len: usize, regs: &mut [[f32; TILE]]) {
    simd::widest!(run_tile(k, start, len, regs))
}

/// What every tile of one fused op shares.
#[derive(Clone, Copy)]
pub(super) struct Kernel<'a> {
    /// The program.
    pub program: &'a FusedProgram,
    /// Its inputs, readable at any position of `shape`.
    pub sources: &'a [Source],
    /// The iteration shape (the inputs' broadcast shape).
    pub shape: &'a [usize],
}

#[inline(always)]
fn run_tile(k: &Kernel, start: usize, len: usize, regs: &mut [[f32; TILE]]) {
    let Kernel {
        program,
        sources,
        shape,
    } = *k;
    let base = program.n_inputs as usize;
    let (in_regs, step_regs) = regs.split_at_mut(base);
    // Dense f32 inputs are read where they are; the others are gathered into registers.
    let inputs: smallvec::SmallVec<[&[f32]; 8]> = sources
        .iter()
        .zip(in_regs.iter_mut())
        .map(|(src, reg)| match src.data {
            Data::F32(p, n) if src.dense => {
                let at = src.offset + start;
                assert!(at + len <= n, "fused: read out of bounds");
                // SAFETY: in bounds (checked); an output aliasing this input is written only
                // after this tile's steps are done (by the caller, once `inputs` is gone).
                unsafe { std::slice::from_raw_parts(p.add(at), len) }
            }
            _ if src.uniform => &reg[..len],
            _ => {
                load(src, shape, start, &mut reg[..len]);
                &reg[..len]
            }
        })
        .collect();
    for (k, step) in program.steps.iter().enumerate() {
        let (done, rest) = step_regs.split_at_mut(k);
        let out = &mut rest[0][..len];
        let r = |i: u16| -> &[f32] {
            let i = i as usize;
            if i < base {
                inputs[i]
            } else {
                &done[i - base][..len]
            }
        };
        match step {
            FusedStep::Unary { op, x } => unary_f32_slice(op, r(*x), out),
            FusedStep::Binary { op, a, b } => binary_f32_slice(op, r(*a), r(*b), out),
            FusedStep::Where { c, a, b } => {
                // A blend, not a branch: a mask from a comparison is random, and a
                // mispredicted branch per element made ReLU's backward 25× slower.
                let (c, a, b) = (r(*c), r(*a), r(*b));
                for ((o, &c), (&x, &y)) in out.iter_mut().zip(c).zip(a.iter().zip(b)) {
                    *o = std::hint::select_unpredictable(c != 0.0, x, y);
                }
            }
            FusedStep::Copy { x } => out.copy_from_slice(r(*x)),
        }
    }
}

/// Asks the cache for the next tile of every dense f32 input while this tile computes: the
/// steps read each input in a separate phase, so without it every phase waits on memory
/// (an optimizer update, streaming four full tensors, ran 2× slower than one loop over them).
#[inline(always)]
fn prefetch_tile(sources: &[Source], start: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    for src in sources {
        if let Data::F32(p, n) = src.data {
            if src.dense && src.offset + start + len <= n {
                // 16 f32 per 64-byte line.
                for i in (0..len).step_by(16) {
                    // SAFETY: the address is inside the input's buffer (checked above), and a
                    // prefetch never faults or changes memory.
                    unsafe {
                        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                        _mm_prefetch::<_MM_HINT_T0>(p.add(src.offset + start + i).cast());
                    }
                }
            }
        }
    }
}

/// Reads the source's values at output positions `start..start + dst.len()`.
#[inline(always)]
fn load(src: &Source, shape: &[usize], start: usize, dst: &mut [f32]) {
    if src.dense {
        let at = src.offset + start;
        let n = dst.len();
        match src.data {
            Data::F32(p, len) => {
                assert!(at + n <= len, "fused: read out of bounds");
                // SAFETY: in bounds (checked); nothing writes these positions until this
                // tile's result is stored.
                let v = unsafe { std::slice::from_raw_parts(p.add(at), n) };
                dst.copy_from_slice(v)
            }
            Data::Bool(p, len) => {
                assert!(at + n <= len, "fused: read out of bounds");
                // SAFETY: as above.
                let v = unsafe { std::slice::from_raw_parts(p.add(at), n) };
                for (d, &b) in dst.iter_mut().zip(v) {
                    *d = b as u8 as f32;
                }
            }
        }
        return;
    }
    let inner_stride = src.strides.last().copied().unwrap_or(0);
    let len = dst.len();
    for_each_run_from(
        shape,
        &src.strides,
        src.offset,
        start,
        len,
        |pos, done, run| {
            let dst = &mut dst[done..done + run];
            match src.data {
                Data::F32(..) if inner_stride == 0 => dst.fill(get(src, pos)),
                Data::F32(p, len) if inner_stride == 1 => {
                    assert!(pos + run <= len, "fused: read out of bounds");
                    // SAFETY: in bounds (checked).
                    dst.copy_from_slice(unsafe { std::slice::from_raw_parts(p.add(pos), run) })
                }
                _ => {
                    for (i, d) in dst.iter_mut().enumerate() {
                        *d = get(src, pos + i * inner_stride);
                    }
                }
            }
        },
    );
}

#[inline(always)]
fn get(src: &Source, i: usize) -> f32 {
    match src.data {
        Data::F32(p, len) => {
            assert!(i < len, "fused: read out of bounds");
            // SAFETY: in bounds (checked).
            unsafe { *p.add(i) }
        }
        Data::Bool(p, len) => {
            assert!(i < len, "fused: read out of bounds");
            // SAFETY: in bounds (checked).
            (unsafe { *p.add(i) }) as u8 as f32
        }
    }
}
