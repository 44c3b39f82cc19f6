//! What one version of the model says about itself, for a design review to compare with another
//! version's (`vigil-model summary`): every preset of a list checked with its abstract states
//! collected, and every seeded bug's targeted preset. Plain serde data, so that two binaries
//! built from different commits exchange it as JSON.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use stateright::{Checker, HasDiscoveries, Model};

use crate::check::{self, CheckOptions, CheckReport, Verdict};
use crate::config::Bug;
use crate::presets::{self, Preset};
use crate::properties::REVIEW_TARGET_REACHED;
use crate::review::Observer;

/// One version's summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Its presets, in run order.
    pub presets: Vec<PresetSummary>,
    /// Its seeded bugs, in `Bug::ALL` order.
    pub bugs: Vec<BugSummary>,
}

/// One preset's check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresetSummary {
    /// The preset.
    pub name: String,
    /// Unique states.
    pub unique_states: usize,
    /// Transitions: states generated, repeats included.
    pub transitions: usize,
    /// Deepest path.
    pub depth: usize,
    /// Wall time.
    pub seconds: f64,
    /// Whether the search covered every reachable state.
    pub complete: bool,
    /// Whether the preset demands a complete search.
    pub exhaustive_required: bool,
    /// Each safety property: `held` or `violated`.
    pub safety: BTreeMap<String, String>,
    /// Each witness: the length of the path that reached it, `None` when not reached.
    pub witnesses: BTreeMap<String, Option<usize>>,
    /// The witnesses the preset requires.
    pub required_witnesses: Vec<String>,
    /// Per violated property, its counterexample's steps in the protocol's vocabulary.
    pub counterexamples: BTreeMap<String, Vec<String>>,
    /// Every abstract state reached (`crate::review::abstract_state`), sorted.
    pub abstract_states: Vec<String>,
}

/// One seeded bug's targeted preset (`vigil-model check --preset bug-NAME`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BugSummary {
    /// The bug.
    pub bug: String,
    /// Its targeted preset.
    pub preset: String,
    /// The properties it violated (empty: not caught).
    pub caught_by: Vec<String>,
    /// The shortest counterexample's steps, if caught.
    pub counterexample_steps: Option<usize>,
}

/// Checks every preset of `presets` with an observer (all of them, also after a violation: a
/// review compares every one) and, when `with_bugs`, every seeded bug's targeted preset.
pub fn summarize(presets: &[Preset], bugs: &[Bug], options: &CheckOptions) -> Summary {
    let presets = presets
        .iter()
        .map(|preset| {
            let mut observed = preset.clone();
            let observer = Observer::collecting();
            observed.config.observer = Some(observer.clone());
            let report = check::run_preset(&observed, options);
            preset_summary(&report, &observer)
        })
        .collect();
    let bugs = bugs
        .iter()
        .map(|bug| bug_summary(*bug, &presets::for_bug(*bug), options))
        .collect();
    Summary { presets, bugs }
}

fn preset_summary(report: &CheckReport, observer: &Observer) -> PresetSummary {
    let mut safety = BTreeMap::new();
    let mut witnesses = BTreeMap::new();
    for (name, verdict) in &report.properties {
        match verdict {
            Verdict::Held => drop(safety.insert(name.to_string(), "held".to_string())),
            Verdict::Violated => drop(safety.insert(name.to_string(), "violated".to_string())),
            Verdict::Discovered | Verdict::NotDiscovered => drop(witnesses.insert(
                name.to_string(),
                report.witness_path_lengths.get(name).copied(),
            )),
        }
    }
    PresetSummary {
        name: report.preset.to_string(),
        unique_states: report.unique_states,
        transitions: report.states,
        depth: report.depth,
        seconds: report.seconds,
        complete: report.complete,
        exhaustive_required: report.exhaustive_required,
        safety,
        witnesses,
        required_witnesses: report
            .required_witnesses
            .iter()
            .map(ToString::to_string)
            .collect(),
        counterexamples: report
            .counterexamples
            .iter()
            .map(|counterexample| {
                let steps = counterexample.actions.iter().map(ToString::to_string);
                (counterexample.property.to_string(), steps.collect())
            })
            .collect(),
        abstract_states: observer.reached().into_keys().collect(),
    }
}

fn bug_summary(bug: Bug, preset: &Preset, options: &CheckOptions) -> BugSummary {
    let report = check::run_preset(preset, options);
    BugSummary {
        bug: bug.name().to_string(),
        preset: preset.name.to_string(),
        caught_by: report
            .counterexamples
            .iter()
            .map(|counterexample| counterexample.property.to_string())
            .collect(),
        counterexample_steps: report
            .counterexamples
            .iter()
            .map(|counterexample| counterexample.actions.len())
            .min(),
    }
}

/// Up to `count` shortest paths (breadth first), each in the protocol's vocabulary, from the
/// initial state to a state whose abstract state is in `targets`, each to a different one.
pub fn paths_to(preset: &Preset, targets: &BTreeSet<String>, count: usize) -> Vec<Vec<String>> {
    let mut remaining = targets.clone();
    let mut paths = Vec::new();
    while paths.len() < count && !remaining.is_empty() {
        let mut config = preset.config.clone();
        config.observer = Some(Observer::targeting(remaining.clone()));
        let checker = config
            .clone()
            .checker()
            .finish_when(HasDiscoveries::AllOf(
                [REVIEW_TARGET_REACHED].into_iter().collect(),
            ))
            .spawn_bfs()
            .join();
        let Some(path) = checker.discoveries().remove(REVIEW_TARGET_REACHED) else {
            break;
        };
        let last = path.last_state().clone();
        remaining.remove(&crate::review::abstract_state(&config, &last));
        paths.push(
            path.into_actions()
                .iter()
                .map(ToString::to_string)
                .collect(),
        );
    }
    paths
}
