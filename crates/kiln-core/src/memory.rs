//! Opt-in accounting of the bytes held by live tensor storages, with a high-water mark: how
//! much memory a step needs, independent of what the allocator keeps cached. Off by default
//! (counting costs a few atomic operations per op).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static ON: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Starts counting (from zero) storages created from now on.
pub fn start() {
    LIVE.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    ON.store(true, Ordering::Relaxed);
}

/// Stops counting and returns the peak live bytes since [`start`].
pub fn stop() -> usize {
    ON.store(false, Ordering::Relaxed);
    PEAK.load(Ordering::Relaxed)
}

/// Resets the high-water mark to the bytes live now.
pub fn reset_peak() {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Bytes held by counted storages now.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Highest [`live_bytes`] since [`start`] or [`reset_peak`].
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Records a new storage holding `data`; returns the bytes counted (0 when off), which its
/// drop must report back.
#[inline]
pub(crate) fn on_alloc(data: &crate::storage::CpuStorage) -> usize {
    if !ON.load(Ordering::Relaxed) {
        return 0;
    }
    let bytes = data.len() * data.dtype().size_in_bytes();
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
    bytes
}

/// Records the drop of a counted storage.
#[inline]
pub(crate) fn on_free(bytes: usize) {
    // Saturating: a storage counted before a `start` reset may drop after it.
    let _ = LIVE.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(bytes))
    });
}
