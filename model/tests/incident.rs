//! The incident (`docs/incident.md`) replayed step by step through the model with
//! `Config::apply`, the function conformance uses: a follower pauses (a GC pause), misses
//! heartbeats, is evicted, and clients keep naming a wrong cluster. With `error-path-leak` the
//! wrong-cluster requests never complete, fill the ledger and starve a good request (the leak
//! that became an OOM); without it every request completes.

mod common;

use common::step;
use vigil_model::presets::{self, WRONG_CLUSTER};
use vigil_model::types::{Operation, RequestError};
use vigil_model::{Action, Budget, Bug, ClientScript, Config, Endpoint, State};

const LEADER: Endpoint = Endpoint::Master(0);
const PAUSED: Endpoint = Endpoint::Master(1);
const HEALTHY: Endpoint = Endpoint::Master(2);

fn config(bugs: &[Bug]) -> Config {
    let mut config = presets::ci_pause().config;
    let wrong = ClientScript {
        cluster: WRONG_CLUSTER,
        operations: vec![Operation::Get { key: 0 }],
    };
    let good = ClientScript {
        cluster: config.cluster,
        operations: vec![Operation::Put { key: 0, value: 1 }],
    };
    config.clients = vec![good, wrong.clone(), wrong];
    config.budget = Budget::UNBOUNDED;
    config.messages_in_flight_max = None;
    config.bugs = bugs.iter().copied().collect();
    config
}

/// Delivers the head of the link `source -> destination`.
fn deliver(config: &Config, state: State, source: Endpoint, destination: Endpoint) -> State {
    let message = state.network[&(source, destination)][0].clone();
    step(
        config,
        state,
        Action::Deliver {
            source,
            destination,
            message,
        },
    )
}

/// Pause → missed heartbeats → eviction → wrong-cluster requests → a good request.
fn incident(config: &Config) -> State {
    let mut state = State::initial(config);
    state = step(config, state, Action::Pause(1));
    state = step(config, state, Action::HeartbeatTimeout(0));
    state = deliver(config, state, LEADER, HEALTHY);
    state = deliver(config, state, HEALTHY, LEADER);
    state = step(config, state, Action::HeartbeatTimeout(0));
    let leader = state.masters[0].leader_state().expect("master 0 leads");
    assert!(leader.evicted.contains(1), "the paused follower is evicted");
    assert_eq!(leader.missed_heartbeats[1], config.eviction_threshold);
    // The first heartbeat was written to the connection the eviction closed: it cannot be
    // taken back, and may still reach the follower after the leader's next connection's.
    let in_flight = state.network[&(LEADER, PAUSED)].len();
    assert_eq!(in_flight, 1, "the heartbeat sent before the eviction");
    assert_eq!(
        state.closed_connection_messages[&(LEADER, PAUSED)],
        in_flight,
        "sent on the closed connection"
    );
    state = deliver(config, state, LEADER, HEALTHY);
    state = deliver(config, state, HEALTHY, LEADER);
    for wrong_client in [1, 2] {
        state = step(config, state, Action::ClientRequest(wrong_client));
        state = deliver(
            config,
            state,
            Endpoint::Client(wrong_client),
            Endpoint::Proxy,
        );
    }
    state = step(config, state, Action::ClientRequest(0));
    deliver(config, state, Endpoint::Client(0), Endpoint::Proxy)
}

/// Persists and delivers everything left, oldest link first, resuming the paused follower when
/// its link comes up (it still has the heartbeat sent before its eviction).
fn drain(config: &Config, mut state: State) -> State {
    for _ in 0..64 {
        let writing = (0..config.masters).find(|node| {
            !state.masters[*node as usize].pending_writes.is_empty()
                && !state.masters[*node as usize].paused
        });
        if let Some(node) = writing {
            state = step(config, state, Action::Persist(node));
            continue;
        }
        let Some((source, destination)) = state.network.keys().next().copied() else {
            break;
        };
        if destination == PAUSED && state.masters[1].paused {
            state = step(config, state, Action::Resume(1));
            continue;
        }
        state = deliver(config, state, source, destination);
    }
    state
}

fn quiescent_requests_complete(config: &Config, state: &State) -> bool {
    let property = vigil_model::properties::all()
        .into_iter()
        .find(|property| property.name == "quiescent_requests_complete")
        .expect("property exists");
    (property.condition)(config, state)
}

#[test]
fn without_the_bug_every_request_completes() {
    let config = config(&[]);
    let state = drain(&config, incident(&config));
    let ledger = state.proxy.ledger;
    assert_eq!(ledger.accepted, 3);
    assert_eq!(
        (ledger.completed_ok, ledger.completed_err, ledger.in_flight),
        (1, 2, 0)
    );
    for wrong_client in [1, 2] {
        let reply = state.clients[wrong_client]
            .replies
            .values()
            .next()
            .expect("answered");
        assert_eq!(
            (reply.count, reply.outcome),
            (1, Err(RequestError::UnknownCluster))
        );
    }
    assert!(state.clients[0]
        .replies
        .values()
        .all(|reply| reply.outcome.is_ok()));
    assert!(quiescent_requests_complete(&config, &state));
}

#[test]
fn with_error_path_leak_the_ledger_fills_and_starves_good_requests() {
    let config = config(&[Bug::ErrorPathLeak]);
    let state = drain(&config, incident(&config));
    let ledger = state.proxy.ledger;
    assert_eq!(ledger.accepted, 3);
    assert_eq!(ledger.in_flight, 2, "both wrong-cluster requests leaked");
    assert!(state.clients[1].replies.is_empty() && state.clients[2].replies.is_empty());
    let good = state.clients[0]
        .replies
        .values()
        .next()
        .expect("the good request is answered");
    assert_eq!(
        good.outcome,
        Err(RequestError::Overloaded),
        "the leak starves the good request"
    );
    assert!(state.network.is_empty());
    assert!(
        !quiescent_requests_complete(&config, &state),
        "the leak is a violation at quiescence"
    );
}

#[test]
fn apply_refuses_an_action_that_is_not_enabled() {
    let config = config(&[]);
    let state = State::initial(&config);
    assert!(
        config.apply(&state, &Action::Resume(1)).is_none(),
        "nothing is paused"
    );
    assert!(
        config.apply(&state, &Action::ElectionTimeout(0)).is_none(),
        "a leader has no election timer"
    );
    let paused = config
        .apply(&state, &Action::Pause(1))
        .expect("pause is enabled");
    let json = serde_json::to_string(&paused).expect("states serialize");
    let back: State = serde_json::from_str(&json).expect("and deserialize");
    assert_eq!(back, paused);
}
