//! Replay: step the model through a merged trace and compare (`docs/trace.md` §Replay).
//!
//! For each input of a node (the event that starts it: a receive, a timer, a restart), the
//! mapped actions must be enabled in the model state; at the end of the input the messages the
//! model sent must be the messages the implementation sent, and the model's abstraction of the
//! node must equal the post-state the events carry. The model's safety properties are evaluated
//! along the path. At the end every request the proxy accepted must have exactly one completion,
//! in the implementation's trace and in the model.
//!
//! Steps a trace cannot show:
//! - a message sent and never received by anyone is lost: the model drops it (`Drop`) when the
//!   sender's input closes, because the full trace proves it was never delivered;
//! - the untraced clients: their `Reply`s are delivered in the model as soon as the proxy sends
//!   them, and a client's `ClientRequest` precedes the proxy's receive of its `Request`;
//! - otherwise a silent step is tried only when nothing else matches, and bounded (at most
//!   [`SILENT_CANDIDATES_MAX`] candidates, one step): when the mapped action is not enabled, one
//!   `Drop` of a message in flight that enables it; when it is enabled but what the model sends
//!   or the node's post-state differ from the implementation's input, one silent timer of that
//!   master that sends nothing (`RejoinWaitExpired`, §6.3) after which they match.
//!
//! The model's fault and timer budgets bound its exhaustive search, not the protocol: replay
//! resets the counters of used budget after each step so that a long run is not cut short.
//!
//! This file holds the entry point and what it reports; the parts live beside it: [`engine`]
//! (the replayer's state and its steps through the trace), [`inputs`] (where each node's
//! inputs begin and end), [`silent`] (the bounded search for the steps a trace cannot show),
//! [`diff`] (the model's sends and post-states against the implementation's) and
//! [`properties`] (the model's safety properties along the path and at its end).

mod diff;
mod engine;
mod inputs;
mod properties;
mod silent;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Instant;

use vigil_model::{Endpoint, Message};

use crate::mapping::Vocabulary;
use crate::merge::Merged;
use crate::report::Divergence;
use engine::Replayer;
pub use properties::{linearizable_per_key, WHOLE_STORE_CHECK_LIMIT, WHOLE_STORE_MEMO_ENTRIES_MAX};

/// Candidates for one silent step at most.
pub const SILENT_CANDIDATES_MAX: usize = 64;

/// A model message on a link.
type Sent = (Endpoint, Endpoint, Message);

/// What replay counted.
#[derive(Clone, Debug, Default)]
pub struct ReplayStats {
    /// Trace events validated.
    pub events: usize,
    /// Model actions applied (mapped ones, not counting silent steps).
    pub actions: usize,
    /// Silent steps taken (drops of lost messages, client reply deliveries, lazy steps).
    pub silent_steps: usize,
    /// Applied actions per kind.
    pub action_kinds: BTreeMap<String, u64>,
    /// Wall time of the replay alone, seconds (the linearizability checks at its end included).
    pub seconds: f64,
    /// Of `seconds`, the linearizability checks of the client history at the end of the run
    /// (bounded by [`LINEARIZABLE_CHECK_LIMIT`] and [`WHOLE_STORE_CHECK_LIMIT`]); the rest is
    /// the replay of the events, which grows with their number.
    pub linearizable_seconds: f64,
    /// The highest slot replay compaction cut the model's logs through
    /// (`vigil_model::compaction`): 0 when the run was too short to cut any.
    pub compacted_through_max: vigil_model::types::Slot,
    /// Keys whose history the per-key linearizability check could not decide within
    /// [`LINEARIZABLE_CHECK_LIMIT`] (none: every key decided).
    pub linearizable_undecided_keys: Option<Vec<String>>,
}

/// How long the replay's linearizability check of the client history may take in all. The
/// model's `linearizable` (stateright's `LinearizabilityTester`, one register, every request
/// its own thread) has no memory of what it tried, so a simulated run with a few indeterminate
/// writes can keep it busy for many minutes. The replay checks the same history per key with Wing & Gong's search and Lowe's
/// memoisation ([`linearizable_per_key`], the nemesis's checker), which decides such runs in
/// milliseconds; this bounds the rest.
pub const LINEARIZABLE_CHECK_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Replays `merged` against the model built by `vocabulary`.
pub fn replay(merged: &Merged, vocabulary: Vocabulary) -> Result<ReplayStats, Box<Divergence>> {
    let started = Instant::now();
    let mut replayer = Replayer::new(merged, vocabulary);
    for index in 0..merged.events.len() {
        replayer.event(index)?;
    }
    replayer.finish()?;
    replayer.stats.seconds = started.elapsed().as_secs_f64();
    replayer.stats.events = merged.events.len();
    Ok(replayer.stats)
}
