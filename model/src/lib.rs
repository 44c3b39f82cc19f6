//! The stateright model of vigil's protocol: Multi-Paxos masters with heartbeats, evictions,
//! rejoin, stop-the-world pauses and crashes, plus the proxy and its request ledger, the
//! revisioned key-value store (ranges, transactions, compaction), watches and leases.
//!
//! It is the reference the implementation is checked against (see `docs/protocol.md`); it
//! shares no code with `vigil-core`, so that conformance compares two independent writings of
//! one protocol.
//!
//! What conformance uses: [`State`] and [`Action`] (serde, `Clone + Debug + Eq + Hash`),
//! [`Config::apply`] (the next state, or `None` when the action is not enabled),
//! [`Config::enabled_actions`], and [`check::run_preset`] for a model-checking verdict.

pub mod check;
pub mod chooser;
pub mod commit;
pub mod compaction;
pub mod config;
pub mod disk;
pub mod kv;
pub mod kv_client;
pub mod kv_presets;
pub mod kv_types;
pub mod lease;
pub mod lease_client;
pub mod lease_ghost;
pub mod lease_leader;
pub mod lease_presets;
pub mod lease_properties;
pub mod lease_types;
pub mod master;
pub mod message;
pub mod model;
pub mod presets;
pub mod properties;
pub mod proxy;
pub mod read;
pub mod review;
pub mod revision_history;
pub mod revision_properties;
pub mod state;
pub mod step;
pub mod subscription;
pub mod timers;
pub mod txn;
pub mod types;
pub mod watch;
pub mod watch_now;

pub use config::{Budget, Bug, ClientScript, Config, Delivery, Disk, KvClientScript, KvStep};
pub use message::{Endpoint, Link, Message};
pub use model::Action;
pub use state::State;
