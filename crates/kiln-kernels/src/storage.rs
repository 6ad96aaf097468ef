//! Buffers shared by a value and its views, with a version counter that detects in-place
//! modification of values saved for backward.

pub use crate::buffer::{CpuStorage, StorageElement};
use crate::device::Device;
use crate::dtype::DType;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A device buffer behind a lock, plus its version counter.
#[derive(Debug)]
pub struct Storage {
    data: RwLock<CpuStorage>,
    version: AtomicU64,
    device: Device,
    /// The traced value this storage stands for while compiling ([`NOT_TRACED`] for real
    /// data); atomic because an in-place write during tracing rebinds it for every handle.
    tracer: AtomicU32,
    /// Which trace a tracer belongs to (tracers that outlive their trace are caught).
    trace_generation: u32,
    /// Created while a trace was active: a constant of that trace, not captured state.
    born_in_trace: bool,
    /// Bytes the caching allocator counts as live for this buffer (0 for small buffers).
    tracked: usize,
}

/// `Storage::tracer` value of storages that hold real data.
const NOT_TRACED: u32 = u32::MAX;

impl Drop for Storage {
    #[inline]
    fn drop(&mut self) {
        // Hand large buffers to the caching allocator for the next op of the same size.
        let data = std::mem::replace(self.data.get_mut(), CpuStorage::F32(Vec::new()));
        crate::pool::recycle(data, self.tracked);
    }
}

impl Storage {
    /// Wraps a host buffer.
    #[inline]
    pub fn cpu(data: CpuStorage) -> Storage {
        let tracked = crate::pool::tracked_bytes(&data);
        crate::pool::on_alloc(tracked);
        Storage {
            data: RwLock::new(data),
            version: AtomicU64::new(0),
            device: Device::Cpu,
            tracer: AtomicU32::new(NOT_TRACED),
            trace_generation: 0,
            born_in_trace: capture::is_active(),
            tracked,
        }
    }

    /// A data-less stand-in for traced value `id` of capture `generation` (graph capture, in
    /// the layer above, makes these). Marks capture as having happened in this process, so
    /// the checks for stale stand-ins run from now on.
    pub fn tracer(dtype: DType, id: u32, generation: u32) -> Storage {
        capture::mark_ever();
        Storage {
            data: RwLock::new(CpuStorage::filled(dtype, 0, 0.0)),
            version: AtomicU64::new(0),
            device: Device::Cpu,
            tracer: AtomicU32::new(id),
            trace_generation: generation,
            born_in_trace: true,
            tracked: 0,
        }
    }

    /// The traced value this storage stands for, if it is a tracer.
    #[inline]
    pub fn tracer_id(&self) -> Option<u32> {
        match self.tracer.load(Ordering::Relaxed) {
            NOT_TRACED => None,
            id => Some(id),
        }
    }

    /// The trace a tracer storage was made by.
    pub fn trace_generation(&self) -> u32 {
        self.trace_generation
    }

    /// Rebinds a tracer to a new value (an in-place write recorded during tracing).
    pub fn set_tracer_id(&self, id: u32) {
        self.tracer.store(id, Ordering::Relaxed);
    }

    /// True for real-data storages created while a trace was running (that trace's constants).
    pub fn born_in_trace(&self) -> bool {
        self.born_in_trace
    }

    /// Shared read access to the buffer.
    #[inline]
    pub fn read(&self) -> RwLockReadGuard<'_, CpuStorage> {
        // Recursive: `x + x` reads the same storage twice on one thread.
        self.data.read_recursive()
    }

    /// Exclusive write access; bumps the version so saved tensors notice the change.
    #[inline]
    pub fn write(&self) -> RwLockWriteGuard<'_, CpuStorage> {
        self.version.fetch_add(1, Ordering::Relaxed);
        self.data.write()
    }

    /// Current version (number of in-place writes so far).
    #[inline]
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// The device the buffer lives on.
    #[inline]
    pub fn device(&self) -> Device {
        self.device
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.read_recursive().dtype()
    }
}

/// Whether graph capture is running on this thread. Graph capture lives in the layer above
/// (`kiln_core::trace`); storage only needs to know, so that a buffer made while a function
/// is being traced is flagged as that trace's constant ([`Storage::born_in_trace`]).
pub mod capture {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, Ordering};

    thread_local! {
        static ACTIVE: Cell<bool> = const { Cell::new(false) };
    }

    /// Set once any thread has started a capture: until then the hot eager paths skip every
    /// capture check with one plain load instead of a thread-local access.
    static EVER: AtomicBool = AtomicBool::new(false);

    /// True while the current thread is capturing a graph.
    #[inline]
    pub fn is_active() -> bool {
        EVER.load(Ordering::Relaxed) && ACTIVE.with(|a| a.get())
    }

    /// False until the first capture in this process.
    #[inline]
    pub fn ever_active() -> bool {
        EVER.load(Ordering::Relaxed)
    }

    /// Starts or ends capture on the current thread.
    pub fn set_active(on: bool) {
        if on {
            mark_ever();
        }
        ACTIVE.with(|a| a.set(on));
    }

    /// Records that a capture has started (or a stand-in buffer exists) in this process.
    pub(crate) fn mark_ever() {
        EVER.store(true, Ordering::Relaxed);
    }
}
