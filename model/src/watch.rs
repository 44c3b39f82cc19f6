//! Watches at the proxy (`docs/protocol.md` §17): the proxy holds every watch of its clients
//! and fans out one subscription to one master's committed stream.
//!
//! Each watch keeps the next revision it is owed. The subscription starts at the lowest of
//! them and brings every committed revision in order; a revision goes to each watch it is owed
//! to (the events of the watch's range, if any) and moves that watch on. A revision may come
//! twice — a new watch from an older revision restarts the stream lower, and a resumed stream
//! starts again where the proxy asks — and is then skipped by every watch it is no longer
//! owed to: revisions are immutable once committed, so the stream can restart anywhere at or
//! below the lowest watch without a gap or a duplicate. When the connection to the master
//! closes, the proxy resumes at another master from that same lowest revision.
//!
//! Every watch ends exactly once, through `end_watch`: cancelled, compacted, its client gone,
//! an unknown cluster, its buffer overflowing, or too many watches on its connection. The watch
//! ledger counts them like requests: `opened == ended + open` (asserted at every change).

use crate::config::Bug;
use crate::kv_types::{Revision, RevisionEvents, WatchEnd, WatchId, WatchRequest};
use crate::message::{Endpoint, Message};
use crate::state::{Role, Subscription, Watch};
use crate::step::Step;
use crate::types::{ClientId, ClusterName, NodeId};

impl Step<'_> {
    /// `WatchCreate`: opened in the watch ledger, then refused at once (unknown cluster, too
    /// many watches on the connection) or held, with the stream moved down to its start. A
    /// watch from revision 0 ("now") is held unresolved and answered when the master's next
    /// report resolves it (`resolve_watches_from_now`).
    pub fn handle_watch_create(
        &mut self,
        client: ClientId,
        watch_id: WatchId,
        cluster: ClusterName,
        request: WatchRequest,
    ) {
        self.state.proxy.watch_ledger.opened += 1;
        let watch = Watch {
            client,
            request,
            next_revision: request.start_revision,
        };
        if cluster != self.config.cluster {
            // Seeded bug `watch-leak-on-error`: registered, and never ended or answered.
            if self.config.has(Bug::WatchLeakOnError) {
                self.hold_watch(watch_id, watch);
                return;
            }
            self.end_watch(watch_id, client, WatchEnd::UnknownCluster);
            return;
        }
        let open = self.state.proxy.watches.values();
        let held = open.filter(|watch| watch.client == client).count();
        if held >= self.config.watches_per_client_max as usize {
            self.end_watch(watch_id, client, WatchEnd::TooManyWatches);
            return;
        }
        self.hold_watch(watch_id, watch);
        if request.start_revision == 0 {
            self.create_watch_from_now(watch_id, client);
            return;
        }
        let created = Message::WatchCreated { watch_id };
        self.send(Endpoint::Proxy, Endpoint::Client(client), created);
        match self.state.proxy.subscription {
            None => {
                let target = self.subscription_target(None);
                self.subscribe(target, request.start_revision, false);
            }
            Some(subscription)
                if subscription.next_revision == 0
                    || request.start_revision < subscription.next_revision =>
            {
                self.subscribe(subscription.master, request.start_revision, false);
            }
            Some(_) => {}
        }
    }

    /// `WatchCancel` from the watch's own client: it ends `Cancelled`. A cancel of a watch that
    /// already ended is ignored (its end is on its way).
    pub fn handle_watch_cancel(&mut self, client: ClientId, watch_id: WatchId) {
        if self.owned(client, watch_id) {
            self.end_watch(watch_id, client, WatchEnd::Cancelled);
        }
    }

    /// `WatchProgressRequest`: the watch has had every event of its range up to the revision
    /// before the stream's next one (every watch is owed that revision or a later one).
    pub fn handle_watch_progress_request(&mut self, client: ClientId, watch_id: WatchId) {
        if !self.owned(client, watch_id) || self.unresolved(watch_id) {
            return;
        }
        let Some(subscription) = self.state.proxy.subscription else {
            return;
        };
        let progress = Message::WatchProgress {
            watch_id,
            revision: subscription.next_revision.saturating_sub(1),
        };
        self.send(Endpoint::Proxy, Endpoint::Client(client), progress);
    }

    /// `ClientClosed`: every watch of the client ends `ClientGone` (nothing is sent).
    pub fn handle_client_closed(&mut self, client: ClientId) {
        let watches: Vec<WatchId> = self
            .state
            .proxy
            .watches
            .iter()
            .filter(|(_, watch)| watch.client == client)
            .map(|(watch_id, _)| *watch_id)
            .collect();
        for watch_id in watches {
            self.end_watch(watch_id, client, WatchEnd::ClientGone);
        }
    }

    /// `Events` from the subscribed master: each revision the stream is owed, in order, goes to
    /// the watches owed it. A batch that does not continue the stream (from an earlier
    /// subscription, or after a lost one) is ignored.
    pub fn handle_events(
        &mut self,
        from: NodeId,
        revision: Revision,
        revisions: Vec<RevisionEvents>,
    ) {
        let Some(mut subscription) = self.state.proxy.subscription else {
            return;
        };
        if subscription.master != from {
            return;
        }
        let unresolved = self.unresolved_watches();
        if subscription.next_revision == 0 {
            subscription.next_revision = revision + 1;
            self.state.proxy.subscription = Some(subscription);
            // Seeded bug `watch-resume-from-current`: every watch is moved on to it.
            if self.config.has(Bug::WatchResumeFromCurrent) {
                for watch in self.state.proxy.watches.values_mut() {
                    watch.next_revision = watch.next_revision.max(revision + 1);
                }
            }
        }
        if subscription.next_revision == 1 {
            // Revision 1 is the empty store's: it has no events, so a stream owed it is owed 2.
            subscription.next_revision = 2;
            self.state.proxy.subscription = Some(subscription);
        }
        if self.resolve_watches_from_now(&unresolved, revision) {
            return;
        }
        for group in revisions {
            // A watch ending in the fan-out may have taken the subscription with it.
            let Some(mut subscription) = self.state.proxy.subscription else {
                return;
            };
            if group.revision < subscription.next_revision {
                continue;
            }
            if group.revision > subscription.next_revision {
                return;
            }
            subscription.next_revision += 1;
            self.state.proxy.subscription = Some(subscription);
            self.fan_out(&group, subscription.resumed);
        }
    }

    /// Revision `group` to every watch owed it; each of them is owed the next one after.
    fn fan_out(&mut self, group: &RevisionEvents, resumed: bool) {
        assert!(
            self.unresolved_watches().is_empty(),
            "every watch from revision 0 is resolved before the stream's revisions reach it"
        );
        let owed: Vec<(WatchId, Watch)> = self
            .state
            .proxy
            .watches
            .iter()
            .filter(|(_, watch)| watch.next_revision <= group.revision)
            .map(|(watch_id, watch)| (*watch_id, *watch))
            .collect();
        for (watch_id, watch) in owed {
            if let Some(held) = self.state.proxy.watches.get_mut(&watch_id) {
                held.next_revision = group.revision + 1;
            }
            let events: Vec<_> = group
                .events
                .iter()
                .filter_map(|event| watch.request.view(event))
                .collect();
            if events.is_empty() {
                continue;
            }
            if self.buffered(watch.client, watch_id) >= self.config.watch_events_buffered_max {
                self.end_watch(watch_id, watch.client, WatchEnd::Overflow);
                continue;
            }
            if resumed {
                self.note_resumed_delivery(group.revision);
            }
            let message = Message::WatchEvents {
                watch_id,
                revision: group.revision,
                events,
            };
            self.send(Endpoint::Proxy, Endpoint::Client(watch.client), message);
        }
    }

    /// `SubscriptionCompacted` from the subscribed master: every watch owed a revision below the
    /// compaction point ends `Compacted`; the stream restarts for the others, from the lowest
    /// revision they are owed.
    pub fn handle_subscription_compacted(&mut self, from: NodeId, compact_revision: Revision) {
        let Some(subscription) = self.state.proxy.subscription else {
            return;
        };
        if subscription.master != from {
            return;
        }
        // The master keeps no subscription: ending the last watch unsubscribes nothing.
        self.state.proxy.subscription = None;
        let behind: Vec<(WatchId, ClientId)> = self
            .state
            .proxy
            .watches
            .iter()
            .filter(|(_, watch)| watch.next_revision != 0 && watch.next_revision < compact_revision)
            .map(|(watch_id, watch)| (*watch_id, watch.client))
            .collect();
        for (watch_id, client) in behind {
            // Seeded bug `compaction-skips-watch`: the watch skips to the compaction point.
            if self.config.has(Bug::CompactionSkipsWatch) {
                if let Some(watch) = self.state.proxy.watches.get_mut(&watch_id) {
                    watch.next_revision = compact_revision;
                }
                continue;
            }
            self.end_watch(watch_id, client, WatchEnd::Compacted { compact_revision });
        }
        if let Some(lowest) = self.lowest_owed() {
            self.subscribe(from, lowest, subscription.resumed);
        }
    }

    /// `ConnectionClosed` from the proxy's host: the subscription to `from` is lost; the proxy
    /// resumes at another master from the lowest revision its watches are owed.
    pub fn handle_connection_closed(&mut self, from: NodeId) {
        let Some(subscription) = self.state.proxy.subscription else {
            return;
        };
        if subscription.master != from {
            return;
        }
        self.state.ghost.revision_chosen_at_subscription_loss = Some(chosen_revision(self));
        self.state.proxy.subscription = None;
        let Some(lowest) = self.lowest_owed() else {
            return;
        };
        let target = self.subscription_target(Some(from));
        self.resume_subscription(target, lowest);
    }

    /// Resumes the stream at `target` from `lowest`, the lowest revision a watch is owed.
    fn resume_subscription(&mut self, target: NodeId, lowest: Revision) {
        // Seeded bug `watch-resume-from-current`: from the master's next revision instead.
        if self.config.has(Bug::WatchResumeFromCurrent) {
            self.subscribe(target, 0, true);
            return;
        }
        self.subscribe(target, lowest, true);
    }

    /// Subscribes at `target` from `from_revision`, replacing the proxy's subscription.
    pub(crate) fn subscribe(&mut self, target: NodeId, from_revision: Revision, resumed: bool) {
        self.state.proxy.subscription = Some(Subscription {
            master: target,
            next_revision: from_revision,
            resumed,
        });
        let subscribe = Message::Subscribe { from_revision };
        self.send(Endpoint::Proxy, Endpoint::Master(target), subscribe);
    }

    /// The master to subscribe at: the cached leader, or the next in turn, never `avoid` (the
    /// master whose connection just closed).
    pub(crate) fn subscription_target(&mut self, avoid: Option<NodeId>) -> NodeId {
        if let Some(leader) = self
            .state
            .proxy
            .leader_cache
            .filter(|leader| Some(*leader) != avoid)
        {
            return leader;
        }
        let target = self.next_in_turn();
        if Some(target) == avoid {
            return self.next_in_turn();
        }
        target
    }

    /// The lowest revision an open watch is owed; 0 if only watches from revision 0 not
    /// resolved yet are open (the stream then starts at the master's next revision).
    fn lowest_owed(&self) -> Option<Revision> {
        let owed = self
            .state
            .proxy
            .watches
            .values()
            .map(|watch| watch.next_revision);
        let named = owed.clone().filter(|revision| *revision != 0).min();
        named.or_else(|| owed.min())
    }

    /// Whether `watch_id` is an open watch of `client`.
    fn owned(&self, client: ClientId, watch_id: WatchId) -> bool {
        let watch = self.state.proxy.watches.get(&watch_id);
        watch.is_some_and(|watch| watch.client == client)
    }

    /// `WatchEvents` of `watch_id` not yet read by its client: the watch's buffer (the proxy's
    /// send queue to the client is the link).
    fn buffered(&self, client: ClientId, watch_id: WatchId) -> u8 {
        let link = (Endpoint::Proxy, Endpoint::Client(client));
        let queued = self.state.network.get(&link).map_or(0, |messages| {
            messages
                .iter()
                .filter(|message| matches!(message, Message::WatchEvents { watch_id: queued, .. } if *queued == watch_id))
                .count()
        });
        queued.min(u8::MAX as usize) as u8
    }

    /// Opens `watch` in the ledger.
    fn hold_watch(&mut self, watch_id: WatchId, watch: Watch) {
        self.state.proxy.watches.insert(watch_id, watch);
        self.state.proxy.watch_ledger.open += 1;
        self.assert_watch_ledger();
    }

    /// `WatchEnded`: the one place a watch ends (a created one leaves the proxy; one refused at
    /// creation was never held). Its client hears it unless it is gone. The last watch takes the
    /// subscription with it.
    fn end_watch(&mut self, watch_id: WatchId, client: ClientId, outcome: WatchEnd) {
        let ledger = &mut self.state.proxy.watch_ledger;
        if self.state.proxy.watches.remove(&watch_id).is_some() {
            ledger.open -= 1;
        }
        ledger.ended += 1;
        self.assert_watch_ledger();
        if outcome != WatchEnd::ClientGone {
            let ended = Message::WatchEnded { watch_id, outcome };
            self.send(Endpoint::Proxy, Endpoint::Client(client), ended);
        }
        if self.state.proxy.watches.is_empty() {
            if let Some(subscription) = self.state.proxy.subscription.take() {
                let target = Endpoint::Master(subscription.master);
                self.send(Endpoint::Proxy, target, Message::Unsubscribe);
            }
        }
    }

    /// The watch ledger balances and counts exactly the watches held.
    fn assert_watch_ledger(&self) {
        let ledger = self.state.proxy.watch_ledger;
        assert_eq!(ledger.opened, ledger.ended + ledger.open, "{ledger:?}");
        assert_eq!(
            ledger.open as usize,
            self.state.proxy.watches.len(),
            "{ledger:?}"
        );
    }

    /// A resumed stream delivered `revision`: the witness
    /// `watch_resumed_across_leader_change` if it was chosen after the connection the stream
    /// resumed closed, while a master leads in a round of 2 or more.
    fn note_resumed_delivery(&mut self, revision: Revision) {
        let after_loss = self
            .state
            .ghost
            .revision_chosen_at_subscription_loss
            .is_some_and(|lost| revision > lost);
        let new_leader =
            self.state.masters.iter().any(
                |master| matches!(&master.role, Role::Leader(leader) if leader.ballot.round >= 2),
            );
        if after_loss && new_leader {
            self.state.ghost.watch_resumed_across_leader_change = true;
        }
    }
}

/// The highest revision chosen anywhere: the chosen prefix applied to an empty store.
pub(crate) fn chosen_revision(step: &Step<'_>) -> Revision {
    step.state.chosen_store(step.config).revision
}
