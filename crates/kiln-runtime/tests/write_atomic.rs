//! `write_atomic` replaces regular files only: it follows symbolic links, writes devices and
//! FIFOs in place (a rename would destroy them) and refuses directories.

use kiln_runtime::weights::write_atomic;
use std::os::unix::fs::FileTypeExt;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-write-atomic-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn replaces_a_regular_file_and_leaves_no_temporary() {
    let dir = scratch("regular");
    let path = dir.join("out.csv");
    std::fs::write(&path, b"old contents, longer than the new").unwrap();
    write_atomic(&path, b"new").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["out.csv"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn writes_dev_null_in_place_and_keeps_it_a_device() {
    write_atomic(std::path::Path::new("/dev/null"), b"discarded").unwrap();
    let kind = std::fs::metadata("/dev/null").unwrap().file_type();
    assert!(
        kind.is_char_device(),
        "/dev/null is no longer a device: {kind:?}"
    );
}

#[test]
fn follows_a_symbolic_link_and_keeps_it() {
    let dir = scratch("symlink");
    let target = dir.join("target.txt");
    let link = dir.join("link.txt");
    std::fs::write(&target, b"old").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    write_atomic(&link, b"new").unwrap();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"new");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn refuses_a_directory() {
    let dir = scratch("directory");
    let err = write_atomic(&dir, b"x").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::IsADirectory);
    assert!(dir.is_dir());
    std::fs::remove_dir_all(&dir).unwrap();
}
