//! The protocol's configuration (`docs/protocol.md` §12, §19) and its validation.
//!
//! One struct serves masters and proxies: the host reads it from TOML (serde) and calls
//! [`Config::validate`] at start, which names the offending field so an operator can fix it.

use serde::{Deserialize, Serialize};

use crate::kv::StoreLimits;
use crate::kv_types::{KvOperation, TxnOperation};
use crate::mutation::Mutations;
use crate::types::ClientError;

/// Every limit of §12, and the planted bugs (none in a shipped build). All durations are in
/// ticks; the host maps ticks to time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// N, the size of the static configuration; the quorum is `masters / 2 + 1`.
    pub masters: u64,
    /// The leader's heartbeat period.
    pub heartbeat_interval_ticks: u64,
    /// Consecutive missed heartbeats before a follower is evicted.
    pub eviction_threshold: u64,
    /// Follower silence before `ElectionTimeout`; also the check-quorum window.
    pub election_timeout_ticks: u64,
    /// Accepted but uncommitted slots at the leader.
    pub pipeline_slots_max: u64,
    /// Proposals waiting for a pipeline slot; beyond it a proposal is refused `Overloaded`.
    /// Memory budget (`docs/operations.md`): each costs at most 96 bytes (a test below holds
    /// it) plus its key and value, so the default, 16,384, is 1.5 MiB plus the payloads, four
    /// times what 4,096 closed-loop clients can have waiting.
    pub proposals_queued_max: u64,
    /// `Get`s waiting at the leader for their read round (§9.2); every read that arrives while
    /// a round is in flight shares the next one, and one more than this is refused
    /// `Overloaded`. Memory budget (`docs/operations.md`): each waiting read costs at most 128
    /// bytes (a test in `read.rs` holds it) plus its key, so the default, 16,384, is 2 MiB plus
    /// the keys, four times what 4,096 closed-loop clients can have waiting.
    pub reads_waiting_max: u64,
    /// Committed entries above the snapshot before the log is compacted.
    pub snapshot_threshold_entries: u64,
    /// Proxy requests forwarded and not completed; beyond it `Overloaded`.
    pub in_flight_max: u64,
    /// `NotLeader` redirects a proxy follows per request before `NoLeader`.
    pub redirects_max: u64,
    /// The proxy's deadline per request.
    pub request_timeout_ticks: u64,
    /// Clusters in the proxy's leader cache.
    pub leader_cache_max: u64,
    /// Keys one `Range` returns at most; a larger `limit` returns this many with `more`
    /// (§14.2, §19).
    pub range_limit_max: u64,
    /// Compares, and operations per branch, of one `Txn`; beyond it the proxy refuses it
    /// `InvalidRequest` (§15.2, §19).
    pub txn_operations_max: u64,
    /// Revisions a master's history keeps above its compaction point; the oldest beyond it
    /// are compacted as the revision that exceeds it is applied (§16).
    pub history_revisions_max: u64,
    /// Watches one client connection holds open; beyond it `TooManyWatches` (§17.5).
    pub watches_per_client_max: u64,
    /// `WatchEvents` of one watch waiting for its client; one more due and the watch ends
    /// `Overflow` (§17.5).
    pub watch_events_buffered_max: u64,
    /// The planted bugs switched on, for the conformance mutation matrix (`mutation.rs`).
    /// Always empty without vigil-core's cargo feature `mutations`; such a build does not know
    /// the field, so a configuration that names it is refused as an unknown field.
    #[cfg_attr(not(feature = "mutations"), serde(skip))]
    #[cfg_attr(
        feature = "mutations",
        serde(skip_serializing_if = "Mutations::is_empty")
    )]
    pub mutations: Mutations,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            masters: 5,
            heartbeat_interval_ticks: 1,
            eviction_threshold: 3,
            election_timeout_ticks: 10,
            pipeline_slots_max: 64,
            proposals_queued_max: 16_384,
            reads_waiting_max: 16_384,
            snapshot_threshold_entries: 10_000,
            in_flight_max: 10_000,
            redirects_max: 3,
            request_timeout_ticks: 50,
            leader_cache_max: 1024,
            range_limit_max: 10_000,
            txn_operations_max: 128,
            history_revisions_max: 10_000,
            watches_per_client_max: 1024,
            watch_events_buffered_max: 1024,
            mutations: Mutations::default(),
        }
    }
}

/// A configuration that the protocol cannot run with; the message names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A field that must be at least 1 is 0.
    #[error("config field `{field}` must be at least 1")]
    Zero {
        /// The field's name as in `protocol.md` §12.
        field: &'static str,
    },
    /// A master id outside `0..masters`.
    #[error("config field `masters` is {masters}: node id {node} is not in 0..{masters}")]
    NodeOutOfRange {
        /// The id given to the master.
        node: u64,
        /// The configured number of masters.
        masters: u64,
    },
    /// `eviction_threshold * heartbeat_interval_ticks < election_timeout_ticks` does not hold.
    #[error(
        "config field `eviction_threshold` ({eviction_threshold}) times `heartbeat_interval_ticks` \
         ({heartbeat_interval_ticks}) must be below `election_timeout_ticks` \
         ({election_timeout_ticks}): a follower must be evicted before a healthy leader is suspected"
    )]
    EvictionNotBeforeElection {
        /// The configured threshold.
        eviction_threshold: u64,
        /// The configured heartbeat period.
        heartbeat_interval_ticks: u64,
        /// The configured election timeout.
        election_timeout_ticks: u64,
    },
    /// A cluster name a proxy is configured with is not valid.
    #[error("cluster name {name:?} is invalid: {reason}")]
    ClusterName {
        /// The name as configured.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A cluster configured at a proxy lists no master, or one master twice.
    #[error("cluster {name:?}: {reason}")]
    ClusterMasters {
        /// The cluster's name.
        name: String,
        /// What is wrong with its master list.
        reason: &'static str,
    },
}

/// The longest cluster name a proxy accepts in its configuration.
pub const CLUSTER_NAME_LENGTH_MAX: usize = 64;

impl Config {
    /// Checks every rule of §12; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("masters", self.masters),
            ("heartbeat_interval_ticks", self.heartbeat_interval_ticks),
            ("eviction_threshold", self.eviction_threshold),
            ("election_timeout_ticks", self.election_timeout_ticks),
            ("pipeline_slots_max", self.pipeline_slots_max),
            ("reads_waiting_max", self.reads_waiting_max),
            (
                "snapshot_threshold_entries",
                self.snapshot_threshold_entries,
            ),
            ("in_flight_max", self.in_flight_max),
            ("request_timeout_ticks", self.request_timeout_ticks),
            ("leader_cache_max", self.leader_cache_max),
            ("range_limit_max", self.range_limit_max),
            ("txn_operations_max", self.txn_operations_max),
            ("history_revisions_max", self.history_revisions_max),
            ("watches_per_client_max", self.watches_per_client_max),
            ("watch_events_buffered_max", self.watch_events_buffered_max),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::Zero { field });
        }
        let eviction_ticks = self
            .eviction_threshold
            .saturating_mul(self.heartbeat_interval_ticks);
        if eviction_ticks >= self.election_timeout_ticks {
            return Err(ConfigError::EvictionNotBeforeElection {
                eviction_threshold: self.eviction_threshold,
                heartbeat_interval_ticks: self.heartbeat_interval_ticks,
                election_timeout_ticks: self.election_timeout_ticks,
            });
        }
        Ok(())
    }

    /// Ticks falling due at once from which the host takes the gap for a stop-the-world pause
    /// (a GC pause, `SIGSTOP`) and calls [`crate::Master::resume`] instead of ticking
    /// (`docs/protocol.md` §7.2): `(max(eviction_threshold, 2) - 1) * heartbeat_interval_ticks
    /// + 1`.
    ///
    /// Why this value: overdue ticks fire back to back, with no message handled between them.
    /// A gap of at most `(eviction_threshold - 1) * heartbeat_interval_ticks` ticks fires at most
    /// `eviction_threshold - 1` heartbeats, so a follower that had missed none (its last
    /// acknowledgement still in flight) is not evicted, and the gap is shorter than the
    /// check-quorum window and the election timeout (validation:
    /// `eviction_threshold * heartbeat_interval_ticks < election_timeout_ticks`), so each of
    /// those timers fires at most once in it, as it could with ordinary ticks whose messages
    /// arrived that much later. One tick more could fire `eviction_threshold` heartbeats in a
    /// row and evict every follower: that is a pause. With `eviction_threshold = 1` a single
    /// heartbeat already evicts, as with ordinary ticks, so the bound is one heartbeat period.
    pub fn pause_threshold_ticks(&self) -> u64 {
        self.eviction_threshold
            .max(2)
            .saturating_sub(1)
            .saturating_mul(self.heartbeat_interval_ticks)
            .saturating_add(1)
    }

    /// What bounds the store's answers and history (§14.2, §16).
    pub fn store_limits(&self) -> StoreLimits {
        StoreLimits {
            range_limit_max: self.range_limit_max,
            history_revisions_max: self.history_revisions_max,
        }
    }

    /// §15.2: a `Txn` with more than `txn_operations_max` compares or operations in a branch,
    /// or a branch that puts one key twice, is `InvalidRequest`; every other request is valid.
    pub fn check_kv_request(&self, operation: &KvOperation) -> Result<(), ClientError> {
        let KvOperation::Txn(request) = operation else {
            return Ok(());
        };
        let max = usize::try_from(self.txn_operations_max).unwrap_or(usize::MAX);
        let over = |branch: &[TxnOperation]| branch.len() > max;
        let puts_a_key_twice = |branch: &[TxnOperation]| {
            let mut keys = std::collections::BTreeSet::new();
            branch.iter().any(|operation| match operation {
                TxnOperation::Put(put) => !keys.insert(&put.key),
                _ => false,
            })
        };
        let invalid = request.compare.len() > max
            || over(&request.success)
            || over(&request.failure)
            || puts_a_key_twice(&request.success)
            || puts_a_key_twice(&request.failure);
        if invalid {
            return Err(ClientError::InvalidRequest);
        }
        Ok(())
    }

    /// A majority of the full static configuration (§1): never changes.
    pub fn quorum(&self) -> u64 {
        self.masters / 2 + 1
    }

    /// `election_timeout_ticks + node * election_timeout_ticks / masters` (§6.1): a
    /// deterministic stagger in place of randomness.
    pub fn election_timeout_ticks_for(&self, node: u64) -> u64 {
        self.election_timeout_ticks + node * self.election_timeout_ticks / self.masters.max(1)
    }
}

/// Checks a cluster name a proxy is configured with: 1 to 64 bytes of ASCII letters, digits,
/// `-`, `_` or `.`. (A request naming any other string is simply an unknown cluster.)
pub fn validate_cluster_name(name: &str) -> Result<(), ConfigError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > CLUSTER_NAME_LENGTH_MAX {
        Some("it is longer than 64 bytes")
    } else if !name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
    {
        Some("only ASCII letters, digits, '-', '_' and '.' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ConfigError::ClusterName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
        assert_eq!(Config::default().quorum(), 3);
    }

    #[test]
    fn the_pause_threshold_is_one_tick_past_eviction_threshold_minus_one_heartbeats() {
        assert_eq!(Config::default().pause_threshold_ticks(), 3);
        let tcp = Config {
            heartbeat_interval_ticks: 8,
            election_timeout_ticks: 25,
            ..Config::default()
        };
        assert_eq!(tcp.pause_threshold_ticks(), 17);
        let single_miss = Config {
            heartbeat_interval_ticks: 2,
            eviction_threshold: 1,
            ..Config::default()
        };
        assert_eq!(single_miss.pause_threshold_ticks(), 3);
        for config in [Config::default(), tcp, single_miss] {
            let below = config.pause_threshold_ticks() - 1;
            let heartbeats_max = below.div_ceil(config.heartbeat_interval_ticks);
            assert!(heartbeats_max < config.eviction_threshold.max(2));
            assert!(below < config.election_timeout_ticks);
        }
    }

    #[test]
    fn errors_name_the_field() {
        let config = Config {
            pipeline_slots_max: 0,
            ..Config::default()
        };
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("`pipeline_slots_max`"), "{message}");
        let config = Config {
            eviction_threshold: 10,
            ..Config::default()
        };
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("`eviction_threshold`"), "{message}");
    }

    /// The per-item bounds `docs/operations.md` sizes the queues with, payload bytes apart.
    #[test]
    fn a_queued_proposal_fits_its_memory_budget() {
        let bytes = std::mem::size_of::<(crate::leader::ProposalOwner, crate::Operation)>();
        assert!(bytes <= 96, "{bytes} bytes");
    }

    #[test]
    fn cluster_names() {
        assert!(validate_cluster_name("local").is_ok());
        assert!(validate_cluster_name("").is_err());
        assert!(validate_cluster_name("a b").is_err());
        assert!(validate_cluster_name(&"x".repeat(65)).is_err());
    }
}
