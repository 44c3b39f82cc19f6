//! `vigil-conform check` on a broken trace: it fails, and the divergence's model path and
//! sequence diagram go where its reader looks for them — the checked directory, `--out`, or a
//! directory of their own — never a fixed path the next failing check overwrites.

use std::path::{Path, PathBuf};
use std::process::Command;

fn broken_copy(into: &Path) -> PathBuf {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/traces/broken-wrong-ballot");
    let directory = into.join("broken-wrong-ballot");
    std::fs::create_dir_all(&directory).unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, directory.join(path.file_name().unwrap())).unwrap();
    }
    directory
}

/// Runs `vigil-conform check ARGUMENTS`; returns its stdout, which must report a failure.
fn failing_check(arguments: &[&std::ffi::OsStr]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_vigil-conform"))
        .arg("check")
        .args(arguments)
        .output()
        .expect("vigil-conform runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        !output.status.success(),
        "a broken trace must fail: {stdout}"
    );
    assert!(stdout.starts_with("check: FAIL"), "{stdout}");
    stdout
}

/// The directory the report says the model path was saved in.
fn saved_in(stdout: &str) -> PathBuf {
    let line = stdout
        .lines()
        .find(|line| line.contains("model path (") && line.contains(" saved to "))
        .unwrap_or_else(|| panic!("no saved model path: {stdout}"));
    let path = PathBuf::from(line.rsplit(" saved to ").next().unwrap());
    assert!(path.is_file(), "{}", path.display());
    assert!(path.with_extension("html").is_file(), "{}", path.display());
    path.parent().unwrap().to_path_buf()
}

#[test]
fn a_checked_directory_keeps_its_own_evidence_and_out_overrides_it() {
    let scratch = tempfile::tempdir().unwrap();
    let traces = broken_copy(scratch.path());
    let stdout = failing_check(&[traces.as_os_str()]);
    assert_eq!(saved_in(&stdout), traces);

    let out = scratch.path().join("evidence");
    let stdout = failing_check(&[traces.as_os_str(), "--out".as_ref(), out.as_os_str()]);
    assert_eq!(saved_in(&stdout), out);
}

#[test]
fn checks_of_files_keep_their_evidence_apart() {
    let scratch = tempfile::tempdir().unwrap();
    let traces = broken_copy(scratch.path());
    let files: Vec<PathBuf> = std::fs::read_dir(&traces)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    let arguments: Vec<&std::ffi::OsStr> = files.iter().map(|file| file.as_os_str()).collect();
    let first = saved_in(&failing_check(&arguments));
    let second = saved_in(&failing_check(&arguments));
    assert_ne!(
        first,
        second,
        "two failing checks share {}",
        first.display()
    );
    for directory in [first, second] {
        std::fs::remove_dir_all(directory).unwrap();
    }
}
