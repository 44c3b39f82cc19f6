//! vigil's sans-IO protocol core: a Multi-Paxos master and the proxy as pure state machines
//! (`docs/protocol.md`).
//!
//! No tokio, no clock, no randomness, no I/O. The host drives a [`Master`] with
//! [`Master::tick`] (logical time), [`Master::step`] (a message received) and
//! [`Master::propose`], and drains its output with [`Master::ready`] — a durable write to start,
//! messages and replies to proxies to send at once, trace events — and calls
//! [`Master::advance`] once the write is durable, which releases what waited for it (the full
//! contract is on [`Ready`]).
//! A [`Proxy`] is driven the same way with [`Proxy::handle_request`], [`Proxy::step`],
//! [`Proxy::tick`] and [`Proxy::ready`]; its [`ledger`] answers every request exactly once.
//!
//! Layout: `types.rs` (vocabulary), `message.rs` (the messages and their printer), `config.rs`,
//! `mutation.rs` (planted bugs, behind the cargo feature `mutations`), `master.rs` (shared state
//! and the driving API), the roles with their state: `follower.rs`, `candidate/` (pre-vote and
//! phase 1), `leader.rs`, `read.rs` (reads without a log slot), `subscription.rs` (a master's
//! stream of committed revisions to a proxy); `log.rs`, `kv.rs` (the multi-version state machine
//! and snapshots), `txn.rs` (`Put`, `DeleteRange`, `Txn` on it), `kv_types.rs` + `kv_print.rs`
//! (the revisioned API's vocabulary and its printer), `ready.rs` (the output contract),
//! `proxy.rs` + `ledger.rs`, `watch.rs` + `watch_ledger.rs` (watches at the proxy, each ending
//! exactly once), `trace.rs`.
//!
//! A minimal host loop for one master:
//!
//! ```
//! use vigil_core::{Config, DurableState, Master, Peer};
//!
//! let config = Config { masters: 1, ..Config::default() };
//! let mut storage = DurableState::default();
//! let mut master = Master::new(0, config, storage.clone()).expect("valid config");
//! for _ in 0..20 {
//!     master.tick();
//!     while master.has_ready() {
//!         let ready = master.ready();
//!         if let Some(write) = &ready.durable {
//!             storage.apply(write); // then fsync (may run in parallel); on error: stop the node
//!         }
//!         // close ready.close_links, send ready.messages and ready.replies, hand ready.trace to
//!         // the sink; then, once the write is durable:
//!         master.advance(ready);
//!     }
//! }
//! assert_eq!(master.role(), vigil_core::Role::Leader);
//! // A write is answered once its slot is chosen and applied; the leader counts its own
//! // acceptance once its write is durable, which `advance` tells it.
//! master.propose(7, 1, vigil_core::Operation::Put { key: b"k".to_vec(), value: b"v".to_vec() });
//! let ready = master.ready();
//! assert!(ready.durable.is_some() && ready.waits_for_disk());
//! assert!(ready.replies.is_empty());
//! master.advance(ready);
//! let ready = master.ready();
//! assert_eq!(ready.replies[0].to, Peer::Proxy(7));
//! master.advance(ready);
//! // A read takes no slot (§9.2): a single master is its own quorum.
//! master.propose(7, 2, vigil_core::Operation::Get { key: b"k".to_vec() });
//! let ready = master.ready();
//! assert!(ready.durable.is_none());
//! assert_eq!(ready.replies[0].to, Peer::Proxy(7));
//! master.advance(ready);
//! ```

mod candidate;
pub mod config;
mod follower;
pub mod kv;
mod kv_print;
pub mod kv_types;
mod leader;
pub mod ledger;
mod log;
pub mod master;
pub mod message;
pub mod mutation;
pub mod proxy;
mod read;
pub mod ready;
mod subscription;
pub mod trace;
mod txn;
pub mod types;
mod watch;
pub mod watch_ledger;
mod watch_now;

pub use config::{validate_cluster_name, Config, ConfigError};
pub use kv::{Applied, KeyState, KvStore, Snapshot, StoreLimits, Versioned};
pub use ledger::{Ledger, LedgerCounters, PendingRequest};
pub use master::{Master, MasterCounters, MasterStatus, StepError};
pub use message::{Envelope, Message};
pub use mutation::{Mutation, Mutations, MutationsUnavailable, UnknownMutation};
pub use proxy::{ClientEnvelope, Proxy, ProxyEnvelope, ProxyReady, ProxyStepError};
pub use ready::{DurableState, DurableWrite, Ready};
pub use trace::{Endpoint, MasterPostState, Origin, PostState, Timer, TraceEvent, TraceKind};
pub use types::{
    Ballot, ClientError, ClientId, Command, Entry, HeartbeatSequence, MasterError, NodeId,
    Operation, OperationResult, Peer, ProposeOutcome, ProxyId, ReplyOutcome, RequestId, Role, Slot,
};
pub use watch_ledger::{OpenWatch, WatchLedger, WatchLedgerCounters};
