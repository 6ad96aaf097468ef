//! Replacing a whole directory atomically, recovering after a crash, and removing what a
//! crash left behind. The protocol is described in the [module doc](super).

use crate::error::TrainError;
use std::ffi::OsStr;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Marker between a directory's name and the writer's process id in a temporary directory:
/// `.<name>.tmp-<pid>` (the same pattern `kiln_nn::checkpoint::write_atomic` uses for files).
const TMP_MARKER: &str = ".tmp-";
/// Marker of a replaced directory waiting to be removed: `.<name>.old-<pid>`.
const OLD_MARKER: &str = ".old-";

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.into(),
        source,
    }
}

/// `(parent, name)` of `dir`; the parent of a bare name is `.`.
fn split(dir: &Path) -> Result<(PathBuf, String), TrainError> {
    let name = dir
        .file_name()
        .and_then(OsStr::to_str)
        .ok_or_else(|| TrainError::Io {
            path: dir.into(),
            source: std::io::Error::other("a checkpoint directory needs a UTF-8 final name"),
        })?;
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok((parent.to_path_buf(), name.to_string()))
}

/// `<parent>/.<name><marker><pid>`.
fn sibling(parent: &Path, name: &str, marker: &str) -> PathBuf {
    parent.join(format!(".{name}{marker}{}", std::process::id()))
}

/// Makes a directory's entries (renames, new files) durable.
fn sync_dir(dir: &Path) -> Result<(), TrainError> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Removes a file or directory tree; absent is fine.
fn remove_any(path: &Path) -> Result<(), TrainError> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

/// Writes `dir` as a whole: `write` fills a fresh temporary sibling directory, which then
/// replaces `dir` (see the module doc for the steps and what a crash at each one leaves).
pub(crate) fn replace_dir(
    dir: &Path,
    write: impl FnOnce(&Path) -> Result<(), TrainError>,
) -> Result<(), TrainError> {
    let (parent, name) = split(dir)?;
    std::fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    // A crashed writer may have left the only complete copy moved aside (`.old-<pid>`, and
    // this process may have that pid): put it back before anything removes `.old` entries.
    recover(dir)?;
    let tmp = sibling(&parent, &name, TMP_MARKER);
    remove_any(&tmp)?;
    std::fs::create_dir(&tmp).map_err(io_err(&tmp))?;
    let written = write(&tmp).and_then(|()| sync_dir(&tmp));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = sibling(&parent, &name, OLD_MARKER);
    remove_any(&old)?;
    let had_old = match std::fs::rename(dir, &old) {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => return Err(io_err(dir)(e)),
    };
    if let Err(e) = std::fs::rename(&tmp, dir) {
        // Put the previous checkpoint back so `dir` stays usable.
        if had_old {
            let _ = std::fs::rename(&old, dir);
        }
        return Err(io_err(dir)(e));
    }
    sync_dir(&parent)?;
    if had_old {
        remove_any(&old)?;
    }
    Ok(())
}

/// The directory name a `.<name><marker><pid>` entry belongs to, when `file` is one.
fn owner_name<'a>(file: &'a str, marker: &str) -> Option<&'a str> {
    let rest = file.strip_prefix('.')?;
    let (name, pid) = rest.rsplit_once(marker)?;
    (!name.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then_some(name)
}

/// Entries of `dir` by file name (none when `dir` does not exist).
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, TrainError> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(io_err(dir))?;
        if let Some(name) = entry.file_name().to_str() {
            out.push((name.to_string(), entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// After a crash between moving `dir` aside and moving its replacement in, `dir` is missing
/// and `.<name>.old-<pid>` is the last complete checkpoint: moves it back. Returns the
/// directory restored from, if any. A present `dir` is left alone (it is always complete).
pub fn recover(dir: &Path) -> Result<Option<PathBuf>, TrainError> {
    if std::fs::symlink_metadata(dir).is_ok() {
        return Ok(None);
    }
    let (parent, name) = split(dir)?;
    // Several candidates only when several crashed writers shared the directory: the newest
    // complete one wins.
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for (file, path) in entries(&parent)? {
        if owner_name(&file, OLD_MARKER) != Some(name.as_str()) || !super::exists(&path) {
            continue;
        }
        let modified = std::fs::metadata(path.join("model.safetensors"))
            .and_then(|m| m.modified())
            .map_err(io_err(&path))?;
        if best.as_ref().is_none_or(|(t, _)| modified > *t) {
            best = Some((modified, path));
        }
    }
    let Some((_, old)) = best else {
        return Ok(None);
    };
    std::fs::rename(&old, dir).map_err(io_err(dir))?;
    sync_dir(&parent)?;
    Ok(Some(old))
}

/// What [`clean_stale`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cleanup {
    /// Checkpoint directories moved back from `.<name>.old-<pid>` (see [`recover`]).
    pub restored: Vec<PathBuf>,
    /// Temporary files and directories removed.
    pub removed: Vec<PathBuf>,
}

/// Recovers every checkpoint under `root` that a crash left moved aside, then removes
/// every stale temporary there: `.<name>.tmp-<pid>` and `.<name>.old-<pid>` entries in `root`
/// and `.<file>.tmp-<pid>` files inside its checkpoint directories. Only one run may write
/// under `root` at a time (a concurrent writer's temporaries would be removed).
pub fn clean_stale(root: &Path) -> Result<Cleanup, TrainError> {
    let mut cleanup = Cleanup::default();
    for (file, _) in entries(root)? {
        if let Some(name) = owner_name(&file, OLD_MARKER) {
            if let Some(from) = recover(&root.join(name))? {
                cleanup.restored.push(from);
            }
        }
    }
    let is_stale = |file: &str| {
        owner_name(file, TMP_MARKER).is_some() || owner_name(file, OLD_MARKER).is_some()
    };
    for (file, path) in entries(root)? {
        if is_stale(&file) {
            remove_any(&path)?;
            cleanup.removed.push(path);
        } else if path.is_dir() {
            for (inner, inner_path) in entries(&path)? {
                if owner_name(&inner, TMP_MARKER).is_some() {
                    remove_any(&inner_path)?;
                    cleanup.removed.push(inner_path);
                }
            }
        }
    }
    Ok(cleanup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_files(dir: &Path, content: &str) -> Result<(), TrainError> {
        for f in ["model.safetensors", "trainer.safetensors"] {
            std::fs::write(dir.join(f), content).map_err(io_err(dir))?;
        }
        Ok(())
    }

    fn read(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("model.safetensors")).unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        entries(dir).unwrap().into_iter().map(|(n, _)| n).collect()
    }

    #[test]
    fn replace_dir_swaps_the_whole_directory_and_leaves_nothing_behind() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("last");
        replace_dir(&dir, |tmp| write_files(tmp, "one")).unwrap();
        assert_eq!(read(&dir), "one");
        replace_dir(&dir, |tmp| write_files(tmp, "two")).unwrap();
        assert_eq!(read(&dir), "two");
        assert_eq!(names(root.path()), ["last"]);
    }

    #[test]
    fn a_failed_write_keeps_the_previous_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("best");
        replace_dir(&dir, |tmp| write_files(tmp, "good")).unwrap();
        let err = replace_dir(&dir, |tmp| {
            write_files(tmp, "half")?;
            Err(TrainError::Config("disk full".into()))
        });
        assert!(err.is_err());
        assert_eq!(read(&dir), "good");
        assert_eq!(names(root.path()), ["best"]);
    }

    #[test]
    fn a_crash_between_the_two_renames_is_recovered_from_the_old_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("last");
        replace_dir(&dir, |tmp| write_files(tmp, "good")).unwrap();
        // What a kill after "rename aside" and before "rename into place" leaves.
        let old = root.path().join(".last.old-4242");
        std::fs::rename(&dir, &old).unwrap();
        let tmp = root.path().join(".last.tmp-4242");
        std::fs::create_dir(&tmp).unwrap();
        write_files(&tmp, "newer but uncommitted").unwrap();
        // And a stale temporary file inside another checkpoint, from a single-file write.
        let other = root.path().join("epoch-1");
        replace_dir(&other, |t| write_files(t, "e1")).unwrap();
        std::fs::write(other.join(".model.safetensors.tmp-99"), "x").unwrap();

        let cleanup = clean_stale(root.path()).unwrap();
        assert_eq!(cleanup.restored, [old]);
        assert_eq!(cleanup.removed.len(), 2, "{cleanup:?}");
        assert_eq!(read(&dir), "good");
        assert_eq!(names(root.path()), ["epoch-1", "last"]);
        assert_eq!(names(&other), ["model.safetensors", "trainer.safetensors"]);
    }

    #[test]
    fn recover_leaves_a_present_directory_and_ignores_incomplete_old_ones() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("last");
        let old = root.path().join(".last.old-1");
        std::fs::create_dir(&old).unwrap();
        std::fs::write(old.join("model.safetensors"), "only one file").unwrap();
        assert_eq!(recover(&dir).unwrap(), None, "incomplete: not a checkpoint");
        replace_dir(&dir, |tmp| write_files(tmp, "current")).unwrap();
        assert_eq!(recover(&dir).unwrap(), None);
        assert_eq!(read(&dir), "current");
    }

    #[test]
    fn owner_names_need_the_exact_pattern() {
        assert_eq!(owner_name(".last.tmp-123", TMP_MARKER), Some("last"));
        assert_eq!(owner_name(".epoch-3.old-7", OLD_MARKER), Some("epoch-3"));
        assert_eq!(owner_name("last.tmp-123", TMP_MARKER), None);
        assert_eq!(owner_name(".last.tmp-", TMP_MARKER), None);
        assert_eq!(owner_name(".last.tmp-12a", TMP_MARKER), None);
        assert_eq!(owner_name(".tmp-12", TMP_MARKER), None);
    }
}
