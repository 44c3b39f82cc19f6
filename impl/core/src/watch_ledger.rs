//! The proxy's watch ledger (`docs/protocol.md` §17.4): every watch a client asks for ends
//! exactly once, enforced by construction, as the request ledger does for requests
//! (`ledger.rs`, `docs/incident.md`).
//!
//! A watch the proxy opened is an [`OpenWatch`] value. The only way to end it is
//! [`OpenWatch::end`], which consumes it; dropped on any path without ending, its `Drop` ends it
//! `Dropped` and counts `dropped_unended`, a bug counter that must stay 0. So a watch forgotten
//! on an error path still tells its client and shows in the counters instead of leaking. Only
//! `std::mem::forget` defeats it, which is what the planted bug `watch-leak-on-error` does.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::kv_types::{WatchEnd, WatchId};
use crate::types::ClientId;

/// The watch ledger's counters: `opened == ended + open` after every input of a correct proxy,
/// and `open` is the number of watches it holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchLedgerCounters {
    /// Watches clients asked for.
    pub opened: u64,
    /// Watches ended (each exactly once).
    pub ended: u64,
    /// Watches held (created and not ended).
    pub open: u64,
    /// Watches dropped without ending (ended `Dropped` by `Drop`): a bug, must stay 0.
    pub dropped_unended: u64,
}

impl WatchLedgerCounters {
    /// `opened == ended + open` (§17.4, `watch_ends_once`).
    pub fn is_balanced(&self) -> bool {
        self.opened == self.ended + self.open
    }
}

/// A watch's end, waiting for the proxy to send it as `WatchEnded` (unless its client is gone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchEnding {
    /// The client connection.
    pub client: ClientId,
    /// The client's watch id.
    pub watch_id: WatchId,
    /// How it ended.
    pub outcome: WatchEnd,
}

#[derive(Debug, Default)]
struct Book {
    counters: WatchLedgerCounters,
    endings: Vec<WatchEnding>,
}

fn lock(book: &Mutex<Book>) -> MutexGuard<'_, Book> {
    // A panic elsewhere must not stop watches from ending.
    book.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The ledger: counters plus the endings not yet drained into messages.
#[derive(Debug, Default)]
pub struct WatchLedger {
    book: Arc<Mutex<Book>>,
}

impl WatchLedger {
    /// Opens a watch (`opened += 1`) and returns the value that must end it.
    pub fn open(&self, client: ClientId, watch_id: WatchId) -> OpenWatch {
        lock(&self.book).counters.opened += 1;
        OpenWatch {
            book: Arc::clone(&self.book),
            client,
            watch_id,
            held: false,
            ended: false,
        }
    }

    /// A copy of the counters.
    pub fn counters(&self) -> WatchLedgerCounters {
        lock(&self.book).counters
    }

    /// Takes the endings recorded since the last call, in order.
    pub fn drain_endings(&self) -> Vec<WatchEnding> {
        std::mem::take(&mut lock(&self.book).endings)
    }
}

/// A watch the proxy opened and has not ended. It cannot vanish silently: ending consumes it,
/// and dropping it ends it `Dropped` and counts `dropped_unended`.
#[derive(Debug)]
#[must_use = "an open watch must be ended; dropping it ends it Dropped and counts a bug"]
pub struct OpenWatch {
    book: Arc<Mutex<Book>>,
    client: ClientId,
    watch_id: WatchId,
    held: bool,
    ended: bool,
}

impl OpenWatch {
    /// The proxy holds it from now on (`open += 1`).
    pub fn hold(&mut self) {
        assert!(!self.held, "a watch is held once");
        self.held = true;
        lock(&self.book).counters.open += 1;
    }

    /// The watch's one terminal outcome (`ended += 1`, and `open -= 1` if it was held).
    pub fn end(mut self, outcome: WatchEnd) {
        self.record(outcome);
        self.ended = true;
    }

    fn record(&mut self, outcome: WatchEnd) {
        let mut book = lock(&self.book);
        book.counters.ended += 1;
        if self.held {
            book.counters.open -= 1;
        }
        book.endings.push(WatchEnding {
            client: self.client,
            watch_id: self.watch_id,
            outcome,
        });
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        self.record(WatchEnd::Dropped);
        lock(&self.book).counters.dropped_unended += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ending_once_balances() {
        let ledger = WatchLedger::default();
        let mut watch = ledger.open(1, 7);
        watch.hold();
        assert_eq!(ledger.counters().open, 1);
        watch.end(WatchEnd::Cancelled);
        let counters = ledger.counters();
        assert_eq!((counters.opened, counters.ended, counters.open), (1, 1, 0));
        assert!(counters.is_balanced());
        assert_eq!(ledger.drain_endings()[0].outcome, WatchEnd::Cancelled);
    }

    #[test]
    fn a_dropped_watch_ends_dropped_and_counts_a_bug() {
        let ledger = WatchLedger::default();
        {
            let mut watch = ledger.open(1, 7);
            watch.hold();
        }
        let counters = ledger.counters();
        assert_eq!(
            (counters.ended, counters.open, counters.dropped_unended),
            (1, 0, 1)
        );
        assert!(counters.is_balanced());
        assert_eq!(ledger.drain_endings()[0].outcome, WatchEnd::Dropped);
    }

    #[test]
    fn forget_leaks_an_open_watch() {
        let ledger = WatchLedger::default();
        let mut watch = ledger.open(1, 7);
        watch.hold();
        std::mem::forget(watch);
        let counters = ledger.counters();
        assert_eq!((counters.opened, counters.open, counters.ended), (1, 1, 0));
        assert!(ledger.drain_endings().is_empty());
    }
}
