//! The mutation matrix: with one planted bug of the core switched on (`vigil-conform run
//! --mutation NAME`, `vigil-core/src/mutation.rs`), the run must exit 1 and the report must show
//! the divergence that bug causes; the same run without it must pass.
//!
//! One build runs it all: this package's dev-dependency on `vigil-core` with the feature
//! `mutations` gives every test build that feature, so the `vigil-conform` that `cargo nextest
//! run --workspace` builds for this test (`CARGO_BIN_EXE_vigil-conform`) can plant any bug at
//! run time and the test builds nothing. Builds without tests (`cargo run --release`, `cargo
//! build --release -p vigil`) do not build dev-dependencies, so the shipped binaries cannot plant
//! bugs; `.ci/run` checks that `vigil`'s feature tree has no `mutations`.
//!
//! Each case runs the simulation with the one fault that exercises its bug, first without the
//! bug (it must pass), then with it, and asserts the bug's own signature in the report, not just
//! any failure: a divergence of another kind must not count as a catch. Each prints one line
//! (the run, the report's first line, the timings: nextest shows it with `--success-output
//! final`; `docs/trace.md` §7 records them). A planted run saves no regression seed (the binary
//! refuses to), and its model path and sequence diagram go to a scratch `TMPDIR`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Runs `vigil-conform run --mode MODE --seed SEED --seeds 1 --faults FAULTS` with `mutations`
/// planted; (success, stdout).
fn run(mode: &str, seed: u64, faults: &str, mutations: &[&str]) -> (bool, String) {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let seed = seed.to_string();
    let mut command = Command::new(Path::new(env!("CARGO_BIN_EXE_vigil-conform")));
    command
        // A failing run's model path and sequence diagram; a bug-free failure's regression seed.
        .env("TMPDIR", scratch.path())
        .env(
            vigil_conformance::faults::REGRESSIONS_DIRECTORY_VARIABLE,
            scratch.path(),
        )
        .args([
            "run", "--mode", mode, "--seed", &seed, "--seeds", "1", "--faults", faults,
        ]);
    for mutation in mutations {
        command.args(["--mutation", mutation]);
    }
    let output = command.output().expect("vigil-conform runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Runs `seed` in `mode` with `faults` without `mutation` (it must pass) and then with it;
/// returns the planted run's (success, stdout) and prints what it found and how long each run
/// took.
fn run_with_bug(mutation: &str, mode: &str, seed: u64, faults: &str) -> (bool, String) {
    let started = Instant::now();
    let (passed, output) = run(mode, seed, faults, &[]);
    assert!(passed, "without {mutation} the run must pass:\n{output}");
    let baseline_seconds = started.elapsed().as_secs_f64();
    let planted_started = Instant::now();
    let (success, output) = run(mode, seed, faults, &[mutation]);
    let divergence = output
        .lines()
        .find(|line| line.starts_with("DIVERGENCE"))
        .unwrap_or("(no DIVERGENCE line)");
    println!(
        "{mutation}: run --mode {mode} --seed {seed} --seeds 1 --faults {faults}: without it passes \
         ({baseline_seconds:.1} s); with it {} ({:.1} s): {divergence}",
        if success { "PASSES" } else { "exits 1" },
        planted_started.elapsed().as_secs_f64()
    );
    (success, output)
}

#[test]
fn this_build_can_plant_bugs_and_names_them_as_the_model_does() {
    const {
        assert!(
            vigil_core::mutation::MUTATIONS_AVAILABLE,
            "test builds get vigil-core's `mutations` feature through the dev-dependency"
        )
    };
    let output = Command::new(env!("CARGO_BIN_EXE_vigil-conform"))
        .args(["run", "--mode", "sim", "--mutation", "no-such-bug"])
        .output()
        .expect("vigil-conform runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown mutation `no-such-bug`"),
        "{stderr}"
    );
    for mutation in vigil_core::Mutation::ALL {
        assert!(stderr.contains(mutation.name()), "{stderr}");
        let bug: vigil_model::config::Bug = mutation.name().parse().expect("a model bug");
        assert_eq!(bug.name(), mutation.name());
    }
}

/// The incident's bug: the model's proxy answers the wrong-cluster request `UnknownCluster`,
/// the implementation's never does.
fn assert_error_path_leak_caught(success: bool, output: &str) {
    assert!(!success, "{output}");
    assert!(output.contains("planted bugs: error-path-leak"), "{output}");
    let line = output
        .lines()
        .find(|line| line.contains("model sent, implementation did not: proxy -> client"))
        .unwrap_or_else(|| panic!("{output}"));
    assert!(line.contains("UnknownCluster"), "{line}");
}

/// Real processes (the nemesis's `vigil`s) learn their planted bugs from their TOML
/// configuration, by the model's names.
#[test]
fn a_configuration_file_names_the_planted_bugs() {
    let planted = vigil_core::Mutations::planted([
        vigil_core::Mutation::ErrorPathLeak,
        vigil_core::Mutation::StaleLeaderRead,
    ])
    .expect("test builds can plant bugs");
    let config = vigil_core::Config {
        mutations: planted,
        ..vigil_core::Config::default()
    };
    let text = toml::to_string(&config).expect("serializes");
    assert!(
        text.contains(r#"mutations = ["error-path-leak", "stale-leader-read"]"#),
        "{text}"
    );
    let read: vigil_core::Config = toml::from_str(&text).expect("parses");
    assert_eq!(read, config);
    let unplanted = toml::to_string(&vigil_core::Config::default()).expect("serializes");
    assert!(!unplanted.contains("mutations"), "{unplanted}");
}

#[test]
fn error_path_leak_is_caught() {
    let (success, output) = run_with_bug("error-path-leak", "sim", 1, "wrong-cluster");
    assert_error_path_leak_caught(success, &output);
}

/// The set reaches the core inside the tokio host too: under turmoil and on real TCP.
#[test]
fn error_path_leak_is_caught_in_the_host_under_turmoil_and_on_tcp() {
    for mode in ["turmoil", "tcp"] {
        let (success, output) = run_with_bug("error-path-leak", mode, 1, "wrong-cluster");
        assert_error_path_leak_caught(success, &output);
    }
}

#[test]
fn forget_promise_is_caught() {
    let (success, output) = run_with_bug("forget-promise", "sim", 1, "crash");
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
fn double_complete_is_caught() {
    let (success, output) = run_with_bug("double-complete", "sim", 1, "timeout");
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
fn evicted_ack_counts_is_caught() {
    // `stale-ack`: two followers' acknowledgements arrive after the leader evicted them (§5.1).
    // Seed 4: the leader's check-quorum does not depose it in the tick of the evictions (it
    // does in seed 1, and then nothing can count).
    let (success, output) = run_with_bug("evicted-ack-counts", "sim", 4, "stale-ack");
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
fn stale_leader_read_is_caught() {
    // No fault needed: the first `Get` at the leader is answered at once, where the model's
    // leader starts a read round (a `Heartbeat` with the next sequence) and answers after a
    // quorum acknowledged it (§9.2).
    let (success, output) = run_with_bug("stale-leader-read", "sim", 1, "none");
    assert!(!success, "{output}");
    let lines: Vec<&str> = output.lines().collect();
    assert!(
        lines.iter().any(|line| {
            line.contains("implementation sent, model did not: master")
                && line.contains("-> proxy ProposeReply")
        }),
        "{output}"
    );
    assert!(
        lines.iter().any(|line| {
            line.contains("model sent, implementation did not: master")
                && line.contains("Heartbeat")
        }),
        "{output}"
    );
}

#[test]
fn own_accept_before_persist_is_caught() {
    // `slow-disk`: the leader's writes are durable a few ticks after its `Accept`s leave
    // (§2.1). With the bug it counts itself at once and commits on two followers'
    // acknowledgements, which the model does not before the leader's `Persist` (the first
    // write of the run already shows it).
    let (success, output) = run_with_bug("own-accept-before-persist", "sim", 1, "slow-disk");
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
fn read_before_own_ballot_commit_is_caught() {
    // `reproposal`: the leader crashes with an uncommitted entry; its successor re-proposes it
    // while `Accepted`s are slow, and a `Get` arrives meanwhile (§9.2). With the bug the new
    // leader starts a read round (a `Heartbeat` with the next sequence) where the model puts
    // the `Get` in the log (an `Accept`).
    let (success, output) = run_with_bug("read-before-own-ballot-commit", "sim", 1, "reproposal");
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

// The revisioned API's planted bugs (`docs/protocol.md` §14–§17), on even seeds, which run the
// revisioned clients (`sim::revisioned_seed`); `crash` aims at the master the watches stream
// from, so that they resume at another.

#[test]
fn watch_leak_on_error_is_caught() {
    // A watcher names an unknown cluster: the model's proxy ends its watch `UnknownCluster`,
    // the implementation's holds it and never answers (the incident, for streams).
    let (success, output) = run_with_bug("watch-leak-on-error", "sim", 2, "crash");
    assert!(!success, "{output}");
    let line = output
        .lines()
        .find(|line| line.contains("model sent, implementation did not: proxy -> client"))
        .unwrap_or_else(|| panic!("{output}"));
    assert!(
        line.contains("WatchEnded") && line.contains("UnknownCluster"),
        "{line}"
    );
}

#[test]
fn compaction_skips_watch_is_caught() {
    // A watch from revision 1 after a compaction: the model's proxy ends it `Compacted`, the
    // implementation's moves it up to the compaction point and subscribes from there.
    let (success, output) = run_with_bug("compaction-skips-watch", "sim", 2, "crash");
    assert!(!success, "{output}");
    assert!(
        output.lines().any(|line| {
            line.contains("model sent, implementation did not: proxy -> client")
                && line.contains("Compacted")
        }),
        "{output}"
    );
}

#[test]
fn watch_resume_from_current_is_caught() {
    // The watches' master crashes: the model's proxy resumes at another from the lowest
    // revision its watches are owed, the implementation's from that master's next (0).
    let (success, output) = run_with_bug("watch-resume-from-current", "sim", 2, "crash");
    assert!(!success, "{output}");
    assert!(
        output.lines().any(|line| {
            line.contains("implementation sent, model did not: proxy -> master")
                && line.contains("Subscribe { from_revision: 0 }")
        }),
        "{output}"
    );
}

#[test]
fn txn_partial_apply_is_caught() {
    // A `Txn` puts a key and then reads below the compaction point: the model refuses all of
    // it (`Compacted`), the implementation keeps the put and streams its revision, which the
    // model's master never made.
    let (success, output) = run_with_bug("txn-partial-apply", "sim", 8, "crash");
    assert!(!success, "{output}");
    assert!(
        output.contains("Events is not among them")
            || output.lines().any(|line| {
                line.contains("implementation sent, model did not: master")
                    && line.contains("Events")
            })
            || output.contains("txn_atomic"),
        "{output}"
    );
}

#[test]
fn watch_now_before_report_is_caught() {
    // A watcher asks for a watch from revision 0 ("now"): the model's proxy waits for the
    // master's report before answering, the implementation's answers `WatchCreated` at once.
    let (success, output) = run_with_bug("watch-now-before-report", "sim", 4, "crash");
    assert!(!success, "{output}");
    assert!(
        output.lines().any(|line| {
            line.contains("implementation sent, model did not: proxy -> client")
                && line.contains("WatchCreated")
        }),
        "{output}"
    );
}
