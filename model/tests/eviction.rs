//! What a leader's eviction does to the messages it already sent the follower (`docs/protocol.md`
//! §5.1, `docs/trace.md` §8): nothing. The eviction closes the connection, but
//! what was written to it cannot be taken back (the nemesis saw a thawed follower read such an
//! `Accept` from its socket after a message that was causally after the eviction). So it stays
//! in flight, deliverable or lost like any message; the follower accepting it is harmless (its
//! `Accepted` counts for no quorum), and with per-link FIFO it may arrive before or after what
//! the leader sends on its next connection.

mod common;

use common::step;
use vigil_model::presets;
use vigil_model::types::Operation;
use vigil_model::{Action, Budget, ClientScript, Config, Delivery, Endpoint, Message, State};

const LEADER: Endpoint = Endpoint::Master(0);
const PAUSED: Endpoint = Endpoint::Master(1);
const HEALTHY: Endpoint = Endpoint::Master(2);

fn config(delivery: Delivery) -> Config {
    let mut config = presets::ci_pause().config;
    config.clients = vec![ClientScript {
        cluster: config.cluster,
        operations: vec![Operation::Put { key: 0, value: 1 }],
    }];
    config.budget = Budget::UNBOUNDED;
    config.messages_in_flight_max = None;
    config.delivery = delivery;
    config
}

fn deliver(config: &Config, state: State, link: (Endpoint, Endpoint), message: Message) -> State {
    let action = Action::Deliver {
        source: link.0,
        destination: link.1,
        message,
    };
    step(config, state, action)
}

fn head(state: &State, link: (Endpoint, Endpoint)) -> Message {
    state.network[&link][0].clone()
}

fn deliver_head(config: &Config, state: State, link: (Endpoint, Endpoint)) -> State {
    let message = head(&state, link);
    deliver(config, state, link, message)
}

fn is_accept(message: &Message) -> bool {
    matches!(message, Message::Accept { .. })
}

/// Master 1 pauses; the leader proposes the client's write (an `Accept` to both followers),
/// master 2 accepts, and two heartbeat periods later the leader evicts master 1.
fn evicted_with_an_accept_in_flight(config: &Config) -> State {
    let mut state = State::initial(config);
    state = step(config, state, Action::Pause(1));
    state = step(config, state, Action::ClientRequest(0));
    state = deliver_head(config, state, (Endpoint::Client(0), Endpoint::Proxy));
    state = deliver_head(config, state, (Endpoint::Proxy, LEADER));
    assert!(is_accept(&head(&state, (LEADER, PAUSED))));
    state = step(config, state, Action::HeartbeatTimeout(0));
    state = deliver_head(config, state, (LEADER, HEALTHY));
    state = deliver_head(config, state, (HEALTHY, LEADER));
    state = step(config, state, Action::HeartbeatTimeout(0));
    let leader = state.masters[0].leader_state().expect("master 0 leads");
    assert!(leader.evicted.contains(1), "the paused follower is evicted");
    state
}

#[test]
fn what_the_leader_sent_before_an_eviction_stays_in_flight_and_is_harmless() {
    let config = config(Delivery::Unordered);
    let mut state = evicted_with_an_accept_in_flight(&config);
    let old = state.network[&(LEADER, PAUSED)].clone();
    assert!(
        old.iter().any(is_accept),
        "the Accept is still in flight: {old:?}"
    );
    assert!(
        state.closed_connection_messages.is_empty(),
        "order is not tracked on an unordered network"
    );
    state = step(&config, state, Action::Resume(1));
    let accept = old
        .iter()
        .find(|message| is_accept(message))
        .unwrap()
        .clone();
    state = deliver(&config, state, (LEADER, PAUSED), accept);
    assert_eq!(state.masters[1].log.len(), 1, "the follower accepted it");
    let accepted = state.network[&(PAUSED, LEADER)]
        .iter()
        .find(|message| matches!(message, Message::Accepted { .. }))
        .expect("and answered")
        .clone();
    state = deliver(&config, state, (PAUSED, LEADER), accepted);
    let leader = state.masters[0]
        .leader_state()
        .expect("master 0 still leads");
    assert!(
        leader.accepted_by.values().all(|nodes| !nodes.contains(1)),
        "an evicted follower's acceptance counts for no quorum"
    );
    for property in vigil_model::properties::all() {
        if property.expectation == stateright::Expectation::Always {
            assert!(
                (property.condition)(&config, &state),
                "{} holds",
                property.name
            );
        }
    }
}

#[test]
fn with_per_link_fifo_the_closed_connection_may_arrive_after_the_next_one() {
    let config = config(Delivery::PerLinkFifo);
    let mut state = evicted_with_an_accept_in_flight(&config);
    let link = (LEADER, PAUSED);
    let closed = state.network[&link].len();
    assert_eq!(state.closed_connection_messages[&link], closed);
    // Thawed, master 1 asks for pre-votes; the leader refuses on its next connection.
    state = step(&config, state, Action::Resume(1));
    state = step(&config, state, Action::ElectionTimeout(1));
    state = deliver_head(&config, state, (PAUSED, LEADER));
    let refusal = state.network[&link][closed].clone();
    assert!(
        matches!(refusal, Message::PreVoteReply { granted: false, .. }),
        "{refusal:?}"
    );
    // Every closed-connection message and the next connection's head are deliverable.
    let deliverable: Vec<Message> = config
        .enabled_actions(&state)
        .into_iter()
        .filter_map(|action| match action {
            Action::Deliver {
                source,
                destination,
                message,
            } if (source, destination) == link => Some(message),
            _ => None,
        })
        .collect();
    for message in state.network[&link][..=closed].iter() {
        assert!(deliverable.contains(message), "{message:?} deliverable");
    }
    assert_eq!(deliverable.len(), closed + 1);
    // The refusal first: the closed connection's messages stay deliverable after it.
    state = deliver(&config, state, link, refusal);
    assert_eq!(state.network[&link].len(), closed);
    assert_eq!(state.closed_connection_messages[&link], closed);
    let accept = state.network[&link]
        .iter()
        .find(|message| is_accept(message))
        .expect("the Accept of the closed connection")
        .clone();
    state = deliver(&config, state, link, accept);
    assert_eq!(state.masters[1].log.len(), 1, "accepted after the refusal");
    assert_eq!(
        state.closed_connection_messages.get(&link).copied(),
        state.network.get(&link).map(Vec::len),
        "the count follows what is left of the closed connection"
    );
}
