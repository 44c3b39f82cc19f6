//! Planted bugs: the core twins of the model's seeded bugs (`vigil-model`'s `Bug`, with the same
//! kebab-case names), switched on at run time for the conformance mutation matrix, which must
//! catch each of them (`conformance/tests/mutations.rs`, `docs/trace.md` §7).
//!
//! A [`Mutations`] set is part of the core's [`Config`](crate::Config); a handler with a planted
//! branch asks `self.config.mutations.contains(Mutation::X)`. Only with the cargo feature
//! `mutations` (off by default) can the set hold anything: without it [`Mutations`] is a
//! zero-sized type, [`Mutations::contains`] is a `const fn` that returns false, and
//! [`Mutations::planted`] refuses every non-empty list, so a build without the feature (every
//! shipped binary) has no live planted branch: the compiler removes them as dead code. One build
//! with the feature runs the whole matrix, so no feature per bug poisons the other binaries of a
//! workspace build through feature unification.
//!
//! The model's `paused-heartbeat` has no twin here. In the model the heartbeat timer is an action
//! of its own that a paused master could still take; in the core a heartbeat is an output of
//! [`Master::tick`](crate::Master::tick), which the host calls from the same task that a pause
//! stops, and the core learns of a pause only at [`Master::resume`](crate::Master::resume), after
//! it ended. A heartbeat sent during a pause needs a host that sends from another thread than
//! the one that drives the core: a host design, not a branch in a core handler.

use std::fmt;
use std::str::FromStr;

/// One planted bug of the core, named as the model's seeded bug it mirrors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mutation {
    /// `error-path-leak`: the proxy returns early on an unknown cluster name and leaks the
    /// pending request without completing it (the incident, `docs/incident.md`; `proxy.rs`,
    /// `admit`).
    ErrorPathLeak,
    /// `double-complete`: the proxy's request timeout answers the client but leaves the request
    /// pending, so a late reply completes it a second time (`proxy.rs`, `on_request_timeout`).
    DoubleComplete,
    /// `evicted-ack-counts`: the leader counts `Accepted`s from evicted followers towards the
    /// quorum (`leader.rs`, `handle_accepted`, `maybe_commit`).
    EvictedAckCounts,
    /// `forget-promise`: a master promises in memory only, so after a restart it can promise or
    /// accept below a ballot it already promised (`follower.rs`, `handle_prepare`).
    ForgetPromise,
    /// `stale-leader-read`: a leader answers a `Get` from its applied state at once, without a
    /// quorum confirming that it still leads (`leader.rs`, `handle_propose`).
    StaleLeaderRead,
    /// `read-before-own-ballot-commit`: a new leader serves `Get`s without a log slot before it
    /// committed the slots its phase 1 re-proposed (`read.rs`, `serves_reads`).
    ReadBeforeOwnBallotCommit,
    /// `own-accept-before-persist`: the leader counts its own acceptance of a slot when it
    /// appends it, before its write is durable (`master.rs`, `accept_own_once_durable`).
    OwnAcceptBeforePersist,
    /// `watch-resume-from-current`: the proxy resumes a lost subscription from the new master's
    /// next revision instead of the lowest revision its watches are owed, so the revisions
    /// committed meanwhile are never delivered (`watch.rs`, `connection_closed`).
    WatchResumeFromCurrent,
    /// `txn-partial-apply`: a `Txn` whose branch reads a refused revision after a write keeps
    /// the writes before it (`master.rs`, `commit_slot`; `txn.rs`, `apply_txn`).
    TxnPartialApply,
    /// `watch-leak-on-error`: a watch on an unknown cluster is held and never answered nor
    /// ended (the incident for streams; `watch.rs`, `create_watch`).
    WatchLeakOnError,
    /// `compaction-skips-watch`: a watch behind the compaction point skips to it instead of
    /// ending `Compacted` (`watch.rs`, `handle_subscription_compacted`).
    CompactionSkipsWatch,
    /// `watch-now-before-report`: a watch from revision 0 is answered `WatchCreated` at once
    /// and starts at the stream's next revision, without waiting for the master's report
    /// (`watch_now.rs`, `create_watch_from_now`).
    WatchNowBeforeReport,
}

impl Mutation {
    /// Every planted bug, in the order of the model's `Bug::ALL` (without `paused-heartbeat`).
    pub const ALL: [Mutation; 12] = [
        Mutation::ErrorPathLeak,
        Mutation::DoubleComplete,
        Mutation::EvictedAckCounts,
        Mutation::ForgetPromise,
        Mutation::StaleLeaderRead,
        Mutation::ReadBeforeOwnBallotCommit,
        Mutation::OwnAcceptBeforePersist,
        Mutation::WatchResumeFromCurrent,
        Mutation::TxnPartialApply,
        Mutation::WatchLeakOnError,
        Mutation::CompactionSkipsWatch,
        Mutation::WatchNowBeforeReport,
    ];

    /// The name on the command line, in configurations and in reports: the model's.
    pub const fn name(self) -> &'static str {
        match self {
            Mutation::ErrorPathLeak => "error-path-leak",
            Mutation::DoubleComplete => "double-complete",
            Mutation::EvictedAckCounts => "evicted-ack-counts",
            Mutation::ForgetPromise => "forget-promise",
            Mutation::StaleLeaderRead => "stale-leader-read",
            Mutation::ReadBeforeOwnBallotCommit => "read-before-own-ballot-commit",
            Mutation::OwnAcceptBeforePersist => "own-accept-before-persist",
            Mutation::WatchResumeFromCurrent => "watch-resume-from-current",
            Mutation::TxnPartialApply => "txn-partial-apply",
            Mutation::WatchLeakOnError => "watch-leak-on-error",
            Mutation::CompactionSkipsWatch => "compaction-skips-watch",
            Mutation::WatchNowBeforeReport => "watch-now-before-report",
        }
    }

    /// Every name, comma-separated, for error messages.
    pub fn names() -> String {
        Mutation::ALL.map(Mutation::name).join(", ")
    }
}

impl fmt::Display for Mutation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A name that is not a planted bug of the core.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown mutation `{name}` (known: {known})", known = Mutation::names())]
pub struct UnknownMutation {
    /// The name given.
    pub name: String,
}

impl FromStr for Mutation {
    type Err = UnknownMutation;

    fn from_str(name: &str) -> Result<Mutation, UnknownMutation> {
        Mutation::ALL
            .into_iter()
            .find(|mutation| mutation.name() == name)
            .ok_or_else(|| UnknownMutation {
                name: name.to_string(),
            })
    }
}

/// Planted bugs asked for from a build without the cargo feature `mutations`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "planted bugs ({requested}) need vigil-core's cargo feature `mutations`, which this build \
     does not have"
)]
pub struct MutationsUnavailable {
    /// The names asked for, comma-separated.
    pub requested: String,
}

/// Whether this build can plant bugs (vigil-core's cargo feature `mutations`).
#[cfg(feature = "mutations")]
pub const MUTATIONS_AVAILABLE: bool = true;
/// Whether this build can plant bugs (vigil-core's cargo feature `mutations`).
#[cfg(not(feature = "mutations"))]
pub const MUTATIONS_AVAILABLE: bool = false;

/// The planted bugs switched on: a set of [`Mutation`]s, empty by default.
#[cfg(feature = "mutations")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Mutations {
    /// Bit `mutation as u8` is set for each mutation in the set.
    bits: u16,
}

/// The planted bugs switched on: always empty, because this build has no cargo feature
/// `mutations`.
#[cfg(not(feature = "mutations"))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Mutations {
    /// Keeps the type from being built outside this file.
    _empty: (),
}

impl Mutations {
    /// The set of `planted`; an error if it is not empty and this build has no cargo feature
    /// `mutations`.
    pub fn planted(
        planted: impl IntoIterator<Item = Mutation>,
    ) -> Result<Mutations, MutationsUnavailable> {
        let mut mutations = Mutations::default();
        let mut refused = Vec::new();
        for mutation in planted {
            if !mutations.insert(mutation) {
                refused.push(mutation.name());
            }
        }
        if refused.is_empty() {
            return Ok(mutations);
        }
        Err(MutationsUnavailable {
            requested: refused.join(", "),
        })
    }

    /// Every mutation in the set, in [`Mutation::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = Mutation> + '_ {
        Mutation::ALL
            .into_iter()
            .filter(|mutation| self.contains(*mutation))
    }

    /// True if no bug is planted.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

#[cfg(feature = "mutations")]
impl Mutations {
    /// True if `mutation` is planted.
    pub const fn contains(&self, mutation: Mutation) -> bool {
        self.bits & (1 << mutation as u16) != 0
    }

    /// Plants `mutation`; true (a build with the feature can always plant).
    fn insert(&mut self, mutation: Mutation) -> bool {
        self.bits |= 1 << mutation as u16;
        true
    }
}

#[cfg(not(feature = "mutations"))]
impl Mutations {
    /// False: this build cannot plant bugs.
    pub const fn contains(&self, _mutation: Mutation) -> bool {
        false
    }

    /// False: this build cannot plant bugs.
    fn insert(&mut self, _mutation: Mutation) -> bool {
        false
    }
}

/// A configuration names its planted bugs as a list of the model's names.
#[cfg(feature = "mutations")]
impl serde::Serialize for Mutations {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(Mutation::name))
    }
}

#[cfg(feature = "mutations")]
impl<'de> serde::Deserialize<'de> for Mutations {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Mutations, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        let planted = names
            .iter()
            .map(|name| name.parse::<Mutation>())
            .collect::<Result<Vec<Mutation>, UnknownMutation>>()
            .map_err(serde::de::Error::custom)?;
        Mutations::planted(planted).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_an_unknown_name_lists_the_known_ones() {
        for mutation in Mutation::ALL {
            assert_eq!(mutation.name().parse::<Mutation>(), Ok(mutation));
        }
        let error = "paused-heartbeat".parse::<Mutation>().unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`paused-heartbeat`"), "{message}");
        assert!(message.contains("own-accept-before-persist"), "{message}");
    }

    #[test]
    fn the_empty_set_plants_nothing() {
        let mutations = Mutations::planted([]).unwrap();
        assert!(mutations.is_empty());
        assert!(Mutation::ALL
            .iter()
            .all(|mutation| !mutations.contains(*mutation)));
        assert_eq!(mutations, Mutations::default());
    }

    #[cfg(feature = "mutations")]
    #[test]
    fn a_set_holds_what_was_planted_and_reads_back_its_names() {
        let mutations =
            Mutations::planted([Mutation::ForgetPromise, Mutation::ErrorPathLeak]).unwrap();
        assert!(mutations.contains(Mutation::ForgetPromise));
        assert!(!mutations.contains(Mutation::DoubleComplete));
        assert_eq!(
            mutations.iter().collect::<Vec<_>>(),
            vec![Mutation::ErrorPathLeak, Mutation::ForgetPromise]
        );
    }

    #[cfg(feature = "mutations")]
    #[test]
    fn a_configuration_names_its_mutations_as_the_model_does() {
        use serde::de::value::{Error, SeqDeserializer};
        use serde::Deserialize;
        let names =
            SeqDeserializer::<_, Error>::new(["double-complete", "stale-leader-read"].into_iter());
        let mutations = Mutations::deserialize(names).unwrap();
        assert_eq!(
            mutations.iter().collect::<Vec<_>>(),
            vec![Mutation::DoubleComplete, Mutation::StaleLeaderRead]
        );
        let unknown = SeqDeserializer::<_, Error>::new(["paused-heartbeat"].into_iter());
        let message = Mutations::deserialize(unknown).unwrap_err().to_string();
        assert!(
            message.contains("unknown mutation `paused-heartbeat`"),
            "{message}"
        );
    }

    #[cfg(not(feature = "mutations"))]
    #[test]
    fn without_the_feature_nothing_can_be_planted() {
        const { assert!(!MUTATIONS_AVAILABLE) };
        let error = Mutations::planted([Mutation::ErrorPathLeak]).unwrap_err();
        assert_eq!(error.requested, "error-path-leak");
        assert!(error.to_string().contains("`mutations`"), "{error}");
        assert_eq!(std::mem::size_of::<Mutations>(), 0);
    }
}
