//! The `ci` presets hold every safety property and reach the witnesses they promise; BFS and DFS
//! (no symmetry reduction) agree on the unique state count, which is pinned so that any change
//! to the state space shows up as a diff. The whole `ci` list (ci-crash, ci-disk and
//! ci-watch-resume are the big ones) runs with 2 threads in
//! `the_whole_ci_list_holds_and_reaches_every_witness`; the five-master preset, the seed's
//! deployment, is pinned the same way.

use vigil_model::check::{run_preset, CheckOptions};
use vigil_model::kv_presets;
use vigil_model::lease_presets;
use vigil_model::presets::{self, Preset, Strategy};
use vigil_model::properties;
use vigil_model::{Budget, Bug};

fn holds(preset: &Preset, strategy: Strategy) -> usize {
    let options = CheckOptions {
        strategy: Some(strategy),
        ..CheckOptions::default()
    };
    let report = run_preset(preset, &options);
    assert!(report.passed(), "{report}");
    assert!(report.complete, "{report}");
    report.unique_states
}

#[test]
fn ci_election_holds_with_pinned_state_count_in_bfs_and_dfs() {
    let preset = presets::ci_election();
    let dfs = holds(&preset, Strategy::Dfs);
    let bfs = holds(&preset, Strategy::Bfs);
    assert_eq!(dfs, bfs);
    assert_eq!(dfs, PINNED_CI_ELECTION);
}

#[test]
fn ci_read_holds_with_pinned_state_count() {
    assert_eq!(holds(&presets::ci_read(), Strategy::Dfs), PINNED_CI_READ);
}

#[test]
fn five_masters_holds_with_pinned_state_count() {
    let options = CheckOptions {
        threads: Some(2),
        ..CheckOptions::default()
    };
    let report = run_preset(&presets::five_masters(), &options);
    assert!(report.passed() && report.complete, "{report}");
    assert_eq!(report.unique_states, PINNED_FIVE_MASTERS);
}

#[test]
fn ci_requires_every_witness() {
    let required: Vec<&str> = presets::ci()
        .iter()
        .flat_map(|preset| preset.witnesses.clone())
        .collect();
    for witness in properties::witness_names() {
        assert!(
            required.contains(&witness),
            "no ci preset requires {witness}"
        );
    }
    assert!(presets::ci().iter().all(|preset| preset.exhaustive));
}

#[test]
fn a_run_stopped_by_its_depth_limit_is_not_exhaustive_and_fails() {
    let options = CheckOptions {
        depth_max: Some(5),
        ..CheckOptions::default()
    };
    let report = run_preset(&presets::ci_election(), &options);
    assert!(!report.complete && !report.passed(), "{report}");
}

const PINNED_CI_ELECTION: usize = 1_178_494;
const PINNED_FIVE_MASTERS: usize = 14_138_744;
const PINNED_CI_READ: usize = 573_817;
const PINNED_CI_TXN: usize = 11_095;
const PINNED_CI_WATCH: usize = 146_056;

#[test]
fn ci_txn_holds_with_pinned_state_count_in_bfs_and_dfs() {
    let preset = kv_presets::ci_txn();
    let dfs = holds(&preset, Strategy::Dfs);
    assert_eq!(dfs, holds(&preset, Strategy::Bfs));
    assert_eq!(dfs, PINNED_CI_TXN);
}

#[test]
fn ci_watch_holds_with_pinned_state_count_in_bfs_and_dfs() {
    let preset = kv_presets::ci_watch();
    let dfs = holds(&preset, Strategy::Dfs);
    assert_eq!(dfs, holds(&preset, Strategy::Bfs));
    assert_eq!(dfs, PINNED_CI_WATCH);
}

#[test]
fn the_whole_ci_list_holds_and_reaches_every_witness() {
    let options = CheckOptions {
        threads: Some(2),
        ..CheckOptions::default()
    };
    let suite = vigil_model::check::run_named("ci", &options).expect("ci exists");
    assert!(suite.passed(), "{suite}");
    let counts: Vec<(&str, usize)> = suite
        .reports
        .iter()
        .map(|report| (report.preset, report.unique_states))
        .collect();
    assert_eq!(
        counts,
        vec![
            ("ci-pause", 127_740),
            ("ci-election", PINNED_CI_ELECTION),
            ("ci-read", PINNED_CI_READ),
            ("ci-crash", 4_764_739),
            ("ci-disk", 3_518_961),
            ("ci-txn", PINNED_CI_TXN),
            ("ci-watch", PINNED_CI_WATCH),
            ("ci-watch-resume", 1_782_929),
            ("ci-watch-errors", 11_554),
            ("ci-watch-now", 343),
            ("ci-lease", PINNED_CI_LEASE),
            ("ci-lease-election", 1_183_345),
        ]
    );
}

/// `ci-lease`'s unique states (DFS and BFS agree).
const PINNED_CI_LEASE: usize = 36_822;

#[test]
fn ci_lease_holds_with_pinned_state_count_in_bfs_and_dfs() {
    let preset = lease_presets::ci_lease();
    assert_eq!(holds(&preset, Strategy::Dfs), PINNED_CI_LEASE);
    assert_eq!(holds(&preset, Strategy::Bfs), PINNED_CI_LEASE);
}

#[test]
fn a_run_stopped_by_its_time_limit_is_not_exhaustive_and_fails() {
    let options = CheckOptions {
        seconds_max: Some(1),
        ..CheckOptions::default()
    };
    let report = run_preset(&presets::ci_crash(), &options);
    assert!(report.seconds < 10.0, "the limit is honoured: {report}");
    assert!(!report.complete && !report.passed(), "{report}");
}

#[test]
fn ci_catches_every_seeded_bug() {
    // The bugs that need an election or a crash are caught by ci members themselves: their
    // targeted presets are those members with the bug on (checked in tests/bugs.rs).
    assert_eq!(
        presets::for_bug(Bug::ForgetPromise).config.clients,
        presets::ci_crash().config.clients
    );
    assert_eq!(
        presets::for_bug(Bug::ForgetPromise).config.budget,
        presets::ci_crash().config.budget
    );
    assert_eq!(
        presets::for_bug(Bug::StaleLeaderRead).config.clients,
        presets::ci_read().config.clients
    );
    assert_eq!(
        presets::for_bug(Bug::StaleLeaderRead).config.budget,
        presets::ci_read().config.budget
    );
    // `own-accept-before-persist` needs a crash on the queued disk: ci-disk with the bug.
    let own_accept = presets::for_bug(Bug::OwnAcceptBeforePersist).config;
    let disk = presets::ci_disk().config;
    assert_eq!(
        (own_accept.clients, own_accept.budget, own_accept.disk),
        (disk.clients, disk.budget, disk.disk)
    );
    // The revisioned API's bugs are caught by ci members with the bug on (tests/bugs.rs);
    // `watch-leak-on-error` by the smallest preset, a watch on an unknown cluster, and
    // `watch-resume-from-current` by ci-watch-resume with a progress request added (the
    // request doubles ci-watch-resume, which reaches its witness without it).
    for (bug, member) in [
        (Bug::TxnPartialApply, kv_presets::ci_txn()),
        (Bug::CompactionSkipsWatch, kv_presets::ci_watch()),
        (
            Bug::WatchResumeFromCurrent,
            kv_presets::watch_resume_with_progress(),
        ),
    ] {
        let targeted = presets::for_bug(bug).config;
        assert_eq!(
            (targeted.kv_clients, targeted.budget),
            (member.config.kv_clients, member.config.budget),
            "{bug}"
        );
    }
    // The leases' bugs are caught by the lease presets of ci with the bug on (tests/bugs.rs):
    // those that need a leader change by ci-lease-election, `ephemeral-outlives-lease` by
    // ci-lease.
    for (bug, member) in [
        (
            Bug::ExpireByDeposedLeader,
            lease_presets::ci_lease_election(),
        ),
        (
            Bug::TtlNotRenewedOnElection,
            lease_presets::ci_lease_election(),
        ),
        (Bug::EphemeralOutlivesLease, lease_presets::ci_lease()),
    ] {
        let targeted = presets::for_bug(bug).config;
        assert_eq!(
            (targeted.kv_clients, targeted.budget),
            (member.config.kv_clients, member.config.budget),
            "{bug}"
        );
    }
    // `read-before-own-ballot-commit` needs one lost message besides ci-read (see
    // `presets::for_bug`): its preset is ci-read with a drop budget, caught in tests/bugs.rs.
    let read_before_commit = presets::for_bug(Bug::ReadBeforeOwnBallotCommit).config;
    assert_eq!(
        read_before_commit.clients,
        presets::ci_read().config.clients
    );
    assert_eq!(
        read_before_commit.budget,
        Budget {
            drops: 1,
            ..presets::ci_read().config.budget
        }
    );
    for bug in [
        Bug::ErrorPathLeak,
        Bug::DoubleComplete,
        Bug::EvictedAckCounts,
        Bug::PausedHeartbeat,
    ] {
        let options = CheckOptions {
            bugs: vec![bug],
            ..CheckOptions::default()
        };
        let report = run_preset(&presets::ci_pause(), &options);
        let expected = bug.expected_violation();
        assert_eq!(
            report.verdict(expected),
            Some(&vigil_model::check::Verdict::Violated),
            "{bug}: {report}"
        );
    }
}
