//! Unit tests of the mapping, case by case as `docs/trace.md` §4 states it: every event that
//! starts an input maps to its model actions and every other event to none; every message,
//! operation, result and error maps to the model's of the same name with each field in place;
//! every field of the post-state abstraction is the model's; the client history becomes the
//! checker's records; and a malformed event (a number out of range, a master or request the
//! run does not have, a timer where none runs, what the model cannot represent) is an error.
//! An unknown event kind never reaches the mapping: the trace reader refuses it
//! (`trace::tests::an_unknown_event_kind_is_an_error`).

use vigil_core as core;
use vigil_model as model;
use vigil_model::{Action, Endpoint, Message};

use super::{history_records, ledger_view, master_view, MappingError, Vocabulary};
use crate::merge::{Merged, MergedEvent};
use crate::nemesis::history::{Call, Outcome};
use crate::trace::TraceLine;

/// Masters in the runs these tests build.
const MASTERS: u64 = 3;
/// The proxy's forwarding id of the first request.
const FORWARD: u64 = 40;
/// The client connection of the first request.
const CLIENT: u64 = 7;

fn ballot(round: u64, node: u64) -> core::Ballot {
    core::Ballot::new(round, node)
}

fn model_ballot(round: u32, node: u8) -> model::types::Ballot {
    model::types::Ballot { round, node }
}

fn put(key: &str, value: &str) -> core::Operation {
    core::Operation::Put {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    }
}

fn master_endpoint(node: u64) -> core::Endpoint {
    core::Endpoint::Master {
        node,
        cluster: None,
    }
}

/// An event of `origin` with an empty post-state.
fn line(origin: core::Origin, kind: core::TraceKind) -> TraceLine {
    let post = match origin {
        core::Origin::Master(_) => core::PostState::Master(core::MasterPostState {
            role: core::Role::Follower,
            promised: core::Ballot::default(),
            leader: None,
            commit_index: 0,
            last_slot: 0,
            active: Vec::new(),
            evicted: Vec::new(),
        }),
        core::Origin::Proxy(_) => core::PostState::Proxy(core::LedgerCounters::default()),
    };
    TraceLine {
        origin,
        sequence: 0,
        input: None,
        lamport: None,
        message_id: None,
        kind,
        post,
    }
}

fn at_master(node: u64, kind: core::TraceKind) -> TraceLine {
    line(core::Origin::Master(node), kind)
}

fn at_proxy(kind: core::TraceKind) -> TraceLine {
    line(core::Origin::Proxy(0), kind)
}

/// The lines in this order, each node's trace its own (masters `0..MASTERS`, then the proxy).
fn merged(lines: Vec<TraceLine>) -> Merged {
    let events = lines
        .into_iter()
        .enumerate()
        .map(|(index, line)| MergedEvent {
            trace: match line.origin {
                core::Origin::Master(node) => node as usize,
                core::Origin::Proxy(_) => MASTERS as usize,
            },
            line,
            lamport: index as u64,
            send: None,
            receive: None,
        })
        .collect();
    let mut nodes: Vec<String> = (0..MASTERS).map(|node| format!("m{node}")).collect();
    nodes.push("p0".to_string());
    Merged { events, nodes }
}

fn protocol() -> core::Config {
    core::Config {
        masters: MASTERS,
        ..core::Config::default()
    }
}

fn vocabulary(merged: &Merged) -> Vocabulary {
    Vocabulary::build(merged, &protocol(), "local").expect("the run maps")
}

/// The actions of every event in turn (the mapping keeps state across them: restarts).
fn all_actions(lines: Vec<TraceLine>) -> Vec<Result<Vec<Action>, MappingError>> {
    let merged = merged(lines);
    let mut vocabulary = vocabulary(&merged);
    (0..merged.events.len())
        .map(|index| vocabulary.actions(&merged, index))
        .collect()
}

/// The actions of the last of `lines`.
fn last_actions(lines: Vec<TraceLine>) -> Result<Vec<Action>, MappingError> {
    all_actions(lines).pop().expect("at least one line")
}

/// Client `CLIENT`'s request 1 (`Put k0 v0` to the served cluster) received, accepted and
/// forwarded to m0 as `FORWARD`: model request 0 of model client 0.
fn request_forwarded() -> Vec<TraceLine> {
    vec![
        at_proxy(core::TraceKind::Receive {
            from: core::Endpoint::Client(CLIENT),
            message: core::Message::Request {
                request_id: 1,
                cluster: "local".to_string(),
                operation: put("k0", "v0"),
            },
        }),
        at_proxy(core::TraceKind::RequestAccepted {
            client: CLIENT,
            request_id: 1,
        }),
        at_proxy(core::TraceKind::Send {
            to: master_endpoint(0),
            message: core::Message::Propose {
                request_id: FORWARD,
                operation: put("k0", "v0"),
            },
        }),
    ]
}

fn model_put() -> model::types::Operation {
    model::types::Operation::Put { key: 0, value: 0 }
}

#[test]
fn a_masters_receive_is_the_delivery_from_its_sender() {
    let mut lines = request_forwarded();
    lines.push(at_master(
        1,
        core::TraceKind::Receive {
            from: master_endpoint(2),
            message: core::Message::Accepted {
                ballot: ballot(3, 2),
                slot: 4,
            },
        },
    ));
    assert_eq!(
        last_actions(lines.clone()),
        Ok(vec![Action::Deliver {
            source: Endpoint::Master(2),
            destination: Endpoint::Master(1),
            message: Message::Accepted {
                ballot: model_ballot(3, 2),
                slot: 4,
            },
        }])
    );
    lines.push(at_master(
        0,
        core::TraceKind::Receive {
            from: core::Endpoint::Proxy(0),
            message: core::Message::Propose {
                request_id: FORWARD,
                operation: put("k0", "v0"),
            },
        },
    ));
    assert_eq!(
        last_actions(lines),
        Ok(vec![Action::Deliver {
            source: Endpoint::Proxy,
            destination: Endpoint::Master(0),
            message: Message::Propose {
                request_id: 0,
                operation: model_put(),
            },
        }])
    );
}

#[test]
fn a_clients_request_is_the_untraced_clients_request_then_its_delivery() {
    let actions = all_actions(request_forwarded());
    assert_eq!(
        actions[0],
        Ok(vec![
            Action::ClientRequest(0),
            Action::Deliver {
                source: Endpoint::Client(0),
                destination: Endpoint::Proxy,
                message: Message::Request {
                    request_id: 0,
                    cluster: 0,
                    operation: model_put(),
                },
            },
        ])
    );
    assert_eq!(actions[1], Ok(Vec::new()), "RequestAccepted is a part");
    assert_eq!(actions[2], Ok(Vec::new()), "a send is a part");
}

#[test]
fn a_request_naming_another_cluster_is_cluster_one_of_its_own_model_client() {
    let mut lines = request_forwarded();
    lines.push(at_proxy(core::TraceKind::Receive {
        from: core::Endpoint::Client(CLIENT),
        message: core::Message::Request {
            request_id: 2,
            cluster: "no-such-cluster".to_string(),
            operation: put("k0", "v0"),
        },
    }));
    let merged = merged(lines);
    let mut vocabulary = vocabulary(&merged);
    let clusters: Vec<u8> = vocabulary
        .config
        .clients
        .iter()
        .map(|client| client.cluster)
        .collect();
    assert_eq!(clusters, [0, 1]);
    assert_eq!(
        vocabulary.actions(&merged, 3),
        Ok(vec![
            Action::ClientRequest(1),
            Action::Deliver {
                source: Endpoint::Client(1),
                destination: Endpoint::Proxy,
                message: Message::Request {
                    request_id: 1,
                    cluster: 1,
                    operation: model_put(),
                },
            },
        ])
    );
}

/// The proxy's second request (`Get k0` of client connection `client`) arrives at the end.
fn second_request(lines: &mut Vec<TraceLine>, client: u64) {
    lines.push(at_proxy(core::TraceKind::Receive {
        from: core::Endpoint::Client(client),
        message: core::Message::Request {
            request_id: 2,
            cluster: "local".to_string(),
            operation: core::Operation::Get {
                key: b"k0".to_vec(),
            },
        },
    }));
}

#[test]
fn a_request_after_the_previous_one_completed_is_the_same_model_clients_next() {
    let mut lines = request_forwarded();
    lines.push(at_proxy(core::TraceKind::RequestCompleted {
        client: CLIENT,
        request_id: 1,
        outcome: Ok(core::OperationResult::Written { version: 1 }),
    }));
    second_request(&mut lines, CLIENT + 1);
    let vocabulary = vocabulary(&merged(lines));
    let scripts: Vec<usize> = vocabulary
        .config
        .clients
        .iter()
        .map(|client| client.operations.len())
        .collect();
    assert_eq!(scripts, [2], "one closed-loop model client, two requests");
    assert_eq!(vocabulary.model_request(CLIENT + 1, 2), Ok(1));
}

#[test]
fn a_request_while_another_is_open_is_another_model_clients() {
    let mut lines = request_forwarded();
    second_request(&mut lines, CLIENT + 1);
    let vocabulary = vocabulary(&merged(lines));
    let scripts: Vec<usize> = vocabulary
        .config
        .clients
        .iter()
        .map(|client| client.operations.len())
        .collect();
    assert_eq!(scripts, [1, 1]);
    assert_eq!(vocabulary.model_request(CLIENT, 1), Ok(0));
    assert_eq!(vocabulary.model_request(CLIENT + 1, 2), Ok(1));
}

#[test]
fn a_propose_reply_is_its_delivery_to_the_proxy() {
    let mut lines = request_forwarded();
    lines.push(at_proxy(core::TraceKind::Receive {
        from: master_endpoint(0),
        message: core::Message::ProposeReply {
            request_id: FORWARD,
            outcome: Ok(core::OperationResult::Written { version: 1 }),
        },
    }));
    assert_eq!(
        last_actions(lines),
        Ok(vec![Action::Deliver {
            source: Endpoint::Master(0),
            destination: Endpoint::Proxy,
            message: Message::ProposeReply {
                request_id: 0,
                outcome: Ok(model::types::OperationResult::Written { version: 1 }),
            },
        }])
    );
}

#[test]
fn each_masters_timer_is_its_timeout() {
    let timers = [
        (core::Timer::Election, Action::ElectionTimeout(2)),
        (core::Timer::Heartbeat, Action::HeartbeatTimeout(2)),
        (core::Timer::CheckQuorum, Action::CheckQuorumTimeout(2)),
    ];
    for (timer, action) in timers {
        let lines = vec![at_master(2, core::TraceKind::Timeout { timer })];
        assert_eq!(last_actions(lines), Ok(vec![action]), "{timer:?}");
    }
}

#[test]
fn the_proxys_request_timeout_times_out_the_request_it_completes_with_timeout() {
    let mut lines = request_forwarded();
    lines.push(at_proxy(core::TraceKind::Timeout {
        timer: core::Timer::Request,
    }));
    lines.push(at_proxy(core::TraceKind::RequestCompleted {
        client: CLIENT,
        request_id: 1,
        outcome: Err(core::ClientError::Timeout),
    }));
    let actions = all_actions(lines);
    assert_eq!(actions[3], Ok(vec![Action::RequestTimeout(0)]));
    assert_eq!(actions[4], Ok(Vec::new()), "RequestCompleted is a part");
}

#[test]
fn a_masters_first_restart_is_its_initial_state_and_a_later_one_a_crash_and_restart() {
    let lines = vec![
        at_master(1, core::TraceKind::Restart),
        at_master(2, core::TraceKind::Restart),
        at_master(1, core::TraceKind::Restart),
        at_master(1, core::TraceKind::Restart),
    ];
    let actions = all_actions(lines);
    assert_eq!(actions[0], Ok(Vec::new()));
    assert_eq!(actions[1], Ok(Vec::new()), "each master's first restart");
    let crash_and_restart = vec![Action::Crash(1), Action::Restart(1)];
    assert_eq!(actions[2], Ok(crash_and_restart.clone()));
    assert_eq!(actions[3], Ok(crash_and_restart));
}

#[test]
fn persist_pause_and_resume_are_the_masters_own_steps() {
    let lines = vec![
        at_master(2, core::TraceKind::Persist),
        at_master(1, core::TraceKind::Pause),
        at_master(1, core::TraceKind::Resume { overdue_ticks: 9 }),
    ];
    let actions = all_actions(lines);
    assert_eq!(actions[0], Ok(vec![Action::Persist(2)]));
    assert_eq!(actions[1], Ok(vec![Action::Pause(1)]));
    assert_eq!(actions[2], Ok(vec![Action::Resume(1)]));
}

#[test]
fn a_forward_lost_is_the_models_forward_lost_of_that_request() {
    let mut lines = request_forwarded();
    lines.push(at_proxy(core::TraceKind::ForwardLost {
        request_id: FORWARD,
    }));
    assert_eq!(last_actions(lines), Ok(vec![Action::ForwardLost(0)]));
}

#[test]
fn the_named_parts_of_an_input_map_to_no_action() {
    let parts = [
        core::TraceKind::BecomePreCandidate {
            ballot: ballot(1, 1),
        },
        core::TraceKind::BecomeCandidate {
            ballot: ballot(1, 1),
        },
        core::TraceKind::BecomeLeader {
            ballot: ballot(1, 1),
        },
        core::TraceKind::BecomeFollower { leader: None },
        core::TraceKind::Evict { follower: 2 },
        core::TraceKind::Readmit { follower: 2 },
        core::TraceKind::CommitAdvance { from: 0, to: 1 },
        core::TraceKind::Send {
            to: master_endpoint(2),
            message: core::Message::Commit {
                ballot: ballot(1, 1),
                commit_index: 1,
            },
        },
    ];
    for kind in parts {
        let lines = vec![at_master(1, kind.clone())];
        assert_eq!(last_actions(lines), Ok(Vec::new()), "{kind}");
    }
    let mut lines = request_forwarded();
    lines.push(at_proxy(core::TraceKind::LateReply {
        request_id: FORWARD,
    }));
    assert_eq!(last_actions(lines), Ok(Vec::new()), "LateReply");
}

// ---------------------------------------------------------------- messages

/// A vocabulary that knows key `k0`, values `v0` and `v1`, client `CLIENT`'s request 1 and
/// forwarding id `FORWARD`.
fn known() -> Vocabulary {
    let mut lines = request_forwarded();
    lines.push(at_proxy(core::TraceKind::Receive {
        from: core::Endpoint::Client(CLIENT + 1),
        message: core::Message::Request {
            request_id: 1,
            cluster: "local".to_string(),
            operation: put("k0", "v1"),
        },
    }));
    vocabulary(&merged(lines))
}

fn entry(slot: u64) -> core::Entry {
    core::Entry {
        slot,
        ballot: ballot(2, 1),
        command: core::Command::Operation {
            proxy: 0,
            request_id: FORWARD,
            operation: put("k0", "v1"),
        },
    }
}

fn model_entries() -> model::message::Entries {
    vec![(
        6,
        model::types::Entry {
            ballot: model_ballot(2, 1),
            command: model::types::Command::Operation {
                request_id: 0,
                operation: model::types::Operation::Put { key: 0, value: 1 },
            },
        },
    )]
}

/// Every message between masters and the proxy, with distinct field values, and the model's.
fn messages() -> Vec<(core::Message, Message)> {
    let (b, mb) = (ballot(2, 1), model_ballot(2, 1));
    vec![
        (
            core::Message::PreVote { ballot: b },
            Message::PreVote { ballot: mb },
        ),
        (
            core::Message::PreVoteReply {
                ballot: b,
                granted: true,
                leader: Some(ballot(1, 2)),
            },
            Message::PreVoteReply {
                ballot: mb,
                granted: true,
                leader: Some(model_ballot(1, 2)),
            },
        ),
        (
            core::Message::Prepare {
                ballot: b,
                commit_index: 3,
            },
            Message::Prepare {
                ballot: mb,
                commit_index: 3,
            },
        ),
        (
            core::Message::Promise {
                ballot: b,
                commit_index: 3,
                entries: vec![entry(6)],
                snapshot: None,
            },
            Message::Promise {
                ballot: mb,
                commit_index: 3,
                entries: model_entries(),
            },
        ),
        (
            core::Message::Accept {
                ballot: b,
                slot: 4,
                command: core::Command::Noop,
                commit_index: 3,
            },
            Message::Accept {
                ballot: mb,
                slot: 4,
                command: model::types::Command::Noop,
                commit_index: 3,
            },
        ),
        (
            core::Message::Accepted { ballot: b, slot: 4 },
            Message::Accepted {
                ballot: mb,
                slot: 4,
            },
        ),
        (
            core::Message::Nack {
                ballot: b,
                promised: ballot(5, 2),
            },
            Message::Nack {
                ballot: mb,
                promised: model_ballot(5, 2),
            },
        ),
        (
            core::Message::Commit {
                ballot: b,
                commit_index: 3,
            },
            Message::Commit {
                ballot: mb,
                commit_index: 3,
            },
        ),
    ]
    .into_iter()
    .chain(more_messages())
    .collect()
}

/// The rest of [`messages`].
fn more_messages() -> Vec<(core::Message, Message)> {
    let (b, mb) = (ballot(2, 1), model_ballot(2, 1));
    vec![
        (
            core::Message::Heartbeat {
                ballot: b,
                commit_index: 3,
                heartbeat_sequence: 5,
            },
            Message::Heartbeat {
                ballot: mb,
                commit_index: 3,
                heartbeat_sequence: 5,
            },
        ),
        (
            core::Message::HeartbeatAck {
                ballot: b,
                commit_index: 3,
                heartbeat_sequence: 5,
            },
            Message::HeartbeatAck {
                ballot: mb,
                commit_index: 3,
                heartbeat_sequence: 5,
            },
        ),
        (
            core::Message::Rejoin {
                ballot: b,
                commit_index: 3,
            },
            Message::Rejoin {
                ballot: mb,
                commit_index: 3,
            },
        ),
        (
            core::Message::CatchUp {
                ballot: b,
                commit_index: 3,
                snapshot: None,
                entries: vec![entry(6)],
            },
            Message::CatchUp {
                ballot: mb,
                commit_index: 3,
                entries: model_entries(),
            },
        ),
        (
            core::Message::CatchUpAck {
                ballot: b,
                commit_index: 3,
            },
            Message::CatchUpAck {
                ballot: mb,
                commit_index: 3,
            },
        ),
        (
            core::Message::Propose {
                request_id: FORWARD,
                operation: core::Operation::Delete {
                    key: b"k0".to_vec(),
                },
            },
            Message::Propose {
                request_id: 0,
                operation: model::types::Operation::Delete { key: 0 },
            },
        ),
        (
            core::Message::ProposeReply {
                request_id: FORWARD,
                outcome: Err(core::MasterError::NotLeader {
                    leader_hint: Some(2),
                }),
            },
            Message::ProposeReply {
                request_id: 0,
                outcome: Err(model::types::ProposeError::NotLeader {
                    leader_hint: Some(2),
                }),
            },
        ),
    ]
}

#[test]
fn every_message_maps_to_the_models_of_its_name_field_for_field() {
    let vocabulary = known();
    let messages = messages();
    let mut names: Vec<&str> = messages.iter().map(|(core, _)| core.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(
        names.len(),
        15,
        "every message between masters and the proxy"
    );
    for (core, model) in messages {
        assert_eq!(vocabulary.message(&core), Ok(model.clone()), "{core}");
        assert_eq!(core.name(), model.name());
    }
}

#[test]
fn every_operation_result_and_error_maps_to_the_models() {
    use model::types::{Operation as O, OperationResult as R, ProposeError as P};
    let vocabulary = known();
    let operations = [
        (
            core::Operation::Get {
                key: b"k0".to_vec(),
            },
            O::Get { key: 0 },
        ),
        (put("k0", "v1"), O::Put { key: 0, value: 1 }),
        (
            core::Operation::Cas {
                key: b"k0".to_vec(),
                expected_version: 4,
                value: b"v1".to_vec(),
            },
            O::Cas {
                key: 0,
                expected_version: 4,
                value: 1,
            },
        ),
        (
            core::Operation::Delete {
                key: b"k0".to_vec(),
            },
            O::Delete { key: 0 },
        ),
    ];
    for (core, model) in operations {
        assert_eq!(vocabulary.known_operation(&core), Ok(model), "{core:?}");
    }
    let results = [
        (
            core::OperationResult::Value {
                value: Some(b"v1".to_vec()),
                version: 4,
            },
            R::Value {
                value: Some(1),
                version: 4,
            },
        ),
        (
            core::OperationResult::Value {
                value: None,
                version: 0,
            },
            R::Value {
                value: None,
                version: 0,
            },
        ),
        (
            core::OperationResult::Written { version: 4 },
            R::Written { version: 4 },
        ),
        (
            core::OperationResult::VersionMismatch { current_version: 4 },
            R::VersionMismatch { current_version: 4 },
        ),
        (
            core::OperationResult::Deleted { version: 4 },
            R::Deleted { version: 4 },
        ),
    ];
    for (core, model) in results {
        assert_eq!(vocabulary.result(&core), Ok(model), "{core:?}");
    }
    let propose_errors = [
        (
            core::MasterError::NotLeader { leader_hint: None },
            P::NotLeader { leader_hint: None },
        ),
        (core::MasterError::Overloaded, P::Overloaded),
        (core::MasterError::LeaderChanged, P::LeaderChanged),
    ];
    for (core, model) in propose_errors {
        assert_eq!(super::propose_error(&core), Ok(model), "{core:?}");
    }
}

#[test]
fn a_request_and_a_reply_map_with_their_clients_request() {
    use model::types::RequestError as E;
    let vocabulary = known();
    let request = core::Message::Request {
        request_id: 1,
        cluster: "local".to_string(),
        operation: put("k0", "v0"),
    };
    assert_eq!(
        vocabulary.client_message(CLIENT, &request),
        Ok(Message::Request {
            request_id: 0,
            cluster: 0,
            operation: model_put(),
        })
    );
    let errors = [
        (core::ClientError::UnknownCluster, E::UnknownCluster),
        (core::ClientError::Overloaded, E::Overloaded),
        (core::ClientError::NoLeader, E::NoLeader),
        (core::ClientError::Timeout, E::Timeout),
        (core::ClientError::LeaderChanged, E::LeaderChanged),
    ];
    for (core, model) in errors {
        let reply = core::Message::Reply {
            request_id: 1,
            outcome: Err(core.clone()),
        };
        assert_eq!(
            vocabulary.client_message(CLIENT + 1, &reply),
            Ok(Message::Reply {
                request_id: 1,
                outcome: Err(model),
            }),
            "{core:?}"
        );
    }
}

#[test]
fn a_send_maps_to_its_link_and_message() {
    let vocabulary = known();
    let sent = super::send_of(
        &vocabulary,
        core::Origin::Proxy(0),
        &core::Endpoint::Client(CLIENT),
        &core::Message::Reply {
            request_id: 1,
            outcome: Ok(core::OperationResult::Written { version: 1 }),
        },
    );
    assert_eq!(
        sent,
        Ok((
            Endpoint::Proxy,
            Endpoint::Client(0),
            Message::Reply {
                request_id: 0,
                outcome: Ok(model::types::OperationResult::Written { version: 1 }),
            }
        ))
    );
}

// ---------------------------------------------------------------- post-states

fn state() -> model::State {
    let mut config = model::presets::seed().config;
    config.masters = MASTERS as u8;
    model::State::initial(&config)
}

fn leader_state() -> model::state::LeaderState {
    let mut active = model::types::NodeSet::default();
    active.insert(0);
    let mut evicted = model::types::NodeSet::default();
    evicted.insert(2);
    model::state::LeaderState {
        ballot: model_ballot(4, 1),
        active,
        evicted,
        missed_heartbeats: vec![0; MASTERS as usize],
        acknowledged: Default::default(),
        heard: Default::default(),
        accepted_by: Default::default(),
        proposals: Default::default(),
        evictions: 0,
        rejoins: 0,
        commit_at_last_heartbeat: 0,
        last_slot_at_last_heartbeat: 0,
        phase_one_last_slot: 0,
        heartbeat_sequence: 0,
        read_acknowledged: Default::default(),
        reads: Default::default(),
    }
}

#[test]
fn every_field_of_a_masters_post_state_is_the_models() {
    let mut state = state();
    let master = &mut state.masters[1];
    master.promised = model_ballot(4, 1);
    master.leader = Some(model_ballot(4, 1));
    master.commit_index = 2;
    master.log.insert(
        5,
        model::types::Entry {
            ballot: model_ballot(4, 1),
            command: model::types::Command::Noop,
        },
    );
    master.role = model::state::Role::Leader(leader_state());
    assert_eq!(
        master_view(&state, 1),
        core::MasterPostState {
            role: core::Role::Leader,
            promised: ballot(4, 1),
            leader: Some(ballot(4, 1)),
            commit_index: 2,
            last_slot: 5,
            active: vec![0],
            evicted: vec![2],
        }
    );
    let master = &mut state.masters[1];
    master.log.clear();
    master.role = model::state::Role::Follower;
    let view = master_view(&state, 1);
    assert_eq!(
        view.last_slot, 2,
        "an empty log's last slot is the commit index"
    );
    assert_eq!((view.active, view.evicted), (Vec::new(), Vec::new()));
}

#[test]
fn every_role_is_the_models() {
    let mut state = state();
    let roles = [
        (model::state::Role::Follower, core::Role::Follower),
        (
            model::state::Role::PreCandidate {
                ballot: model_ballot(1, 0),
                grants: Default::default(),
            },
            core::Role::PreCandidate,
        ),
        (
            model::state::Role::Candidate {
                ballot: model_ballot(1, 0),
                promises: Default::default(),
                entries: Default::default(),
            },
            core::Role::Candidate,
        ),
        (
            model::state::Role::Leader(leader_state()),
            core::Role::Leader,
        ),
    ];
    for (model, core) in roles {
        state.masters[0].role = model;
        assert_eq!(master_view(&state, 0).role, core);
    }
}

#[test]
fn every_counter_of_the_ledger_is_the_models() {
    let mut state = state();
    state.proxy.ledger = model::state::Ledger {
        accepted: 9,
        completed_ok: 4,
        completed_err: 3,
        in_flight: 2,
        late_replies: 1,
    };
    assert_eq!(
        ledger_view(&state),
        core::LedgerCounters {
            accepted: 9,
            completed_ok: 4,
            completed_err: 3,
            in_flight: 2,
            late_replies: 1,
            dropped_unanswered: 0,
        }
    );
}

// ---------------------------------------------------------------- the client history

#[test]
fn the_client_history_becomes_the_checkers_records() {
    use model::state::HistoryEvent;
    use model::types::{Operation as O, OperationResult as R};
    let history = vec![
        HistoryEvent::Invoke {
            request_id: 0,
            operation: O::Put { key: 1, value: 2 },
        },
        HistoryEvent::Invoke {
            request_id: 1,
            operation: O::Cas {
                key: 0,
                expected_version: 3,
                value: 4,
            },
        },
        HistoryEvent::Invoke {
            request_id: 2,
            operation: O::Get { key: 1 },
        },
        HistoryEvent::Invoke {
            request_id: 3,
            operation: O::Delete { key: 0 },
        },
        HistoryEvent::Return {
            request_id: 0,
            result: Some(R::Written { version: 1 }),
        },
        HistoryEvent::Return {
            request_id: 2,
            result: None,
        },
    ];
    let records = history_records(&history);
    let summary: Vec<(usize, &[u8], Call, u64, u64)> = records
        .iter()
        .map(|record| {
            (
                record.client,
                record.key.as_slice(),
                record.call.clone(),
                record.invoked_ns,
                record.completed_ns,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, &b"k1"[..], Call::Put { value: vec![2] }, 0, 4),
            (
                1,
                &b"k0"[..],
                Call::Cas {
                    expected_version: 3,
                    value: vec![4],
                },
                1,
                u64::MAX,
            ),
            (2, &b"k1"[..], Call::Get, 2, 5),
            (3, &b"k0"[..], Call::Delete, 3, u64::MAX),
        ]
    );
    assert_eq!(
        records[0].outcome,
        Outcome::Ok(core::OperationResult::Written { version: 1 })
    );
    assert!(
        matches!(records[1].outcome, Outcome::Unknown(_)),
        "no return"
    );
    assert!(matches!(records[2].outcome, Outcome::Failed(_)), "refused");
}

#[test]
fn every_model_result_becomes_the_implementations() {
    use model::types::OperationResult as R;
    let results = [
        (
            R::Value {
                value: Some(3),
                version: 2,
            },
            core::OperationResult::Value {
                value: Some(vec![3]),
                version: 2,
            },
        ),
        (
            R::Value {
                value: None,
                version: 0,
            },
            core::OperationResult::Value {
                value: None,
                version: 0,
            },
        ),
        (
            R::Written { version: 2 },
            core::OperationResult::Written { version: 2 },
        ),
        (
            R::VersionMismatch { current_version: 2 },
            core::OperationResult::VersionMismatch { current_version: 2 },
        ),
        (
            R::Deleted { version: 2 },
            core::OperationResult::Deleted { version: 2 },
        ),
    ];
    for (model, core) in results {
        assert_eq!(super::result_of(&model), core, "{model:?}");
    }
}

// ---------------------------------------------------------------- malformed events

#[test]
fn a_request_timer_at_a_master_is_an_error() {
    let lines = vec![at_master(
        0,
        core::TraceKind::Timeout {
            timer: core::Timer::Request,
        },
    )];
    assert!(matches!(
        last_actions(lines),
        Err(MappingError::Unsupported(_))
    ));
}

#[test]
fn a_request_timeout_that_completes_no_request_is_an_error() {
    let mut lines = request_forwarded();
    lines.push(at_proxy(core::TraceKind::Timeout {
        timer: core::Timer::Request,
    }));
    assert!(matches!(
        last_actions(lines),
        Err(MappingError::UnknownRequest(_))
    ));
}

#[test]
fn a_forwarding_id_no_request_was_forwarded_with_is_an_error() {
    let mut lines = request_forwarded();
    lines.push(at_proxy(core::TraceKind::ForwardLost {
        request_id: FORWARD + 1,
    }));
    assert!(matches!(
        last_actions(lines),
        Err(MappingError::UnknownRequest(_))
    ));
}

#[test]
fn a_master_the_run_does_not_have_is_an_error() {
    let kinds = [
        core::TraceKind::Restart,
        core::TraceKind::Persist,
        core::TraceKind::Pause,
        core::TraceKind::Timeout {
            timer: core::Timer::Election,
        },
    ];
    for kind in kinds {
        let lines = vec![at_master(MASTERS, kind.clone())];
        assert_eq!(
            last_actions(lines),
            Err(MappingError::UnknownMaster {
                node: MASTERS,
                masters: MASTERS,
            }),
            "{kind}"
        );
    }
    let vocabulary = known();
    let from_nowhere = super::send_of(
        &vocabulary,
        core::Origin::Master(MASTERS),
        &master_endpoint(0),
        &core::Message::PreVote {
            ballot: ballot(1, 0),
        },
    );
    assert!(matches!(
        from_nowhere,
        Err(MappingError::UnknownMaster { .. })
    ));
}

#[test]
fn a_number_beyond_the_models_type_is_an_error() {
    let vocabulary = known();
    let message = core::Message::PreVote {
        ballot: ballot(1, 300),
    };
    assert_eq!(
        vocabulary.message(&message),
        Err(MappingError::OutOfRange {
            what: "node id",
            value: 300,
        })
    );
}

#[test]
fn what_the_model_does_not_represent_is_an_error() {
    let vocabulary = known();
    let snapshot = core::Message::CatchUp {
        ballot: ballot(1, 0),
        commit_index: 3,
        snapshot: Some(core::Snapshot {
            slot: 3,
            store: core::KvStore::default(),
        }),
        entries: Vec::new(),
    };
    assert!(matches!(
        vocabulary.message(&snapshot),
        Err(MappingError::Unsupported(_))
    ));
    let denied = core::Message::Reply {
        request_id: 1,
        outcome: Err(core::ClientError::PermissionDenied),
    };
    assert!(matches!(
        vocabulary.client_message(CLIENT, &denied),
        Err(MappingError::Unsupported(_))
    ));
    let unwritten = core::OperationResult::Value {
        value: Some(b"never-written".to_vec()),
        version: 1,
    };
    assert!(matches!(
        vocabulary.result(&unwritten),
        Err(MappingError::Unsupported(_))
    ));
    let from_a_client = vec![at_proxy(core::TraceKind::Receive {
        from: core::Endpoint::Client(CLIENT),
        message: core::Message::PreVote {
            ballot: ballot(1, 0),
        },
    })];
    assert!(matches!(
        last_actions(from_a_client),
        Err(MappingError::Unsupported(_))
    ));
}

#[test]
fn a_request_or_reply_without_its_client_is_an_error() {
    let vocabulary = known();
    let reply = core::Message::Reply {
        request_id: 1,
        outcome: Ok(core::OperationResult::Written { version: 1 }),
    };
    assert!(matches!(
        vocabulary.message(&reply),
        Err(MappingError::Unsupported(_))
    ));
    assert!(matches!(
        vocabulary.client_message(CLIENT + 5, &reply),
        Err(MappingError::UnknownRequest(_))
    ));
}

// The revisioned API (`docs/protocol.md` §14–§17).

use vigil_core::kv_types as core_kv;
use vigil_model::kv_types as model_kv;

/// The revisioned client connection of these tests.
const KV_CLIENT: u64 = 9;
/// The proxy's forwarding id of the revisioned request.
const KV_FORWARD: u64 = 41;

fn kv_put(key: &str, value: &str) -> core_kv::KvOperation {
    core_kv::KvOperation::Put(core_kv::PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        prev_kv: false,
    })
}

fn prefix_watch(start_revision: u64) -> core_kv::WatchRequest {
    core_kv::WatchRequest {
        range: core_kv::KeyRange::prefix(b"w/"),
        start_revision,
        prev_kv: false,
        filter: None,
    }
}

fn from_kv_client(message: core::Message) -> TraceLine {
    at_proxy(core::TraceKind::Receive {
        from: core::Endpoint::Client(KV_CLIENT),
        message,
    })
}

/// Connection `KV_CLIENT`: `Put w/b v1` (request 1, forwarded as `KV_FORWARD`), a watch of
/// prefix `w/` from revision 2 (watch 1), its cancel, and the close: after request
/// `CLIENT`'s `Put k0 v0`, so model client 1 with request ids 1 to 4.
fn kv_session() -> Vec<TraceLine> {
    let mut lines = request_forwarded();
    lines.push(from_kv_client(core::Message::KvRequest {
        request_id: 1,
        cluster: "local".to_string(),
        operation: kv_put("w/b", "v1"),
    }));
    lines.push(at_proxy(core::TraceKind::RequestAccepted {
        client: KV_CLIENT,
        request_id: 1,
    }));
    lines.push(at_proxy(core::TraceKind::Send {
        to: master_endpoint(1),
        message: core::Message::KvPropose {
            request_id: KV_FORWARD,
            operation: kv_put("w/b", "v1"),
        },
    }));
    lines.push(from_kv_client(core::Message::WatchCreate {
        watch_id: 1,
        cluster: "local".to_string(),
        watch: prefix_watch(2),
    }));
    lines.push(from_kv_client(core::Message::WatchCancel { watch_id: 1 }));
    lines.push(from_kv_client(core::Message::ClientClosed));
    lines
}

/// Key codes of `kv_session`: `k0`, `w/`, `w/b`, `w0` (the prefix's end) in byte order.
const W_PREFIX: u8 = 1;
const W_B: u8 = 2;
const W_END: u8 = 3;

fn model_prefix_watch(start_revision: u32) -> model_kv::WatchRequest {
    model_kv::WatchRequest {
        range: model_kv::KeyRange {
            key: W_PREFIX,
            end: model_kv::RangeEnd::Before(W_END),
        },
        start_revision,
        prev_kv: false,
        filter: None,
    }
}

fn model_kv_put() -> model_kv::KvOperation {
    model_kv::KvOperation::Put(model_kv::PutRequest {
        key: W_B,
        value: 1,
        prev_kv: false,
    })
}

#[test]
fn a_revisioned_connection_is_one_model_client_with_its_steps_in_order() {
    let vocabulary = vocabulary(&merged(kv_session()));
    assert_eq!(vocabulary.config.clients.len(), 1);
    assert_eq!(
        vocabulary.config.kv_clients,
        vec![model::KvClientScript {
            cluster: 0,
            steps: vec![
                model::KvStep::Operation(model_kv_put()),
                model::KvStep::Watch(model_prefix_watch(2)),
                model::KvStep::Cancel { watch: 1 },
                model::KvStep::Disconnect,
            ],
        }]
    );
}

#[test]
fn each_step_of_a_revisioned_client_is_its_request_then_its_delivery() {
    let actions = all_actions(kv_session());
    let step = |message| {
        Ok(vec![
            Action::ClientRequest(1),
            Action::Deliver {
                source: Endpoint::Client(1),
                destination: Endpoint::Proxy,
                message,
            },
        ])
    };
    assert_eq!(
        actions[3],
        step(Message::KvRequest {
            request_id: 1,
            cluster: 0,
            operation: model_kv_put(),
        })
    );
    assert_eq!(actions[4], Ok(Vec::new()), "RequestAccepted is a part");
    assert_eq!(actions[5], Ok(Vec::new()), "a send is a part");
    assert_eq!(
        actions[6],
        step(Message::WatchCreate {
            watch_id: 2,
            cluster: 0,
            watch: model_prefix_watch(2),
        })
    );
    assert_eq!(actions[7], step(Message::WatchCancel { watch_id: 2 }));
    assert_eq!(actions[8], step(Message::ClientClosed));
}

#[test]
fn keys_and_values_are_coded_in_byte_order() {
    let mut lines = kv_session();
    lines.push(from_kv_client(core::Message::KvRequest {
        request_id: 2,
        cluster: "local".to_string(),
        operation: kv_put("a", "w"),
    }));
    let vocabulary = vocabulary(&merged(lines));
    let range = core_kv::KvOperation::Range(core_kv::RangeRequest {
        limit: 1,
        revision: 3,
        ..core_kv::RangeRequest::of(core_kv::KeyRange::prefix(b"w/"))
    });
    assert_eq!(
        vocabulary.kv_operation(&range),
        Ok(model_kv::KvOperation::Range(model_kv::RangeRequest {
            range: model_kv::KeyRange {
                key: W_PREFIX + 1,
                end: model_kv::RangeEnd::Before(W_END + 1),
            },
            limit: 1,
            revision: 3,
            keys_only: false,
            count_only: false,
        })),
        "`a` sorts first: every other code moves up by one"
    );
    assert_eq!(
        vocabulary.kv_operation(&kv_put("a", "w")),
        Ok(model_kv::KvOperation::Put(model_kv::PutRequest {
            key: 0,
            value: 2,
            prev_kv: false,
        })),
        "values v0, v1, w: `w` sorts last"
    );
}

/// A record of key `w/b` with value `v1` at revision 2.
fn record() -> (core_kv::KeyValue, model_kv::KeyValue) {
    (
        core_kv::KeyValue {
            key: b"w/b".to_vec(),
            value: Some(b"v1".to_vec()),
            create_revision: 2,
            mod_revision: 2,
            version: 1,
        },
        model_kv::KeyValue {
            key: W_B,
            value: Some(1),
            create_revision: 2,
            mod_revision: 2,
            version: 1,
        },
    )
}

fn txn() -> (core_kv::KvOperation, model_kv::KvOperation) {
    let core_txn = core_kv::TxnRequest {
        compare: vec![core_kv::Compare {
            key: b"w/b".to_vec(),
            target: core_kv::CompareTarget::Value(b"v0".to_vec()),
            result: core_kv::CompareResult::Greater,
        }],
        success: vec![core_kv::TxnOperation::DeleteRange(
            core_kv::DeleteRangeRequest {
                range: core_kv::KeyRange::single(b"w/b"),
                prev_kv: true,
            },
        )],
        failure: vec![core_kv::TxnOperation::Range(core_kv::RangeRequest::of(
            core_kv::KeyRange::single(b"w/b"),
        ))],
    };
    let model_txn = model_kv::TxnRequest {
        compare: vec![model_kv::Compare {
            key: W_B,
            target: model_kv::CompareTarget::Value(0),
            result: model_kv::CompareResult::Greater,
        }],
        success: vec![model_kv::TxnOperation::DeleteRange(
            model_kv::DeleteRangeRequest {
                range: model_kv::KeyRange::single(W_B),
                prev_kv: true,
            },
        )],
        failure: vec![model_kv::TxnOperation::Range(model_kv::RangeRequest {
            range: model_kv::KeyRange::single(W_B),
            limit: 0,
            revision: 0,
            keys_only: false,
            count_only: false,
        })],
    };
    (
        core_kv::KvOperation::Txn(core_txn),
        model_kv::KvOperation::Txn(Box::new(model_txn)),
    )
}

/// Every revisioned message between the proxy and a master, and the model's.
fn revisioned_master_messages() -> Vec<(core::Message, Message)> {
    let (core_record, model_record) = record();
    let (core_txn, model_txn) = txn();
    let core_event = core_kv::Event {
        kind: core_kv::EventKind::Put,
        kv: core_record.clone(),
        prev_kv: None,
    };
    let model_event = model_kv::Event {
        kind: model_kv::EventKind::Put,
        kv: model_record,
        prev_kv: None,
    };
    vec![
        (
            core::Message::KvPropose {
                request_id: KV_FORWARD,
                operation: core_txn,
            },
            Message::KvPropose {
                request_id: 1,
                operation: model_txn,
            },
        ),
        (
            core::Message::KvProposeReply {
                request_id: KV_FORWARD,
                outcome: Ok(core_kv::KvResult::Txn(core_kv::TxnResult {
                    revision: 3,
                    succeeded: true,
                    responses: vec![core_kv::TxnOperationResult::DeleteRange(
                        core_kv::DeleteRangeResult {
                            revision: 3,
                            deleted: 1,
                            prev_kvs: vec![core_record.clone()],
                        },
                    )],
                })),
            },
            Message::KvProposeReply {
                request_id: 1,
                outcome: Ok(model_kv::KvResult::Txn(Box::new(model_kv::TxnResult {
                    revision: 3,
                    succeeded: true,
                    responses: vec![model_kv::TxnOperationResult::DeleteRange(
                        model_kv::DeleteRangeResult {
                            revision: 3,
                            deleted: 1,
                            prev_kvs: vec![model_record],
                        },
                    )],
                }))),
            },
        ),
        (
            core::Message::KvProposeReply {
                request_id: KV_FORWARD,
                outcome: Err(core::MasterError::NotLeader {
                    leader_hint: Some(2),
                }),
            },
            Message::KvProposeReply {
                request_id: 1,
                outcome: Err(model::types::ProposeError::NotLeader {
                    leader_hint: Some(2),
                }),
            },
        ),
        (
            core::Message::Subscribe { from_revision: 2 },
            Message::Subscribe { from_revision: 2 },
        ),
        (core::Message::Unsubscribe, Message::Unsubscribe),
        (
            core::Message::Events {
                revision: 4,
                revisions: vec![core_kv::RevisionEvents {
                    revision: 2,
                    events: vec![core_event],
                }],
            },
            Message::Events {
                revision: 4,
                revisions: vec![model_kv::RevisionEvents {
                    revision: 2,
                    events: vec![model_event],
                }],
            },
        ),
        (
            core::Message::SubscriptionCompacted {
                compact_revision: 3,
            },
            Message::SubscriptionCompacted {
                compact_revision: 3,
            },
        ),
    ]
}

#[test]
fn every_revisioned_message_of_the_masters_maps_field_for_field() {
    let vocabulary = vocabulary(&merged(kv_session()));
    for (core_message, model_message) in revisioned_master_messages() {
        assert_eq!(
            vocabulary.message(&core_message),
            Ok(model_message),
            "{core_message:?}"
        );
    }
}

#[test]
fn every_revisioned_message_to_a_client_maps_with_its_connections_client() {
    let vocabulary = vocabulary(&merged(kv_session()));
    let (core_record, model_record) = record();
    let cases = vec![
        (
            core::Message::KvReply {
                request_id: 1,
                outcome: Ok(core_kv::KvResult::Range(core_kv::RangeResult {
                    kvs: vec![core_record.clone()],
                    more: true,
                    count: 2,
                    revision: 4,
                })),
            },
            Message::KvReply {
                request_id: 1,
                outcome: Ok(model_kv::KvResult::Range(Box::new(model_kv::RangeResult {
                    kvs: vec![model_record],
                    more: true,
                    count: 2,
                    revision: 4,
                }))),
            },
        ),
        (
            core::Message::KvReply {
                request_id: 1,
                outcome: Ok(core_kv::KvResult::Compacted {
                    compact_revision: 3,
                }),
            },
            Message::KvReply {
                request_id: 1,
                outcome: Ok(model_kv::KvResult::Compacted {
                    compact_revision: 3,
                }),
            },
        ),
        (
            core::Message::KvReply {
                request_id: 1,
                outcome: Err(core::ClientError::Timeout),
            },
            Message::KvReply {
                request_id: 1,
                outcome: Err(model::types::RequestError::Timeout),
            },
        ),
        (
            core::Message::WatchCreated { watch_id: 1 },
            Message::WatchCreated { watch_id: 2 },
        ),
        (
            core::Message::WatchEvents {
                watch_id: 1,
                revision: 2,
                events: vec![core_kv::Event {
                    kind: core_kv::EventKind::Delete,
                    kv: core_record,
                    prev_kv: None,
                }],
            },
            Message::WatchEvents {
                watch_id: 2,
                revision: 2,
                events: vec![model_kv::Event {
                    kind: model_kv::EventKind::Delete,
                    kv: model_record,
                    prev_kv: None,
                }],
            },
        ),
        (
            core::Message::WatchProgress {
                watch_id: 1,
                revision: 5,
            },
            Message::WatchProgress {
                watch_id: 2,
                revision: 5,
            },
        ),
        (
            core::Message::WatchEnded {
                watch_id: 1,
                outcome: core_kv::WatchEnd::Compacted {
                    compact_revision: 3,
                },
            },
            Message::WatchEnded {
                watch_id: 2,
                outcome: model_kv::WatchEnd::Compacted {
                    compact_revision: 3,
                },
            },
        ),
    ];
    for (core_message, model_message) in cases {
        assert_eq!(
            vocabulary.client_message(KV_CLIENT, &core_message),
            Ok(model_message),
            "{core_message:?}"
        );
        assert_eq!(
            vocabulary.endpoint_for(crate::merge::Party::Client(KV_CLIENT), &core_message),
            Ok(Endpoint::Client(1))
        );
    }
}

#[test]
fn a_revisioned_command_in_an_entry_is_the_models_with_its_request() {
    let vocabulary = vocabulary(&merged(kv_session()));
    let accept = core::Message::Accept {
        ballot: ballot(2, 1),
        slot: 3,
        command: core::Command::Kv {
            proxy: 0,
            request_id: KV_FORWARD,
            operation: kv_put("w/b", "v1"),
        },
        commit_index: 2,
    };
    assert_eq!(
        vocabulary.message(&accept),
        Ok(Message::Accept {
            ballot: model_ballot(2, 1),
            slot: 3,
            command: model::types::Command::Kv {
                request_id: 1,
                operation: model_kv_put(),
            },
            commit_index: 2,
        })
    );
}

#[test]
fn the_proxys_connection_closed_is_the_delivery_of_its_hosts_notice() {
    let mut lines = kv_session();
    lines.push(at_proxy(core::TraceKind::ConnectionClosed {
        cluster: "local".to_string(),
        node: 2,
    }));
    assert_eq!(
        last_actions(lines),
        Ok(vec![Action::Deliver {
            source: Endpoint::Master(2),
            destination: Endpoint::Proxy,
            message: Message::ConnectionClosed,
        }])
    );
}

#[test]
fn a_revisioned_requests_timeout_times_it_out() {
    let mut lines = kv_session();
    lines.push(at_proxy(core::TraceKind::Timeout {
        timer: core::Timer::Request,
    }));
    lines.push(at_proxy(core::TraceKind::KvRequestCompleted {
        client: KV_CLIENT,
        request_id: 1,
        outcome: Err(core::ClientError::Timeout),
    }));
    lines.push(at_proxy(core::TraceKind::WatchEnded {
        client: KV_CLIENT,
        watch_id: 1,
        outcome: core_kv::WatchEnd::Cancelled,
    }));
    let actions = all_actions(lines);
    assert_eq!(actions[9], Ok(vec![Action::RequestTimeout(1)]));
    assert_eq!(actions[10], Ok(Vec::new()), "KvRequestCompleted is a part");
    assert_eq!(actions[11], Ok(Vec::new()), "WatchEnded is a part");
}

#[test]
fn the_revisioned_bounds_are_the_runs_saturated_at_the_models_type() {
    let vocabulary = vocabulary(&merged(kv_session()));
    let config = &vocabulary.config;
    assert_eq!(config.range_limit_max, u8::MAX, "10,000 saturates");
    assert_eq!(config.txn_operations_max, 128);
    assert_eq!(config.watches_per_client_max, u8::MAX, "1,024 saturates");
    assert_eq!(config.watch_events_buffered_max, u8::MAX, "1,024 saturates");
}

/// The refusals that remain, each because the model has no such thing: a watch the
/// host denied and a watch ended `PermissionDenied` (client tokens, docs/security.md), a watch
/// ended `Dropped` (the model's one `end_watch` cannot drop one), and a connection naming two
/// clusters (a model client names one).
#[test]
fn what_the_model_does_not_represent_of_the_revisioned_api_is_an_error() {
    let vocabulary = vocabulary(&merged(kv_session()));
    let from_now = vocabulary.watch_request(&prefix_watch(0));
    assert_eq!(from_now.map(|request| request.start_revision), Ok(0));
    for outcome in [
        core_kv::WatchEnd::PermissionDenied,
        core_kv::WatchEnd::Dropped,
    ] {
        let ended = core::Message::WatchEnded {
            watch_id: 1,
            outcome,
        };
        assert!(matches!(
            vocabulary.client_message(KV_CLIENT, &ended),
            Err(MappingError::Unsupported(_))
        ));
    }
    let mut denied = kv_session();
    denied.push(at_proxy(core::TraceKind::WatchDenied {
        client: KV_CLIENT,
        watch_id: 2,
        cluster: "local".to_string(),
    }));
    assert!(matches!(
        last_actions(denied),
        Err(MappingError::Unsupported(_))
    ));
    let mut two_clusters = kv_session();
    two_clusters.push(from_kv_client(core::Message::KvRequest {
        request_id: 2,
        cluster: "elsewhere".to_string(),
        operation: kv_put("w/b", "v1"),
    }));
    assert!(matches!(
        Vocabulary::build(&merged(two_clusters), &protocol(), "local"),
        Err(MappingError::Unsupported(_))
    ));
}

#[test]
fn a_revisioned_message_out_of_the_models_range_or_unknown_is_an_error() {
    let vocabulary = vocabulary(&merged(kv_session()));
    assert_eq!(
        vocabulary.message(&core::Message::Subscribe {
            from_revision: 1 << 40,
        }),
        Err(MappingError::OutOfRange {
            what: "revision",
            value: 1 << 40,
        })
    );
    assert!(matches!(
        vocabulary.client_message(KV_CLIENT, &core::Message::WatchCreated { watch_id: 7 }),
        Err(MappingError::UnknownRequest(_))
    ));
    let mut cancel_of_nothing = request_forwarded();
    cancel_of_nothing.push(from_kv_client(core::Message::WatchCancel { watch_id: 3 }));
    assert!(matches!(
        Vocabulary::build(&merged(cancel_of_nothing), &protocol(), "local"),
        Err(MappingError::UnknownRequest(_))
    ));
}
