//! The check on the watchers: every watcher saw exactly the committed history of the accounts'
//! prefix (`docs/protocol.md` §17.3, §18 `watch_in_order_exactly_once`), compared with the
//! history read back after the heal by `Range`s (`readback.rs`), not with another watch.
//!
//! Per watcher: its revisions strictly increase over all its watches (no revision twice, none
//! out of order); each watch starts where the one before stopped covering (after `Compacted`, at
//! the compaction point); over each watch's span — its start to the last revision it is known to
//! have covered, by a delivery or a progress notification — the revisions delivered are exactly
//! the history's revisions that changed the prefix, each with exactly the records the history
//! shows that revision wrote (key, value, `create_revision`, `mod_revision`, `version`); and its
//! last watch covered the final revision. Comparing every revision of the span, rather than
//! states at sampled revisions, is what catches an event lost and later overwritten.

use vigil_core::kv_types::{Event, EventKind, KeyValue, Revision, WatchEnd};

use super::accounts::{describe_records, PrefixHistory, WatchSegment, WatcherLog};

/// Anomalies listed per watcher at most.
const ANOMALIES_PER_WATCHER_MAX: usize = 10;

/// What the watcher check counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchSummary {
    /// Watchers.
    pub watchers: usize,
    /// Watches they opened (one each, plus one per re-open).
    pub watches: usize,
    /// Revisions delivered, over all watchers.
    pub deliveries: usize,
    /// How the re-opened watches ended, e.g. "Compacted", "connection: ...".
    pub ends: Vec<String>,
}

/// The verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchVerdict {
    /// The counts.
    pub summary: WatchSummary,
    /// The violations (empty: every watcher saw the committed history).
    pub anomalies: Vec<String>,
}

/// Checks every watcher's log against `history`.
pub fn check(history: &PrefixHistory, logs: &[WatcherLog]) -> WatchVerdict {
    let mut verdict = WatchVerdict::default();
    verdict.summary.watchers = logs.len();
    for log in logs {
        verdict.summary.watches += log.segments.len();
        for segment in &log.segments {
            verdict.summary.deliveries += segment.deliveries.len();
        }
        // Every watch but the last ended without the watcher cancelling it.
        for segment in log.segments.iter().rev().skip(1) {
            verdict.summary.ends.push(describe_end(segment));
        }
        let found = check_watcher(history, log);
        let extra = found.len().saturating_sub(ANOMALIES_PER_WATCHER_MAX);
        verdict
            .anomalies
            .extend(found.into_iter().take(ANOMALIES_PER_WATCHER_MAX));
        if extra > 0 {
            verdict
                .anomalies
                .push(format!("... and {extra} more of watcher {}", log.watcher));
        }
    }
    verdict
}

fn describe_end(segment: &WatchSegment) -> String {
    match (&segment.end, &segment.connection_error) {
        (Some(end), _) => format!("{end:?}"),
        (None, Some(error)) => format!("connection: {error}"),
        (None, None) => "stopped".to_string(),
    }
}

fn events_words(events: &[Event]) -> String {
    let records: Vec<&KeyValue> = events.iter().map(|event| &event.kv).collect();
    let deletes = events
        .iter()
        .filter(|event| event.kind == EventKind::Delete)
        .count();
    let words = describe_records(records);
    if deletes > 0 {
        format!("{words} ({deletes} delete(s))")
    } else {
        words
    }
}

/// One watcher's anomalies.
fn check_watcher(history: &PrefixHistory, log: &WatcherLog) -> Vec<String> {
    let watcher = log.watcher;
    let mut anomalies = Vec::new();
    let Some(last) = log.segments.last() else {
        return vec![format!("watcher {watcher} never opened a watch")];
    };
    let mut delivered_before: Revision = 0;
    let mut covered_before: Option<&WatchSegment> = None;
    for segment in &log.segments {
        let expected_start = match covered_before {
            None => 1,
            Some(before) => match before.end {
                Some(WatchEnd::Compacted { compact_revision }) => {
                    compact_revision.max(before.covered_revision() + 1)
                }
                _ => before.covered_revision() + 1,
            },
        };
        if segment.start_revision != expected_start {
            anomalies.push(format!(
                "watcher {watcher}: a watch from revision {} where {expected_start} was next",
                segment.start_revision
            ));
        }
        for (revision, _) in &segment.deliveries {
            if *revision <= delivered_before || *revision < segment.start_revision {
                anomalies.push(format!(
                    "watcher {watcher}: revision {revision} delivered after revision {delivered_before} (a watch from {}): a duplicate or out of order",
                    segment.start_revision
                ));
            }
            delivered_before = delivered_before.max(*revision);
        }
        anomalies.extend(check_span(history, watcher, segment));
        covered_before = Some(segment);
    }
    if last.covered_revision() < history.final_revision {
        anomalies.push(format!(
            "watcher {watcher}: covered revisions up to {} only, the history ends at {} ({})",
            last.covered_revision(),
            history.final_revision,
            describe_end(last)
        ));
    }
    anomalies
}

/// Over one watch's span, its deliveries against the history's changes.
fn check_span(history: &PrefixHistory, watcher: usize, segment: &WatchSegment) -> Vec<String> {
    let mut anomalies = Vec::new();
    let covered = segment.covered_revision();
    let expected = history.revisions_within(segment.start_revision, covered);
    for revision in &expected {
        let changes = history.changes_at(*revision).unwrap_or_default();
        match segment.deliveries.iter().find(|(got, _)| got == revision) {
            None => anomalies.push(format!(
                "watcher {watcher}: revision {revision} ({}) never delivered, though the watch covered up to {covered}: a lost event",
                describe_records(&changes)
            )),
            Some((_, events)) => {
                let mut records: Vec<&KeyValue> = events.iter().map(|event| &event.kv).collect();
                records.sort_by(|a, b| a.key.cmp(&b.key));
                let puts_only = events.iter().all(|event| event.kind == EventKind::Put);
                if !puts_only || records != changes.iter().collect::<Vec<_>>() {
                    anomalies.push(format!(
                        "watcher {watcher}: revision {revision} delivered {}, the history has {}",
                        events_words(events),
                        describe_records(&changes)
                    ));
                }
            }
        }
    }
    for (revision, events) in &segment.deliveries {
        if !expected.contains(revision) {
            anomalies.push(format!(
                "watcher {watcher}: revision {revision} delivered ({}), but the history has no change of the accounts there",
                events_words(events)
            ));
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::accounts::fixtures::{history, seeded, transferred};

    fn puts(records: Vec<KeyValue>) -> Vec<Event> {
        records
            .into_iter()
            .map(|kv| Event {
                kind: EventKind::Put,
                kv,
                prev_kv: None,
            })
            .collect()
    }

    fn segment(
        start_revision: Revision,
        deliveries: Vec<Revision>,
        progress: Revision,
    ) -> WatchSegment {
        let events = |revision| match revision {
            2 => puts(seeded()),
            _ => puts(transferred()),
        };
        WatchSegment {
            start_revision,
            deliveries: deliveries
                .into_iter()
                .map(|revision| (revision, events(revision)))
                .collect(),
            progress_revision: progress,
            end: Some(WatchEnd::Cancelled),
            connection_error: None,
        }
    }

    fn log(segments: Vec<WatchSegment>) -> WatcherLog {
        WatcherLog {
            watcher: 0,
            segments,
        }
    }

    fn anomalies(segments: Vec<WatchSegment>) -> Vec<String> {
        check(&history(), &[log(segments)]).anomalies
    }

    #[test]
    fn a_watcher_that_saw_the_history_passes_also_across_a_reopen() {
        assert_eq!(
            anomalies(vec![segment(1, vec![2, 4], 5)]),
            Vec::<String>::new()
        );
        let mut first = segment(1, vec![2], 0);
        first.end = None;
        first.connection_error = Some("the proxy closed the connection".into());
        let verdict = check(&history(), &[log(vec![first, segment(3, vec![4], 5)])]);
        assert_eq!(verdict.anomalies, Vec::<String>::new());
        assert_eq!(verdict.summary.watches, 2);
        assert_eq!(
            verdict.summary.ends,
            vec!["connection: the proxy closed the connection"]
        );
    }

    #[test]
    fn a_lost_event_fails() {
        let found = anomalies(vec![segment(1, vec![2], 5)]);
        assert!(found[0].contains("revision 4 (acct/0 = 3"), "{found:?}");
        assert!(found[0].contains("a lost event"), "{found:?}");
    }

    #[test]
    fn a_duplicate_fails() {
        let found = anomalies(vec![segment(1, vec![2, 2, 4], 5)]);
        assert!(
            found[0].contains("a duplicate or out of order"),
            "{found:?}"
        );
    }

    #[test]
    fn a_gap_between_two_watches_fails() {
        let mut first = segment(1, vec![2], 0);
        first.end = None;
        let found = anomalies(vec![first, segment(5, vec![], 5)]);
        assert!(
            found[0].contains("a watch from revision 5 where 3 was next"),
            "{found:?}"
        );
    }

    #[test]
    fn a_wrong_event_and_a_short_watch_fail() {
        let mut wrong = segment(1, vec![2, 4], 5);
        wrong.deliveries[1].1 = puts(seeded());
        let found = anomalies(vec![wrong]);
        assert!(
            found[0].contains("revision 4 delivered acct/0 = 5"),
            "{found:?}"
        );
        let found = anomalies(vec![segment(1, vec![2], 3)]);
        assert!(
            found[0].contains("covered revisions up to 3 only"),
            "{found:?}"
        );
    }

    #[test]
    fn an_event_the_history_does_not_have_fails() {
        let mut extra = segment(1, vec![2, 4], 5);
        extra.deliveries.insert(1, (3, puts(transferred())));
        let found = anomalies(vec![extra]);
        assert!(found[0].contains("revision 3 delivered"), "{found:?}");
    }
}
