//! The simulated hosts: each core driven the way the tokio host drives it
//! (`impl/node/src/master.rs`, `docs/architecture.md`): every `Ready`'s links closed and
//! messages sent, its durable write handed to the disk and `advance` called once it is
//! durable; a crash loses the volatile state and the persist queue, a restart rebuilds the
//! master from its durable state, a resume fires the overdue ticks first.

use std::collections::VecDeque;

use vigil_core as core;
use vigil_core::{Message, Peer};

use super::network::Flight;
use super::world::{Node, World};
use super::CLUSTER;

/// A master host: the core, its storage, and the host's fault state.
pub(super) struct MasterHost {
    pub(super) core: Option<core::Master>,
    pub(super) durable: core::DurableState,
    pub(super) paused: bool,
    pub(super) missed_ticks: u64,
    /// Handled `Ready`s whose write is not yet durable, oldest first (the host's persist
    /// queue): each is applied to `durable` and advanced at its `due_tick`. Empty unless the
    /// disk is slow (`slow-disk`); a crash loses what is here.
    pub(super) disk: VecDeque<PendingReady>,
    /// How long a write takes to become durable now (0: at once).
    pub(super) disk_latency_ticks: u64,
}

/// A `Ready` whose durable write is in the host's persist queue.
pub(super) struct PendingReady {
    pub(super) ready: core::Ready,
    pub(super) due_tick: u64,
}

impl MasterHost {
    /// The lowest slot of an entry whose write is still on its way to the disk.
    pub(super) fn lowest_pending_slot(&self) -> Option<core::Slot> {
        self.disk
            .iter()
            .filter_map(|pending| pending.ready.durable.as_ref())
            .flat_map(|write| write.entries.iter().map(|entry| entry.slot))
            .min()
    }
}

impl World {
    pub(super) fn start_master(&mut self, node: u64) {
        let durable = self.masters[node as usize].durable.clone();
        let mut master =
            core::Master::new(node, self.protocol.clone(), durable).expect("valid master config");
        master.set_tracing(true);
        self.masters[node as usize].core = Some(master);
        self.drain_master(node, None);
    }

    /// Handles every `Ready` of `node` as the host does: close links, send, hand the write to
    /// the disk ([`World::persist`]; `advance` once it is durable, and what that releases
    /// comes out of the next `Ready`). Only the first batch holds the input that handled
    /// `received`.
    pub(super) fn drain_master(&mut self, node: u64, received: Option<&Flight>) {
        self.drain_master_batches(node, received);
        self.close_lost_connections();
    }

    /// Handles every `Ready` of `node` ([`World::drain_master`]).
    fn drain_master_batches(&mut self, node: u64, received: Option<&Flight>) {
        let mut received = received;
        loop {
            let Some(master) = self.masters[node as usize].core.as_mut() else {
                return;
            };
            if !master.has_ready() {
                return;
            }
            let ready = master.ready();
            let me = Node::Master(node);
            for follower in &ready.close_links {
                let to = Node::Master(*follower);
                // The eviction discards what the leader's host still queues (not yet due) but
                // cannot take back what reached the follower (due: a paused follower has not
                // read it yet), which it may still handle (`protocol.md` §5.1).
                let tick = self.tick;
                self.flights.retain(|flight| {
                    !(flight.from == me && flight.to == to) || flight.deliver_tick <= tick
                });
                self.release_held(to, me);
            }
            let mut stamped = self.sinks[node as usize].stamp(ready.trace.clone(), received.take());
            let envelopes = ready
                .messages
                .iter()
                .chain(&ready.replies)
                .cloned()
                .collect::<Vec<_>>();
            for envelope in envelopes {
                let to = match envelope.to {
                    Peer::Master(other) => Node::Master(other),
                    Peer::Proxy(_) => Node::Proxy,
                };
                let (id, lamport) = stamped.take_send(&envelope.message);
                self.send(me, to, envelope.message, id, lamport);
            }
            self.persist(node, ready);
        }
    }

    /// Hands `ready`'s write to master `node`'s disk: durable at once (then `advance`) unless
    /// the disk is slow or writes are queued before it; a `Ready` is advanced after those
    /// taken before it (`ready.rs`), so one that waits for nothing queues behind them too.
    pub(super) fn persist(&mut self, node: u64, ready: core::Ready) {
        let tick = self.tick;
        let host = &mut self.masters[node as usize];
        if host.disk.is_empty() && (host.disk_latency_ticks == 0 || !ready.waits_for_disk()) {
            if let Some(write) = &ready.durable {
                host.durable.apply(write);
            }
            if let Some(master) = host.core.as_mut() {
                master.advance(ready);
            }
            return;
        }
        let latency = if ready.waits_for_disk() {
            host.disk_latency_ticks
        } else {
            0
        };
        let behind = host.disk.back().map_or(0, |pending| pending.due_tick);
        host.disk.push_back(PendingReady {
            ready,
            due_tick: (tick + latency).max(behind),
        });
    }

    /// Makes durable, oldest first, the queued writes of master `node` that are due, and
    /// advances their `Ready`s (what they release leaves at once).
    pub(super) fn complete_writes(&mut self, node: u64) {
        loop {
            let host = &mut self.masters[node as usize];
            if host.core.is_none() || host.paused {
                return;
            }
            if host
                .disk
                .front()
                .is_none_or(|pending| pending.due_tick > self.tick)
            {
                return;
            }
            let pending = host.disk.pop_front().expect("a due write");
            if let Some(write) = &pending.ready.durable {
                host.durable.apply(write);
            }
            if let Some(master) = host.core.as_mut() {
                master.advance(pending.ready);
            }
            self.drain_master(node, None);
        }
    }

    pub(super) fn drain_proxy(&mut self, received: Option<&Flight>) {
        if !self.proxy.has_ready() {
            return;
        }
        let ready = self.proxy.ready();
        let proxy_sink = self.sinks.len() - 1;
        let mut stamped = self.sinks[proxy_sink].stamp(ready.trace.clone(), received);
        let mut lost = Vec::new();
        for envelope in ready.messages {
            let (id, lamport) = stamped.take_send(&envelope.message);
            if self.masters[envelope.to as usize].core.is_none() {
                // No connection to a crashed master: the host cannot hand a proposal over, and
                // a subscription message finds the connection closed.
                match envelope.message {
                    Message::Propose { request_id, .. } | Message::KvPropose { request_id, .. } => {
                        lost.push(request_id);
                    }
                    Message::Subscribe { .. } | Message::Unsubscribe => {
                        self.lost_connections.push((envelope.to, lamport));
                    }
                    _ => {}
                }
                continue;
            }
            self.send(
                Node::Proxy,
                Node::Master(envelope.to),
                envelope.message,
                id,
                lamport,
            );
        }
        for reply in ready.replies {
            if self.kv.as_ref().is_some_and(|kv| kv.owns(reply.to)) {
                self.kv_client_receives(reply.to, &reply.message);
                continue;
            }
            let Message::Reply { request_id, .. } = reply.message else {
                continue;
            };
            *self.completions.entry((reply.to, request_id)).or_insert(0) += 1;
            if let Some(client) = self.clients.iter_mut().find(|client| client.id == reply.to) {
                if client.outstanding == Some(request_id) {
                    client.outstanding = None;
                    client.ready_tick = self.tick + 1 + self.rng.below(3);
                }
            }
        }
        for request_id in lost {
            self.proxy.forward_lost(request_id);
        }
        self.drain_proxy(None);
        self.close_lost_connections();
    }

    /// Every connection between the proxy and a master that lost a subscription message
    /// closes: the subscription messages still in flight on it are lost, the master's
    /// subscription ends (`Master::proxy_closed`) and the proxy's host
    /// reports the close (`Proxy::link_closed`), after the lost send in the proxy's clock.
    pub(super) fn close_lost_connections(&mut self) {
        while let Some((node, lamport)) = self.lost_connections.pop() {
            self.lost_connections.retain(|(other, _)| *other != node);
            // What the closed connection still carried is lost with it.
            let master = Node::Master(node);
            self.flights.retain(|flight| {
                let on_it = (flight.from == master && flight.to == Node::Proxy)
                    || (flight.from == Node::Proxy && flight.to == master);
                !(on_it && is_subscription(&flight.message))
            });
            if let Some(master) = self.masters[node as usize].core.as_mut() {
                master.proxy_closed(0);
            }
            let proxy_sink = self.sinks.len() - 1;
            let sink = &mut self.sinks[proxy_sink];
            sink.lamport = sink.lamport.max(lamport);
            self.proxy.link_closed(CLUSTER, node);
            self.drain_proxy(None);
        }
    }

    pub(super) fn crash(&mut self, node: u64) {
        self.masters[node as usize].core = None;
        self.masters[node as usize].paused = false;
        // What its persist queue held never reached the disk.
        self.masters[node as usize].disk.clear();
        let me = Node::Master(node);
        // Volatile state and connections are gone: nothing it had in flight arrives.
        self.flights
            .retain(|flight| flight.from != me && flight.to != me);
        // The proxy's connection to it closed: what was forwarded there completes now, as
        // the host's link reports it (`docs/protocol.md` §9.4.6) — after everything the master
        // did before it died, in the proxy's clock.
        let crashed_clock = self.sinks[node as usize].lamport;
        let proxy_sink = self.sinks.len() - 1;
        let sink = &mut self.sinks[proxy_sink];
        sink.lamport = sink.lamport.max(crashed_clock);
        self.proxy.link_closed(CLUSTER, node);
        self.drain_proxy(None);
    }

    /// A paused master's overdue ticks fire before its queued messages, as the tokio host
    /// hands them to the core (`Master::elapse`: from the pause threshold on, the core resumes,
    /// check-quorum first, §7.2).
    pub(super) fn resume(&mut self, node: u64) {
        let host = &mut self.masters[node as usize];
        host.paused = false;
        let overdue = std::mem::take(&mut host.missed_ticks);
        if let Some(master) = host.core.as_mut() {
            master.elapse(overdue);
        }
        self.drain_master(node, None);
    }
}

/// Whether `message` belongs to the proxy's subscription to a master (§17.1).
pub(super) fn is_subscription(message: &Message) -> bool {
    matches!(
        message,
        Message::Subscribe { .. }
            | Message::Unsubscribe
            | Message::Events { .. }
            | Message::SubscriptionCompacted { .. }
    )
}
