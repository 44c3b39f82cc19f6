//! The proxy's request ledger (`docs/protocol.md` §9.4): every accepted request has exactly one
//! terminal outcome, enforced by construction.
//!
//! This file exists because of the incident (`docs/incident.md`): an error path returned
//! early and leaked the per-request object, 1.6 billion times. Here an accepted request is a
//! [`PendingRequest`] value. The only way to finish it is [`PendingRequest::complete`], which
//! consumes it; if it is dropped on any path without completing, its `Drop` completes it with
//! [`ClientError::Timeout`] (an indeterminate outcome) and counts `dropped_unanswered`, a bug
//! counter that must stay 0. So a forgotten early return still answers the client and shows up in
//! the counters instead of leaking. Only `std::mem::forget` defeats it, which is what the planted
//! bug `Mutation::ErrorPathLeak` does (see `proxy.rs`).
//!
//! The ledger is shared by the proxy and its pending values through an `Arc<Mutex<_>>` so that a
//! `Drop` can reach it; the lock is never held across a call out of this file.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::kv::Applied;
use crate::kv_types::KvReplyOutcome;
use crate::types::{ClientError, ClientId, ReplyOutcome, RequestId};

/// The ledger's counters. `accepted == completed_ok + completed_err + in_flight` holds after
/// every input of a correct proxy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerCounters {
    /// Requests received (each owns a pending slot until it completes).
    pub accepted: u64,
    /// Requests completed with `Ok(result)` (a `VersionMismatch` included).
    pub completed_ok: u64,
    /// Requests completed with `Err(e)`.
    pub completed_err: u64,
    /// Requests accepted and not completed.
    pub in_flight: u64,
    /// `ProposeReply`s that arrived after their request completed, ignored.
    pub late_replies: u64,
    /// Pending requests dropped without completing (completed by `Drop`): a bug, must stay 0.
    pub dropped_unanswered: u64,
}

impl LedgerCounters {
    /// `accepted == completed_ok + completed_err + in_flight` (§9.4.7, `ledger_balance`).
    pub fn is_balanced(&self) -> bool {
        self.accepted == self.completed_ok + self.completed_err + self.in_flight
    }
}

/// A request's terminal outcome, in the API the request came through: answered as `Reply`
/// or as `KvReply` (§17.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Of a `Request` (a register operation).
    Register(ReplyOutcome),
    /// Of a `KvRequest` (a revisioned operation).
    Kv(KvReplyOutcome),
}

impl RequestOutcome {
    /// Whether it is an `Ok` outcome.
    pub fn is_ok(&self) -> bool {
        match self {
            RequestOutcome::Register(outcome) => outcome.is_ok(),
            RequestOutcome::Kv(outcome) => outcome.is_ok(),
        }
    }
}

/// A request's terminal outcome, waiting for the proxy to send it as a `Reply` or `KvReply`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The client connection to answer.
    pub client: ClientId,
    /// The client's request id.
    pub request_id: RequestId,
    /// What to answer.
    pub outcome: RequestOutcome,
}

#[derive(Debug, Default)]
struct Book {
    counters: LedgerCounters,
    completions: Vec<Completion>,
}

impl Book {
    fn record(&mut self, completion: Completion) {
        if completion.outcome.is_ok() {
            self.counters.completed_ok += 1;
        } else {
            self.counters.completed_err += 1;
        }
        self.counters.in_flight = self.counters.in_flight.saturating_sub(1);
        self.completions.push(completion);
    }
}

fn lock(book: &Mutex<Book>) -> MutexGuard<'_, Book> {
    // A panic elsewhere must not stop requests from being answered.
    book.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The ledger: counters plus the completions not yet drained into replies.
#[derive(Debug)]
pub struct Ledger {
    book: Arc<Mutex<Book>>,
    in_flight_max: u64,
}

impl Ledger {
    /// An empty ledger refusing new work beyond `in_flight_max` pending requests.
    pub fn new(in_flight_max: u64) -> Ledger {
        Ledger {
            book: Arc::new(Mutex::new(Book::default())),
            in_flight_max,
        }
    }

    /// Accepts a `Request` (`accepted += 1`, `in_flight += 1`) and returns the value that must
    /// complete it.
    pub fn accept(&self, client: ClientId, request_id: RequestId) -> PendingRequest {
        self.accept_of(client, request_id, false)
    }

    /// Accepts a `KvRequest`, as [`Ledger::accept`]: the same counters, answered as `KvReply`.
    pub fn accept_kv(&self, client: ClientId, request_id: RequestId) -> PendingRequest {
        self.accept_of(client, request_id, true)
    }

    fn accept_of(&self, client: ClientId, request_id: RequestId, kv: bool) -> PendingRequest {
        let mut book = lock(&self.book);
        book.counters.accepted += 1;
        book.counters.in_flight += 1;
        PendingRequest {
            book: Arc::clone(&self.book),
            client,
            request_id,
            kv,
            completed: false,
        }
    }

    /// True if, not counting a request just accepted, `in_flight` is at `in_flight_max` (§9.4.3).
    pub fn is_full_besides(&self, just_accepted: u64) -> bool {
        let in_flight = lock(&self.book).counters.in_flight;
        in_flight.saturating_sub(just_accepted) >= self.in_flight_max
    }

    /// Counts a reply for a request that already completed (§9.4.6).
    pub fn record_late_reply(&self) {
        lock(&self.book).counters.late_replies += 1;
    }

    /// A copy of the counters.
    pub fn counters(&self) -> LedgerCounters {
        lock(&self.book).counters
    }

    /// Takes the completions recorded since the last call, in completion order.
    pub fn drain_completions(&self) -> Vec<Completion> {
        std::mem::take(&mut lock(&self.book).completions)
    }

    /// True if completions wait to be drained.
    pub fn has_completions(&self) -> bool {
        !lock(&self.book).completions.is_empty()
    }
}

/// An accepted request that has not completed. It cannot vanish silently: completing consumes
/// it, and dropping it completes it with `Err(Timeout)` and counts `dropped_unanswered`.
#[derive(Debug)]
#[must_use = "a pending request must be completed; dropping it answers Timeout and counts a bug"]
pub struct PendingRequest {
    book: Arc<Mutex<Book>>,
    client: ClientId,
    request_id: RequestId,
    /// Whether it came as a `KvRequest` (answered `KvReply`).
    kv: bool,
    completed: bool,
}

impl PendingRequest {
    /// The client connection that sent the request.
    pub fn client(&self) -> ClientId {
        self.client
    }

    /// The client's request id.
    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// Whether it came as a `KvRequest`.
    pub fn is_kv(&self) -> bool {
        self.kv
    }

    /// The request's one terminal outcome, an error or a result of its own API (a result of
    /// the other API is a programmer error): records it and queues the reply.
    pub fn complete(mut self, outcome: Result<Applied, ClientError>) {
        self.record(outcome);
        self.completed = true;
    }

    /// Records a completion but leaves the value pending. Only the planted bug
    /// `Mutation::DoubleComplete` calls this; it is what "complete twice" looks like here.
    pub(crate) fn record_without_consuming(&mut self, outcome: Result<Applied, ClientError>) {
        self.record(outcome);
    }

    fn record(&mut self, outcome: Result<Applied, ClientError>) {
        let outcome = match (self.kv, outcome) {
            (false, Ok(Applied::Register(result))) => RequestOutcome::Register(Ok(result)),
            (true, Ok(Applied::Kv(result))) => RequestOutcome::Kv(Ok(result)),
            (false, Err(error)) => RequestOutcome::Register(Err(error)),
            (true, Err(error)) => RequestOutcome::Kv(Err(error)),
            (kv, Ok(result)) => panic!("a request (kv: {kv}) completed with {result:?}"),
        };
        let completion = Completion {
            client: self.client,
            request_id: self.request_id,
            outcome,
        };
        lock(&self.book).record(completion);
    }
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        if self.completed {
            return;
        }
        self.record(Err(ClientError::Timeout));
        lock(&self.book).counters.dropped_unanswered += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::OperationResult;

    fn written() -> Result<Applied, ClientError> {
        Ok(Applied::Register(OperationResult::Written { version: 1 }))
    }

    #[test]
    fn complete_once_balances() {
        let ledger = Ledger::new(10);
        let pending = ledger.accept(1, 7);
        assert_eq!(ledger.counters().in_flight, 1);
        assert!(ledger.counters().is_balanced());
        pending.complete(written());
        let counters = ledger.counters();
        assert_eq!((counters.accepted, counters.completed_ok), (1, 1));
        assert_eq!(counters.in_flight, 0);
        assert!(counters.is_balanced());
        let completions = ledger.drain_completions();
        assert_eq!(completions.len(), 1);
        assert_eq!((completions[0].client, completions[0].request_id), (1, 7));
        assert!(ledger.drain_completions().is_empty());
    }

    #[test]
    fn drop_completes_with_an_error_and_counts_a_bug() {
        let ledger = Ledger::new(10);
        {
            let _pending = ledger.accept(3, 9);
        }
        let counters = ledger.counters();
        assert_eq!(counters.completed_err, 1);
        assert_eq!(counters.dropped_unanswered, 1);
        assert_eq!(counters.in_flight, 0);
        assert!(counters.is_balanced());
        let completions = ledger.drain_completions();
        assert_eq!(
            completions[0].outcome,
            RequestOutcome::Register(Err(ClientError::Timeout))
        );
    }

    #[test]
    fn completing_does_not_also_complete_on_drop() {
        let ledger = Ledger::new(10);
        ledger
            .accept(1, 1)
            .complete(Err(ClientError::UnknownCluster));
        let counters = ledger.counters();
        assert_eq!(counters.completed_err, 1);
        assert_eq!(counters.dropped_unanswered, 0);
        assert_eq!(ledger.drain_completions().len(), 1);
    }

    #[test]
    fn full_at_the_cap() {
        let ledger = Ledger::new(2);
        let first = ledger.accept(1, 1);
        assert!(!ledger.is_full_besides(0));
        let second = ledger.accept(1, 2);
        assert!(ledger.is_full_besides(0));
        let third = ledger.accept(1, 3);
        assert!(ledger.is_full_besides(1));
        third.complete(Err(ClientError::Overloaded));
        first.complete(written());
        assert!(!ledger.is_full_besides(0));
        second.complete(written());
        assert!(ledger.counters().is_balanced());
    }

    #[test]
    fn forget_leaks_in_flight() {
        // What the planted bug does: the structural defence is defeated, in_flight never returns.
        let ledger = Ledger::new(10);
        std::mem::forget(ledger.accept(1, 1));
        let counters = ledger.counters();
        assert_eq!(counters.in_flight, 1);
        assert!(ledger.drain_completions().is_empty());
    }
}
