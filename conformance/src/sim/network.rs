//! The simulated network: messages in flight with a latency (mostly within the tick, as on
//! loopback), links a fault cuts or holds, and delivery in bounded rounds per tick.

use std::collections::VecDeque;

use vigil_core::{Message, Peer};

use super::world::{Node, World};
use super::{ACCEPTED_DELAY_TICKS, CLUSTER, DELIVERY_ROUNDS_MAX};

/// A message in flight.
#[derive(Clone, Debug)]
pub(super) struct Flight {
    pub(super) from: Node,
    pub(super) to: Node,
    pub(super) message: Message,
    pub(super) deliver_tick: u64,
    pub(super) id: String,
    pub(super) lamport: u64,
}

impl World {
    /// Delivers every message due by this tick, including the answers they cause (loopback
    /// round trips are much shorter than a tick), in rounds bounded by [`DELIVERY_ROUNDS_MAX`].
    pub(super) fn deliver_due(&mut self) {
        for _ in 0..DELIVERY_ROUNDS_MAX {
            if !self
                .flights
                .iter()
                .any(|flight| flight.deliver_tick <= self.tick && self.deliverable(flight))
            {
                return;
            }
            self.deliver_round();
        }
    }

    pub(super) fn deliverable(&self, flight: &Flight) -> bool {
        match flight.to {
            Node::Master(node) => {
                let host = &self.masters[node as usize];
                host.core.is_some() && !host.paused
            }
            Node::Proxy => true,
        }
    }

    /// Delivers, in order, every message due by this tick that was in flight at its start.
    pub(super) fn deliver_round(&mut self) {
        let mut due = Vec::new();
        let mut kept = VecDeque::new();
        for flight in self.flights.drain(..) {
            if flight.deliver_tick <= self.tick {
                due.push(flight);
            } else {
                kept.push_back(flight);
            }
        }
        self.flights = kept;
        for flight in due {
            if let Node::Master(node) = flight.to {
                let host = &self.masters[node as usize];
                if host.core.is_none() {
                    continue;
                }
                if host.paused {
                    // TCP keeps it until the master runs again.
                    self.flights.push_back(flight);
                    continue;
                }
            }
            self.deliver(flight);
        }
    }

    pub(super) fn deliver(&mut self, flight: Flight) {
        match flight.to {
            Node::Master(node) => {
                let from = match flight.from {
                    Node::Master(from) => Peer::Master(from),
                    Node::Proxy => Peer::Proxy(0),
                };
                let Some(master) = self.masters[node as usize].core.as_mut() else {
                    return;
                };
                if master.step(from, flight.message.clone()).is_ok() {
                    self.drain_master(node, Some(&flight));
                }
            }
            Node::Proxy => {
                let Node::Master(from) = flight.from else {
                    return;
                };
                if self
                    .proxy
                    .step(CLUSTER, from, flight.message.clone())
                    .is_ok()
                {
                    self.drain_proxy(Some(&flight));
                }
            }
        }
    }

    /// Sends `message` unless the link is cut or the loss fault eats it.
    pub(super) fn send(
        &mut self,
        from: Node,
        to: Node,
        message: Message,
        id: String,
        lamport: u64,
    ) {
        if self.cut.contains(&(from, to)) {
            // A subscription message lost on a cut link: its connection closed.
            let subscription = matches!(
                message,
                Message::Subscribe { .. }
                    | Message::Unsubscribe
                    | Message::Events { .. }
                    | Message::SubscriptionCompacted { .. }
            );
            if let (true, Node::Master(node), Node::Proxy)
            | (true, Node::Proxy, Node::Master(node)) = (subscription, from, to)
            {
                self.lost_connections.push((node, lamport));
            }
            return;
        }
        let between_masters = matches!((from, to), (Node::Master(_), Node::Master(_)));
        if between_masters && self.loss_per_mille > 0 && self.rng.below(1000) < self.loss_per_mille
        {
            return;
        }
        // Mostly within the tick (loopback); one message in eight waits for the next tick.
        let mut latency = u64::from(self.rng.below(8) == 0);
        if let (Node::Proxy, Some(until)) = (from, self.hold_proxy_until) {
            latency = latency.max(until.saturating_sub(self.tick));
        }
        for (_, until) in self
            .held_links
            .iter()
            .filter(|(link, _)| *link == (from, to))
        {
            latency = latency.max(until.saturating_sub(self.tick));
        }
        if !self.reproposals.is_empty() && matches!(message, Message::Accepted { .. }) {
            latency = latency.max(ACCEPTED_DELAY_TICKS);
        }
        self.flights.push_back(Flight {
            from,
            to,
            message,
            deliver_tick: self.tick + latency,
            id,
            lamport,
        });
    }
}
