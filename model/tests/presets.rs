//! The `ci` presets hold every safety property and reach the witnesses they promise; BFS and DFS
//! (no symmetry reduction) agree on the unique state count, which is pinned so that any change
//! to the state space shows up as a diff. The two big members of `ci` (ci-pause, ci-crash) run
//! in the release binary (`vigil-model check --preset ci`), not here: see docs/model.md.

use vigil_model::check::{run_preset, CheckOptions};
use vigil_model::presets::{self, Preset, Strategy};
use vigil_model::properties;

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
fn ci_reaches_every_witness_and_catches_every_bug_on_paper() {
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

const PINNED_CI_ELECTION: usize = 362_943;
const PINNED_CI_READ: usize = 543_305;

#[test]
fn the_whole_ci_list_holds_and_reaches_every_witness() {
    let options = CheckOptions {
        threads: Some(2),
        ..CheckOptions::default()
    };
    let suite = vigil_model::check::run_named("ci", &options).expect("ci exists");
    assert!(suite.passed(), "{suite}");
    assert_eq!(suite.reports.len(), presets::ci().len());
}
