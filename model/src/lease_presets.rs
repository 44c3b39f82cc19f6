//! The presets of leases (`docs/protocol.md` §20): a holder that grants a lease with a ttl of
//! one tick, attaches key 0 to it, keeps it alive once and then abandons it; on the small
//! three-master base of `crate::presets`, with the clock bounded and one client pause. One
//! preset keeps the first leader (`ci-lease`), one adds a leader change (`ci-lease-election`).

use crate::config::{Budget, Bug, ClientScript, Config, KvClientScript, KvStep};
use crate::kv_types::{KvOperation, PutRequest};
use crate::lease_types::{LeaseId, Tick};
use crate::presets::{exhaustive, Preset, CLUSTER};

/// The holder's lease.
const LEASE: LeaseId = 0;
/// Its ttl: one tick, the least that lets a keep-alive matter.
const TTL_TICKS: Tick = 1;

/// Grant, attach key 0, keep alive once, then nothing more: the lease is abandoned.
fn holder_steps() -> Vec<KvStep> {
    vec![
        KvStep::Operation(KvOperation::LeaseGrant {
            lease: LEASE,
            ttl_ticks: TTL_TICKS,
        }),
        KvStep::Operation(KvOperation::LeasePut {
            put: PutRequest {
                key: 0,
                value: 1,
                prev_kv: false,
            },
            lease: LEASE,
        }),
        KvStep::Operation(KvOperation::LeaseKeepAlive { lease: LEASE }),
    ]
}

/// The base with one lease holder running `steps`.
fn lease_config(steps: Vec<KvStep>) -> Config {
    let mut config = crate::presets::base(Vec::<ClientScript>::new());
    config.kv_clients = vec![KvClientScript {
        cluster: CLUSTER,
        steps,
    }];
    config
}

/// One leader: the grant and the put through the log, the keep-alive answered by a read round
/// (the grant renewed the lease in the leader's ballot), the lease expired by the leader's
/// timer once its holder stops; two ticks, one pause of the holder.
pub fn ci_lease() -> Preset {
    let mut config = lease_config(holder_steps());
    config.budget = Budget {
        ticks: 2,
        client_pauses: 1,
        ..Budget::default()
    };
    exhaustive(
        "ci-lease",
        config,
        vec![
            "abandoned_lease_expired",
            "lease_kept_alive_without_log_entry",
        ],
    )
}

/// A leader change with a lease live: the new leader renews it at its election and expires it
/// later in its own ballot; an expiry the deposed leader proposed is replaced in its slot.
pub fn ci_lease_election() -> Preset {
    let mut config = lease_config(holder_steps());
    config.budget = Budget {
        ticks: 1,
        election_timeouts: 2,
        ..Budget::default()
    };
    exhaustive(
        "ci-lease-election",
        config,
        vec![
            "lease_expired_across_leader_change",
            "deposed_expiry_without_effect",
        ],
    )
}

/// The preset that shows a lease's seeded bug (`presets::for_bug` switches it on).
pub fn lease_bug_preset(bug: Bug) -> Preset {
    let (name, preset) = match bug {
        Bug::ExpireByDeposedLeader => ("bug-expire-by-deposed-leader", ci_lease_election()),
        Bug::TtlNotRenewedOnElection => ("bug-ttl-not-renewed-on-election", ci_lease_election()),
        Bug::EphemeralOutlivesLease => ("bug-ephemeral-outlives-lease", ci_lease()),
        other => unreachable!("not a lease's seeded bug: {other:?}"),
    };
    Preset {
        name,
        witnesses: vec![],
        ..preset
    }
}
