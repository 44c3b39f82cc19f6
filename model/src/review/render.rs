//! The review as Markdown, for a pull request or a terminal: a table of presets with the
//! change, then what changed per property, witness, seeded bug and abstract state, and the
//! verdict line last.

use std::fmt;

use crate::review::compare::{PresetFigures, PresetReview, Review};

/// Writes `review` as Markdown.
pub fn markdown(review: &Review, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(
        formatter,
        "# Model review: {} (head) against {} (base)\n",
        review.head_label, review.base_label
    )?;
    presets_table(review, formatter)?;
    for preset in &review.presets {
        preset_details(preset, formatter)?;
    }
    bugs_table(review, formatter)?;
    if review.failed() {
        writeln!(formatter, "\n## Verdict: FAIL\n")?;
        for regression in &review.regressions {
            writeln!(formatter, "- {regression}")?;
        }
        Ok(())
    } else {
        writeln!(
            formatter,
            "\n## Verdict: PASS (no property newly fails, no witness vanished, every seeded bug still caught, every exhaustive preset finishes)"
        )
    }
}

fn presets_table(review: &Review, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(
        formatter,
        "| preset | unique states (base → head) | transitions | depth | seconds | abstract states | new | gone | exhaustive |"
    )?;
    writeln!(
        formatter,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )?;
    for preset in &review.presets {
        let pair = |field: fn(&PresetFigures) -> String| {
            let side = |figures: &Option<PresetFigures>| {
                figures.as_ref().map_or_else(|| "—".to_string(), field)
            };
            let (base, head) = (side(&preset.base), side(&preset.head));
            if base == head {
                base
            } else {
                format!("{base} → {head}")
            }
        };
        writeln!(
            formatter,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            preset.name,
            pair(|figures| figures.unique_states.to_string()),
            pair(|figures| figures.transitions.to_string()),
            pair(|figures| figures.depth.to_string()),
            pair(|figures| format!("{:.1}", figures.seconds)),
            pair(|figures| figures.abstract_states.to_string()),
            preset.states_new,
            preset.states_gone,
            pair(|figures| if figures.complete { "yes" } else { "no" }.to_string()),
        )?;
    }
    Ok(())
}

fn preset_details(preset: &PresetReview, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
    let unchanged = preset.safety_changes.is_empty()
        && preset.witness_changes.is_empty()
        && preset.states_new == 0
        && preset.states_gone == 0;
    if unchanged {
        return Ok(());
    }
    writeln!(formatter, "\n## {}\n", preset.name)?;
    for (property, base, head) in &preset.safety_changes {
        writeln!(formatter, "- property `{property}`: {base} → {head}")?;
    }
    for (witness, base, head) in &preset.witness_changes {
        let length = |side: &Option<usize>| {
            side.map_or_else(
                || "not reached".to_string(),
                |steps| format!("{steps} steps"),
            )
        };
        writeln!(
            formatter,
            "- witness `{witness}`: {} → {} (the path the preset's search found: with DFS not the shortest)",
            length(base),
            length(head)
        )?;
    }
    for (property, steps) in &preset.new_counterexamples {
        writeln!(formatter, "\nCounterexample to `{property}` in head:\n")?;
        numbered(&steps[..], formatter)?;
    }
    states(
        formatter,
        "new in head",
        preset.states_new,
        &preset.examples_new,
        &preset.paths_new,
    )?;
    states(
        formatter,
        "gone from base",
        preset.states_gone,
        &preset.examples_gone,
        &preset.paths_gone,
    )
}

fn states(
    formatter: &mut fmt::Formatter<'_>,
    direction: &str,
    count: usize,
    examples: &[String],
    paths: &[Vec<String>],
) -> fmt::Result {
    if count == 0 {
        return Ok(());
    }
    writeln!(
        formatter,
        "\n{count} abstract states {direction}; for example:\n"
    )?;
    for example in examples {
        writeln!(formatter, "- `{example}`")?;
    }
    for (index, path) in paths.iter().enumerate() {
        writeln!(
            formatter,
            "\nShortest path to the {} such state ({} steps):\n",
            ordinal(index),
            path.len()
        )?;
        numbered(path, formatter)?;
    }
    Ok(())
}

fn ordinal(index: usize) -> String {
    match index {
        0 => "first".to_string(),
        1 => "second".to_string(),
        2 => "third".to_string(),
        _ => format!("{}th", index + 1),
    }
}

fn numbered(steps: &[String], formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
    for (index, step) in steps.iter().enumerate() {
        writeln!(formatter, "{}. {step}", index + 1)?;
    }
    Ok(())
}

fn bugs_table(review: &Review, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
    if review.bugs.is_empty() {
        return Ok(());
    }
    writeln!(formatter, "\n## Seeded bugs\n")?;
    writeln!(
        formatter,
        "| bug | preset | base: caught by (steps) | head: caught by (steps) |"
    )?;
    writeln!(formatter, "| --- | --- | --- | --- |")?;
    for bug in &review.bugs {
        let side = |run: &Option<crate::review::BugSummary>| match run {
            None => "—".to_string(),
            Some(run) if run.caught_by.is_empty() => "NOT CAUGHT".to_string(),
            Some(run) => format!(
                "{} ({})",
                run.caught_by.join(", "),
                run.counterexample_steps.unwrap_or_default()
            ),
        };
        let preset = bug
            .head
            .as_ref()
            .or(bug.base.as_ref())
            .map_or("", |run| run.preset.as_str());
        writeln!(
            formatter,
            "| {} | {preset} | {} | {} |",
            bug.bug,
            side(&bug.base),
            side(&bug.head)
        )?;
    }
    Ok(())
}
