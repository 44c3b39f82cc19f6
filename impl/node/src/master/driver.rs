//! The one task that owns a master's core: it feeds it ticks, messages and status requests,
//! and handles each `Ready` in the contract's order (`vigil_core` `ready.rs`): close the
//! links of evicted followers, record the trace, send messages and replies at once, hand the
//! durable write to the persist task, and `advance` each `Ready` once its write is durable.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigil_core::{
    Endpoint, Envelope, Master, MasterCounters, Message, NodeId, Peer, ProxyId, Ready, Role,
};

use super::inbound::Inbound;
use super::persist::{PersistJob, PERSIST_PENDING_MAX};
use super::router::Router;
use super::{MasterError, MasterSettings, StatusRequest};
use crate::metrics as names;
use crate::storage::StorageError;
use crate::tick_clock::TickClock;
use crate::trace_sink::{StampedSends, TraceSink, TraceStamp};
use crate::wire::PeerFrame;

/// Disk-free Ready batches waiting behind one persist job at most (one per tick during a
/// stall: 4096 ticks is minutes); beyond it they take job slots and the driver waits.
const READY_GROUP_MAX: usize = 4096;
/// Proposals whose start time is kept for the commit latency histogram.
const PROPOSAL_TIMINGS_MAX: usize = 65_536;

/// The one task that owns the core.
pub(super) struct Driver {
    master: Master,
    pub(super) router: Arc<Router>,
    jobs: mpsc::Sender<PersistJob>,
    done: mpsc::Receiver<Result<(), StorageError>>,
    /// Ready batches handed to the persist task, oldest first, waiting for `advance`.
    /// Each group is one persist job's batch followed by the disk-free batches that came
    /// after it; they are advanced together, in order, when that job is done.
    pending: VecDeque<Vec<Ready>>,
    tick_interval: std::time::Duration,
    proposal_started: HashMap<(ProxyId, u64), Instant>,
    counters: MasterCounters,
    node: NodeId,
    pub(super) trace: Option<TraceSink>,
    /// The trace stamp of the frame whose message the core is handling (for its `Receive`).
    received: Option<TraceStamp>,
}

impl Driver {
    pub(super) fn new(
        master: Master,
        router: Arc<Router>,
        jobs: mpsc::Sender<PersistJob>,
        done: mpsc::Receiver<Result<(), StorageError>>,
        settings: &MasterSettings,
    ) -> Driver {
        Driver {
            master,
            router,
            jobs,
            done,
            pending: VecDeque::new(),
            tick_interval: settings.host.tick_interval(),
            proposal_started: HashMap::new(),
            counters: MasterCounters::default(),
            node: settings.node_id,
            trace: None,
            received: None,
        }
    }

    /// Drives the core until `shutdown`, a storage error, or the inbox or the status requests
    /// closing.
    pub(super) async fn run(
        &mut self,
        mut inbox: mpsc::Receiver<Inbound>,
        mut status_requests: mpsc::Receiver<StatusRequest>,
        shutdown: CancellationToken,
    ) -> Result<(), MasterError> {
        let mut ticker = tokio::time::interval(self.tick_interval);
        // After a gap the ticker fires once; the clock counts the ticks that fell due and the
        // core decides whether the gap was a pause (`Master::elapse`, §7.2). Either way the
        // overdue ticks fire before queued messages (the ticker's branch comes first).
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut clock = TickClock::new(Instant::now(), self.tick_interval);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                request = status_requests.recv() => match request {
                    Some(reply) => {
                        let _ = reply.send(self.master.status());
                    }
                    None => return Ok(()),
                },
                persisted = self.done.recv() => {
                    self.advance(persisted)?;
                }
                _ = ticker.tick() => {
                    let due = clock.due(Instant::now());
                    if due >= self.master.config().pause_threshold_ticks() {
                        tracing::warn!(node = self.node, overdue_ticks = due, "resumed from a pause");
                    }
                    self.master.elapse(due);
                }
                inbound = inbox.recv() => match inbound {
                    Some(inbound) => self.handle_inbound(inbound),
                    None => return Ok(()),
                },
            }
            self.drain_ready().await?;
        }
    }

    fn handle_inbound(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Protocol {
                from,
                message,
                stamp,
                open,
            } => {
                if !open.load(Ordering::Acquire) {
                    tracing::debug!(node = self.node, %from, "message of a closed connection dropped");
                    return;
                }
                if let (
                    Peer::Proxy(proxy),
                    Message::Propose { request_id, .. } | Message::KvPropose { request_id, .. },
                ) = (from, &message)
                {
                    if self.proposal_started.len() >= PROPOSAL_TIMINGS_MAX {
                        self.proposal_started.clear();
                    }
                    self.proposal_started
                        .insert((proxy, *request_id), Instant::now());
                }
                self.received = stamp;
                if let Err(error) = self.master.step(from, message) {
                    tracing::warn!(node = self.node, %error, "message refused by the core");
                }
            }
            Inbound::StatusQuery { proxy, query_id } => {
                let status = self.master.status();
                self.router
                    .send_to_proxy(proxy, PeerFrame::Status { query_id, status });
            }
            Inbound::ProxyClosed { proxy } => self.master.proxy_closed(proxy),
        }
    }

    /// Handles every `Ready` the core has, in the contract's order (`vigil_core` `ready.rs`).
    async fn drain_ready(&mut self) -> Result<(), MasterError> {
        while self.master.has_ready() {
            let mut ready = self.master.ready();
            self.send_ready(&mut ready).await?;
            self.hand_to_disk(ready).await?;
        }
        // A refused message records nothing: its stamp must not reach a later input.
        self.received = None;
        self.record_metrics();
        Ok(())
    }

    /// What leaves before the disk: closes the links of evicted followers, records the trace,
    /// and sends the messages (heartbeats, the leader's `Accept`s, what an earlier write
    /// released) and the replies.
    async fn send_ready(&mut self, ready: &mut Ready) -> Result<(), MasterError> {
        for node in ready.close_links.drain(..) {
            tracing::warn!(
                node = self.node,
                follower = node,
                "evicted a follower; closing its link"
            );
            if let Some(link) = self.router.link(node) {
                link.reset();
            }
        }
        // The trace first: its `Send` events give the frames their stamps. `received` stamps
        // a `Receive` event only, never a `Persist` input (which received nothing).
        let received = self.received.take();
        let mut stamps = match &mut self.trace {
            Some(trace) => {
                trace
                    .record(std::mem::take(&mut ready.trace), received)
                    .await?
            }
            None => StampedSends::default(),
        };
        for envelope in ready.messages.drain(..) {
            let stamp = take_stamp(&mut stamps, &envelope);
            self.router.send(envelope, stamp);
        }
        self.record_reply_timings(&ready.replies);
        for envelope in ready.replies.drain(..) {
            let stamp = take_stamp(&mut stamps, &envelope);
            self.router.send(envelope, stamp);
        }
        Ok(())
    }

    /// Hands `ready`'s durable write to the persist task (waiting while
    /// [`PERSIST_PENDING_MAX`] jobs are pending), to be advanced when it is durable. A `Ready`
    /// that waits for nothing is advanced at once if no write is pending, and otherwise rides
    /// with the newest pending write: only `advance` must stay in order, and heartbeat-only
    /// batches during a slow fsync must not fill the job queue.
    async fn hand_to_disk(&mut self, mut ready: Ready) -> Result<(), MasterError> {
        if !ready.waits_for_disk() {
            match self.pending.back_mut() {
                None => {
                    self.master.advance(ready);
                    return Ok(());
                }
                Some(group) if group.len() < READY_GROUP_MAX => {
                    group.push(ready);
                    return Ok(());
                }
                Some(_) => {}
            }
        }
        let job = PersistJob {
            write: ready.durable.take(),
        };
        while self.pending.len() >= PERSIST_PENDING_MAX {
            let persisted = self.done.recv().await;
            self.advance(persisted)?;
        }
        self.jobs
            .send(job)
            .await
            .map_err(|_| MasterError::PersistTask)?;
        self.pending.push_back(vec![ready]);
        Ok(())
    }

    fn advance(&mut self, persisted: Option<Result<(), StorageError>>) -> Result<(), MasterError> {
        match persisted {
            Some(Ok(())) => {
                for ready in self.pending.pop_front().unwrap_or_default() {
                    self.master.advance(ready);
                }
                Ok(())
            }
            Some(Err(error)) => Err(MasterError::Storage(error)),
            None => Err(MasterError::PersistTask),
        }
    }

    /// Commit latency: from the `Propose` to its `ProposeReply` leaving.
    fn record_reply_timings(&mut self, replies: &[Envelope]) {
        for envelope in replies {
            let (
                Peer::Proxy(proxy),
                Message::ProposeReply { request_id, .. }
                | Message::KvProposeReply { request_id, .. },
            ) = (&envelope.to, &envelope.message)
            else {
                continue;
            };
            if let Some(started) = self.proposal_started.remove(&(*proxy, *request_id)) {
                metrics::histogram!(names::COMMIT_LATENCY_SECONDS)
                    .record(started.elapsed().as_secs_f64());
            }
        }
    }

    fn record_metrics(&mut self) {
        let counters = self.master.counters();
        let previous = std::mem::replace(&mut self.counters, counters);
        let node = self.node.to_string();
        let deltas = [
            (
                names::LEADER_CHANGES,
                counters.leader_changes - previous.leader_changes,
            ),
            (names::EVICTIONS, counters.evictions - previous.evictions),
            (names::REJOINS, counters.rejoins - previous.rejoins),
            (names::PROPOSALS, counters.proposals - previous.proposals),
        ];
        for (name, delta) in deltas {
            if delta > 0 {
                metrics::counter!(name, "node" => node.clone()).increment(delta);
            }
        }
        let refusals = [
            (
                "reads_waiting_max",
                counters.reads_refused - previous.reads_refused,
            ),
            (
                "proposals_queued_max",
                counters.proposals_refused - previous.proposals_refused,
            ),
        ];
        for (bound, delta) in refusals {
            if delta > 0 {
                metrics::counter!(names::OVERLOADED, "node" => node.clone(), "bound" => bound)
                    .increment(delta);
            }
        }
        let role = match self.master.role() {
            Role::Follower => 0.0,
            Role::PreCandidate => 1.0,
            Role::Candidate => 2.0,
            Role::Leader => 3.0,
        };
        metrics::gauge!(names::MASTER_ROLE, "node" => node.clone()).set(role);
        metrics::gauge!(names::COMMIT_INDEX, "node" => node.clone())
            .set(self.master.commit_index() as f64);
        let subscriptions = self.master.subscriptions().count();
        metrics::gauge!(names::MASTER_SUBSCRIPTIONS, "node" => node).set(subscriptions as f64);
    }
}

/// The trace stamp of the `Send` event of `envelope`'s message (none when tracing is off).
fn take_stamp(stamps: &mut StampedSends, envelope: &Envelope) -> Option<TraceStamp> {
    let to = envelope.to;
    stamps.take(
        |endpoint| match (endpoint, to) {
            (Endpoint::Master { node, .. }, Peer::Master(peer)) => *node == peer,
            (Endpoint::Proxy(proxy), Peer::Proxy(peer)) => *proxy == peer,
            _ => false,
        },
        &envelope.message,
    )
}
