//! §6.3 in the model: a follower with a gap below its leader's commit index keeps one `Rejoin`
//! outstanding, and asks again only after `RejoinWaitExpired` (an election timeout without a
//! `CatchUp`: the `Rejoin` or its answer was lost). The step sends nothing and is enabled only
//! while a `Rejoin` is outstanding at a running master.

use vigil_model::presets;
use vigil_model::types::{Ballot, Command, Entry};
use vigil_model::{Action, Budget, Config, Endpoint, Message, State};

const LEADER: Endpoint = Endpoint::Master(0);
const FOLLOWER: Endpoint = Endpoint::Master(1);

fn config() -> Config {
    let mut config = presets::ci_election().config;
    config.budget = Budget::UNBOUNDED;
    config.messages_in_flight_max = None;
    config
}

fn step(config: &Config, state: &State, action: Action) -> State {
    match config.apply(state, &action) {
        Some(next) => next,
        None => panic!(
            "not enabled: {action}\nenabled: {:#?}",
            config.enabled_actions(state)
        ),
    }
}

/// The leader has slot 1 committed; master 1 never got its `Accept`. A `Heartbeat` naming
/// commit index 1 is in flight to master 1.
fn follower_with_a_gap(config: &Config) -> State {
    let mut state = State::initial(config);
    let ballot = Ballot { round: 1, node: 0 };
    state.masters[0].log.insert(
        1,
        Entry {
            ballot,
            command: Command::Noop,
        },
    );
    state.masters[0].commit_index = 1;
    state.network.insert(
        (LEADER, FOLLOWER),
        vec![
            Message::Heartbeat {
                ballot,
                commit_index: 1,
                heartbeat_sequence: 0,
            };
            2
        ],
    );
    state
}

fn heartbeat() -> Action {
    Action::Deliver {
        source: LEADER,
        destination: FOLLOWER,
        message: Message::Heartbeat {
            ballot: Ballot { round: 1, node: 0 },
            commit_index: 1,
            heartbeat_sequence: 0,
        },
    }
}

fn rejoins_in_flight(state: &State) -> usize {
    state
        .network
        .get(&(FOLLOWER, LEADER))
        .map_or(0, |messages| {
            messages
                .iter()
                .filter(|message| matches!(message, Message::Rejoin { .. }))
                .count()
        })
}

#[test]
fn a_follower_asks_again_only_after_its_rejoin_wait_expired() {
    let config = config();
    let state = follower_with_a_gap(&config);
    assert!(!config
        .enabled_actions(&state)
        .contains(&Action::RejoinWaitExpired(1)));
    let state = step(&config, &state, heartbeat());
    assert_eq!(rejoins_in_flight(&state), 1);
    assert!(state.masters[1].rejoin_requested);
    // The `Rejoin` is lost.
    let lost = Action::Drop {
        source: FOLLOWER,
        destination: LEADER,
        message: Message::Rejoin {
            ballot: Ballot { round: 1, node: 0 },
            commit_index: 0,
        },
    };
    let state = step(&config, &state, lost);
    assert_eq!(rejoins_in_flight(&state), 0);
    let expired = step(&config, &state, Action::RejoinWaitExpired(1));
    assert_eq!(expired.network, state.network, "the step sends nothing");
    assert!(!expired.masters[1].rejoin_requested);
    // Without the expiry the next heartbeat does not ask again; after it, it does.
    assert_eq!(rejoins_in_flight(&step(&config, &state, heartbeat())), 0);
    assert_eq!(rejoins_in_flight(&step(&config, &expired, heartbeat())), 1);
}

#[test]
fn the_rejoin_wait_does_not_run_while_paused_or_crashed() {
    let config = config();
    let state = step(&config, &follower_with_a_gap(&config), heartbeat());
    let enabled = |state: &State| {
        config
            .enabled_actions(state)
            .contains(&Action::RejoinWaitExpired(1))
    };
    assert!(enabled(&state));
    assert!(!enabled(&step(&config, &state, Action::Pause(1))));
    assert!(!enabled(&step(&config, &state, Action::Crash(1))));
}

#[test]
fn the_rejoin_wait_is_bounded_by_its_budget() {
    let mut config = config();
    config.budget.rejoin_waits_expired = 0;
    let state = step(&config, &follower_with_a_gap(&config), heartbeat());
    assert!(!config
        .enabled_actions(&state)
        .contains(&Action::RejoinWaitExpired(1)));
}
