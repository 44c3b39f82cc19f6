//! The review of a protocol change: two versions' summaries side by side, what changed per
//! preset, property, witness and seeded bug, the state-space diff on the shared abstraction,
//! and a verdict. A count is not a diff: two versions with the same number of states can reach
//! different abstract states, and the diff says which.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::review::summary::{BugSummary, PresetSummary, Summary};

/// Abstract states listed per preset and direction at most.
pub const EXAMPLE_STATES_MAX: usize = 5;

/// The review of `head` against `base`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// What each side is (a commit, `working tree`).
    pub base_label: String,
    /// See `base_label`.
    pub head_label: String,
    /// Per preset of either side, in head's order then base's.
    pub presets: Vec<PresetReview>,
    /// Per seeded bug of either side.
    pub bugs: Vec<BugReview>,
    /// What makes the review fail, one line each; empty when it passes.
    pub regressions: Vec<String>,
}

/// One preset on both sides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresetReview {
    /// The preset.
    pub name: String,
    /// Base's check, if base has the preset.
    pub base: Option<PresetFigures>,
    /// Head's check, if head has the preset.
    pub head: Option<PresetFigures>,
    /// Safety properties whose verdict differs: (name, base, head); `absent` where a side does
    /// not have it.
    pub safety_changes: Vec<(String, String, String)>,
    /// Witnesses whose path length or reachability differs: (name, base, head).
    pub witness_changes: Vec<(String, Option<usize>, Option<usize>)>,
    /// Counterexamples head has and base has not, per property.
    pub new_counterexamples: Vec<(String, Vec<String>)>,
    /// Abstract states reached in head and not in base.
    pub states_new: usize,
    /// Abstract states reached in base and not in head.
    pub states_gone: usize,
    /// Up to [`EXAMPLE_STATES_MAX`] of the new ones.
    pub examples_new: Vec<String>,
    /// Up to [`EXAMPLE_STATES_MAX`] of the gone ones.
    pub examples_gone: Vec<String>,
    /// Shortest paths to new states, in head (filled by [`Review::add_paths`]).
    pub paths_new: Vec<Vec<String>>,
    /// Shortest paths to gone states, in base.
    pub paths_gone: Vec<Vec<String>>,
}

/// A preset's figures on one side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresetFigures {
    /// Unique states.
    pub unique_states: usize,
    /// Transitions.
    pub transitions: usize,
    /// Deepest path.
    pub depth: usize,
    /// Wall time.
    pub seconds: f64,
    /// Abstract states.
    pub abstract_states: usize,
    /// Whether the search was complete.
    pub complete: bool,
    /// Whether a safety property was violated (the search then stops there).
    pub violated: bool,
}

/// One seeded bug on both sides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BugReview {
    /// The bug.
    pub bug: String,
    /// Base's run, if base has the bug.
    pub base: Option<BugSummary>,
    /// Head's run, if head has the bug.
    pub head: Option<BugSummary>,
}

impl Review {
    /// Compares `head` with `base`.
    pub fn new(base_label: &str, base: &Summary, head_label: &str, head: &Summary) -> Review {
        let names = names_in_either(
            head.presets.iter().map(|preset| preset.name.as_str()),
            base.presets.iter().map(|preset| preset.name.as_str()),
        );
        let find = |summary: &Summary, name: &str| {
            summary
                .presets
                .iter()
                .find(|preset| preset.name == name)
                .cloned()
        };
        let presets = names
            .iter()
            .map(|name| preset_review(name, find(base, name), find(head, name)))
            .collect();
        let bug_names = names_in_either(
            head.bugs.iter().map(|bug| bug.bug.as_str()),
            base.bugs.iter().map(|bug| bug.bug.as_str()),
        );
        let find_bug = |summary: &Summary, name: &str| {
            summary.bugs.iter().find(|bug| bug.bug == name).cloned()
        };
        let bugs = bug_names
            .iter()
            .map(|name| BugReview {
                bug: name.to_string(),
                base: find_bug(base, name),
                head: find_bug(head, name),
            })
            .collect();
        let mut review = Review {
            base_label: base_label.to_string(),
            head_label: head_label.to_string(),
            presets,
            bugs,
            regressions: Vec::new(),
        };
        review.regressions = regressions(&review);
        review
    }

    /// Whether head regressed: a property newly fails, a witness vanished, a seeded bug is no
    /// longer caught, an exhaustive preset no longer finishes or is gone.
    pub fn failed(&self) -> bool {
        !self.regressions.is_empty()
    }

    /// The abstract states to find example paths to, per preset: (preset, new in head, gone
    /// from base), each at most `count`.
    pub fn path_targets(&self, count: usize) -> Vec<(String, BTreeSet<String>, BTreeSet<String>)> {
        self.presets
            .iter()
            .map(|preset| {
                let take = |states: &[String]| states.iter().take(count).cloned().collect();
                (
                    preset.name.clone(),
                    take(&preset.examples_new),
                    take(&preset.examples_gone),
                )
            })
            .collect()
    }

    /// Records example paths found for `preset`.
    pub fn add_paths(&mut self, preset: &str, new: Vec<Vec<String>>, gone: Vec<Vec<String>>) {
        if let Some(review) = self.presets.iter_mut().find(|review| review.name == preset) {
            review.paths_new = new;
            review.paths_gone = gone;
        }
    }
}

fn figures(summary: &PresetSummary) -> PresetFigures {
    PresetFigures {
        unique_states: summary.unique_states,
        transitions: summary.transitions,
        depth: summary.depth,
        seconds: summary.seconds,
        abstract_states: summary.abstract_states.len(),
        complete: summary.complete,
        violated: summary.safety.values().any(|verdict| verdict == "violated"),
    }
}

fn preset_review(
    name: &str,
    base: Option<PresetSummary>,
    head: Option<PresetSummary>,
) -> PresetReview {
    let empty = PresetSummary {
        name: name.to_string(),
        unique_states: 0,
        transitions: 0,
        depth: 0,
        seconds: 0.0,
        complete: false,
        exhaustive_required: false,
        safety: Default::default(),
        witnesses: Default::default(),
        required_witnesses: Vec::new(),
        counterexamples: Default::default(),
        abstract_states: Vec::new(),
    };
    let (base_side, head_side) = (
        base.as_ref().unwrap_or(&empty),
        head.as_ref().unwrap_or(&empty),
    );
    let base_states: BTreeSet<&String> = base_side.abstract_states.iter().collect();
    let head_states: BTreeSet<&String> = head_side.abstract_states.iter().collect();
    let new: Vec<String> = head_states
        .difference(&base_states)
        .map(|s| s.to_string())
        .collect();
    let gone: Vec<String> = base_states
        .difference(&head_states)
        .map(|s| s.to_string())
        .collect();
    PresetReview {
        name: name.to_string(),
        base: base.as_ref().map(figures),
        head: head.as_ref().map(figures),
        safety_changes: safety_changes(base_side, head_side),
        witness_changes: witness_changes(base_side, head_side),
        new_counterexamples: head_side
            .counterexamples
            .iter()
            .filter(|(property, _)| !base_side.counterexamples.contains_key(*property))
            .map(|(property, steps)| (property.clone(), steps.clone()))
            .collect(),
        states_new: new.len(),
        states_gone: gone.len(),
        examples_new: new.into_iter().take(EXAMPLE_STATES_MAX).collect(),
        examples_gone: gone.into_iter().take(EXAMPLE_STATES_MAX).collect(),
        paths_new: Vec::new(),
        paths_gone: Vec::new(),
    }
}

fn safety_changes(base: &PresetSummary, head: &PresetSummary) -> Vec<(String, String, String)> {
    let names: BTreeSet<&String> = base.safety.keys().chain(head.safety.keys()).collect();
    let verdict = |side: &PresetSummary, name: &String| {
        side.safety
            .get(name)
            .cloned()
            .unwrap_or_else(|| "absent".to_string())
    };
    names
        .into_iter()
        .map(|name| (name.clone(), verdict(base, name), verdict(head, name)))
        .filter(|(_, base, head)| base != head)
        .collect()
}

fn witness_changes(
    base: &PresetSummary,
    head: &PresetSummary,
) -> Vec<(String, Option<usize>, Option<usize>)> {
    let names: BTreeSet<&String> = base.witnesses.keys().chain(head.witnesses.keys()).collect();
    let length = |side: &PresetSummary, name: &String| side.witnesses.get(name).copied().flatten();
    names
        .into_iter()
        .map(|name| (name.clone(), length(base, name), length(head, name)))
        .filter(|(_, base, head)| base != head)
        .collect()
}

fn regressions(review: &Review) -> Vec<String> {
    let mut found = Vec::new();
    for preset in &review.presets {
        let name = &preset.name;
        if preset.head.is_none() {
            found.push(format!("preset {name} is gone from head"));
        }
        for (property, base, head) in &preset.safety_changes {
            if head == "violated" {
                found.push(format!("{name}: {property} newly fails (base: {base})"));
            }
        }
        for (witness, base, head) in &preset.witness_changes {
            if base.is_some() && head.is_none() {
                found.push(format!("{name}: witness {witness} is no longer reached"));
            }
        }
        if let (Some(base), Some(head)) = (&preset.base, &preset.head) {
            if base.complete && !head.complete && !head.violated {
                found.push(format!(
                    "{name}: the search no longer finishes (not exhaustive in head)"
                ));
            }
        }
    }
    for bug in &review.bugs {
        let caught =
            |side: &Option<BugSummary>| side.as_ref().is_some_and(|run| !run.caught_by.is_empty());
        if caught(&bug.base) && !caught(&bug.head) {
            found.push(format!("seeded bug {} is no longer caught", bug.bug));
        }
    }
    found
}

impl fmt::Display for Review {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::review::render::markdown(self, formatter)
    }
}

/// Head's names in head's order, then base's names head does not have.
fn names_in_either<'a>(
    head: impl Iterator<Item = &'a str>,
    base: impl Iterator<Item = &'a str>,
) -> Vec<&'a str> {
    let mut names: Vec<&str> = head.collect();
    for name in base {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}
