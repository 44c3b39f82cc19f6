//! Watches at the proxy (`docs/protocol.md` §17): the proxy holds every watch of its clients
//! and fans out one subscription per served cluster, at one master, to that master's committed
//! stream.
//!
//! Each watch keeps the next revision it is owed. The subscription starts at the lowest of
//! them and brings every committed revision in order; a revision goes to each watch it is owed
//! to (the events of the watch's range, if any) and moves that watch on. A revision may come
//! twice — a new watch from an older revision restarts the stream lower, and a resumed stream
//! starts again where the proxy asks — and is then skipped by every watch it is no longer owed
//! to: revisions are immutable once committed, so the stream can restart anywhere at or below
//! the lowest watch without a gap or a duplicate. When the connection to the master closes, the
//! proxy resumes at another master from that same lowest revision.
//!
//! Every watch ends exactly once, through [`Proxy::end_watch`] and the watch ledger's owned
//! value (`watch_ledger.rs`): cancelled, compacted, its client gone, an unknown cluster, its
//! buffer overflowing, or too many watches on its connection.
//!
//! How a host drives watches: [`Proxy::handle_watch_create`], [`Proxy::handle_watch_cancel`],
//! [`Proxy::handle_watch_progress_request`] for what a client sends; [`Proxy::handle_client_closed`]
//! once a client connection closed (after everything it sent); [`Proxy::watch_events_read`]
//! each time a `WatchEvents` left for its client (written to the client's connection), which
//! frees one place of the watch's buffer; [`Proxy::step`] for a master's `Events` and
//! `SubscriptionCompacted`; and [`Proxy::link_closed`] when a connection to a master closes
//! (`ConnectionClosed`), which resumes the subscription elsewhere. `Subscribe` and
//! `Unsubscribe` leave in [`ProxyReady::messages`](crate::ProxyReady), watch messages to
//! clients in its `replies`.

use std::collections::BTreeMap;

use crate::kv_types::{Revision, RevisionEvents, WatchEnd, WatchId, WatchRequest};
use crate::message::Message;
use crate::mutation::Mutation;
use crate::proxy::{Proxy, ProxyEnvelope};
use crate::trace::{Endpoint, TraceKind};
use crate::types::{ClientId, NodeId};
use crate::watch_ledger::{OpenWatch, WatchLedger};

/// A watch the proxy holds.
#[derive(Debug)]
pub(crate) struct HeldWatch {
    /// The ledger's value: ending it is the only way the watch leaves.
    handle: OpenWatch,
    /// The cluster watched.
    pub(crate) cluster: String,
    /// What it watches.
    request: WatchRequest,
    /// The next revision it is owed (0 while "now" is not resolved yet, §17.2).
    pub(crate) next_revision: Revision,
    /// `WatchEvents` sent and not yet read by its client (`watch_events_read`).
    buffered: u64,
}

/// The proxy's subscription for one cluster (§17.1).
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamSubscription {
    /// The master streaming.
    pub(crate) master: NodeId,
    /// The revision the stream must bring next (0: the master's next, not known yet).
    pub(crate) next_revision: Revision,
}

/// Every watch and subscription of the proxy.
#[derive(Debug, Default)]
pub(crate) struct Watches {
    pub(crate) ledger: WatchLedger,
    pub(crate) held: BTreeMap<(ClientId, WatchId), HeldWatch>,
    pub(crate) subscriptions: BTreeMap<String, StreamSubscription>,
}

impl Watches {
    /// The lowest revision a watch of `cluster` is owed (0 if only unresolved ones are).
    fn lowest_owed(&self, cluster: &str) -> Option<Revision> {
        let owed = self
            .of_cluster(cluster)
            .map(|(_, watch)| watch.next_revision);
        let (named, unresolved): (Vec<Revision>, Vec<Revision>) =
            owed.partition(|revision| *revision != 0);
        named
            .into_iter()
            .min()
            .or_else(|| unresolved.first().copied())
    }

    fn of_cluster<'a>(
        &'a self,
        cluster: &'a str,
    ) -> impl Iterator<Item = (&'a (ClientId, WatchId), &'a HeldWatch)> + 'a {
        self.held
            .iter()
            .filter(move |(_, watch)| watch.cluster == cluster)
    }

    /// The subscription of `cluster`, if any (status and tests).
    pub(crate) fn subscription(&self, cluster: &str) -> Option<(NodeId, Revision)> {
        self.subscriptions
            .get(cluster)
            .map(|subscription| (subscription.master, subscription.next_revision))
    }
}

impl Proxy {
    /// `WatchCreate { watch_id, cluster, watch }` (§17.2): opened in the watch ledger, then
    /// ended at once (`UnknownCluster`; `TooManyWatches` when the connection holds
    /// `watches_per_client_max` watches, or already holds one with this id) or held, answered
    /// `WatchCreated`, with the stream moved down to its start.
    pub fn handle_watch_create(
        &mut self,
        client: ClientId,
        watch_id: WatchId,
        cluster: &str,
        watch: WatchRequest,
    ) {
        self.trace.record(|| TraceKind::Receive {
            from: Endpoint::Client(client),
            message: Message::WatchCreate {
                watch_id,
                cluster: cluster.to_string(),
                watch: watch.clone(),
            },
        });
        self.create_watch(client, watch_id, cluster, watch);
        self.finish_input();
    }

    fn create_watch(
        &mut self,
        client: ClientId,
        watch_id: WatchId,
        cluster: &str,
        request: WatchRequest,
    ) {
        let mut handle = self.watches.ledger.open(client, watch_id);
        if !self.clusters.contains_key(cluster) {
            if self.planted(Mutation::WatchLeakOnError) {
                // Planted bug: registered, and never answered nor ended.
                handle.hold();
                let watch = HeldWatch {
                    handle,
                    cluster: cluster.to_string(),
                    request,
                    next_revision: 0,
                    buffered: 0,
                };
                self.watches.held.insert((client, watch_id), watch);
                return;
            }
            handle.end(WatchEnd::UnknownCluster);
            return;
        }
        let held = self.watches.held.keys();
        let of_client = held.filter(|(holder, _)| *holder == client).count() as u64;
        let duplicate = self.watches.held.contains_key(&(client, watch_id));
        if of_client >= self.config.watches_per_client_max || duplicate {
            handle.end(WatchEnd::TooManyWatches);
            return;
        }
        handle.hold();
        let start = request.start_revision;
        let watch = HeldWatch {
            handle,
            cluster: cluster.to_string(),
            request,
            next_revision: start,
            buffered: 0,
        };
        self.watches.held.insert((client, watch_id), watch);
        if start == 0 {
            self.create_watch_from_now(client, watch_id, cluster);
            return;
        }
        self.send_to_client(client, Message::WatchCreated { watch_id });
        match self.watches.subscriptions.get(cluster).copied() {
            None => {
                let target = self.subscription_target(cluster, None);
                self.subscribe(cluster, target, start);
            }
            Some(subscription)
                if subscription.next_revision == 0 || start < subscription.next_revision =>
            {
                self.subscribe(cluster, subscription.master, start);
            }
            Some(_) => {}
        }
    }

    /// A client's `WatchCreate` the host refused before the protocol (its token): opened and
    /// ended at once `PermissionDenied`, never held.
    pub fn deny_watch(&mut self, client: ClientId, watch_id: WatchId, cluster: &str) {
        self.trace.record(|| TraceKind::WatchDenied {
            client,
            watch_id,
            cluster: cluster.to_string(),
        });
        let handle = self.watches.ledger.open(client, watch_id);
        handle.end(WatchEnd::PermissionDenied);
        self.finish_input();
    }

    /// `WatchCancel` from the watch's own client: it ends `Cancelled`. A cancel of a watch that
    /// is not held (it ended, its end is on its way) is ignored.
    pub fn handle_watch_cancel(&mut self, client: ClientId, watch_id: WatchId) {
        self.trace.record(|| TraceKind::Receive {
            from: Endpoint::Client(client),
            message: Message::WatchCancel { watch_id },
        });
        self.end_watch((client, watch_id), WatchEnd::Cancelled);
        self.finish_input();
    }

    /// `WatchProgressRequest`: answered `WatchProgress` with the revision before the stream's
    /// next one (every event of the watch's range up to it was delivered); ignored for a watch
    /// not held, or before the stream's start is known.
    pub fn handle_watch_progress_request(&mut self, client: ClientId, watch_id: WatchId) {
        self.trace.record(|| TraceKind::Receive {
            from: Endpoint::Client(client),
            message: Message::WatchProgressRequest { watch_id },
        });
        let next = self
            .watches
            .held
            .get(&(client, watch_id))
            .filter(|watch| watch.next_revision != 0)
            .and_then(|watch| self.watches.subscriptions.get(&watch.cluster))
            .map(|subscription| subscription.next_revision);
        if let Some(next) = next.filter(|next| *next != 0) {
            let progress = Message::WatchProgress {
                watch_id,
                revision: next - 1,
            };
            self.send_to_client(client, progress);
        }
        self.finish_input();
    }

    /// `ClientClosed`: the client's connection closed after everything it sent; every watch of
    /// it ends `ClientGone` (nothing is sent). A host must call this on every client
    /// connection that closes.
    pub fn handle_client_closed(&mut self, client: ClientId) {
        self.trace.record(|| TraceKind::Receive {
            from: Endpoint::Client(client),
            message: Message::ClientClosed,
        });
        let watches: Vec<(ClientId, WatchId)> = self
            .watches
            .held
            .keys()
            .filter(|(holder, _)| *holder == client)
            .copied()
            .collect();
        for key in watches {
            self.end_watch(key, WatchEnd::ClientGone);
        }
        self.finish_input();
    }

    /// One `WatchEvents` of `watch_id` left for its client: one place of its buffer is free
    /// again (§17.5). Not a protocol step, so nothing is traced.
    pub fn watch_events_read(&mut self, client: ClientId, watch_id: WatchId) {
        if let Some(watch) = self.watches.held.get_mut(&(client, watch_id)) {
            watch.buffered = watch.buffered.saturating_sub(1);
        }
    }

    /// `Events` from master `from` of `cluster`: each revision the stream is owed, in order,
    /// goes to the watches owed it. A batch from another master, or one that does not continue
    /// the stream (from an earlier subscription, or after a lost message), is ignored.
    pub(crate) fn handle_events(
        &mut self,
        cluster: &str,
        from: NodeId,
        revision: Revision,
        revisions: Vec<RevisionEvents>,
    ) {
        let subscribed = self.watches.subscriptions.get(cluster);
        if subscribed.is_none_or(|subscription| subscription.master != from) {
            return;
        }
        let unresolved = self.watches.unresolved(cluster);
        let resume_from_current = self.planted(Mutation::WatchResumeFromCurrent);
        let subscription = self
            .watches
            .subscriptions
            .get_mut(cluster)
            .expect("subscribed above");
        if subscription.next_revision == 0 {
            subscription.next_revision = revision + 1;
            if resume_from_current {
                // Planted bug: every watch moves on to the master's next revision.
                for (_, watch) in self.watches.held.iter_mut() {
                    if watch.cluster == cluster {
                        watch.next_revision = watch.next_revision.max(revision + 1);
                    }
                }
            }
        }
        // Revision 1 is the empty store's: it has no events, so a stream owed it is owed 2.
        if subscription.next_revision == 1 {
            subscription.next_revision = 2;
        }
        if self.resolve_watches_from_now(cluster, &unresolved, revision) {
            return;
        }
        for group in revisions {
            // A watch ending in the fan-out may have taken the subscription with it.
            let Some(subscription) = self.watches.subscriptions.get_mut(cluster) else {
                return;
            };
            if group.revision < subscription.next_revision {
                continue;
            }
            if group.revision > subscription.next_revision {
                return;
            }
            subscription.next_revision += 1;
            self.fan_out(cluster, &group);
        }
    }

    /// Revision `group` to every watch of `cluster` owed it; each is owed the next one after.
    fn fan_out(&mut self, cluster: &str, group: &RevisionEvents) {
        let buffered_max = self.config.watch_events_buffered_max;
        let mut deliveries = Vec::new();
        let mut overflowed = Vec::new();
        for (key, watch) in self.watches.held.iter_mut() {
            let owed = watch.next_revision != 0 && watch.next_revision <= group.revision;
            if watch.cluster != cluster || !owed {
                continue;
            }
            watch.next_revision = group.revision + 1;
            let events: Vec<_> = group
                .events
                .iter()
                .filter_map(|event| watch.request.view(event))
                .collect();
            if events.is_empty() {
                continue;
            }
            if watch.buffered >= buffered_max {
                overflowed.push(*key);
                continue;
            }
            watch.buffered += 1;
            deliveries.push((*key, events));
        }
        for ((client, watch_id), events) in deliveries {
            let message = Message::WatchEvents {
                watch_id,
                revision: group.revision,
                events,
            };
            self.send_to_client(client, message);
        }
        for key in overflowed {
            self.end_watch(key, WatchEnd::Overflow);
        }
    }

    /// `SubscriptionCompacted` from the subscribed master: every watch owed a revision below the
    /// compaction point ends `Compacted`; the stream restarts for the others, at the same
    /// master, from the lowest revision they are owed.
    pub(crate) fn handle_subscription_compacted(
        &mut self,
        cluster: &str,
        from: NodeId,
        compact_revision: Revision,
    ) {
        let subscribed = self.watches.subscriptions.get(cluster);
        if subscribed.is_none_or(|subscription| subscription.master != from) {
            return;
        }
        // The master keeps no subscription: ending the last watch unsubscribes nothing.
        self.watches.subscriptions.remove(cluster);
        let behind: Vec<(ClientId, WatchId)> = self
            .watches
            .of_cluster(cluster)
            .filter(|(_, watch)| watch.next_revision != 0 && watch.next_revision < compact_revision)
            .map(|(key, _)| *key)
            .collect();
        for key in behind {
            if self.planted(Mutation::CompactionSkipsWatch) {
                // Planted bug: the watch skips to the compaction point.
                if let Some(watch) = self.watches.held.get_mut(&key) {
                    watch.next_revision = compact_revision;
                }
                continue;
            }
            self.end_watch(key, WatchEnd::Compacted { compact_revision });
        }
        if let Some(lowest) = self.watches.lowest_owed(cluster) {
            self.subscribe(cluster, from, lowest);
        }
    }

    /// `ConnectionClosed` (§17.6): the subscription of `cluster` at `node` is lost; the proxy
    /// resumes at once at another master from the lowest revision its watches are owed.
    pub(crate) fn connection_closed(&mut self, cluster: &str, node: NodeId) {
        let subscribed = self.watches.subscriptions.get(cluster);
        if subscribed.is_none_or(|subscription| subscription.master != node) {
            return;
        }
        self.trace.record(|| TraceKind::ConnectionClosed {
            cluster: cluster.to_string(),
            node,
        });
        self.watches.subscriptions.remove(cluster);
        let Some(lowest) = self.watches.lowest_owed(cluster) else {
            return;
        };
        let target = self.subscription_target(cluster, Some(node));
        if self.planted(Mutation::WatchResumeFromCurrent) {
            // Planted bug: from the new master's next revision.
            self.subscribe(cluster, target, 0);
            return;
        }
        self.subscribe(cluster, target, lowest);
    }

    /// Subscribes at `target` from `from_revision`, replacing the cluster's subscription.
    pub(crate) fn subscribe(&mut self, cluster: &str, target: NodeId, from_revision: Revision) {
        let subscription = StreamSubscription {
            master: target,
            next_revision: from_revision,
        };
        self.watches
            .subscriptions
            .insert(cluster.to_string(), subscription);
        self.send_to_master(cluster, target, Message::Subscribe { from_revision });
    }

    /// The master to subscribe at: the cached leader, or the next in turn, never `avoid` (the
    /// master whose connection just closed) unless it is the only one.
    pub(crate) fn subscription_target(&mut self, cluster: &str, avoid: Option<NodeId>) -> NodeId {
        if let Some(leader) = self
            .leader_cache
            .get(cluster)
            .filter(|leader| Some(*leader) != avoid)
        {
            return leader;
        }
        let target = self.next_in_turn(cluster);
        if Some(target) == avoid {
            return self.next_in_turn(cluster);
        }
        target
    }

    /// The one place a held watch ends: it leaves the proxy and its ledger value ends it. The
    /// last watch of a cluster takes the subscription with it (`Unsubscribe`). A watch not held
    /// is left alone.
    pub(crate) fn end_watch(&mut self, key: (ClientId, WatchId), outcome: WatchEnd) {
        let Some(watch) = self.watches.held.remove(&key) else {
            return;
        };
        watch.handle.end(outcome);
        let cluster = watch.cluster;
        if self.watches.of_cluster(&cluster).next().is_some() {
            return;
        }
        if let Some(subscription) = self.watches.subscriptions.remove(&cluster) {
            self.send_to_master(&cluster, subscription.master, Message::Unsubscribe);
        }
    }

    /// Sends a message to a client connection.
    pub(crate) fn send_to_client(&mut self, client: ClientId, message: Message) {
        self.trace.record(|| TraceKind::Send {
            to: Endpoint::Client(client),
            message: message.clone(),
        });
        self.replies.push(crate::proxy::ClientEnvelope {
            to: client,
            message,
        });
    }

    /// Sends a message to master `node` of `cluster`.
    pub(crate) fn send_to_master(&mut self, cluster: &str, node: NodeId, message: Message) {
        let envelope = ProxyEnvelope {
            cluster: cluster.to_string(),
            to: node,
            message,
        };
        self.trace.record(|| TraceKind::Send {
            to: Endpoint::Master {
                node,
                cluster: Some(cluster.to_string()),
            },
            message: envelope.message.clone(),
        });
        self.messages.push(envelope);
    }

    /// Every watch ended since the last call becomes `WatchEnded` to its client (unless it is
    /// gone) and a `WatchEnded` event; then the watch ledger's invariants are asserted.
    pub(crate) fn finish_watches(&mut self) {
        for ending in self.watches.ledger.drain_endings() {
            self.trace.record(|| TraceKind::WatchEnded {
                client: ending.client,
                watch_id: ending.watch_id,
                outcome: ending.outcome,
            });
            if ending.outcome != WatchEnd::ClientGone {
                let message = Message::WatchEnded {
                    watch_id: ending.watch_id,
                    outcome: ending.outcome,
                };
                self.send_to_client(ending.client, message);
            }
        }
        let counters = self.watches.ledger.counters();
        assert!(
            counters.is_balanced(),
            "watch ledger out of balance: {counters:?}"
        );
        assert_eq!(
            counters.open,
            self.watches.held.len() as u64,
            "every open watch is held: {counters:?}"
        );
    }
}
