//! The main job's command line: `vigil-conform` with no arguments runs `verify`, and a part
//! that is not built is reported as skipped, never as passed.

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

#[test]
fn no_arguments_runs_verify() {
    let (success, default_output) = run_vigil_conform(&[]);
    let (_, verify_output) = run_vigil_conform(&["verify"]);
    assert!(success);
    assert!(default_output.starts_with("vigil-conform verify"));
    assert_eq!(default_output, verify_output);
}

#[test]
fn unbuilt_parts_are_never_reported_as_passed() {
    let (_, output) = run_vigil_conform(&["verify"]);
    for line in output.lines().filter(|line| line.contains("not built yet")) {
        assert!(line.contains("SKIPPED"), "{line}");
    }
    if output.contains("not built yet") {
        assert!(output.contains("INCOMPLETE"), "{output}");
    }
}
