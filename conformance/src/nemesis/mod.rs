//! `vigil-conform nemesis`: a Jepsen-style test on real processes. Five `vigil master`
//! processes and one `vigil proxy` on 127.0.0.1; concurrent clients doing `get` / `put` / `cas`
//! on a few keys, transaction clients moving money between accounts with `Txn`s (`bank.rs`) and
//! watchers on the accounts' prefix (`watchers.rs`); and a nemesis that in turn freezes a
//! follower past the eviction threshold (SIGSTOP, then SIGCONT), freezes the leader, SIGKILLs
//! and restarts a master from its data directory, cuts the leader off from the other masters,
//! and floods the proxy with wrong-cluster requests — the outage of `docs/incident.md`, on
//! purpose.
//!
//! Then it checks what vigil promises (`docs/reliability.md`): the history is linearizable per
//! key, every acknowledged write is present after the heal, the money is conserved at every
//! revision and the transfers and reads are linearizable by revision (`bank_check.rs`), every
//! watcher saw exactly the committed history of the accounts (`watch_check.rs`), the masters'
//! and the proxy's trace files pass the same check as `vigil-conform check`, the proxy's request
//! ledger balances with nothing in flight and its watch ledger with nothing open, and the
//! proxy's RSS after each flood is within a few MiB of before.
//!
//! Bounded: the schedule stops starting faults when `duration` is spent, every wait has a
//! deadline, and every child process is stopped by its own PID at the end (or killed by the
//! guard, `vigil_testkit::Children`, if the harness panics, and by the kernel if it is
//! SIGKILLed).
//!
//! The processes are started, configured, watched and asked for their leader by
//! `vigil-testkit`, the same code the benchmark uses; what is the nemesis's own is here: the
//! links it cuts, the schedule of faults, the workload, the history and its checks.

pub mod accounts;
pub mod bank;
pub mod bank_check;
pub mod history;
pub mod links;
mod readback;
mod report;
mod schedule;
pub mod watch_check;
pub mod watchers;
pub mod workload;

use std::path::PathBuf;
use std::time::Duration;

pub use report::{FaultRecord, FloodRecord, NemesisReport, RevisionedFindings};

/// What to run.
#[derive(Clone, Debug)]
pub struct NemesisOptions {
    /// The `vigil` binary.
    pub vigil: PathBuf,
    /// Configs, data directories, trace files and process logs go here.
    pub directory: PathBuf,
    /// Time budget of the fault schedule (the heal and the checks come after it).
    pub duration: Duration,
    /// Concurrent clients.
    pub clients: usize,
    /// Keys the clients share.
    pub keys: usize,
    /// Transaction clients (`bank.rs`; 0: none, and no watchers either). The trace check
    /// replays a 60 s run with them in about 2 minutes (`docs/reliability.md` §3).
    pub txn_clients: usize,
    /// Watchers on the accounts' prefix (`watchers.rs`).
    pub watchers: usize,
    /// Accounts the transaction clients move money between (at least 2).
    pub accounts: usize,
    /// The money in the accounts: their balances sum to it at every revision. Every balance
    /// from 0 to it is a distinct value for the trace check's model, which numbers values in a
    /// byte, so the register clients get fewer values the larger it is.
    pub total: u64,
    /// Wrong-cluster requests per flood.
    pub flood_requests: u64,
    /// Proxy RSS growth that fails the run, bytes: over one flood, and from before the first
    /// measured flood to after the last.
    pub rss_growth_max_bytes: u64,
    /// Time the linearizability checker may take before it answers "unknown".
    pub check_limit: Duration,
    /// Write trace files and check them like `vigil-conform check` (minutes of replay for a
    /// 75 s run on a 2-core machine; see `docs/reliability.md`).
    pub check_traces: bool,
    /// Planted bugs, written into every process's configuration (empty: none). Only a `vigil`
    /// built with vigil-core's cargo feature `mutations` reads them; any other refuses the
    /// configuration.
    pub mutations: vigil_core::Mutations,
}

impl NemesisOptions {
    /// The defaults for `vigil` and `directory`: a 75 s schedule, 4 clients, 3 keys, no
    /// transaction client (2 watchers and 3 accounts holding 60 once there are), floods of
    /// 20,000 requests, 3 MiB of RSS growth allowed (per flood and over all floods), 60 s for
    /// the checker, no planted bug.
    pub fn new(vigil: PathBuf, directory: PathBuf) -> NemesisOptions {
        NemesisOptions {
            vigil,
            directory,
            duration: Duration::from_secs(75),
            clients: 4,
            keys: 3,
            txn_clients: 0,
            watchers: 2,
            accounts: 3,
            total: 60,
            flood_requests: 20_000,
            rss_growth_max_bytes: 3 << 20,
            check_limit: Duration::from_secs(60),
            check_traces: true,
            mutations: vigil_core::Mutations::default(),
        }
    }
}

/// Why a nemesis run could not be carried out (its findings are in the report, not here).
#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The cluster could not be set up or driven (a process would not start, no leader came).
    #[error("{0}")]
    Setup(String),
    /// Starting, signalling, measuring or asking a child process failed.
    #[error(transparent)]
    Processes(#[from] vigil_testkit::TestkitError),
}

impl NemesisError {
    /// A closure mapping an I/O error while doing `what`.
    pub fn io(what: &'static str) -> impl Fn(std::io::Error) -> NemesisError {
        move |source| NemesisError::Io { what, source }
    }
}

/// Milliseconds per tick of the nemesis cluster.
pub const TICK_MS: u64 = 50;

/// Revisions a master's history keeps: more than a run makes, so the accounts' history can be
/// read back whole after the heal (`readback.rs`) and no watch ends `Compacted`.
pub const HISTORY_REVISIONS_MAX: u64 = 1_000_000;

/// Log entries before a master snapshots: more than a run commits, since the trace check's
/// model has no snapshots (`conformance/src/mapping.rs`) and a master caught up by a snapshot
/// holds no history below it for the read-back.
pub const SNAPSHOT_THRESHOLD_ENTRIES: u64 = 1_000_000;

/// The protocol configuration of the nemesis cluster: heartbeat every tick (50 ms), eviction
/// after 5 missed (250 ms), elections after 25 ticks (1.25 s plus a stagger), proxy requests
/// time out after 60 ticks (3 s), no snapshot and the history kept whole. Slow enough that a
/// shared 2-core machine sees few spurious elections; spurious ones are more faults, never a
/// reason for a wrong answer.
pub fn protocol() -> vigil_core::Config {
    vigil_core::Config {
        masters: 5,
        eviction_threshold: 5,
        election_timeout_ticks: 25,
        request_timeout_ticks: 60,
        history_revisions_max: HISTORY_REVISIONS_MAX,
        snapshot_threshold_entries: SNAPSHOT_THRESHOLD_ENTRIES,
        ..vigil_core::Config::default()
    }
}

/// Runs the nemesis and checks the run; `Err` only if the run could not be carried out.
pub fn run(options: &NemesisOptions) -> Result<NemesisReport, NemesisError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(NemesisError::io("starting the tokio runtime"))?;
    runtime.block_on(schedule::run(options))
}
