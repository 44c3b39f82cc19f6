//! The main job's command line: `vigil-conform` with no command runs `verify`, a part that is
//! not built is reported as skipped, never as passed, and the exit status follows the verdict.
//! Runs a small `verify` (one model-check preset of `ci`, one seed of each simulation, one
//! real-TCP run): the full one is the CI job itself (`cargo run --release`), not paid for again
//! here.

use std::process::Command;

fn run_vigil_conform(arguments: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_vigil-conform"))
        .args(arguments)
        .output()
        .expect("vigil-conform runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// The table rows and verdict without numbers (timings and rates differ between runs).
fn shape(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|line| {
            line.contains("PASSED")
                || line.contains("FAILED")
                || line.contains("SKIPPED")
                || line.starts_with("verify:")
        })
        .map(|line| {
            line.chars()
                .filter(|character| !character.is_ascii_digit())
                .collect()
        })
        .collect()
}

/// A small `verify`: the options every run of this test passes (no real-TCP run: real time is
/// not deterministic, so two runs could differ; `tcp_runs_are_a_part_of_verify` runs one).
const SMALL: [&str; 8] = [
    "--preset",
    "ci-read",
    "--sim-seeds",
    "1",
    "--turmoil-seeds",
    "1",
    "--tcp-runs",
    "0",
];

#[test]
fn verify_is_the_default_and_its_status_follows_its_verdict() {
    let (default_success, default_output) = run_vigil_conform(&SMALL);
    let verify_arguments: Vec<&str> = std::iter::once("verify").chain(SMALL).collect();
    let (verify_success, verify_output) = run_vigil_conform(&verify_arguments);
    assert!(
        default_output.starts_with("vigil-conform verify"),
        "{default_output}"
    );
    assert_eq!(default_success, verify_success);
    assert_eq!(shape(&default_output), shape(&verify_output));
    let failed_rows = verify_output
        .lines()
        .filter(|line| line.contains(" FAILED "))
        .count();
    assert_eq!(verify_success, failed_rows == 0, "{verify_output}");
    assert_eq!(
        verify_output.contains("verify: FAIL"),
        failed_rows > 0,
        "{verify_output}"
    );
    for line in verify_output
        .lines()
        .filter(|line| line.contains("not built yet"))
    {
        assert!(line.contains("SKIPPED"), "{line}");
    }
    if verify_output.contains("not built yet") {
        assert!(verify_output.contains("INCOMPLETE"), "{verify_output}");
    }
    assert!(
        verify_output.contains("model check (preset ci-read)"),
        "{verify_output}"
    );
    // Without TCP runs the real-TCP part says so: skipped, never passed.
    let tcp_row = verify_output
        .lines()
        .find(|line| line.starts_with("conformance run (real TCP)"))
        .unwrap_or_else(|| panic!("no real-TCP row: {verify_output}"));
    assert!(tcp_row.contains("SKIPPED"), "{tcp_row}");
    // `--turmoil-seeds` reaches the turmoil part.
    let turmoil_row = verify_output
        .lines()
        .find(|line| line.starts_with("conformance run (turmoil host sim)"))
        .unwrap_or_else(|| panic!("no turmoil row: {verify_output}"));
    assert!(turmoil_row.contains(" 1 seeds ("), "{turmoil_row}");
    assert!(verify_output.contains("INCOMPLETE"), "{verify_output}");
}

#[test]
fn tcp_runs_are_a_part_of_verify() {
    let (success, output) = run_vigil_conform(&[
        "verify",
        "--preset",
        "ci-read",
        "--sim-seeds",
        "1",
        "--turmoil-seeds",
        "1",
        "--tcp-runs",
        "1",
        "--tcp-faults",
        "none",
    ]);
    let tcp_row = output
        .lines()
        .find(|line| line.starts_with("conformance run (real TCP)"))
        .unwrap_or_else(|| panic!("no real-TCP row: {output}"));
    assert!(
        tcp_row.contains(" PASSED ") || tcp_row.contains(" FAILED "),
        "{tcp_row}"
    );
    let failed_rows = output
        .lines()
        .filter(|line| line.contains(" FAILED "))
        .count();
    assert_eq!(success, failed_rows == 0, "{output}");
}

#[test]
fn check_fails_loudly_on_an_empty_trace() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("m0.ndjson");
    std::fs::write(&file, "").unwrap();
    let (success, output) = run_vigil_conform(&["check", file.to_str().unwrap()]);
    assert!(!success);
    assert!(output.contains("empty trace file"), "{output}");
}

#[test]
fn check_fails_on_a_directory_without_traces() {
    let directory = tempfile::tempdir().unwrap();
    let (success, output) = run_vigil_conform(&["check", directory.path().to_str().unwrap()]);
    assert!(!success);
    assert!(output.contains("no trace file"), "{output}");
}

#[test]
fn run_rejects_an_unknown_fault() {
    let (success, _) = run_vigil_conform(&["run", "--faults", "meteor", "--seeds", "1"]);
    assert!(!success);
}
