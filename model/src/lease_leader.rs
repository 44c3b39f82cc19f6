//! The leader's side of leases (`docs/protocol.md` §20.2–§20.3): its expiry timers on its own
//! clock, renewed at its election, at every grant or keep-alive it applies while leading, and at
//! every keep-alive it acknowledges without a log entry; the expiry it proposes as a log
//! command in its ballot when a timer runs out; and the rule that decides whether a keep-alive
//! needs the log.
//!
//! Why no lease expires early: a leader's deadline for a lease is never earlier than its
//! holder's (the holder counts from when it *sent* the keep-alive the leader answered, and a
//! new leader counts from its election, which follows every acknowledgement of its predecessor
//! that a client could have counted from); and an expiry takes effect only if no keep-alive was
//! applied from the log between its proposal and its own slot (the generation it carries).
//! A keep-alive is answered without the log only by a leader that renewed the lease through the
//! log in its own ballot — so a deposed leader's expiry, re-proposed by a later leader, finds
//! the generation moved on — and that has no expiry of it in flight.

use crate::config::Bug;
use crate::kv_types::{ClientOperation, ClientResult, KvOperation, KvResult};
use crate::lease_types::{LeaderLeases, LeaseId};
use crate::state::{Role, State};
use crate::step::Step;
use crate::types::{Ballot, Command, NodeId, Slot};
use crate::Config;

/// The expiries leader `node` may propose now: the leases whose deadline on its clock has
/// passed, with no expiry of theirs in flight and no keep-alive of theirs waiting for a read
/// round (which will renew them), while it leads with room in its pipeline.
pub fn expiries_due(config: &Config, state: &State, node: NodeId) -> Vec<LeaseId> {
    let master = &state.masters[node as usize];
    let Role::Leader(leader) = &master.role else {
        return Vec::new();
    };
    let Some(timers) = state.lease.timers.get(&node) else {
        return Vec::new();
    };
    let blocked = master.paused || master.crashed || master.check_quorum_overdue;
    let full = leader.accepted_by.len() >= config.pipeline_slots_max as usize;
    if blocked || full || timers.ballot != leader.ballot {
        return Vec::new();
    }
    let waiting = |lease: LeaseId| {
        leader.reads.values().any(|read| {
            read.operation == ClientOperation::Kv(KvOperation::LeaseKeepAlive { lease })
        })
    };
    timers
        .deadlines
        .iter()
        .filter(|(lease, deadline)| {
            **deadline <= state.lease.now && !timers.expiring.contains(lease) && !waiting(**lease)
        })
        .map(|(lease, _)| *lease)
        .collect()
}

impl Step<'_> {
    /// `BecomeLeader`: every lease of its applied state is renewed now, on its own clock (seeded
    /// bug `ttl-not-renewed-on-election`: counted from when it last applied a renewal).
    pub(crate) fn leases_at_election(&mut self, node: NodeId, ballot: Ballot) {
        if !self.config.has_leases() {
            return;
        }
        let commit_index = self.state.masters[node as usize].commit_index;
        let store = self.state.store_through(self.config, node, commit_index);
        let lease_state = &self.state.lease;
        let deadlines = store
            .leases
            .leases
            .iter()
            .map(|(lease, record)| {
                let renewed_at = if self.config.has(Bug::TtlNotRenewedOnElection) {
                    let applied = lease_state.applied_at.get(&(node, *lease));
                    applied.copied().unwrap_or(0)
                } else {
                    lease_state.now
                };
                (*lease, renewed_at + record.ttl_ticks)
            })
            .collect();
        let timers = LeaderLeases {
            ballot,
            deadlines,
            ..LeaderLeases::default()
        };
        self.state.lease.timers.insert(node, timers);
    }

    /// The lease timers of `node` if it leads: those of its ballot (a leader that never went
    /// through `BecomeLeader`, the initial one, starts with none: no lease exists yet).
    fn leading_timers(&mut self, node: NodeId) -> Option<&mut LeaderLeases> {
        let ballot = self.state.masters[node as usize].leader_state()?.ballot;
        let timers = self.state.lease.timers.entry(node).or_default();
        if timers.ballot != ballot {
            *timers = LeaderLeases {
                ballot,
                ..LeaderLeases::default()
            };
        }
        Some(timers)
    }

    /// §20.2: whether leader `node` answers this keep-alive without a log entry, by a read
    /// round (§9.2): it serves reads, renewed the lease through the log in its ballot, and has
    /// no expiry of it in flight.
    pub(crate) fn keep_alive_without_log_entry(
        &mut self,
        node: NodeId,
        operation: &ClientOperation,
    ) -> bool {
        let ClientOperation::Kv(KvOperation::LeaseKeepAlive { lease }) = operation else {
            return false;
        };
        if !self.serves_reads(node) {
            return false;
        }
        let lease = *lease;
        self.leading_timers(node).is_some_and(|timers| {
            timers.renewed.contains(&lease) && !timers.expiring.contains(&lease)
        })
    }

    /// A read round answered `operation` with `result`: a keep-alive renews the lease's
    /// deadline now (after the keep-alive arrived, so after its client sent it).
    pub(crate) fn lease_read_answered(
        &mut self,
        node: NodeId,
        operation: &ClientOperation,
        result: &ClientResult,
    ) {
        let (
            ClientOperation::Kv(KvOperation::LeaseKeepAlive { lease }),
            ClientResult::Kv(KvResult::LeaseKeptAlive { ttl_ticks, .. }),
        ) = (operation, result)
        else {
            return;
        };
        let now = self.state.lease.now;
        let (lease, ttl_ticks) = (*lease, *ttl_ticks);
        if let Some(timers) = self.leading_timers(node) {
            timers.deadlines.insert(lease, now + ttl_ticks);
        }
        self.state.lease.ghost.kept_alive_without_log_entry = true;
    }

    /// `LeaseExpiryTimeout`: leader `node`'s timer for `lease` ran out; it proposes the expiry
    /// with the generation its applied state shows (nothing if the lease already ended there).
    pub fn on_lease_expiry_timeout(&mut self, node: NodeId, lease: LeaseId) {
        let commit_index = self.state.masters[node as usize].commit_index;
        let store = self.state.store_through(self.config, node, commit_index);
        let Some(record) = store.leases.leases.get(&lease).copied() else {
            if let Some(timers) = self.leading_timers(node) {
                timers.deadlines.remove(&lease);
            }
            return;
        };
        let Some(timers) = self.leading_timers(node) else {
            return;
        };
        timers.expiring.insert(lease);
        let ballot = timers.ballot;
        let command = Command::LeaseExpire {
            lease,
            generation: record.generation,
        };
        let slot = self.state.masters[node as usize].last_slot() + 1;
        let proposal = (ballot, command.clone());
        self.state
            .lease
            .ghost
            .expiry_proposals
            .insert(slot, proposal);
        self.append_command(node, command, None);
    }

    /// `node` applied `command` of `slot`: a grant or keep-alive renews the lease on a
    /// leader's clock and counts as renewed in its ballot; an end removes its timer; an expiry
    /// that turned out stale is no longer in flight.
    pub(crate) fn lease_applied(&mut self, node: NodeId, slot: Slot, command: &Command) {
        let Some(result) = self.state.result_at(self.config, node, slot) else {
            if let Command::LeaseExpire { lease, .. } = command {
                let lease = *lease;
                if let Some(timers) = self.leading_timers(node) {
                    timers.expiring.remove(&lease);
                }
            }
            return;
        };
        let now = self.state.lease.now;
        match (command, result) {
            (
                Command::Kv { .. },
                ClientResult::Kv(
                    KvResult::LeaseGranted { lease, ttl_ticks }
                    | KvResult::LeaseKeptAlive { lease, ttl_ticks },
                ),
            ) => {
                if self.config.has(Bug::TtlNotRenewedOnElection) {
                    self.state.lease.applied_at.insert((node, lease), now);
                }
                if let Some(timers) = self.leading_timers(node) {
                    timers.deadlines.insert(lease, now + ttl_ticks);
                    timers.renewed.insert(lease);
                    timers.expiring.remove(&lease);
                }
            }
            (
                Command::LeaseExpire { lease, .. }
                | Command::Kv {
                    operation: KvOperation::LeaseRevoke { lease },
                    ..
                },
                ClientResult::Kv(KvResult::LeaseRevoked { .. }),
            ) => {
                let lease = *lease;
                if let Some(timers) = self.leading_timers(node) {
                    timers.deadlines.remove(&lease);
                    timers.renewed.remove(&lease);
                    timers.expiring.remove(&lease);
                }
            }
            _ => {}
        }
    }
}
