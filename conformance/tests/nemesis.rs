//! The nemesis on real processes, short and bounded for CI (`docs/reliability.md`): 5 `vigil
//! master` processes and a `vigil proxy` on 127.0.0.1 under a 60 s fault schedule (SIGSTOP of a
//! follower past the eviction threshold, SIGSTOP of the leader, SIGKILL and restart, the leader
//! cut off, a wrong-cluster flood), 4 clients on 3 keys; the history must be linearizable per
//! key, every acknowledged write present after the heal, the proxy's ledger balanced with nothing
//! in flight, its RSS flat over the floods, and every fault must have had its effect. A second
//! run adds 2 transaction clients moving money between 3 accounts and 2 watchers on the
//! accounts: the money must be conserved at every revision, the transfers and reads
//! linearizable by revision, every watcher's events exactly the accounts' committed history, and
//! the proxy's watch ledger balanced with nothing open.
//!
//! The `vigil` binary comes from `vigil_testkit::vigil_binary::locate`: `VIGIL_BIN` if set,
//! else the one `cargo nextest run --workspace` has just built in this test's profile directory
//! if it is fresh, else cargo builds it.
//!
//! The trace check is on in both runs: the masters' and the proxy's trace files must replay
//! against the model (`docs/trace.md`). Replay compacts the model state between steps
//! (`vigil_model::compaction`), so a 60 s run's ~230,000–530,000 events replay in 2–5 s; with
//! the transaction clients and watchers it judges `revision_monotone` and
//! `watch_in_order_exactly_once` with what it kept from the earlier steps
//! (`vigil_model::revision_properties`), so its 700,000–900,000 events replay in under 10 s,
//! and the whole-store linearizability check adds its 10 s limit (`docs/reliability.md` §3).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vigil_conformance::nemesis::{self, NemesisOptions};

/// The target directory this test binary was built in (`<target>/<profile>/deps/<test>`), and
/// whether that profile directory is `release`.
fn target_directory() -> (PathBuf, bool) {
    let executable = std::env::current_exe().expect("the test knows its path");
    let profile = executable
        .ancestors()
        .nth(2)
        .expect("the test binary lives in <target>/<profile>/deps");
    let release = profile.file_name().is_some_and(|name| name == "release");
    let target = profile.parent().expect("a profile directory has a parent");
    (target.to_path_buf(), release)
}

fn vigil_binary() -> PathBuf {
    vigil_testkit::vigil_binary::locate().expect("the vigil executable")
}

/// Runs the nemesis for 60 s with `txn_clients` transaction clients and the trace check as
/// asked; its report, which must show every fault and no anomaly.
fn run_clean(txn_clients: usize, check_traces: bool) -> nemesis::NemesisReport {
    let vigil = vigil_binary();
    let directory = tempfile::Builder::new()
        .prefix("vigil-nemesis-")
        .tempdir()
        .unwrap();
    let mut options = NemesisOptions::new(vigil, directory.path().to_path_buf());
    options.duration = Duration::from_secs(60);
    options.check_traces = check_traces;
    options.txn_clients = txn_clients;
    options.watchers = 2;
    let report = match nemesis::run(&options) {
        Ok(report) => report,
        Err(error) => {
            let kept = directory.keep();
            panic!(
                "the nemesis could not run: {error} (logs in {})",
                kept.display()
            )
        }
    };
    println!("{report}");
    for kind in [
        "sigstop-follower",
        "sigstop-leader",
        "sigkill-restart",
        "isolate-leader",
        "wrong-cluster-flood",
    ] {
        assert!(
            report.faults_of(kind) >= 1,
            "no {kind} was injected:\n{report}"
        );
    }
    assert!(
        report.counts.ok >= 500,
        "too few operations to say anything:\n{report}"
    );
    let anomalies = report.anomalies();
    if !anomalies.is_empty() {
        let kept = directory.keep();
        panic!("anomalies (run kept in {}):\n{report}", kept.display());
    }
    report
}

#[test]
fn the_nemesis_finds_no_anomaly() {
    let report = run_clean(0, true);
    assert!(report.traces.is_some(), "the trace check ran:\n{report}");
}

#[test]
fn the_nemesis_with_transactions_and_watchers_finds_no_anomaly() {
    let report = run_clean(2, true);
    assert!(report.traces.is_some(), "the trace check ran:\n{report}");
    let revisioned = report
        .revisioned
        .as_ref()
        .expect("the run has transaction clients");
    assert!(
        revisioned.bank.summary.committed >= 100 && revisioned.bank.summary.refused >= 1,
        "too few transfers, or no failure branch, to say anything:\n{report}"
    );
    assert!(
        revisioned.watch.summary.deliveries >= 100,
        "the watchers received too little to say anything:\n{report}"
    );
}

/// The nemesis must fail on the incident's bug: the proxy with the planted `error-path-leak` (a
/// wrong-cluster request leaked without a reply), in a `vigil` built with vigil-core's cargo
/// feature `mutations` into `<target>/mutations` (the binaries that the other tests use are left
/// as they are). A full build there takes minutes, so it is ignored in CI; run it with
/// `cargo nextest run -p vigil-conformance --test nemesis --run-ignored only`.
#[test]
#[ignore = "builds vigil with planted bugs (minutes); see the doc comment"]
fn the_nemesis_catches_the_incidents_error_path_leak() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = target_directory().0.join("mutations");
    let built = Command::new(cargo)
        .current_dir(&workspace)
        .args(["build", "-p", "vigil", "--bin", "vigil", "--features"])
        .arg("vigil-core/mutations")
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("cargo runs");
    assert!(built.success(), "building vigil with vigil-core/mutations");
    let directory = tempfile::tempdir().unwrap();
    let mut options =
        NemesisOptions::new(target.join("debug/vigil"), directory.path().to_path_buf());
    options.duration = Duration::from_secs(20);
    options.check_traces = false;
    options.mutations = vigil_core::Mutations::planted([vigil_core::Mutation::ErrorPathLeak])
        .expect("test builds can plant bugs");
    let report = nemesis::run(&options).expect("the nemesis runs");
    println!("{report}");
    let anomalies = report.anomalies();
    for expected in ["flood:", "ledger: requests never answered"] {
        assert!(
            anomalies
                .iter()
                .any(|anomaly| anomaly.starts_with(expected)),
            "no {expected:?} anomaly:\n{report}"
        );
    }
}
