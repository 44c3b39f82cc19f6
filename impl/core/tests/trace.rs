//! Trace events: none are built without a sink, and with one every input's events carry the
//! post-state at the end of that input (what conformance replays, `docs/trace.md`).

use vigil_core::{
    Ballot, Config, DurableState, Master, Message, Peer, PostState, Role, StepError, TraceKind,
};

fn master(tracing: bool) -> Master {
    let config = Config {
        masters: 3,
        ..Config::default()
    };
    let mut master = Master::new(1, config, DurableState::default()).unwrap();
    master.set_tracing(tracing);
    master
}

#[test]
fn no_events_without_tracing() {
    let mut master = master(false);
    master
        .step(
            Peer::Master(0),
            Message::Prepare {
                ballot: Ballot::new(1, 0),
                commit_index: 0,
            },
        )
        .unwrap();
    let ready = master.ready();
    assert!(ready.trace.is_empty());
    assert!(ready.messages.is_empty());
    assert_eq!(
        ready.held_messages(),
        1,
        "the Promise waits for the durable write"
    );
    assert!(ready.waits_for_disk());
    assert_eq!(
        ready.durable.clone().unwrap().promised,
        Some(Ballot::new(1, 0))
    );
    master.advance(ready);
    let released = master.ready();
    assert!(released.trace.is_empty());
    assert!(matches!(
        released.messages[0].message,
        Message::Promise { .. }
    ));
    assert!(!released.waits_for_disk());
}

#[test]
fn events_carry_the_post_state_of_their_input() {
    let mut master = master(true);
    let restart = master.ready().trace;
    assert!(matches!(restart[0].kind, TraceKind::Restart));
    master
        .step(
            Peer::Master(0),
            Message::Prepare {
                ballot: Ballot::new(1, 0),
                commit_index: 0,
            },
        )
        .unwrap();
    let ready = master.ready();
    let mut trace = ready.trace.clone();
    let kinds: Vec<String> = trace.iter().map(|event| event.kind.to_string()).collect();
    assert_eq!(
        kinds,
        vec![
            "recv <-m0 Prepare{ballot=1.0 commit=0}",
            "BecomeFollower leader=1.0",
        ],
        "the held Promise has no Send event yet"
    );
    master.advance(ready);
    let released = master.ready().trace;
    let kinds: Vec<String> = released
        .iter()
        .map(|event| event.kind.to_string())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "Persist",
            "send ->m0 Promise{ballot=1.0 commit=0 snapshot=none entries=[]}",
        ],
        "the write is durable: one Persist input sends the Promise"
    );
    trace.extend(released);
    for event in &trace {
        let PostState::Master(post) = &event.post else {
            panic!("a master's event")
        };
        assert_eq!(post.promised, Ballot::new(1, 0));
        assert_eq!(post.role, Role::Follower);
    }
    let sequences: Vec<u64> = trace.iter().map(|event| event.sequence).collect();
    assert_eq!(sequences, vec![1, 2, 3, 4]);
}

fn kinds(master: &mut Master) -> Vec<String> {
    let ready = master.ready();
    let kinds = ready
        .trace
        .iter()
        .map(|event| event.kind.to_string())
        .collect();
    master.advance(ready);
    kinds
}

#[test]
fn a_gap_from_the_pause_threshold_on_is_a_pause_and_resume() {
    let mut master = master(true);
    let _ = kinds(&mut master);
    let threshold = Config::default().pause_threshold_ticks();
    master.elapse(threshold - 1);
    assert!(
        kinds(&mut master).is_empty(),
        "below the threshold: ordinary ticks, no timer due yet"
    );
    master.elapse(threshold);
    assert_eq!(
        kinds(&mut master),
        vec![
            "Pause".to_string(),
            format!("Resume overdue_ticks={threshold}")
        ]
    );
    // A follower's election timer advances by the overdue ticks and fires once, however long
    // the pause.
    master.elapse(1_000);
    let fired = kinds(&mut master);
    assert_eq!(
        fired
            .iter()
            .filter(|kind| *kind == "ElectionTimeout")
            .count(),
        1,
        "{fired:?}"
    );
    assert_eq!(fired[..2], ["Pause", "Resume overdue_ticks=1000"]);
}

#[test]
fn misrouted_messages_are_refused() {
    let mut master = master(false);
    let reply = Message::Reply {
        request_id: 1,
        outcome: Err(vigil_core::ClientError::Timeout),
    };
    assert!(matches!(
        master.step(Peer::Master(0), reply),
        Err(StepError::NotForMaster { .. })
    ));
    let heartbeat = Message::Heartbeat {
        ballot: Ballot::new(1, 0),
        commit_index: 0,
        heartbeat_sequence: 0,
    };
    assert_eq!(
        master.step(Peer::Master(7), heartbeat.clone()),
        Err(StepError::UnknownMaster { from: 7 })
    );
    assert_eq!(
        master.step(Peer::Master(1), heartbeat),
        Err(StepError::UnknownMaster { from: 1 })
    );
}

#[test]
fn a_restarted_master_never_promises_below_its_durable_promise() {
    let config = Config {
        masters: 3,
        ..Config::default()
    };
    let durable = DurableState {
        promised: Ballot::new(5, 2),
        ..DurableState::default()
    };
    let mut master = Master::new(1, config, durable).unwrap();
    master
        .step(
            Peer::Master(0),
            Message::Prepare {
                ballot: Ballot::new(4, 0),
                commit_index: 0,
            },
        )
        .unwrap();
    let ready = master.ready();
    assert!(ready.durable.is_none());
    assert_eq!(
        ready.messages[0].message,
        Message::Nack {
            ballot: Ballot::new(4, 0),
            promised: Ballot::new(5, 2)
        }
    );
}
