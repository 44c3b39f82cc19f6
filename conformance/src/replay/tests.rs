//! The replay of a run with transaction clients and watchers still rejects what the model does
//! not do, with replay compaction cutting the log under it: a simulated run with the revisioned
//! workload passes, and the same traces with one revision changed — in a watch's events, or in
//! a reply to a revisioned request — fail at that event, the messages the proxy sent differing
//! from the model's.

use vigil_core as core;

use crate::check::{check_traces, CheckFailure};
use crate::faults::FaultKind;
use crate::trace::{NodeTrace, EVENTS_FLOOR_DEFAULT};

/// A simulated run of five masters with a crash, whose workload has transaction clients and
/// watchers: the seed whose replay cuts the log (the simulated runs are short, and most end
/// before every master has committed the 64 slots a cut waits for).
fn run() -> Vec<NodeTrace> {
    let plan = crate::run::plan_of(&[FaultKind::Crash], 5, 2);
    crate::sim::run(2, 5, &plan).traces
}

/// The position in the proxy's trace (the last) of the `which`-th of its sends to a client of
/// a message named `name` whose text has a revision, counted from the end of the run.
fn proxy_send(traces: &[NodeTrace], name: &str, which: usize) -> usize {
    let proxy = traces.last().expect("a proxy trace");
    let sends: Vec<usize> = (proxy.events.iter().enumerate())
        .filter(|(_, line)| match &line.kind {
            core::TraceKind::Send { to, message } => {
                matches!(to, core::Endpoint::Client(_))
                    && message.name() == name
                    && serde_json::to_string(message).is_ok_and(|text| text.contains("revision"))
            }
            _ => false,
        })
        .map(|(position, _)| position)
        .collect();
    assert!(sends.len() > which, "{} {name} sends", sends.len());
    sends[sends.len() - 1 - which]
}

/// Adds one to the first `revision` field of `value`, depth first.
fn bump_revision(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::Object(fields) => {
            if let Some(serde_json::Value::Number(number)) = fields.get("revision") {
                let bumped = number.as_u64().expect("a revision is a number") + 1;
                fields.insert("revision".into(), bumped.into());
                return true;
            }
            fields.values_mut().any(bump_revision)
        }
        serde_json::Value::Array(items) => items.iter_mut().any(bump_revision),
        _ => false,
    }
}

/// `traces` with one revision bumped in the proxy's event at `position`.
fn corrupted(traces: &[NodeTrace], position: usize) -> Vec<NodeTrace> {
    let mut traces = traces.to_vec();
    let proxy = traces.last_mut().expect("a proxy trace");
    let line = &mut proxy.events[position];
    let mut kind = serde_json::to_value(&line.kind).expect("a trace kind serializes");
    assert!(bump_revision(&mut kind), "{kind}");
    line.kind = serde_json::from_value(kind).expect("still a trace kind");
    traces
}

fn rejected(traces: &[NodeTrace]) -> Box<crate::report::Divergence> {
    match check_traces(traces, EVENTS_FLOOR_DEFAULT) {
        Err(CheckFailure::Divergence(divergence)) => divergence,
        Err(other) => panic!("not a divergence: {other}"),
        Ok(checked) => panic!("accepted: {} events", checked.stats.events),
    }
}

#[test]
fn a_changed_revision_of_a_watch_event_or_a_reply_is_rejected_where_it_was_sent() {
    let traces = run();
    let checked = check_traces(&traces, EVENTS_FLOOR_DEFAULT).expect("the run conforms");
    assert!(
        checked.stats.compacted_through_max >= 64,
        "the replay cut the log through slot {} at most",
        checked.stats.compacted_through_max
    );
    for name in ["WatchEvents", "KvReply"] {
        // Late in the run.
        let position = proxy_send(&traces, name, 2);
        let divergence = rejected(&corrupted(&traces, position));
        assert_eq!(divergence.title, "the messages sent differ", "{divergence}");
        let event = divergence.event.as_deref().unwrap_or_default();
        assert!(event.contains(name) || divergence.notes.iter().any(|note| note.contains(name)));
        let differ = |side: &str| {
            (divergence.notes.iter()).any(|note| note.starts_with(side) && note.contains(name))
        };
        assert!(
            differ("model sent, implementation did not")
                && differ("implementation sent, model did not"),
            "{divergence}"
        );
    }
}
