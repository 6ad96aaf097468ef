//! Weights packed once for the skinny products ([`super::skinny`]), as onnxruntime packs a
//! constant right operand when its session loads.
//!
//! Read in place, a Linear's weight is a set of dot-product columns: each block of outputs
//! streams several columns of `b` and keeps 16-lane partial sums. Packed into panels of
//! [`PANEL`] columns, `k` rows each, contiguous, the same product is one sequential stream of
//! `b` with each row of `a` broadcast, and no horizontal sums: 8×784 @ 784×480 ran at 117
//! GFLOPS against 95 read in place (hot in L2), and at 114 against 82 from L3.
//!
//! A weight is packed the second time a product reads it unchanged: the cache notes the
//! storage and its version the first time, and packs when it sees that version again. A
//! training step writes its weights (each write bumps the storage's version), so it never
//! pays for a pack it would use once; an inference loop packs at its second call. The cache
//! holds a weak reference to each storage: an entry whose storage is gone is dropped, and a
//! new storage can never be mistaken for it.

use crate::storage::Storage;
use parking_lot::Mutex;
use std::sync::{Arc, Weak};

/// Columns per packed panel (three 16-lane vectors).
pub(super) const PANEL: usize = 48;

/// Right-operand elements (`k·n`) below which a product reads its weight in place: packing
/// pays only over a weight that streams from L2 or beyond.
const MIN_ELEMENTS: usize = 1 << 16;

/// Most weights the cache tracks, and most bytes of packed copies it keeps.
const MAX_ENTRIES: usize = 256;
const MAX_BYTES: usize = 1 << 30;

/// A weight in panels: panel `p` holds columns `PANEL·p..` as `k` rows of [`PANEL`] floats
/// (zero past the last column).
pub(super) struct Packed {
    /// The panels, one after another.
    pub data: Vec<f32>,
}

/// Where the weight lies in its storage: `b[p][j]` at `offset + p·rs + j·cs`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Key {
    pub offset: usize,
    pub k: usize,
    pub n: usize,
    pub rs: isize,
    pub cs: isize,
}

struct Entry {
    storage: Weak<Storage>,
    key: Key,
    version: u64,
    /// `None` until the weight is seen a second time at `version`.
    packed: Option<Arc<Packed>>,
    /// When it was last read, in lookups.
    used: u64,
}

struct Cache {
    entries: Vec<Entry>,
    lookups: u64,
}

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    entries: Vec::new(),
    lookups: 0,
});

/// The packed form of the f32 weight `b` (the whole storage slice) at `key`, when a product
/// has read it before at this `version` (see the module doc); `None` means read it in place.
/// The caller holds `storage`'s read lock, so `version` is current.
pub(super) fn lookup(
    storage: &Arc<Storage>,
    version: u64,
    key: Key,
    b: &[f32],
) -> Option<Arc<Packed>> {
    if key.k * key.n < MIN_ELEMENTS {
        return None;
    }
    let mut cache = CACHE.lock();
    cache.lookups += 1;
    let now = cache.lookups;
    let found = cache
        .entries
        .iter()
        .position(|e| e.key == key && std::ptr::eq(e.storage.as_ptr(), Arc::as_ptr(storage)));
    let Some(i) = found else {
        cache.note(storage, key, version, now);
        return None;
    };
    let bytes: usize = cache.packed_bytes();
    let e = &mut cache.entries[i];
    e.used = now;
    if e.version != version {
        e.version = version;
        e.packed = None;
        return None;
    }
    if e.packed.is_none() && bytes + key.k * key.n.next_multiple_of(PANEL) * 4 <= MAX_BYTES {
        e.packed = Some(Arc::new(Packed { data: pack(b, key) }));
    }
    e.packed.clone()
}

/// `b` (element (p, j) at `key.offset + p·key.rs + j·key.cs`) in panels of [`PANEL`]
/// columns: panel `q` holds columns `PANEL·q..` as `k` rows of `PANEL` floats, zero past
/// column `n` (the layout `skinny`'s packed kernel reads).
fn pack(b: &[f32], key: Key) -> Vec<f32> {
    let (k, n) = (key.k, key.n);
    let mut out = vec![0.0; k * n.next_multiple_of(PANEL)];
    for j in 0..n {
        let (panel, lane) = (j / PANEL, j % PANEL);
        let dst = &mut out[panel * k * PANEL + lane..];
        let col = key.offset as isize + j as isize * key.cs;
        for p in 0..k {
            dst[p * PANEL] = b[(col + p as isize * key.rs) as usize];
        }
    }
    out
}

impl Cache {
    /// Records a first sighting, making room by dropping entries whose storage is gone, then
    /// the least recently used.
    fn note(&mut self, storage: &Arc<Storage>, key: Key, version: u64, now: u64) {
        self.entries.retain(|e| e.storage.strong_count() > 0);
        if self.entries.len() >= MAX_ENTRIES {
            if let Some(oldest) = (0..self.entries.len()).min_by_key(|&i| self.entries[i].used) {
                self.entries.swap_remove(oldest);
            }
        }
        self.entries.push(Entry {
            storage: Arc::downgrade(storage),
            key,
            version,
            packed: None,
            used: now,
        });
    }

    fn packed_bytes(&self) -> usize {
        self.entries
            .iter()
            .filter_map(|e| e.packed.as_ref())
            .map(|p| p.data.len() * 4)
            .sum()
    }
}

/// Whether the cache holds a packed copy of (part of) `storage`, for tests.
#[cfg(test)]
pub(super) fn is_packed(storage: &Arc<Storage>) -> bool {
    CACHE
        .lock()
        .entries
        .iter()
        .any(|e| std::ptr::eq(e.storage.as_ptr(), Arc::as_ptr(storage)) && e.packed.is_some())
}
