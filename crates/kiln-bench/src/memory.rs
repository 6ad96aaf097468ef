//! Whole-process peak resident set size, in MiB: the kernel's high-water mark (`VmHWM` in
//! `/proc/self/status`, the number `getrusage(RUSAGE_SELF).ru_maxrss` reports on Linux).
//!
//! Like the reference, it is read where it sits in the workload order — after the training
//! workloads and before inference — so it covers whatever ran before it (with `--only
//! peak_rss_mib` alone, just the process's baseline).

use crate::{Report, Selection};

/// Keys this workload reports.
pub const KEYS: &[&str] = &["peak_rss_mib"];

/// Peak RSS in KiB, if the platform reports it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm_kib(&status)
}

fn parse_vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line["VmHWM:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Reports the peak RSS if selected (`null` where the platform does not report it).
pub fn run(sel: &Selection, out: &mut Report) {
    if !sel.wants(KEYS[0]) {
        return;
    }
    let mib = peak_rss_kib().map_or(f64::NAN, |kib| kib as f64 / 1024.0);
    out.push(KEYS[0], mib);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_hwm() {
        let s = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_vm_hwm_kib(s), Some(2048));
        assert_eq!(parse_vm_hwm_kib("Name:\tx\n"), None);
    }

    #[test]
    fn peak_rss_is_positive_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss_kib().unwrap() > 0);
        }
    }
}
