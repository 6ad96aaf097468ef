//! A caching allocator for large tensor buffers. Training repeats the same shapes every step;
//! handing a freed buffer to the next op of the same size avoids the allocator's fresh
//! `mmap` for each large temporary and the page faults of touching it (measured at ~15% of a
//! transformer step without this cache).
//!
//! The cache must not raise the process's peak memory. Large buffers are counted while they
//! live in a storage (`live`), and the cache keeps `live + cached` at most the largest `live`
//! seen so far: when a buffer is allocated fresh (a cache miss, or a kernel that does not
//! allocate through [`take`]) while the cache holds buffers, the least recently wanted cached
//! buffers are released to make room. So the cache only holds memory the program's own peak
//! already paid for; at the peak of a repeating training step it is (nearly) empty, and the
//! buffers of a finished workload are released as the next one allocates, instead of
//! occupying the cache (before this, buffers of sizes nothing asked for again filled it to
//! its cap and added to every later peak).

use crate::buffer::{CpuStorage, StorageElement};
use crate::dtype::DType;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Buffers smaller than this go straight to the system allocator (fast for small sizes).
const MIN_BYTES: usize = 64 * 1024;
/// Most bytes kept in the cache; beyond it freed buffers are released.
const MAX_CACHED_BYTES: usize = 256 << 20;

/// Bytes of large buffers held by live storages.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The largest `LIVE` seen: the bound on `LIVE + cached`.
static LIMIT: AtomicUsize = AtomicUsize::new(0);
/// The largest `LIVE` since the last [`window_start`] (for `crate::memory`).
static WINDOW_PEAK: AtomicUsize = AtomicUsize::new(0);
/// Mirror of `Cache::bytes`, so the allocation path checks the bound without the lock.
static CACHED: AtomicUsize = AtomicUsize::new(0);

/// The cached buffers of one (dtype, element count).
#[derive(Default)]
struct Bucket {
    bufs: Vec<CpuStorage>,
    /// `Cache::tick` at the last hit (0: never asked for since cached).
    last_hit: u64,
}

struct Cache {
    /// Keyed by (dtype, capacity in elements), ordered so a request finds the smallest
    /// cached buffer that fits.
    free: BTreeMap<(DType, usize), Bucket>,
    bytes: usize,
    /// Counts hits, to order buckets by how recently they were wanted.
    tick: u64,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

impl Cache {
    /// Removes and returns the smallest cached buffer of `dtype` holding at least `n` and at
    /// most `2n` elements, marking its bucket wanted at `tick`. A step's temporaries come in a
    /// few sizes; exact-size reuse alone sent the CNN backward's other sizes to fresh memory
    /// (page faults, and 18 MiB more peak RSS from the system allocator's fragmentation).
    fn take_fit(&mut self, dtype: DType, n: usize, tick: u64) -> Option<CpuStorage> {
        let key = self
            .free
            .range((dtype, n)..=(dtype, n.saturating_mul(2)))
            .find(|(_, b)| !b.bufs.is_empty())
            .map(|(k, _)| *k)?;
        let bucket = self.free.get_mut(&key)?;
        let s = bucket.bufs.pop()?;
        // An emptied bucket stays, with its last hit, so that the buffer coming back is
        // ranked as wanted when the cache evicts.
        bucket.last_hit = tick;
        self.bytes -= key.1 * dtype.size_in_bytes();
        Some(s)
    }

    /// Removes buffers, least recently hit bucket first (largest buffers among equals),
    /// until at most `target` bytes are cached; returns them so they are freed after the
    /// lock is released.
    fn evict_to(&mut self, target: usize) -> Vec<CpuStorage> {
        let mut out = Vec::new();
        while self.bytes > target {
            let key = self
                .free
                .iter()
                .filter(|(_, b)| !b.bufs.is_empty())
                .min_by_key(|(k, b)| (b.last_hit, std::cmp::Reverse(k.1 * k.0.size_in_bytes())))
                .map(|(k, _)| *k);
            let Some(key) = key else { break };
            let bucket = self.free.get_mut(&key).expect("pool: bucket");
            let s = bucket.bufs.pop().expect("pool: non-empty bucket");
            if bucket.bufs.is_empty() {
                self.free.remove(&key);
            }
            self.bytes -= key.1 * key.0.size_in_bytes();
            out.push(s);
        }
        out
    }
}

/// An empty vector with capacity for at least `n` elements (at most `2n`), reused from a freed
/// tensor when the cache holds one that fits.
pub fn take<T: StorageElement>(n: usize) -> Vec<T> {
    let bytes = n * std::mem::size_of::<T>();
    if bytes >= MIN_BYTES && CACHED.load(Ordering::Relaxed) >= bytes {
        let mut guard = CACHE.lock();
        if let Some(cache) = guard.as_mut() {
            cache.tick += 1;
            let tick = cache.tick;
            if let Some(s) = cache.take_fit(T::DTYPE, n, tick) {
                CACHED.store(cache.bytes, Ordering::Relaxed);
                drop(guard);
                let mut v = T::unwrap(s).expect("pool: dtype key mismatch");
                v.clear();
                return v;
            }
        }
    }
    let v = Vec::<T>::with_capacity(n);
    advise_huge_pages(v.as_ptr().cast(), bytes);
    v
}

/// Buffers at least this large are backed by transparent huge pages where the kernel offers
/// them on request (`madvise` mode, as on this project's machines).
const HUGE_PAGE_MIN_BYTES: usize = 4 << 20;

/// Asks the kernel to back a fresh, untouched buffer with 2 MiB pages: first touching a cache
/// miss then takes one fault per 2 MiB instead of 512 (page faults were ~10% of the CNN step:
/// its backward allocates its largest buffers while every activation is alive, when the cache
/// is empty by design). Only whole aligned 2 MiB runs inside the buffer are advised, so no
/// memory outside it is touched; `KILN_HUGE_PAGES=0` turns it off.
fn advise_huge_pages(ptr: *const u8, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        use std::sync::OnceLock;
        static ON: OnceLock<bool> = OnceLock::new();
        if bytes < HUGE_PAGE_MIN_BYTES
            || !*ON.get_or_init(|| std::env::var("KILN_HUGE_PAGES").map_or(true, |v| v != "0"))
        {
            return;
        }
        const HUGE: usize = 2 << 20;
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize + bytes) / HUGE * HUGE;
        if end > start {
            // SAFETY: `start..end` lies inside the buffer just allocated (and owned by the
            // caller); MADV_HUGEPAGE only changes how its pages are backed, never their
            // contents, and a failure (no THP support) is harmless.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, bytes);
}

/// A vector of `n` copies of `value`, from the cache when possible.
pub fn filled<T: StorageElement>(n: usize, value: T) -> Vec<T> {
    let mut v = take(n);
    v.resize(n, value);
    v
}

/// Bytes of `s` the cache accounts for (0 below the size it manages).
pub(crate) fn tracked_bytes(s: &CpuStorage) -> usize {
    let bytes = s.capacity() * s.dtype().size_in_bytes();
    if bytes < MIN_BYTES {
        0
    } else {
        bytes
    }
}

/// Notes a storage taking ownership of a buffer of `bytes` (from [`tracked_bytes`]); releases
/// cached buffers if that raises `live + cached` above the largest `live` so far (the buffer
/// was freshly allocated rather than taken from the cache).
pub(crate) fn on_alloc(bytes: usize) {
    if bytes == 0 {
        return;
    }
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    WINDOW_PEAK.fetch_max(live, Ordering::Relaxed);
    let limit = LIMIT.fetch_max(live, Ordering::Relaxed).max(live);
    if live + CACHED.load(Ordering::Relaxed) <= limit {
        return;
    }
    let released = {
        let mut guard = CACHE.lock();
        match guard.as_mut() {
            Some(cache) => {
                let live = LIVE.load(Ordering::Relaxed);
                let limit = LIMIT.load(Ordering::Relaxed);
                let out = cache.evict_to(limit.saturating_sub(live));
                CACHED.store(cache.bytes, Ordering::Relaxed);
                out
            }
            None => Vec::new(),
        }
    };
    drop(released);
}

/// Takes back a freed storage's buffer (`bytes` as counted by [`on_alloc`]) and keeps it for
/// reuse if it is large and the cache has room.
pub(crate) fn recycle(s: CpuStorage, bytes: usize) {
    if bytes == 0 {
        return;
    }
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
    let (dtype, cap) = (s.dtype(), s.capacity());
    let bytes = tracked_bytes(&s);
    if bytes == 0 {
        return;
    }
    let mut guard = CACHE.lock();
    let cache = guard.get_or_insert_with(|| Cache {
        free: BTreeMap::new(),
        bytes: 0,
        tick: 0,
    });
    if cache.bytes + bytes > MAX_CACHED_BYTES {
        drop(guard);
        return;
    }
    cache.bytes += bytes;
    CACHED.store(cache.bytes, Ordering::Relaxed);
    cache.free.entry((dtype, cap)).or_default().bufs.push(s);
}

/// Releases every cached buffer to the system.
pub fn clear() {
    let old = {
        let mut guard = CACHE.lock();
        CACHED.store(0, Ordering::Relaxed);
        guard.take()
    };
    drop(old);
}

/// Bytes currently held in the cache.
pub fn cached_bytes() -> usize {
    CACHE.lock().as_ref().map(|c| c.bytes).unwrap_or(0)
}

/// Bytes of large buffers (the sizes the cache manages) held by live tensors.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Starts a measuring window: its peak is reset to the bytes live now, which it returns.
pub fn window_start() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    WINDOW_PEAK.store(live, Ordering::Relaxed);
    live
}

/// The most bytes of large buffers live at once since [`window_start`].
pub fn window_peak() -> usize {
    WINDOW_PEAK.load(Ordering::Relaxed)
}

/// The most bytes of large buffers live at once so far: the cache keeps
/// [`live_bytes`]` + `[`cached_bytes`] at most this.
pub fn peak_live_bytes() -> usize {
    LIMIT.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;

    #[test]
    fn large_buffers_are_reused() {
        let n = 100_003; // unlikely to collide with other tests' sizes
        let v: Vec<f32> = filled(n, 1.0);
        let ptr = v.as_ptr();
        drop(Storage::cpu(CpuStorage::F32(v)));
        let w: Vec<f32> = take(n);
        assert_eq!(w.as_ptr(), ptr);
        assert!(w.is_empty() && w.capacity() >= n);
        let small: Vec<f32> = take(10);
        assert_eq!(small.capacity(), 10);
    }

    #[test]
    fn fresh_allocations_release_the_least_recently_wanted_buffers() {
        let mut cache = Cache {
            free: BTreeMap::new(),
            bytes: 0,
            tick: 5,
        };
        let put = |cache: &mut Cache, n: usize, last_hit: u64| {
            let b = cache.free.entry((DType::F64, n)).or_default();
            b.bufs.push(CpuStorage::F64(Vec::with_capacity(n)));
            b.last_hit = last_hit;
            cache.bytes += n * 8;
        };
        put(&mut cache, 10_000, 3); // 80 kB, wanted at tick 3
        put(&mut cache, 20_000, 0); // 160 kB, never wanted
        put(&mut cache, 30_000, 4); // 240 kB, wanted most recently
        let out = cache.evict_to(300_000);
        // The never-wanted bucket goes first, then the older of the other two.
        let sizes: Vec<usize> = out.iter().map(|s| s.capacity()).collect();
        assert_eq!(sizes, [20_000, 10_000]);
        assert_eq!(cache.bytes, 240_000);
        assert!(cache.evict_to(0).len() == 1 && cache.bytes == 0);
    }

    #[test]
    fn a_request_takes_the_smallest_cached_buffer_up_to_twice_its_size() {
        let mut cache = Cache {
            free: BTreeMap::new(),
            bytes: 0,
            tick: 0,
        };
        for n in [50_000, 120_000, 90_000] {
            cache
                .free
                .entry((DType::F32, n))
                .or_default()
                .bufs
                .push(CpuStorage::F32(Vec::with_capacity(n)));
            cache.bytes += n * 4;
        }
        // Another dtype, or a buffer more than twice the request, is never handed out.
        assert!(cache.take_fit(DType::F64, 50_000, 1).is_none());
        assert!(cache.take_fit(DType::F32, 20_000, 1).is_none());
        assert!(cache.take_fit(DType::F32, 130_000, 1).is_none());
        let got = cache.take_fit(DType::F32, 80_000, 2).expect("fits");
        assert_eq!(got.capacity(), 90_000);
        assert_eq!(cache.bytes, (50_000 + 120_000) * 4);
        assert_eq!(
            cache
                .take_fit(DType::F32, 80_000, 3)
                .expect("fits")
                .capacity(),
            120_000
        );
        assert_eq!(
            cache
                .take_fit(DType::F32, 50_000, 4)
                .expect("fits")
                .capacity(),
            50_000
        );
        assert_eq!(cache.bytes, 0);
        assert_eq!(cache.free[&(DType::F32, 50_000)].last_hit, 4);
    }
}
