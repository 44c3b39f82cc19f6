//! Each seeded bug is caught by its small targeted preset, with a counterexample for the
//! expected property that replays through `Config::apply`; and the same presets without the
//! bug find no violation at all (so the catch is the bug, not the preset).

use vigil_model::check::{run_preset, CheckOptions, Verdict};
use vigil_model::presets;
use vigil_model::Bug;

fn caught(bug: Bug) {
    let preset = presets::for_bug(bug);
    let report = run_preset(&preset, &CheckOptions::default());
    let property = bug.expected_violation();
    assert_eq!(
        report.verdict(property),
        Some(&Verdict::Violated),
        "{bug}: {report}"
    );
    let counterexample = report
        .counterexamples
        .iter()
        .find(|counterexample| counterexample.property == property)
        .expect("a counterexample for the expected property");
    assert!(
        counterexample.replayed,
        "{bug}: the counterexample replays\n{counterexample}"
    );
    assert!(!report.passed());
}

#[test]
fn error_path_leak_is_caught() {
    caught(Bug::ErrorPathLeak);
}

#[test]
fn double_complete_is_caught() {
    caught(Bug::DoubleComplete);
}

#[test]
fn evicted_ack_counts_is_caught() {
    caught(Bug::EvictedAckCounts);
}

#[test]
fn forget_promise_is_caught() {
    caught(Bug::ForgetPromise);
}

#[test]
fn stale_leader_read_is_caught() {
    caught(Bug::StaleLeaderRead);
}

#[test]
fn read_before_own_ballot_commit_is_caught() {
    caught(Bug::ReadBeforeOwnBallotCommit);
}

#[test]
fn paused_heartbeat_is_caught() {
    caught(Bug::PausedHeartbeat);
}

#[test]
fn small_bug_presets_hold_without_their_bug() {
    for bug in [
        Bug::ErrorPathLeak,
        Bug::DoubleComplete,
        Bug::EvictedAckCounts,
        Bug::StaleLeaderRead,
        Bug::PausedHeartbeat,
        Bug::WatchLeakOnError,
        Bug::TxnPartialApply,
        Bug::CompactionSkipsWatch,
        Bug::WatchNowBeforeReport,
        Bug::EphemeralOutlivesLease,
    ] {
        let mut preset = presets::for_bug(bug);
        preset.config.bugs.clear();
        let report = run_preset(&preset, &CheckOptions::default());
        assert!(
            !report.violated() && report.complete,
            "{bug} preset without the bug: {report}"
        );
    }
}

#[test]
fn bug_names_round_trip() {
    for bug in Bug::ALL {
        assert_eq!(bug.name().parse::<Bug>().ok(), Some(bug));
    }
    assert!("no-such-bug".parse::<Bug>().is_err());
}

#[test]
fn own_accept_before_persist_is_caught() {
    caught(Bug::OwnAcceptBeforePersist);
}

#[test]
fn watch_resume_from_current_is_caught() {
    caught(Bug::WatchResumeFromCurrent);
}

#[test]
fn txn_partial_apply_is_caught() {
    caught(Bug::TxnPartialApply);
}

#[test]
fn watch_leak_on_error_is_caught() {
    caught(Bug::WatchLeakOnError);
}

#[test]
fn compaction_skips_watch_is_caught() {
    caught(Bug::CompactionSkipsWatch);
}

#[test]
fn watch_now_before_report_is_caught() {
    caught(Bug::WatchNowBeforeReport);
}

#[test]
fn expire_by_deposed_leader_is_caught() {
    caught(Bug::ExpireByDeposedLeader);
}

#[test]
fn ttl_not_renewed_on_election_is_caught() {
    caught(Bug::TtlNotRenewedOnElection);
}

#[test]
fn ephemeral_outlives_lease_is_caught() {
    caught(Bug::EphemeralOutlivesLease);
}
