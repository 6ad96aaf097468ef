//! How much tensor memory a piece of work needs at its peak, independent of what the caching
//! allocator keeps cached: the allocator's own count of bytes held by live tensors (buffers of
//! 64 KiB or more, the sizes it manages — smaller ones do not move a training step's peak),
//! watched over a window.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Live bytes when the window started.
static BASE: AtomicUsize = AtomicUsize::new(0);

/// Starts a measuring window at the bytes live now.
pub fn start() {
    BASE.store(crate::pool::window_start(), Ordering::Relaxed);
}

/// The most bytes live at once since [`start`], beyond those live at [`start`] (tensors that
/// existed before, such as parameters, are not counted).
pub fn stop() -> usize {
    crate::pool::window_peak().saturating_sub(BASE.load(Ordering::Relaxed))
}

/// Bytes of (large) tensor buffers live now.
pub fn live_bytes() -> usize {
    crate::pool::live_bytes()
}
