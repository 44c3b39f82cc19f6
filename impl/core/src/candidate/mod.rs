//! The roles on the way to leadership: PreCandidate and Candidate (`docs/protocol.md` §3, §6).
//!
//! Kept apart from `leader.rs` and `follower.rs` so that each role's handlers read on their own;
//! the timers that start an election live here too because only non-leaders run them.

mod election;
