//! Buffers shared by a value and its views, with a version counter that detects in-place
//! modification of values saved for backward.

pub use crate::buffer::{CpuStorage, StorageElement};
use crate::device::Device;
use crate::dtype::DType;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::sync::atomic::{AtomicU64, Ordering};

/// A device buffer behind a lock, plus its version counter.
#[derive(Debug)]
pub struct Storage {
    data: RwLock<CpuStorage>,
    version: AtomicU64,
    device: Device,
    /// One word that graph capture (the layer above) keeps here: opaque to this layer except
    /// for [`Storage::BORN_IN_CAPTURE`], set at creation. Atomic because capture rewrites it
    /// for every handle at once (an in-place write rebinds a stand-in to a new value).
    capture_tag: AtomicU64,
    /// Bytes the caching allocator counts as live for this buffer (0 for small buffers).
    tracked: usize,
}

impl Drop for Storage {
    #[inline]
    fn drop(&mut self) {
        // Hand large buffers to the caching allocator for the next op of the same size.
        let data = std::mem::replace(self.data.get_mut(), CpuStorage::F32(Vec::new()));
        crate::pool::recycle(data, self.tracked);
    }
}

impl Storage {
    /// The bit of [`Storage::capture_tag`] set on storages created while capture was active
    /// on their thread (constants of the function being traced, not captured state). The
    /// other 63 bits are the capture layer's.
    pub const BORN_IN_CAPTURE: u64 = 1 << 63;

    /// Wraps a host buffer.
    #[inline]
    pub fn cpu(data: CpuStorage) -> Storage {
        let tracked = crate::pool::tracked_bytes(&data);
        crate::pool::on_alloc(tracked);
        Storage {
            data: RwLock::new(data),
            version: AtomicU64::new(0),
            device: Device::Cpu,
            capture_tag: AtomicU64::new(if capture::is_active() {
                Storage::BORN_IN_CAPTURE
            } else {
                0
            }),
            tracked,
        }
    }

    /// A data-less stand-in for a traced value, carrying `tag` (graph capture, in the layer
    /// above, makes these and says what the tag means). Marks capture as having happened in
    /// this process, so the checks for stale stand-ins run from now on.
    pub fn stand_in(dtype: DType, tag: u64) -> Storage {
        capture::mark_ever();
        Storage {
            data: RwLock::new(CpuStorage::filled(dtype, 0, 0.0)),
            version: AtomicU64::new(0),
            device: Device::Cpu,
            capture_tag: AtomicU64::new(tag),
            tracked: 0,
        }
    }

    /// The capture layer's word (see [`Storage::BORN_IN_CAPTURE`]); kernels never read it.
    #[inline]
    pub fn capture_tag(&self) -> u64 {
        self.capture_tag.load(Ordering::Relaxed)
    }

    /// Replaces the capture layer's word.
    #[inline]
    pub fn set_capture_tag(&self, tag: u64) {
        self.capture_tag.store(tag, Ordering::Relaxed);
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
/// is being traced is flagged as that trace's constant ([`Storage::BORN_IN_CAPTURE`]).
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
