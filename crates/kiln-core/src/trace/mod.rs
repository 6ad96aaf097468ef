//! Graph capture: while a trace is active, [`crate::ops::dispatch`] records ops instead of
//! running kernels (issue 7). Eager-only fast paths (fused optimizer loops and the like) must
//! check [`is_tracing`] and fall back to primitive ops, so a traced step records them.

/// True while the current thread is tracing a function for `compile`.
pub fn is_tracing() -> bool {
    false
}
