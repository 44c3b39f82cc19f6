//! Watch and request lifecycles of the revisioned API walked through `Config::apply`
//! (`docs/protocol.md` §15.2, §17): a lost stream message loses the connection and the proxy
//! resumes from the next revision owed, without a gap or a duplicate; the last watch takes the
//! subscription with it; a watch from revision 1 gets the first write; a connection's second watch and an over-bound `Txn` are refused and
//! still complete exactly once.
//!
//! The walks deliver the oldest deliverable message, link by link, until nothing is left
//! (`settle`); faults are taken by hand.

mod common;

use common::step;
use vigil_model::kv_presets;
use vigil_model::kv_types::{
    Compare, CompareResult, CompareTarget, KeyRange, KvOperation, PutRequest, TxnRequest, WatchEnd,
    WatchRequest,
};
use vigil_model::types::RequestError;
use vigil_model::{Action, Budget, Config, KvClientScript, KvStep, Message, State};

/// Takes client steps, deliveries and disk writes (never a timer or a fault) until none is
/// enabled, or until `stop` holds.
fn settle(config: &Config, mut state: State, stop: impl Fn(&State) -> bool) -> State {
    for _ in 0..500 {
        if stop(&state) {
            return state;
        }
        let next = config.enabled_actions(&state).into_iter().find(|action| {
            matches!(
                action,
                Action::Deliver { .. } | Action::ClientRequest(_) | Action::Persist(_)
            )
        });
        let Some(action) = next else {
            return state;
        };
        state = step(config, state, action);
    }
    panic!("no quiescence in 500 steps");
}

fn watch_of_key_zero() -> KvStep {
    KvStep::Watch(WatchRequest {
        range: KeyRange::single(0),
        start_revision: 2,
        prev_kv: false,
        filter: None,
    })
}

fn put(value: u8) -> KvStep {
    KvStep::Operation(KvOperation::Put(PutRequest {
        key: 0,
        value,
        prev_kv: false,
    }))
}

fn config(kv_clients: Vec<Vec<KvStep>>) -> Config {
    let mut config = kv_presets::ci_txn().config;
    config.kv_clients = kv_clients
        .into_iter()
        .map(|steps| KvClientScript {
            cluster: config.cluster,
            steps,
        })
        .collect();
    config.messages_in_flight_max = None;
    config.budget = Budget::UNBOUNDED;
    config
}

fn ledger_balanced(state: &State) -> bool {
    let ledger = state.proxy.watch_ledger;
    ledger.opened == ledger.ended + ledger.open
}

#[test]
fn a_lost_stream_message_resumes_from_the_next_revision_owed() {
    let config = config(vec![vec![watch_of_key_zero()], vec![put(1), put(2)]]);
    let stream_in_flight = |state: &State| {
        state.network.values().flatten().any(
            |message| matches!(message, Message::Events { revisions, .. } if !revisions.is_empty()),
        )
    };
    let mut state = settle(&config, State::initial(&config), stream_in_flight);
    let (link, events) = state
        .network
        .iter()
        .find_map(|(link, messages)| {
            let events = messages
                .iter()
                .find(|message| matches!(message, Message::Events { .. }))?;
            Some((*link, events.clone()))
        })
        .expect("a stream message in flight");
    let subscribed = state.proxy.subscription.expect("subscribed").master;
    state = step(
        &config,
        state,
        Action::Drop {
            source: link.0,
            destination: link.1,
            message: events,
        },
    );
    assert_eq!(state.masters[subscribed as usize].subscription, None);
    state = settle(&config, state, |_| false);
    // The resumed master is a follower: it learns the last commit from the next heartbeat.
    state = step(&config, state, Action::HeartbeatTimeout(0));
    state = settle(&config, state, |_| false);
    let subscription = state.proxy.subscription.expect("resumed");
    assert!(subscription.resumed && subscription.master != subscribed);
    let record = &state.clients[0].watches[&0];
    let revisions: Vec<u32> = record.events.iter().map(|group| group.revision).collect();
    assert_eq!(revisions, vec![2, 3], "every put once, in order");
    assert!(ledger_balanced(&state));
}

#[test]
fn a_watch_from_revision_one_gets_every_write_from_the_first() {
    // Revision 1 is the empty store's and has no events: the stream owed it is owed 2.
    let from_one = KvStep::Watch(WatchRequest {
        range: KeyRange::single(0),
        start_revision: 1,
        prev_kv: false,
        filter: None,
    });
    let config = config(vec![vec![from_one], vec![put(1), put(2)]]);
    let state = settle(&config, State::initial(&config), |_| false);
    let record = &state.clients[0].watches[&0];
    let revisions: Vec<u32> = record.events.iter().map(|group| group.revision).collect();
    assert_eq!(revisions, vec![2, 3], "every put once, in order");
    assert!(ledger_balanced(&state));
}

#[test]
fn the_last_watch_to_end_takes_the_subscription_with_it() {
    let config = config(vec![
        vec![watch_of_key_zero(), KvStep::Cancel { watch: 0 }],
        vec![put(1)],
    ]);
    let state = settle(&config, State::initial(&config), |_| false);
    assert_eq!(state.clients[0].watches[&0].end, Some(WatchEnd::Cancelled));
    assert!(state.proxy.watches.is_empty() && state.proxy.subscription.is_none());
    assert!(state
        .masters
        .iter()
        .all(|master| master.subscription.is_none()));
    let ledger = state.proxy.watch_ledger;
    assert_eq!((ledger.opened, ledger.ended, ledger.open), (1, 1, 0));
}

#[test]
fn a_second_watch_on_a_connection_is_refused_and_ends_once() {
    let config = config(vec![vec![watch_of_key_zero(), watch_of_key_zero()]]);
    let state = settle(&config, State::initial(&config), |_| false);
    let watches = &state.clients[0].watches;
    assert!(watches[&0].created && watches[&0].end.is_none());
    assert_eq!(watches[&1].end, Some(WatchEnd::TooManyWatches));
    assert_eq!(watches[&1].ends, 1);
    let ledger = state.proxy.watch_ledger;
    assert_eq!((ledger.opened, ledger.ended, ledger.open), (2, 1, 1));
}

#[test]
fn a_txn_over_its_bounds_is_refused_invalid_request_and_completes_once() {
    let compare = Compare {
        key: 0,
        target: CompareTarget::Version(0),
        result: CompareResult::Equal,
    };
    let oversized = TxnRequest {
        compare: vec![compare; 3],
        success: vec![],
        failure: vec![],
    };
    let config = config(vec![vec![KvStep::Operation(KvOperation::Txn(Box::new(
        oversized,
    )))]]);
    let state = settle(&config, State::initial(&config), |_| false);
    let record = &state.clients[0].kv_replies[&0];
    assert_eq!(
        (record.count, record.outcome.clone()),
        (1, Err(RequestError::InvalidRequest))
    );
    let ledger = state.proxy.ledger;
    assert_eq!(
        (ledger.accepted, ledger.completed_err, ledger.in_flight),
        (1, 1, 0)
    );
    assert!(state.ghost.chosen.is_empty(), "nothing reached the log");
}
