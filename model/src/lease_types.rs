//! The vocabulary of leases (`docs/protocol.md` §20): a lease's id and its time-to-live in
//! ticks, what the store keeps of a lease (its generation, the fence a leader's expiry is
//! checked against), the refusals of a lease operation, and the lease state the model keeps
//! outside the store — the one clock, the leaders' expiry timers, the holders' own validity and
//! the ghost the lease properties read.
//!
//! Time is one clock of ticks shared by every participant: the timing assumption of §20.4
//! (clocks advance at the same rate, up to a drift the client's margin covers) with no drift,
//! so the model's margin is 0.

use crate::types::{Ballot, ClientId, Command, NodeId, Slot};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A lease, named by the client that grants it (etcd's `LeaseGrantRequest.ID`, which a client
/// may choose): unique over the run in every preset.
pub type LeaseId = u8;

/// A count of ticks of the one clock (§20.4).
pub type Tick = u32;

/// A lease's durable generation: 0 at its grant, one more for every keep-alive that went
/// through the log. An expiry carries the generation its leader saw and applies only if it is
/// still the lease's (§20.3).
pub type LeaseGeneration = u32;

/// What the store keeps of a live lease (durable: the log makes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The time-to-live it was granted with.
    pub ttl_ticks: Tick,
    /// Keep-alives applied from the log since the grant.
    pub generation: LeaseGeneration,
}

/// The store's leases and their bounds (§20.6).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseTable {
    /// Every live lease.
    pub leases: BTreeMap<LeaseId, LeaseRecord>,
    /// Live leases at most; one more grant is refused `TooManyLeases` (0: no lease API).
    pub leases_max: u8,
    /// Keys attached to one lease at most; one more is refused `TooManyKeys`.
    pub keys_per_lease_max: u8,
    /// Seeded bug `expire-by-deposed-leader`: an expiry applies whatever the generation.
    pub expire_ignores_generation: bool,
    /// Seeded bug `ephemeral-outlives-lease`: a lease ends without deleting its keys.
    pub end_keeps_keys: bool,
}

/// Why a lease operation was refused (an `Ok` result: the operation was ordered and refused,
/// as a `Cas`'s `VersionMismatch` is).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LeaseError {
    /// No live lease has that id: never granted, revoked or expired.
    NotFound,
    /// A grant of an id that is live.
    Exists,
    /// A grant while `leases_max` leases are live.
    TooManyLeases,
    /// A put that would attach one key more than `keys_per_lease_max` to the lease.
    TooManyKeys,
}

/// What a leader keeps of the leases while it leads one ballot (volatile, §20.3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaderLeases {
    /// The ballot it leads; timers of an older ballot of the same master mean nothing.
    pub ballot: Ballot,
    /// Per lease, the tick at which its own clock says it expires.
    pub deadlines: BTreeMap<LeaseId, Tick>,
    /// Leases renewed through the log in this ballot (a grant or a keep-alive it applied while
    /// leading): only their keep-alives may be answered without a log entry.
    pub renewed: BTreeSet<LeaseId>,
    /// Leases whose expiry it proposed and has not seen applied: their keep-alives go through
    /// the log, so that one acknowledged after the proposal makes it stale.
    pub expiring: BTreeSet<LeaseId>,
}

/// A lease as its holder's client library sees it (§20.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseHolder {
    /// The client holding it.
    pub client: ClientId,
    /// When the outstanding grant or keep-alive was sent, on the client's clock.
    pub sent_at: Option<Tick>,
    /// The lease is valid for the client before this tick: the send time of its last
    /// acknowledged grant or keep-alive plus the ttl (minus the margin, 0 here). `None`: not
    /// granted yet, or lost (a keep-alive answered `NotFound`).
    pub valid_until: Option<Tick>,
}

/// What the lease properties read: facts about the past no state field shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseGhost {
    /// Grants chosen that created a lease.
    pub granted: u32,
    /// Revocations and expiries chosen that ended one.
    pub ended: u32,
    /// Leases live in the chosen history (`granted - ended`, kept on its own).
    pub live: u32,
    /// A lease ended twice, or one never granted ended.
    pub ended_unbalanced: bool,
    /// Per lease, the ballot of the leader that committed its grant.
    pub granted_in: BTreeMap<LeaseId, Ballot>,
    /// Per lease, the tick at which an expiry of it took effect.
    pub expired_at: BTreeMap<LeaseId, Tick>,
    /// An expiry was chosen while its holder's last acknowledged keep-alive was within ttl, or
    /// a holder was told its lease is alive for a ttl within which it expired.
    pub expired_early: bool,
    /// A key attached to a lease was present in the state the lease's end made.
    pub ephemeral_outlived: bool,
    /// A lease whose holder sent nothing more expired.
    pub abandoned_expired: bool,
    /// A lease expired by a leader of a later ballot than the one that granted it.
    pub expired_across_leader_change: bool,
    /// Expiries proposed, by slot: the proposing leader's ballot and the command.
    pub expiry_proposals: BTreeMap<Slot, (Ballot, Command)>,
    /// An expiry proposed by a leader did not take effect: another command was chosen in its
    /// slot, or it was chosen in a later ballot and applied as a no-op.
    pub deposed_expiry_without_effect: bool,
    /// A keep-alive was acknowledged without a log entry.
    pub kept_alive_without_log_entry: bool,
}

/// Everything of leases the model keeps outside the store (`State::lease`); empty and unused
/// without lease operations, so it adds no state to the other presets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseState {
    /// The one clock (§20.4).
    pub now: Tick,
    /// Per master that leads or led, its lease timers of the ballot it led last.
    pub timers: BTreeMap<NodeId, LeaderLeases>,
    /// Per lease, its holder's library.
    pub holders: BTreeMap<LeaseId, LeaseHolder>,
    /// Clients in a stop-the-world pause: they take no step and receive nothing.
    pub paused_clients: BTreeSet<ClientId>,
    /// Seeded bug `ttl-not-renewed-on-election` only: per master and lease, the tick at which
    /// the master last applied the lease's grant or keep-alive.
    pub applied_at: BTreeMap<(NodeId, LeaseId), Tick>,
    /// The ghost.
    pub ghost: LeaseGhost,
}
