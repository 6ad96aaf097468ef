//! A per-op profiler: calls, total and self time, and bytes allocated for outputs, per op and
//! per backward op, sorted by time. Turn it on with `KILN_PROFILE=1` or [`enable`], read it
//! with [`report`] (or print it with [`print()`]). When off it costs one relaxed atomic load per
//! op. `KILN_PROFILE=shapes` (or [`record_shapes`]) keeps one row per op and input shapes,
//! like PyTorch's `record_shapes`: which matmul of a model is the slow one.

use parking_lot::Mutex;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// `UNKNOWN` until `KILN_PROFILE` is read (or [`enable`]/[`disable`] is called), then `OFF`
/// or `ON`: the hot path is one relaxed load and a compare.
static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;
static STATS: Mutex<Option<HashMap<String, Stat>>> = Mutex::new(None);
/// Whether rows are split by input shapes.
static SHAPES: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Open scopes on this thread: (start, time spent in child scopes).
    static STACK: RefCell<Vec<(Instant, Duration)>> = const { RefCell::new(Vec::new()) };
}

/// Aggregated numbers for one op name.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stat {
    /// Times the op ran.
    pub calls: u64,
    /// Wall time including nested ops.
    pub total: Duration,
    /// Wall time excluding nested ops.
    pub self_time: Duration,
    /// Bytes of output buffers allocated.
    pub bytes: u64,
}

/// True when profiling (reads `KILN_PROFILE` once).
#[inline]
pub fn is_enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => read_env(),
    }
}

#[cold]
fn read_env() -> bool {
    let var = std::env::var("KILN_PROFILE").unwrap_or_default();
    let on = !var.is_empty() && var != "0";
    if var.trim().eq_ignore_ascii_case("shapes") {
        SHAPES.store(true, Ordering::Relaxed);
    }
    // An `enable`/`disable` racing with this first read wins.
    let _ = STATE.compare_exchange(
        UNKNOWN,
        if on { ON } else { OFF },
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    STATE.load(Ordering::Relaxed) == ON
}

/// Starts collecting (keeps what was collected before).
pub fn enable() {
    STATE.store(ON, Ordering::Relaxed);
}

/// Stops collecting.
pub fn disable() {
    STATE.store(OFF, Ordering::Relaxed);
}

/// Splits rows by input shapes (`true`) or keeps one row per op.
pub fn record_shapes(on: bool) {
    SHAPES.store(on, Ordering::Relaxed);
}

/// The row name of op `name` run on inputs of `shapes`: the name, followed by the shapes
/// when they are recorded.
pub fn op_row<'a>(name: &str, shapes: impl IntoIterator<Item = &'a [usize]>) -> String {
    if !SHAPES.load(Ordering::Relaxed) {
        return name.to_string();
    }
    let dims: Vec<String> = shapes
        .into_iter()
        .map(|s| {
            let d: Vec<String> = s.iter().map(|x| x.to_string()).collect();
            format!("[{}]", d.join(","))
        })
        .collect();
    format!("{name} {}", dims.join(" "))
}

/// Clears collected numbers.
pub fn reset() {
    *STATS.lock() = None;
}

/// A timed region; created by [`scope`], recorded when dropped.
pub struct Scope {
    name: Option<String>,
    bytes: u64,
}

/// Opens a timed region named `name` (a no-op when profiling is off). Nested scopes count
/// toward this one's total but not its self time.
#[inline]
pub fn scope(name: impl FnOnce() -> String) -> Scope {
    if !is_enabled() {
        return Scope {
            name: None,
            bytes: 0,
        };
    }
    STACK.with(|s| s.borrow_mut().push((Instant::now(), Duration::ZERO)));
    Scope {
        name: Some(name()),
        bytes: 0,
    }
}

impl Scope {
    /// True when this scope is being recorded (profiling was on when it opened).
    #[inline]
    pub fn is_active(&self) -> bool {
        self.name.is_some()
    }

    /// Records `bytes` allocated by this scope.
    pub fn add_bytes(&mut self, bytes: u64) {
        self.bytes += bytes;
    }
}

impl Drop for Scope {
    /// Inline so that the common case, profiling off, costs one check in the caller's crate
    /// (`dispatch` drops one scope per op).
    #[inline]
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            record(name, self.bytes);
        }
    }
}

/// Closes the innermost open scope and adds its numbers to the stats.
#[cold]
fn record(name: String, bytes: u64) {
    let (elapsed, children) = STACK.with(|s| {
        let mut s = s.borrow_mut();
        let (start, children) = s.pop().expect("profile: unbalanced scopes");
        let elapsed = start.elapsed();
        if let Some(parent) = s.last_mut() {
            parent.1 += elapsed;
        }
        (elapsed, children)
    });
    let mut stats = STATS.lock();
    let e = stats
        .get_or_insert_with(HashMap::new)
        .entry(name)
        .or_default();
    e.calls += 1;
    e.total += elapsed;
    e.self_time += elapsed.saturating_sub(children);
    e.bytes += bytes;
}

/// A snapshot of the collected numbers.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// (name, numbers), sorted by self time, largest first.
    pub rows: Vec<(String, Stat)>,
}

/// The numbers collected so far.
pub fn report() -> Report {
    let mut rows: Vec<(String, Stat)> = STATS
        .lock()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    rows.sort_by(|a, b| b.1.self_time.cmp(&a.1.self_time).then(a.0.cmp(&b.0)));
    Report { rows }
}

/// Prints [`report`] to stderr.
pub fn print() {
    eprintln!("{}", report());
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Duration = self.rows.iter().map(|r| r.1.self_time).sum();
        let w = self
            .rows
            .iter()
            .map(|r| r.0.len())
            .max()
            .unwrap_or(2)
            .max(2);
        writeln!(
            f,
            "{:<w$}  {:>8}  {:>11}  {:>11}  {:>6}  {:>11}",
            "op", "calls", "total ms", "self ms", "self%", "MiB alloc"
        )?;
        for (name, s) in &self.rows {
            let pct = 100.0 * s.self_time.as_secs_f64() / all.as_secs_f64().max(1e-12);
            writeln!(
                f,
                "{name:<w$}  {:>8}  {:>11.3}  {:>11.3}  {pct:>5.1}%  {:>11.2}",
                s.calls,
                s.total.as_secs_f64() * 1e3,
                s.self_time.as_secs_f64() * 1e3,
                s.bytes as f64 / (1 << 20) as f64
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_scopes_split_self_time() {
        enable();
        reset();
        {
            // The outer scope does almost nothing itself, so the comparison below holds even
            // on a loaded machine where sleeps overshoot.
            let _outer = scope(|| "test_outer".into());
            {
                let mut inner = scope(|| "test_inner".into());
                inner.add_bytes(1024);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        disable();
        let r = report();
        let get = |n: &str| r.rows.iter().find(|x| x.0 == n).unwrap().1;
        let (o, i) = (get("test_outer"), get("test_inner"));
        assert_eq!((o.calls, i.calls, i.bytes), (1, 1, 1024));
        assert!(o.total >= o.self_time + i.total - Duration::from_micros(50));
        assert!(o.self_time < i.self_time);
        assert!(format!("{r}").contains("test_inner"));
    }
}
