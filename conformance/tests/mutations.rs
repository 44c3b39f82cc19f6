//! The mutation matrix (issue 5): with one planted bug of `vigil-core` switched on, `vigil-conform
//! run` must exit 1 and name the divergence the bug causes. Each case builds the binary with the
//! feature (about 1 minute per case once `target/mutations` is built; the first build there is
//! a full debug build of the workspace), so it is `#[ignore]`d in CI; run it with
//!
//! ```sh
//! cargo nextest run -p vigil-conformance --test mutations --run-ignored only -j 1 --success-output final
//! ```
//!
//! Results and timings: `docs/trace.md` §7.
//!
//! Each case runs the simulation (or the real host on TCP) with the one fault that exercises the
//! bug, and asserts the bug's own signature in the report (not just any failure: the model and the core still
//! disagree on other paths, `docs/trace.md` §8, and such a divergence must not count as a catch).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace().join("target"), PathBuf::from)
}

/// Runs `binary run --mode MODE --seed SEED --seeds 1 --faults FAULTS`; (success, stdout).
/// A failing simulated run saves its shrunk plan as a regression seed: a planted bug's go to a
/// scratch directory, not among the real ones in `conformance/regressions/` (which every test
/// run replays, and whose names they could overwrite).
fn run(binary: &std::path::Path, mode: &str, seed: u64, faults: &str) -> (bool, String) {
    let seed = seed.to_string();
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let output = Command::new(binary)
        .env(
            vigil_conformance::faults::REGRESSIONS_DIRECTORY_VARIABLE,
            scratch.path(),
        )
        // Its model path and sequence diagram too.
        .env("TMPDIR", scratch.path())
        .args([
            "run", "--mode", mode, "--seed", &seed, "--seeds", "1", "--faults", faults,
        ])
        .output()
        .expect("vigil-conform runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Builds `vigil-conform` with `vigil-core/<feature>` and runs it in `mode` (one run of `seed`)
/// with `faults`; (success, stdout). First checks that the same run passes without the bug, so
/// that a failure is the bug's. Prints what it found and how long each part took (nextest shows
/// it with `--success-output final`; `docs/trace.md` §7 records it).
fn run_with_bug(feature: &str, mode: &str, seed: u64, faults: &str) -> (bool, String) {
    let started = Instant::now();
    let baseline = std::path::Path::new(env!("CARGO_BIN_EXE_vigil-conform"));
    let (passed, output) = run(baseline, mode, seed, faults);
    assert!(passed, "without {feature} the run must pass:\n{output}");
    let baseline_seconds = started.elapsed().as_secs_f64();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let target = target_dir().join("mutations");
    let building = Instant::now();
    let built = Command::new(&cargo)
        .current_dir(workspace())
        .args([
            "build",
            "-p",
            "vigil-conformance",
            "--bin",
            "vigil-conform",
            "--features",
        ])
        .arg(format!("vigil-core/{feature}"))
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("cargo runs");
    assert!(built.success(), "building with {feature}");
    let build_seconds = building.elapsed().as_secs_f64();
    let running = Instant::now();
    let (success, output) = run(&target.join("debug/vigil-conform"), mode, seed, faults);
    let divergence = output
        .lines()
        .find(|line| line.starts_with("DIVERGENCE"))
        .unwrap_or("(no DIVERGENCE line)");
    println!(
        "{feature}: run --mode {mode} --seed {seed} --seeds 1 --faults {faults}: without the bug \
         passes ({baseline_seconds:.1} s); with it {} ({:.1} s; build {build_seconds:.1} s): {divergence}",
        if success { "PASSES" } else { "exits 1" },
        running.elapsed().as_secs_f64()
    );
    (success, output)
}

#[test]
#[ignore = "builds vigil-conform with a planted bug; see the module doc"]
fn error_path_leak_is_caught() {
    let (success, output) = run_with_bug("bug-error-path-leak", "sim", 1, "wrong-cluster");
    assert!(!success, "{output}");
    let line = output
        .lines()
        .find(|line| line.contains("model sent, implementation did not: proxy -> client"))
        .unwrap_or_else(|| panic!("{output}"));
    assert!(line.contains("UnknownCluster"), "{line}");
}

#[test]
#[ignore = "builds vigil-conform with a planted bug; see the module doc"]
fn forget_promise_is_caught() {
    let (success, output) = run_with_bug("bug-forget-promise", "sim", 1, "crash");
    assert!(!success, "{output}");
    assert!(output.contains("Restart"), "{output}");
    assert!(
        output
            .lines()
            .any(|line| line.trim_start().starts_with("promised ")),
        "{output}"
    );
}

#[test]
#[ignore = "builds vigil-conform with a planted bug; see the module doc"]
fn double_complete_is_caught() {
    let (success, output) = run_with_bug("bug-double-complete", "sim", 1, "timeout");
    assert!(!success, "{output}");
    // The bug's first visible effect: a second `Reply`, or (its timeout path returns before the
    // cache is cleared) the next `Propose` going to the cached leader the model forgot.
    assert!(output.contains("DIVERGENCE"), "{output}");
    assert!(
        output.contains("implementation sent, model did not: proxy -> client")
            || output.contains("complete_at_most_once")
            || output.contains("implementation sent, model did not: proxy -> master"),
        "{output}"
    );
}

#[test]
#[ignore = "builds vigil-conform with a planted bug; see the module doc"]
fn evicted_ack_counts_is_caught() {
    // `stale-ack`: two followers' acknowledgements arrive after the leader evicted them (§5.1).
    // Seed 4: the leader's check-quorum does not depose it in the tick of the evictions (it
    // does in seed 1, and then nothing can count).
    let (success, output) = run_with_bug("bug-evicted-ack-counts", "sim", 4, "stale-ack");
    assert!(!success, "{output}");
    // The leader commits a slot with the evicted followers' acknowledgements, which the model
    // does not: its `Ok` reply, a `Commit`, or the commit index differs.
    assert!(
        output.contains("implementation sent, model did not: master 0 -> proxy ProposeReply")
            || output.contains("Deliver ProposeReply")
            || output.contains("Commit {")
            || output
                .lines()
                .any(|line| line.trim_start().starts_with("commit_index "))
            || output.contains("quorum_integrity"),
        "{output}"
    );
}

#[test]
#[ignore = "builds vigil-conform with a planted bug; see the module doc"]
fn own_accept_before_persist_is_caught() {
    // `slow-disk`: the leader's writes are durable a few ticks after its `Accept`s leave
    // (§2.1). With the bug it counts itself at once and commits on two followers'
    // acknowledgements, which the model does not before the leader's `Persist` (the first
    // write of the run already shows it).
    let (success, output) = run_with_bug("bug-own-accept-before-persist", "sim", 1, "slow-disk");
    assert!(!success, "{output}");
    assert!(
        output.contains("Deliver ProposeReply")
            || output.contains("implementation sent, model did not: master")
            || output
                .lines()
                .any(|line| line.trim_start().starts_with("commit_index ")),
        "{output}"
    );
}

#[test]
#[ignore = "builds vigil-conform with a planted bug; see the module doc"]
fn read_before_own_ballot_commit_is_caught() {
    // `reproposal`: the leader crashes with an uncommitted entry; its successor re-proposes it
    // while `Accepted`s are slow, and a `Get` arrives meanwhile (§9.2). With the bug the new
    // leader starts a read round (a `Heartbeat` with the next sequence) where the model puts
    // the `Get` in the log (an `Accept`).
    let (success, output) =
        run_with_bug("bug-read-before-own-ballot-commit", "sim", 1, "reproposal");
    assert!(!success, "{output}");
    assert!(
        output.contains("Heartbeat is not among them")
            || output
                .lines()
                .any(|line| line.contains("implementation sent, model did not")
                    && line.contains("Heartbeat")),
        "{output}"
    );
}
