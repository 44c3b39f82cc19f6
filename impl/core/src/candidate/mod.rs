//! The roles on the way to leadership: PreCandidate and Candidate (`docs/protocol.md` §3, §6).
//!
//! Kept apart from `leader.rs` and `follower.rs` so that each role's handlers read on their own;
//! the timers that start an election live here too because only non-leaders run them. This file
//! holds the two roles' state (lost on any role change); `election.rs` their handlers.

use std::collections::{BTreeMap, BTreeSet};

use crate::kv::Snapshot;
use crate::types::{Ballot, Entry, NodeId};

mod election;

/// A PreCandidate's pre-vote round (§6.1).
#[derive(Debug)]
pub(crate) struct PreVoteRound {
    pub(crate) ballot: Ballot,
    pub(crate) grants: BTreeSet<NodeId>,
}

/// What one master reported in its `Promise`.
#[derive(Debug)]
pub(crate) struct PromiseReport {
    pub(crate) entries: Vec<Entry>,
    pub(crate) snapshot: Option<Snapshot>,
}

/// A Candidate's phase 1 (§3).
#[derive(Debug)]
pub(crate) struct Campaign {
    pub(crate) ballot: Ballot,
    pub(crate) promises: BTreeMap<NodeId, PromiseReport>,
}
