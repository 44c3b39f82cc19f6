//! What the ghost records when a lease command is first chosen (`docs/protocol.md` §20.5): the
//! lease ledger (grants that created a lease, ends that ended one), whether an expiry came while
//! its holder still counted the lease valid, whether a key of an ended lease survived the end,
//! and the facts the lease witnesses need.
//!
//! It judges the store of the master that first committed the slot, before and after it (so a
//! seeded bug in the store shows), against the holders' own clocks: a second path beside the
//! leader's timers, which decide expiry.

use crate::kv_types::{ClientResult, KvOperation, KvResult};
use crate::lease_types::LeaseId;
use crate::state::KvHistoryEvent;
use crate::step::Step;
use crate::types::{Ballot, Command, Entry, NodeId, RequestId, Slot};

/// How a chosen command changed the leases.
enum LeaseEffect {
    /// A grant created the lease.
    Granted(LeaseId),
    /// A revoke or an expiry ended it.
    Ended {
        /// The lease.
        lease: LeaseId,
        /// By an expiry (not a client's revoke).
        expired: bool,
    },
    /// An expiry that applied as a no-op.
    StaleExpiry,
    /// Nothing of leases.
    None,
}

impl Step<'_> {
    /// `slot` was chosen, first seen committed at `node` with `entry`.
    pub(crate) fn lease_chosen(&mut self, node: NodeId, slot: Slot, entry: &Entry) {
        if !self.config.has_leases() {
            return;
        }
        let effect = self.lease_effect(node, slot, &entry.command);
        self.judge_expiry_proposal(slot, entry, &effect);
        let ballot = self.state.masters[node as usize].leader.unwrap_or_default();
        let ghost = &mut self.state.lease.ghost;
        match effect {
            LeaseEffect::Granted(lease) => {
                ghost.granted += 1;
                ghost.live += 1;
                ghost.granted_in.insert(lease, ballot);
            }
            LeaseEffect::Ended { lease, expired } => {
                if ghost.live == 0 {
                    ghost.ended_unbalanced = true;
                }
                ghost.ended += 1;
                ghost.live = ghost.live.saturating_sub(1);
                if expired {
                    self.judge_expiry(lease, ballot);
                }
            }
            LeaseEffect::StaleExpiry | LeaseEffect::None => {}
        }
    }

    /// What the command of `slot` did to the leases at `node`, and whether its end left a key
    /// of the lease behind.
    fn lease_effect(&mut self, node: NodeId, slot: Slot, command: &Command) -> LeaseEffect {
        let mut store = self.state.store_through(self.config, node, slot - 1);
        let result = store.apply_command(command);
        let ended = |lease: LeaseId| {
            matches!(
                result,
                Some(ClientResult::Kv(KvResult::LeaseRevoked { .. }))
            )
            .then_some(lease)
        };
        let effect = match command {
            Command::LeaseExpire { lease, .. } => match ended(*lease) {
                Some(lease) => LeaseEffect::Ended {
                    lease,
                    expired: true,
                },
                None => LeaseEffect::StaleExpiry,
            },
            Command::Kv { operation, .. } => match (operation, &result) {
                (
                    KvOperation::LeaseGrant { lease, .. },
                    Some(ClientResult::Kv(KvResult::LeaseGranted { .. })),
                ) => LeaseEffect::Granted(*lease),
                (KvOperation::LeaseRevoke { lease }, _) => match ended(*lease) {
                    Some(lease) => LeaseEffect::Ended {
                        lease,
                        expired: false,
                    },
                    None => LeaseEffect::None,
                },
                _ => LeaseEffect::None,
            },
            _ => LeaseEffect::None,
        };
        if let LeaseEffect::Ended { lease, expired } = effect {
            if !store.keys_of(lease).is_empty() {
                self.state.lease.ghost.ephemeral_outlived = true;
            }
            if expired {
                self.record_expiry(slot, lease, result);
            }
        }
        effect
    }

    /// A lease's end by an expiry goes into the revisioned history as a revoke by a thread of
    /// its own, invoked and returned at its commit, so that the linearizability checker sees
    /// the deletes (a client's revoke is there already).
    fn record_expiry(&mut self, slot: Slot, lease: LeaseId, result: Option<ClientResult>) {
        let Some(ClientResult::Kv(result)) = result else {
            return;
        };
        let request_id: RequestId = RequestId::MAX - slot;
        let after = self.state.history.len() as u32;
        self.state.kv_history.push(KvHistoryEvent::Invoke {
            request_id,
            operation: KvOperation::LeaseRevoke { lease },
            after,
        });
        self.state.kv_history.push(KvHistoryEvent::Return {
            request_id,
            result: Some(result),
            after,
        });
    }

    /// An expiry of `lease` took effect now, committed under `ballot`: early if its holder's
    /// last acknowledged keep-alive is still within ttl on the holder's clock.
    fn judge_expiry(&mut self, lease: LeaseId, ballot: Ballot) {
        let now = self.state.lease.now;
        let holder = self.state.lease.holders.get(&lease).copied();
        let abandoned = holder.is_some_and(|holder| {
            let client = holder.client;
            let sent = self.state.clients[client as usize].sent as usize;
            sent >= self.config.script_len(client) && holder.sent_at.is_none()
        });
        let ghost = &mut self.state.lease.ghost;
        ghost.expired_at.insert(lease, now);
        if holder
            .and_then(|holder| holder.valid_until)
            .is_some_and(|until| now < until)
        {
            ghost.expired_early = true;
        }
        if abandoned {
            ghost.abandoned_expired = true;
        }
        if ghost
            .granted_in
            .get(&lease)
            .is_some_and(|granted| *granted != ballot)
        {
            ghost.expired_across_leader_change = true;
        }
    }

    /// The expiry proposed in `slot`, if any, did not take effect: another command was chosen
    /// there, or it was chosen in a later ballot and applied as a no-op.
    fn judge_expiry_proposal(&mut self, slot: Slot, entry: &Entry, effect: &LeaseEffect) {
        let ghost = &mut self.state.lease.ghost;
        let Some((ballot, command)) = ghost.expiry_proposals.remove(&slot) else {
            return;
        };
        let replaced = command != entry.command;
        let stale_later = entry.ballot != ballot && matches!(effect, LeaseEffect::StaleExpiry);
        if replaced || stale_later {
            ghost.deposed_expiry_without_effect = true;
        }
    }
}
