//! The simulation's clients of the revisioned API (`docs/protocol.md` §14–§17), on the seeds
//! that run them ([`revisioned_seed`]): a mover and watchers of the prefix `w/`.
//!
//! The mover's operations are `revisioned_operations`' (the same draws as the host runs' mover:
//! compare-guarded moves, read-back txns, puts, deletes, ranges with `more` and at older
//! revisions, compactions, so a later read or watch from further back is `Compacted`). A
//! watcher holds one watch of the prefix on its own
//! connection, from an explicit revision (1, or near the mover's last), for a while; then it
//! cancels it or closes its connection, and a new connection starts again. One watcher in a
//! few names a cluster the proxy does not serve (its watch ends `UnknownCluster` at once).
//!
//! Every connection is closed-loop, as the model's revisioned client: a step leaves once the
//! previous one was answered (a request by its `KvReply`; a watch by `WatchCreated` or its end;
//! a cancel by the watch's end). Each `WatchEvents` is read by its client as soon as it
//! leaves the proxy (`Proxy::watch_events_read`), as the replay's untraced clients read it.
//! The workload draws from its own generator, so the register workload's draws do not depend
//! on it.

use vigil_core::kv_types as kv;
use vigil_core::Message;

use super::rng::Rng;
use super::world::World;
use super::{CLUSTER, WRONG_CLUSTER};
use crate::revisioned_operations::{mover_operation, PREFIX};

/// The mover's connection.
const MOVER_CLIENT: u64 = 700;
/// The first watcher connection; each new one takes the next id.
const WATCHER_CLIENT_FIRST: u64 = 800;
/// Watchers at once.
const WATCHERS: usize = 2;
/// The mover's requests in a run at most.
const MOVER_REQUESTS_MAX: u64 = 40;
/// Watcher connections in a run at most.
const WATCHER_CONNECTIONS_MAX: u64 = 24;
/// The client's id for its one watch on a connection.
const WATCH_ID: u64 = 1;

/// Whether seed `seed` runs the revisioned clients besides the register workload (every other
/// seed: the others keep the register workload's timing exactly).
pub fn revisioned_seed(seed: u64) -> bool {
    seed % 2 == 0
}

/// Where a watcher connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// No connection; a new one opens at `ready_tick`.
    Idle { ready_tick: u64 },
    /// `WatchCreate` sent, not yet answered.
    Creating,
    /// The watch is open; at `progress_tick` (half way) it asks for a progress notification,
    /// at `until_tick` the watcher cancels or closes.
    Watching {
        until_tick: u64,
        progress_tick: Option<u64>,
    },
    /// `WatchCancel` sent, its `WatchEnded` not yet received.
    Cancelling,
    /// The watch ended; the connection closes at the next tick.
    Ended,
}

/// One watcher slot: a connection at a time.
#[derive(Debug)]
struct Watcher {
    connection: u64,
    stage: Stage,
}

/// The revisioned clients of one run.
pub(super) struct KvWorkload {
    rng: Rng,
    /// The mover's next request id, and the one it waits for.
    next_request_id: u64,
    outstanding: Option<u64>,
    ready_tick: u64,
    /// The highest store revision a reply showed the mover.
    last_revision: u64,
    watchers: Vec<Watcher>,
    connections_opened: u64,
}

impl KvWorkload {
    pub(super) fn new(seed: u64, start_tick: u64) -> KvWorkload {
        KvWorkload {
            rng: Rng::new(seed ^ 0x5EED_4B56),
            next_request_id: 1,
            outstanding: None,
            ready_tick: start_tick,
            last_revision: 1,
            watchers: (0..WATCHERS)
                .map(|slot| Watcher {
                    connection: 0,
                    stage: Stage::Idle {
                        ready_tick: start_tick + 5 * slot as u64,
                    },
                })
                .collect(),
            connections_opened: 0,
        }
    }

    /// Whether `connection` is one of these clients'.
    pub(super) fn owns(&self, connection: u64) -> bool {
        connection == MOVER_CLIENT || connection >= WATCHER_CLIENT_FIRST
    }

    /// Where a new watch starts: revision 1 (compacted once the mover compacted), revision 0
    /// ("now", resolved by the proxy from the master's report), or at or just before the
    /// mover's last revision (above its compactions, three revisions back).
    fn start_revision(&mut self) -> u64 {
        match self.rng.below(5) {
            0 => 1,
            1 => 0,
            _ => self.last_revision.saturating_sub(self.rng.below(2)).max(1),
        }
    }
}

impl World {
    /// The revisioned clients' steps due at this tick.
    pub(super) fn kv_workload(&mut self) {
        let Some(mut workload) = self.kv.take() else {
            return;
        };
        let open = self.workload_open;
        let tick = self.tick;
        let mut sends: Vec<(u64, Message)> = Vec::new();
        if open
            && workload.outstanding.is_none()
            && workload.ready_tick <= tick
            && workload.next_request_id <= MOVER_REQUESTS_MAX
        {
            let request_id = workload.next_request_id;
            workload.next_request_id += 1;
            workload.outstanding = Some(request_id);
            let operation = mover_operation(
                &mut |bound| workload.rng.below(bound),
                workload.last_revision,
            );
            sends.push((
                MOVER_CLIENT,
                Message::KvRequest {
                    request_id,
                    cluster: CLUSTER.to_string(),
                    operation,
                },
            ));
        }
        for slot in 0..workload.watchers.len() {
            if let Some(send) = watcher_step(&mut workload, slot, tick, open) {
                sends.push(send);
            }
        }
        self.kv = Some(workload);
        for (connection, message) in sends {
            self.client_sends(connection, message);
        }
    }

    /// Hands what client `connection` sent to the proxy, then drains it.
    fn client_sends(&mut self, connection: u64, message: Message) {
        match message {
            Message::KvRequest {
                request_id,
                cluster,
                operation,
            } => self
                .proxy
                .handle_kv_request(connection, request_id, &cluster, operation),
            Message::WatchCreate {
                watch_id,
                cluster,
                watch,
            } => self
                .proxy
                .handle_watch_create(connection, watch_id, &cluster, watch),
            Message::WatchCancel { watch_id } => {
                self.proxy.handle_watch_cancel(connection, watch_id);
            }
            Message::WatchProgressRequest { watch_id } => {
                self.proxy
                    .handle_watch_progress_request(connection, watch_id);
            }
            Message::ClientClosed => self.proxy.handle_client_closed(connection),
            other => unreachable!("a revisioned client sends no {}", other.name()),
        }
        self.drain_proxy(None);
    }

    /// A message the proxy sent to one of the revisioned clients: the mover's reply frees it,
    /// a watcher's answer moves it on, and every `WatchEvents` is read at once.
    pub(super) fn kv_client_receives(&mut self, connection: u64, message: &Message) {
        if let Message::WatchEvents { watch_id, .. } = message {
            self.proxy.watch_events_read(connection, *watch_id);
        }
        let tick = self.tick;
        let Some(workload) = self.kv.as_mut() else {
            return;
        };
        if connection == MOVER_CLIENT {
            if let Message::KvReply {
                request_id,
                outcome,
            } = message
            {
                if workload.outstanding == Some(*request_id) {
                    workload.outstanding = None;
                    workload.ready_tick = tick + 1 + workload.rng.below(3);
                }
                if let Some(revision) = outcome.as_ref().ok().and_then(kv::KvResult::revision) {
                    workload.last_revision = workload.last_revision.max(revision);
                }
            }
            return;
        }
        let Some(watcher) = workload
            .watchers
            .iter_mut()
            .find(|watcher| watcher.connection == connection)
        else {
            return;
        };
        match (message, watcher.stage) {
            (Message::WatchCreated { .. }, Stage::Creating) => {
                let until_tick = tick + 20 + workload.rng.below(60);
                let progress_tick = Some(tick + (until_tick - tick) / 2);
                watcher.stage = Stage::Watching {
                    until_tick,
                    progress_tick,
                };
            }
            (Message::WatchEnded { .. }, Stage::Creating | Stage::Watching { .. })
            | (Message::WatchEnded { .. }, Stage::Cancelling) => watcher.stage = Stage::Ended,
            _ => {}
        }
    }
}

/// Watcher `slot`'s step due at `tick`, if any (`open`: the workload still starts new
/// connections; in the drain phase a watcher only finishes what it holds).
fn watcher_step(
    workload: &mut KvWorkload,
    slot: usize,
    tick: u64,
    open: bool,
) -> Option<(u64, Message)> {
    let stage = workload.watchers[slot].stage;
    let connection = workload.watchers[slot].connection;
    let idle_again = |workload: &mut KvWorkload| Stage::Idle {
        ready_tick: tick + 3 + workload.rng.below(10),
    };
    match stage {
        Stage::Idle { ready_tick }
            if open
                && ready_tick <= tick
                && workload.connections_opened < WATCHER_CONNECTIONS_MAX =>
        {
            let connection = WATCHER_CLIENT_FIRST + workload.connections_opened;
            workload.connections_opened += 1;
            let cluster = if workload.rng.below(6) == 0 {
                WRONG_CLUSTER
            } else {
                CLUSTER
            };
            let watch = kv::WatchRequest {
                range: kv::KeyRange::prefix(PREFIX),
                start_revision: workload.start_revision(),
                prev_kv: workload.rng.below(2) == 0,
                filter: None,
            };
            workload.watchers[slot] = Watcher {
                connection,
                stage: Stage::Creating,
            };
            Some((
                connection,
                Message::WatchCreate {
                    watch_id: WATCH_ID,
                    cluster: cluster.to_string(),
                    watch,
                },
            ))
        }
        Stage::Watching {
            until_tick,
            progress_tick: Some(progress_tick),
        } if progress_tick <= tick && until_tick > tick && open => {
            workload.watchers[slot].stage = Stage::Watching {
                until_tick,
                progress_tick: None,
            };
            let progress = Message::WatchProgressRequest { watch_id: WATCH_ID };
            Some((connection, progress))
        }
        Stage::Watching { until_tick, .. } if until_tick <= tick || !open => {
            if workload.rng.below(2) == 0 {
                workload.watchers[slot].stage = Stage::Cancelling;
                Some((connection, Message::WatchCancel { watch_id: WATCH_ID }))
            } else {
                workload.watchers[slot].stage = idle_again(workload);
                Some((connection, Message::ClientClosed))
            }
        }
        Stage::Ended => {
            workload.watchers[slot].stage = idle_again(workload);
            Some((connection, Message::ClientClosed))
        }
        _ => None,
    }
}
