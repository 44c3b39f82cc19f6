//! The design review on two small synthetic versions: a preset as base, the same preset with a
//! seeded bug switched on as head. The review must name what the bug changed — the property
//! that newly fails with its counterexample, the abstract states only head reaches with a path
//! to one — and fail; a version reviewed against itself must pass with nothing changed.

use vigil_model::check::CheckOptions;
use vigil_model::presets;
use vigil_model::review::{self, Review, Summary};
use vigil_model::Bug;

fn versions() -> (Summary, Summary, presets::Preset) {
    let head_preset = presets::for_bug(Bug::DoubleComplete);
    let mut base_preset = head_preset.clone();
    base_preset.config.bugs.clear();
    let options = CheckOptions::default();
    let base = review::summarize(
        std::slice::from_ref(&base_preset),
        &[Bug::ErrorPathLeak],
        &options,
    );
    let head = review::summarize(
        std::slice::from_ref(&head_preset),
        &[Bug::ErrorPathLeak],
        &options,
    );
    (base, head, head_preset)
}

#[test]
fn a_version_against_itself_changes_nothing_and_passes() {
    let (base, _, _) = versions();
    let review = Review::new("base", &base, "base again", &base);
    assert!(!review.failed(), "{review}");
    let preset = &review.presets[0];
    assert!(preset.safety_changes.is_empty() && preset.witness_changes.is_empty());
    assert_eq!((preset.states_new, preset.states_gone), (0, 0));
    assert!(review.to_string().contains("## Verdict: PASS"), "{review}");
}

#[test]
fn a_seeded_bug_as_head_fails_the_review_and_shows_what_it_changed() {
    let (base, head, head_preset) = versions();
    let mut review = Review::new("base", &base, "head", &head);
    assert!(review.failed());
    assert!(
        review
            .regressions
            .iter()
            .any(|line| line.contains("complete_at_most_once newly fails")),
        "{:?}",
        review.regressions
    );
    let preset = &review.presets[0];
    assert!(
        preset
            .new_counterexamples
            .iter()
            .any(|(property, steps)| property == "complete_at_most_once" && !steps.is_empty()),
        "{review}"
    );
    assert!(
        preset.states_new > 0,
        "the bug completes twice: a ledger base never reaches"
    );
    let targets = review.path_targets(1);
    let (_, new, _) = &targets[0];
    let paths = review::paths_to(&head_preset, new, 1);
    assert_eq!(paths.len(), 1, "a path to a state only head reaches");
    review.add_paths(head_preset.name, paths, Vec::new());
    let text = review.to_string();
    assert!(text.contains("abstract states new in head"), "{text}");
    assert!(
        text.contains("Shortest path to the first such state"),
        "{text}"
    );
    assert!(text.contains("## Verdict: FAIL"), "{text}");
}

#[test]
fn a_bug_no_longer_caught_and_a_vanished_witness_are_regressions() {
    let (base, _, _) = versions();
    let mut head = base.clone();
    head.bugs[0].caught_by.clear();
    head.bugs[0].counterexample_steps = None;
    let witness = base.presets[0]
        .witnesses
        .iter()
        .find(|(_, length)| length.is_some())
        .map(|(name, _)| name.clone())
        .expect("the preset reaches a witness");
    head.presets[0].witnesses.insert(witness.clone(), None);
    let review = Review::new("base", &base, "head", &head);
    let regressions = review.regressions.join("\n");
    assert!(
        regressions.contains("seeded bug error-path-leak is no longer caught"),
        "{regressions}"
    );
    assert!(
        regressions.contains(&format!("witness {witness} is no longer reached")),
        "{regressions}"
    );
}

#[test]
fn a_summary_survives_json() {
    let (base, _, _) = versions();
    let text = serde_json::to_string(&base).unwrap();
    assert_eq!(serde_json::from_str::<Summary>(&text).unwrap(), base);
}
