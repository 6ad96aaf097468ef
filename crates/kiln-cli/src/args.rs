//! Value parsers for command-line flags: every number is checked when it is parsed, so a bad
//! value is a clap error naming the flag instead of a panic, an abort or a hang later.

/// Most compute or data-loading threads `--threads`/`--workers` accept: 4× the available
/// cores (more only adds contention), and never more than 1024.
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (4 * cores).min(1024)
}

/// Largest batch size accepted (larger would not fit in memory for any bundled model).
pub const MAX_BATCH_SIZE: usize = 1 << 20;

/// Largest number of epochs accepted.
pub const MAX_EPOCHS: usize = 1_000_000;

fn integer(s: &str) -> Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .map_err(|_| format!("`{s}` is not a whole number ≥ 0"))
}

fn in_range(s: &str, min: usize, max: usize) -> Result<usize, String> {
    let n = integer(s)?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be between {min} and {max}, got {n}"))
    }
}

/// `--batch-size`: 1 ..= [`MAX_BATCH_SIZE`].
pub fn batch_size(s: &str) -> Result<usize, String> {
    in_range(s, 1, MAX_BATCH_SIZE)
}

/// `--epochs`: 1 ..= [`MAX_EPOCHS`].
pub fn epochs(s: &str) -> Result<usize, String> {
    in_range(s, 1, MAX_EPOCHS)
}

/// `--threads`: 1 ..= [`max_threads`].
pub fn threads(s: &str) -> Result<usize, String> {
    in_range(s, 1, max_threads())
}

/// `--workers`: 0 (load in the training thread) ..= [`max_threads`].
pub fn workers(s: &str) -> Result<usize, String> {
    in_range(s, 0, max_threads())
}

/// `--lr`: a finite number > 0.
pub fn learning_rate(s: &str) -> Result<f64, String> {
    let lr: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if lr.is_finite() && lr > 0.0 {
        Ok(lr)
    } else {
        Err(format!("must be a finite number > 0, got {lr}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert_eq!(batch_size("1"), Ok(1));
        assert!(batch_size("0").is_err());
        assert!(batch_size(&(MAX_BATCH_SIZE + 1).to_string()).is_err());
        assert!(epochs("0").is_err());
        assert!(epochs("-1").is_err());
        assert_eq!(threads("1"), Ok(1));
        assert!(threads("0").is_err());
        assert!(threads("100000").is_err());
        assert_eq!(workers("0"), Ok(0));
        assert!(workers(&(max_threads() + 1).to_string()).is_err());
        assert_eq!(learning_rate("2e-3"), Ok(2e-3));
        for bad in ["0", "-1", "NaN", "inf", "x"] {
            assert!(learning_rate(bad).is_err(), "{bad}");
        }
    }
}
