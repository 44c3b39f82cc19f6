//! The properties checked on every reachable state, named as in `docs/protocol.md` §13: safety
//! (`always`) and non-vacuity witnesses (`sometimes`).
//!
//! Request completion is a safety property at quiescence (`quiescent_requests_complete`), not an
//! `eventually`: stateright 0.31's `eventually` only fails on acyclic terminal paths, so with
//! timers or crashes it could never fail.

use crate::config::Config;
use crate::kv::KeyValueStore;
use crate::kv_types::{ClientOperation, ClientResult};
use crate::state::{HistoryEvent, KvHistoryEvent, Role, State};
use crate::types::{Command, Operation, RequestError, RequestId};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};
use stateright::{Expectation, Property};

/// Every property: the protocol's, safety first, then the revisioned API's
/// (`crate::revision_properties`), safety first.
pub fn all() -> Vec<Property<Config>> {
    let mut properties = protocol();
    properties.extend(crate::revision_properties::all());
    properties.extend(crate::lease_properties::all());
    properties
}

/// The properties the checker evaluates on `config`: the protocol's, the revisioned API's
/// with revisioned clients, the leases' with lease operations — the others hold at once there
/// and reach no witness, and the checker pays a lookup per property per state. (Reports still
/// list them all: held, not discovered.)
pub fn for_config(config: &Config) -> Vec<Property<Config>> {
    let mut properties = protocol();
    if !config.kv_clients.is_empty() {
        properties.extend(crate::revision_properties::all());
    }
    if config.has_leases() {
        properties.extend(crate::lease_properties::all());
    }
    if config
        .observer
        .as_ref()
        .is_some_and(|observer| observer.has_targets())
    {
        properties.push(Property::sometimes(
            REVIEW_TARGET_REACHED,
            |config: &Config, state: &State| {
                config
                    .observer
                    .as_ref()
                    .is_some_and(|observer| observer.is_target(config, state))
            },
        ));
    }
    properties
}

/// The witness a design review's search for example paths looks for: a state whose abstract
/// state is one of the observer's targets (`crate::review`). Only with such an observer.
pub const REVIEW_TARGET_REACHED: &str = "review_target_reached";

/// The protocol's properties (§13), safety first.
fn protocol() -> Vec<Property<Config>> {
    vec![
        Property::always("agreement", |_, state: &State| {
            !state.ghost.agreement_violated
        }),
        Property::always("validity", validity),
        Property::always("quorum_integrity", |_, state: &State| {
            !state.ghost.quorum_integrity_violated
        }),
        Property::always("linearizable", linearizable),
        Property::always("complete_at_most_once", complete_at_most_once),
        Property::always("ledger_balance", ledger_balance),
        Property::always("in_flight_bounded", |config: &Config, state: &State| {
            state.proxy.ledger.in_flight <= config.in_flight_max
        }),
        Property::always("paused_sends_nothing", |_, state: &State| {
            !state.ghost.paused_sent
        }),
        Property::always("eviction_after_threshold", |_, state: &State| {
            !state.ghost.early_eviction
        }),
        Property::always("quiescent_requests_complete", quiescent_requests_complete),
        Property::sometimes("value_chosen", |_, state: &State| {
            state
                .ghost
                .chosen
                .values()
                .any(|command| *command != Command::Noop)
        }),
        Property::sometimes("leader_change", |_, state: &State| {
            state.masters.iter().any(
                |master| matches!(&master.role, Role::Leader(leader) if leader.ballot.round >= 2),
            )
        }),
        Property::sometimes("follower_evicted", |_, state: &State| {
            leaders(state).any(|leader| leader.evictions > 0)
        }),
        Property::sometimes("evicted_follower_rejoins", |_, state: &State| {
            leaders(state).any(|leader| leader.rejoins > 0)
        }),
        Property::sometimes("pause_and_resume", |_, state: &State| {
            state.used.pauses > 0 && state.masters.iter().all(|master| !master.paused)
        }),
        Property::sometimes("wrong_cluster_answered", |_, state: &State| {
            answered(state, RequestError::UnknownCluster)
        }),
        Property::sometimes("request_timed_out_once", |_, state: &State| {
            answered(state, RequestError::Timeout)
        }),
        Property::sometimes("read_without_log_entry", read_without_log_entry),
        Property::sometimes("write_lost_in_crash", |_, state: &State| {
            state.ghost.entry_lost_in_crash
        }),
        Property::sometimes("forward_lost_answered", |_, state: &State| {
            // A request whose `Propose` came back undelivered was answered for sure: a result
            // through another master, or `NoLeader` once its redirects were spent.
            state.used.forwards_lost > 0
                && state.clients.iter().any(|client| {
                    client.replies.values().any(|record| {
                        record.count == 1
                            && (record.outcome.is_ok()
                                || record.outcome == Err(RequestError::NoLeader))
                    })
                })
        }),
    ]
}

/// Names of the safety properties, in report order.
pub fn safety_names() -> Vec<&'static str> {
    all()
        .into_iter()
        .filter(|property| property.expectation == Expectation::Always)
        .map(|property| property.name)
        .collect()
}

/// Names of the non-vacuity witnesses, in report order.
pub fn witness_names() -> Vec<&'static str> {
    all()
        .into_iter()
        .filter(|property| property.expectation == Expectation::Sometimes)
        .map(|property| property.name)
        .collect()
}

/// Names of the protocol's witnesses (§13), those a preset of register clients can reach.
pub fn protocol_witness_names() -> Vec<&'static str> {
    protocol()
        .into_iter()
        .filter(|property| property.expectation == Expectation::Sometimes)
        .map(|property| property.name)
        .collect()
}

fn leaders(state: &State) -> impl Iterator<Item = &crate::state::LeaderState> {
    state
        .masters
        .iter()
        .filter_map(|master| master.leader_state())
}

fn answered(state: &State, error: RequestError) -> bool {
    state.clients.iter().any(|client| {
        client
            .replies
            .values()
            .any(|record| record.count == 1 && record.outcome == Err(error))
    })
}

/// A client got the value of a `Get` that no slot holds: the leader served it by confirming its
/// ballot with a quorum (§9.2), not through the log.
fn read_without_log_entry(config: &Config, state: &State) -> bool {
    state.clients.iter().any(|client| {
        client.replies.iter().any(|(request_id, record)| {
            let is_get = matches!(
                config.operation_of(*request_id),
                Some(Operation::Get { .. })
            );
            let in_log = state
                .ghost
                .chosen
                .values()
                .any(|command| command.request_id() == Some(*request_id));
            is_get && record.outcome.is_ok() && !in_log
        })
    })
}

/// A chosen command is `Noop` or exactly the operation a client sent under that request id.
fn validity(config: &Config, state: &State) -> bool {
    state.ghost.chosen.values().all(|command| {
        let (request_id, operation) = match command {
            Command::Noop | Command::LeaseExpire { .. } => return true,
            Command::Operation {
                request_id,
                operation,
            } => (*request_id, ClientOperation::Register(*operation)),
            Command::Kv {
                request_id,
                operation,
            } => (*request_id, ClientOperation::Kv(operation.clone())),
        };
        let Some((client, index)) = config.owner_of(request_id) else {
            return false;
        };
        (state.clients[client as usize].sent as usize) > index
            && config.client_operation_of(request_id) == Some(operation)
    })
}

/// The served cluster's history of both APIs, with each request as its own thread: a request
/// without a return (in flight, or indeterminate) may or may not have taken effect. The
/// reference is the whole store, so an operation on several keys (a `Range`, a `Txn`) is
/// checked against all of them at once, revisions included.
fn linearizable(config: &Config, state: &State) -> bool {
    let returned = state
        .history
        .iter()
        .any(|event| matches!(event, HistoryEvent::Return { .. }))
        || state
            .kv_history
            .iter()
            .any(|event| matches!(event, KvHistoryEvent::Return { .. }));
    if !returned {
        return true;
    }
    let reference = if state.kv_history.is_empty() {
        KeyValueStore::default()
    } else {
        KeyValueStore::reference(config)
    };
    let mut tester = LinearizabilityTester::new(reference);
    let mut revisioned = state.kv_history.iter().peekable();
    for (position, event) in state.history.iter().enumerate() {
        while let Some(kv_event) = revisioned.next_if(|kv_event| kv_event.after() <= position) {
            if !record_kv(&mut tester, kv_event) {
                return false;
            }
        }
        let recorded = match *event {
            HistoryEvent::Invoke {
                request_id,
                operation,
            } => tester
                .on_invoke(request_id, ClientOperation::Register(operation))
                .is_ok(),
            HistoryEvent::Return { request_id, result } => tester
                .on_return(request_id, result.map(ClientResult::Register))
                .is_ok(),
        };
        if !recorded {
            return false;
        }
    }
    for kv_event in revisioned {
        if !record_kv(&mut tester, kv_event) {
            return false;
        }
    }
    tester.is_consistent()
}

/// Hands one revisioned history event to the tester; false if it refuses it.
fn record_kv(
    tester: &mut LinearizabilityTester<RequestId, KeyValueStore>,
    event: &KvHistoryEvent,
) -> bool {
    match event {
        KvHistoryEvent::Invoke {
            request_id,
            operation,
            ..
        } => tester
            .on_invoke(*request_id, ClientOperation::Kv(operation.clone()))
            .is_ok(),
        KvHistoryEvent::Return {
            request_id, result, ..
        } => tester
            .on_return(*request_id, result.clone().map(ClientResult::Kv))
            .is_ok(),
    }
}

fn complete_at_most_once(_: &Config, state: &State) -> bool {
    state.clients.iter().all(|client| {
        client.replies.values().all(|record| record.count <= 1)
            && client.kv_replies.values().all(|record| record.count <= 1)
    })
}

fn ledger_balance(_: &Config, state: &State) -> bool {
    let ledger = &state.proxy.ledger;
    u64::from(ledger.accepted)
        == u64::from(ledger.completed_ok)
            + u64::from(ledger.completed_err)
            + u64::from(ledger.in_flight)
}

/// Quiescence: nothing in flight, no client can send, no request timer pending (only master
/// timers and faults could still happen). Then every accepted request has completed.
fn quiescent_requests_complete(config: &Config, state: &State) -> bool {
    !quiescent(config, state) || state.proxy.ledger.in_flight == 0
}

/// Nothing in flight, no request pending at the proxy, and only master timers and faults
/// enabled.
pub(crate) fn quiescent(config: &Config, state: &State) -> bool {
    state.network.is_empty()
        && state.proxy.pending.is_empty()
        && config
            .enabled_actions(state)
            .iter()
            .all(|action| action.is_timer_or_fault())
}
