//! The comparisons replay makes at the end of an input: the model's abstraction of a node
//! against the post-state the implementation traced, field by field, and what the model put on
//! its links against what the implementation sent (a multiset difference).

use std::collections::BTreeMap;

use vigil_core as core;
use vigil_model::{Action, Endpoint, Message, State};

use super::Sent;
use crate::mapping;
use crate::report::FieldDiff;

/// Field-by-field difference between the model's abstraction of `node` (or of the proxy) in
/// `state` and the observed post-state.
pub(super) fn post_state_diff(
    state: &State,
    node: Option<u8>,
    post: &core::PostState,
) -> Vec<FieldDiff> {
    match post {
        core::PostState::Master(observed) => {
            let Some(node) = node else {
                return Vec::new();
            };
            if node as usize >= state.masters.len() {
                return vec![FieldDiff {
                    field: "node",
                    expected: format!("< {}", state.masters.len()),
                    observed: node.to_string(),
                }];
            }
            master_diff(&mapping::master_view(state, node), observed)
        }
        core::PostState::Proxy(observed) => ledger_diff(&mapping::ledger_view(state), observed),
    }
}

/// Every field of a master's post-state that differs. `observed` is destructured without
/// `..`: a field added to the post-state does not compile until it is compared here.
fn master_diff(
    expected: &core::MasterPostState,
    observed: &core::MasterPostState,
) -> Vec<FieldDiff> {
    let core::MasterPostState {
        role,
        promised,
        leader,
        commit_index,
        last_slot,
        active,
        evicted,
    } = observed;
    let mut diff = Vec::new();
    push_diff(&mut diff, "role", &expected.role, role);
    push_diff(&mut diff, "promised", &expected.promised, promised);
    push_diff(&mut diff, "leader", &expected.leader, leader);
    push_diff(
        &mut diff,
        "commit_index",
        &expected.commit_index,
        commit_index,
    );
    push_diff(&mut diff, "last_slot", &expected.last_slot, last_slot);
    push_diff(&mut diff, "active", &expected.active, active);
    push_diff(&mut diff, "evicted", &expected.evicted, evicted);
    diff
}

/// Every counter of the proxy's ledger that differs (destructured as in [`master_diff`]).
fn ledger_diff(expected: &core::LedgerCounters, observed: &core::LedgerCounters) -> Vec<FieldDiff> {
    let core::LedgerCounters {
        accepted,
        completed_ok,
        completed_err,
        in_flight,
        late_replies,
        dropped_unanswered,
    } = observed;
    let mut diff = Vec::new();
    push_diff(&mut diff, "accepted", &expected.accepted, accepted);
    push_diff(
        &mut diff,
        "completed_ok",
        &expected.completed_ok,
        completed_ok,
    );
    push_diff(
        &mut diff,
        "completed_err",
        &expected.completed_err,
        completed_err,
    );
    push_diff(&mut diff, "in_flight", &expected.in_flight, in_flight);
    push_diff(
        &mut diff,
        "late_replies",
        &expected.late_replies,
        late_replies,
    );
    push_diff(
        &mut diff,
        "dropped_unanswered",
        &expected.dropped_unanswered,
        dropped_unanswered,
    );
    diff
}

fn push_diff<T: PartialEq + std::fmt::Debug>(
    diff: &mut Vec<FieldDiff>,
    field: &'static str,
    expected: &T,
    observed: &T,
) {
    if expected != observed {
        diff.push(FieldDiff {
            field,
            expected: format!("{expected:?}"),
            observed: format!("{observed:?}"),
        });
    }
}

/// The endpoint whose messages an action sends.
pub(super) fn actor_of(action: &Action) -> Endpoint {
    match action {
        Action::Deliver { destination, .. } => *destination,
        Action::Drop { source, .. } => *source,
        Action::ElectionTimeout(node)
        | Action::HeartbeatTimeout(node)
        | Action::CheckQuorumTimeout(node)
        | Action::RejoinWaitExpired(node)
        | Action::Persist(node)
        | Action::Pause(node)
        | Action::Resume(node)
        | Action::Crash(node)
        | Action::Restart(node)
        | Action::LeaseExpiryTimeout(node, _) => Endpoint::Master(*node),
        Action::RequestTimeout(_) | Action::ForwardLost(_) | Action::CloseConnection(_) => {
            Endpoint::Proxy
        }
        Action::ClientRequest(client)
        | Action::ClientPause(client)
        | Action::ClientResume(client) => Endpoint::Client(*client),
        // The lease clock is the host's and sends nothing. No trace event maps to a lease
        // step yet, so replay never takes it.
        Action::Tick => Endpoint::Proxy,
    }
}

/// What `actor` put on its links between `before` and `after` (clients are untraced: none).
/// A closed connection's `ConnectionClosed` is the proxy's host's notice, not a send; a link
/// that lost messages meanwhile (a closed connection takes its subscription messages) is
/// compared as a multiset.
pub(super) fn sent_by(
    actor: Endpoint,
    before: &BTreeMap<vigil_model::Link, Vec<Message>>,
    after: &BTreeMap<vigil_model::Link, Vec<Message>>,
) -> Vec<Sent> {
    if matches!(actor, Endpoint::Client(_)) {
        return Vec::new();
    }
    let mut sent = Vec::new();
    for ((source, destination), messages) in after.range((actor, Endpoint::Master(0))..) {
        if *source != actor {
            break;
        }
        let old = before
            .get(&(*source, *destination))
            .map_or(&[][..], Vec::as_slice);
        let new: Vec<&Message> = if messages.len() >= old.len() && messages[..old.len()] == *old {
            messages[old.len()..].iter().collect()
        } else {
            let mut unmatched: Vec<&Message> = old.iter().collect();
            messages
                .iter()
                .filter(
                    |message| match unmatched.iter().position(|old| old == message) {
                        Some(position) => {
                            unmatched.swap_remove(position);
                            false
                        }
                        None => true,
                    },
                )
                .collect()
        };
        sent.extend(
            new.into_iter()
                .filter(|message| **message != Message::ConnectionClosed)
                .map(|message| (*source, *destination, message.clone())),
        );
    }
    sent
}

/// Elements of sorted `left` not matched in sorted `right` (multiset difference).
pub(super) fn difference(left: &[Sent], right: &[Sent]) -> Vec<Sent> {
    let mut remaining: Vec<&Sent> = right.iter().collect();
    let mut only = Vec::new();
    for item in left {
        match remaining.iter().position(|candidate| *candidate == item) {
            Some(position) => {
                remaining.remove(position);
            }
            None => only.push(item.clone()),
        }
    }
    only
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A field's name and a change of that field alone.
    type Change<T> = (&'static str, fn(&mut T));

    /// The initial state of a three-master model: every master a follower with nothing.
    fn initial() -> State {
        let mut config = vigil_model::presets::seed().config;
        config.masters = 3;
        State::initial(&config)
    }

    fn fields(diff: &[FieldDiff]) -> Vec<&'static str> {
        diff.iter().map(|field| field.field).collect()
    }

    #[test]
    fn every_field_of_a_masters_post_state_is_compared() {
        let state = initial();
        let expected = mapping::master_view(&state, 1);
        let same = core::PostState::Master(expected.clone());
        assert!(post_state_diff(&state, Some(1), &same).is_empty());
        let changes: [Change<core::MasterPostState>; 7] = [
            ("role", |post| post.role = core::Role::Leader),
            ("promised", |post| post.promised = core::Ballot::new(9, 2)),
            ("leader", |post| post.leader = Some(core::Ballot::new(9, 2))),
            ("commit_index", |post| post.commit_index += 1),
            ("last_slot", |post| post.last_slot += 1),
            ("active", |post| post.active.push(2)),
            ("evicted", |post| post.evicted.push(2)),
        ];
        for (field, change) in changes {
            let mut observed = expected.clone();
            change(&mut observed);
            let diff = post_state_diff(&state, Some(1), &core::PostState::Master(observed));
            assert_eq!(fields(&diff), [field]);
        }
    }

    #[test]
    fn every_counter_of_the_ledger_is_compared() {
        let state = initial();
        let expected = mapping::ledger_view(&state);
        let same = core::PostState::Proxy(expected);
        assert!(post_state_diff(&state, None, &same).is_empty());
        let changes: [Change<core::LedgerCounters>; 6] = [
            ("accepted", |ledger| ledger.accepted += 1),
            ("completed_ok", |ledger| ledger.completed_ok += 1),
            ("completed_err", |ledger| ledger.completed_err += 1),
            ("in_flight", |ledger| ledger.in_flight += 1),
            ("late_replies", |ledger| ledger.late_replies += 1),
            ("dropped_unanswered", |ledger| {
                ledger.dropped_unanswered += 1
            }),
        ];
        for (field, change) in changes {
            let mut observed = expected;
            change(&mut observed);
            let diff = post_state_diff(&state, None, &core::PostState::Proxy(observed));
            assert_eq!(fields(&diff), [field]);
        }
    }

    #[test]
    fn a_master_the_model_does_not_have_is_a_difference() {
        let state = initial();
        let post = core::PostState::Master(mapping::master_view(&state, 0));
        assert_eq!(fields(&post_state_diff(&state, Some(3), &post)), ["node"]);
    }
}
