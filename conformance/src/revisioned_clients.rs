//! The revisioned API's clients of the two host runs (`turmoil_host`, `tcp`): a mover and
//! watchers of the prefix `w/`, through the real client library (`vigil::client`) on whichever
//! network the run uses (`docs/protocol.md` §14–§17).
//!
//! The mover draws what the core simulation's mover draws (`sim/kv_workload.rs`): two-key
//! `Txn`s that move a value between `w/a` and `w/b` if a compare on the value holds (a stale
//! guess takes the failure branch, which reads the key), a `Txn` that writes a key and reads
//! the prefix back at an older revision, puts (some with `prev_kv`), deletes, ranges of the
//! prefix with a limit of 1 (two keys present: `more`) and at an older revision, and
//! compactions three revisions below the last one it saw. A watcher holds one watch of the
//! prefix at a time, each on a connection of its own, from an explicit revision: 1 for the
//! first watch after each compaction the mover made (the watch ends `Compacted`) and for one
//! in six of the others, else from revision 0 ("now", §17.2) for every third (the first, the
//! fourth, …), else at or just below the mover's last revision; after a while it cancels it
//! (and waits for its end) or closes the connection;
//! one watch in six names a cluster the proxy does not serve (it ends `UnknownCluster`).
//!
//! Every connection is closed-loop, as the model's revisioned client is: a step leaves once
//! the previous one was answered (a request by its reply, a watch by `WatchCreated` or its end,
//! a cancel by the watch's end). Every wait has a deadline ([`Pace::answer_wait`]); a step not
//! answered by then fails the run. The keys, values and request counts stay within what the
//! mapping gives the model (`conformance/src/mapping.rs`: keys and values as ranks, one model
//! client per connection).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vigil::client::Client;
use vigil::platform::Network;
use vigil::wire::ProxyFrame;
use vigil_core::kv_types as kv;

use crate::revisioned_operations::{mover_operation, PREFIX};

/// The client's id for its one watch on a connection.
const WATCH_ID: kv::WatchId = 1;
/// One watch in this many names a cluster the proxy does not serve.
const WRONG_CLUSTER_ONE_IN: u64 = 6;

/// How fast and how long the revisioned clients go, in the run's ticks.
#[derive(Clone, Debug)]
pub struct Pace {
    /// The run's tick.
    pub tick: Duration,
    /// Ticks between a reply and the mover's next request.
    pub request_gap_ticks: u64,
    /// The mover's requests in a run at most.
    pub requests_max: u64,
    /// Ticks a watch is held at least before its watcher cancels it or closes its connection.
    pub watch_ticks_min: u64,
    /// Ticks a watch is held beyond the least, at most (drawn per watch).
    pub watch_ticks_spread: u64,
    /// Connections (one watch each) per watcher in a run at most.
    pub connections_max: u64,
    /// How long any answer may take.
    pub answer_wait: Duration,
}

impl Pace {
    fn ticks(&self, count: u64) -> Duration {
        self.tick * u32::try_from(count).unwrap_or(u32::MAX)
    }
}

/// Where the revisioned clients connect, and what they name.
#[derive(Clone, Debug)]
pub struct ProxyEndpoint<N> {
    /// The network to dial on.
    pub network: N,
    /// The proxy's address (`host:port`).
    pub address: String,
    /// The cluster the proxy serves.
    pub cluster: String,
    /// A cluster it does not serve.
    pub wrong_cluster: String,
}

impl<N: Network> ProxyEndpoint<N> {
    async fn connect(&self, answer_wait: Duration) -> Result<Client<N>, String> {
        Client::connect_on(self.network.clone(), &self.address, answer_wait)
            .await
            .map_err(|error| format!("connecting: {error}"))
    }
}

/// What the mover saw, shared with the watchers (where a new watch starts): the highest store
/// revision a reply showed it, and the highest revision it compacted at.
#[derive(Clone, Debug, Default)]
pub struct LastRevision {
    seen: Arc<AtomicU64>,
    compacted: Arc<AtomicU64>,
}

impl LastRevision {
    fn get(&self) -> kv::Revision {
        self.seen.load(Ordering::Relaxed).max(1)
    }

    fn saw(&self, revision: kv::Revision) {
        self.seen.fetch_max(revision, Ordering::Relaxed);
    }

    fn compacted(&self) -> kv::Revision {
        self.compacted.load(Ordering::Relaxed)
    }

    fn compacted_at(&self, revision: kv::Revision) {
        self.compacted.fetch_max(revision, Ordering::Relaxed);
    }
}

/// A small seeded generator (xorshift64*): a seed gives the same draws on every machine.
struct Draws(u64);

impl Draws {
    fn new(seed: u64) -> Draws {
        Draws(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound.max(1)
    }
}

/// The mover: one connection, `pace.requests_max` requests at most, one at a time, while
/// `open()` holds. Any outcome will do (the replay checks it); a request not answered within
/// `pace.answer_wait`, or a connection error, fails it.
pub async fn run_mover<N: Network>(
    endpoint: &ProxyEndpoint<N>,
    seed: u64,
    pace: &Pace,
    last: &LastRevision,
    open: impl Fn() -> bool,
) -> Result<(), String> {
    let mut draws = Draws::new(seed ^ 0x4D4F_5645);
    let mut client = endpoint.connect(pace.answer_wait).await?;
    for _ in 0..pace.requests_max {
        if !open() {
            break;
        }
        let operation = mover_operation(&mut |bound| draws.below(bound), last.get());
        let compaction = match operation {
            kv::KvOperation::Compact { revision } => Some(revision),
            _ => None,
        };
        let outcome = within(
            pace.answer_wait,
            client.kv_call(&endpoint.cluster, operation),
        )
        .await?
        .map_err(|error| format!("mover: {error}"))?;
        if let Some(revision) = outcome.as_ref().ok().and_then(kv::KvResult::revision) {
            last.saw(revision);
        }
        if let (Some(revision), Ok(_)) = (compaction, &outcome) {
            last.compacted_at(revision);
        }
        tokio::time::sleep(pace.ticks(pace.request_gap_ticks + draws.below(3))).await;
    }
    Ok(())
}

/// A watcher: up to `pace.connections_max` connections in turn while `open()` holds, each
/// holding one watch of the prefix ([`watch_once`]), a few ticks apart.
pub async fn run_watcher<N: Network>(
    endpoint: &ProxyEndpoint<N>,
    seed: u64,
    pace: &Pace,
    last: &LastRevision,
    open: impl Fn() -> bool,
) -> Result<(), String> {
    let mut draws = Draws::new(seed ^ 0x5741_5443);
    let mut watched_behind = 1;
    for connection in 0..pace.connections_max {
        tokio::time::sleep(pace.ticks(3 + draws.below(10))).await;
        if !open() {
            break;
        }
        // The first watch after a new compaction starts behind it (it ends `Compacted`).
        let compacted = last.compacted();
        let start_revision = if compacted > watched_behind || draws.below(6) == 0 {
            watched_behind = watched_behind.max(compacted);
            1
        } else if connection % 3 == 0 {
            // Every third watch, from the first on, is from "now": the proxy resolves it
            // from the master's report (§17.2).
            0
        } else {
            last.get().saturating_sub(draws.below(2)).max(1)
        };
        watch_once(endpoint, &mut draws, pace, start_revision, &open).await?;
    }
    Ok(())
}

/// One watcher connection: creates the watch from `start_revision`, holds it while it lasts
/// (reading every frame, asking for progress half way), then cancels it and waits for its end, or closes the connection
/// (dropping the client).
async fn watch_once<N: Network>(
    endpoint: &ProxyEndpoint<N>,
    draws: &mut Draws,
    pace: &Pace,
    start_revision: kv::Revision,
    open: &impl Fn() -> bool,
) -> Result<(), String> {
    let mut client = endpoint.connect(pace.answer_wait).await?;
    let cluster = if draws.below(WRONG_CLUSTER_ONE_IN) == 0 {
        &endpoint.wrong_cluster
    } else {
        &endpoint.cluster
    };
    let watch = kv::WatchRequest {
        range: kv::KeyRange::prefix(PREFIX),
        start_revision,
        prev_kv: draws.below(2) == 0,
        filter: None,
    };
    client
        .create_watch(cluster, WATCH_ID, watch)
        .await
        .map_err(|error| format!("watcher: {error}"))?;
    let created = within(pace.answer_wait, next_created_or_ended(&mut client)).await??;
    if !created {
        return Ok(());
    }
    let hold = pace.ticks(pace.watch_ticks_min + draws.below(pace.watch_ticks_spread + 1));
    let now = tokio::time::Instant::now();
    if hold_until_ended(&mut client, now + hold / 2, pace, open).await? {
        return Ok(());
    }
    // Half way, a progress notification (a request before the stream's first report is
    // ignored, §17.3).
    if open() {
        client
            .request_watch_progress(WATCH_ID)
            .await
            .map_err(|error| format!("watcher: {error}"))?;
    }
    if hold_until_ended(&mut client, now + hold, pace, open).await? {
        return Ok(());
    }
    if draws.below(2) == 0 {
        client
            .cancel_watch(WATCH_ID)
            .await
            .map_err(|error| format!("watcher: {error}"))?;
        within(pace.answer_wait, next_ended(&mut client)).await??;
    }
    Ok(())
}

/// Reads frames until the watch is created (true) or ended (false).
async fn next_created_or_ended<N: Network>(client: &mut Client<N>) -> Result<bool, String> {
    loop {
        match next_watch_frame(client).await? {
            ProxyFrame::WatchCreated { .. } => return Ok(true),
            ProxyFrame::WatchEnded { .. } => return Ok(false),
            _ => {}
        }
    }
}

/// Reads frames until the watch ends.
async fn next_ended<N: Network>(client: &mut Client<N>) -> Result<(), String> {
    while !matches!(
        next_watch_frame(client).await?,
        ProxyFrame::WatchEnded { .. }
    ) {}
    Ok(())
}

/// Reads the watch's frames until `until` or until `open()` stops holding (false), or until it
/// ends on its own (true). `open()` is looked at every few ticks.
async fn hold_until_ended<N: Network>(
    client: &mut Client<N>,
    until: tokio::time::Instant,
    pace: &Pace,
    open: &impl Fn() -> bool,
) -> Result<bool, String> {
    loop {
        let now = tokio::time::Instant::now();
        if now >= until || !open() {
            return Ok(false);
        }
        let look_again = until.min(now + pace.ticks(5));
        // Reading a frame is cancel-safe (`FramedRead`): a timeout loses nothing.
        match tokio::time::timeout_at(look_again, next_watch_frame(client)).await {
            Ok(Ok(ProxyFrame::WatchEnded { .. })) => return Ok(true),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(error),
            Err(_) => {}
        }
    }
}

async fn next_watch_frame<N: Network>(client: &mut Client<N>) -> Result<ProxyFrame, String> {
    client
        .next_watch_frame()
        .await
        .map_err(|error| format!("watcher: {error}"))
}

/// `future`'s output, or an error if it takes longer than `wait`.
async fn within<T>(wait: Duration, future: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(wait, future)
        .await
        .map_err(|_| format!("no answer from the proxy within {wait:?}"))
}
