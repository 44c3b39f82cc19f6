//! The simulation's link faults: a partition cuts a master from every other party, and
//! `stale-ack` holds two followers' messages to the leader until it evicted them while it cuts
//! the others, so that the leader receives acknowledgements from evicted followers.

use vigil_core as core;

use super::workload::get;
use super::world::{Node, World};
use super::CLUSTER;

impl World {
    /// `stale-ack`: hold what two followers send to the leader (their `Accepted` of a new
    /// request's slot among it) and cut the leader from the others, so that all four are
    /// evicted; each follower's held messages are released when it is evicted: the leader
    /// receives acknowledgements from evicted followers, which count for no quorum (§4.3, §5.1).
    pub(super) fn stale_ack_start(&mut self, start: u64) {
        let leader = (0..self.protocol.masters)
            .find(|node| {
                self.masters[*node as usize]
                    .core
                    .as_ref()
                    .is_some_and(|master| master.role() == core::Role::Leader)
            })
            .unwrap_or(0);
        let followers: Vec<u64> = (0..self.protocol.masters)
            .filter(|node| *node != leader)
            .collect();
        let quorum = self.protocol.quorum() as usize;
        let (held, cut) = followers.split_at((quorum - 1).min(followers.len()));
        for node in cut {
            self.cut.push((Node::Master(leader), Node::Master(*node)));
            self.cut.push((Node::Master(*node), Node::Master(leader)));
        }
        // Released when the leader evicts the follower (after `eviction_threshold` heartbeat
        // periods without an acknowledgement), or at the latest at twice that.
        let release = start
            + 2 * self.protocol.eviction_threshold * self.protocol.heartbeat_interval_ticks
            + 2;
        for node in held {
            self.held_links
                .push(((Node::Master(*node), Node::Master(leader)), release));
        }
        self.request(400, 1, CLUSTER, get("k1"));
    }

    /// `stale-ack`: the leader `to` evicted `from`: what `from` sent it and was held arrives now,
    /// after the eviction (before the leader's next check-quorum can depose it).
    pub(super) fn release_held(&mut self, from: Node, to: Node) {
        let held = self.held_links.len();
        self.held_links.retain(|(link, _)| *link != (from, to));
        if self.held_links.len() == held {
            return;
        }
        let tick = self.tick;
        for flight in self
            .flights
            .iter_mut()
            .filter(|flight| flight.from == from && flight.to == to)
        {
            flight.deliver_tick = flight.deliver_tick.min(tick);
        }
    }

    pub(super) fn isolate(&mut self, node: Node) {
        for master in 0..self.protocol.masters {
            let other = Node::Master(master);
            if other != node {
                self.cut.push((node, other));
                self.cut.push((other, node));
            }
        }
        self.cut.push((node, Node::Proxy));
        self.cut.push((Node::Proxy, node));
    }

    pub(super) fn reconnect(&mut self, node: Node) {
        self.cut.retain(|(from, to)| *from != node && *to != node);
    }
}
