//! Which model and tensor names are accepted: what is safe in a URL path segment and a file
//! name, so no name can reach outside the repository.

/// Model and tensor names: what may appear in a URL path segment and a file name.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid name (1 to 128 of A-Z a-z 0-9 _ - ., not `.` or `..`)",
            name.escape_debug()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_the_repository_are_refused() {
        for bad in ["", ".", "..", "a/b", "a\\b", "x y", "é", &"a".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["digits", "mlp-1.0", "A_b"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
    }
}
