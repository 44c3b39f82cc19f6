//! The revisioned API's planted bugs (`src/mutation.rs`), each shown against the correct core
//! on the smallest input that exercises it: the core twins of the model's seeded bugs
//! `txn-partial-apply`, `watch-leak-on-error`, `compaction-skips-watch` and
//! `watch-resume-from-current` (`docs/protocol.md` §15.1, §17.2, §17.4, §17.6).
#![cfg(feature = "mutations")]

use std::collections::BTreeMap;

use vigil_core::kv_types::{
    Event, EventKind, KeyRange, KeyValue, KvOperation, KvResult, PutRequest, RangeRequest,
    RevisionEvents, TxnOperation, TxnRequest, WatchEnd, WatchRequest,
};
use vigil_core::{
    Config, DurableState, Master, Message, Mutation, Mutations, Peer, Proxy, ProxyReady,
};

fn config(planted: &[Mutation]) -> Config {
    Config {
        masters: 1,
        mutations: Mutations::planted(planted.iter().copied()).expect("the feature is on"),
        ..Config::default()
    }
}

/// A one-master cluster that elected itself, every output handled.
fn leader(planted: &[Mutation]) -> Master {
    let mut master = Master::new(0, config(planted), DurableState::default()).expect("valid");
    for _ in 0..30 {
        master.tick();
        drain(&mut master);
    }
    master
}

fn drain(master: &mut Master) -> Vec<Message> {
    let mut replies = Vec::new();
    while master.has_ready() {
        let ready = master.ready();
        replies.extend(
            ready
                .replies
                .iter()
                .map(|envelope| envelope.message.clone()),
        );
        master.advance(ready);
    }
    replies
}

#[test]
fn txn_partial_apply_keeps_the_writes_before_a_refused_read() {
    let request = TxnRequest {
        compare: vec![],
        success: vec![
            TxnOperation::Put(PutRequest {
                key: b"b".to_vec(),
                value: b"1".to_vec(),
                prev_kv: false,
            }),
            TxnOperation::Range(RangeRequest {
                revision: 9,
                ..RangeRequest::of(KeyRange::single(b"a"))
            }),
        ],
        failure: vec![],
    };
    for (planted, revision) in [(vec![], 1), (vec![Mutation::TxnPartialApply], 2)] {
        let mut master = leader(&planted);
        let operation = KvOperation::Txn(request.clone());
        master
            .step(
                Peer::Proxy(7),
                Message::KvPropose {
                    request_id: 1,
                    operation,
                },
            )
            .expect("routable");
        let replies = drain(&mut master);
        let refused = Message::KvProposeReply {
            request_id: 1,
            outcome: Ok(KvResult::FutureRevision {
                current_revision: 1,
            }),
        };
        assert_eq!(replies, vec![refused], "refused either way");
        assert_eq!(master.store().revision(), revision, "planted: {planted:?}");
    }
}

fn proxy(planted: &[Mutation]) -> Proxy {
    let clusters = BTreeMap::from([("local".to_string(), vec![0, 1, 2])]);
    Proxy::new(9, config(planted), clusters).expect("valid")
}

fn watch(start_revision: u64) -> WatchRequest {
    WatchRequest {
        range: KeyRange::prefix(b""),
        start_revision,
        prev_kv: false,
        filter: None,
    }
}

fn client_messages(ready: &ProxyReady) -> Vec<Message> {
    ready
        .replies
        .iter()
        .map(|envelope| envelope.message.clone())
        .collect()
}

fn master_messages(ready: &ProxyReady) -> Vec<(u64, Message)> {
    ready
        .messages
        .iter()
        .map(|envelope| (envelope.to, envelope.message.clone()))
        .collect()
}

#[test]
fn watch_leak_on_error_holds_a_watch_on_an_unknown_cluster_and_never_ends_it() {
    let mut correct = proxy(&[]);
    correct.handle_watch_create(1, 5, "nowhere", watch(1));
    let ended = Message::WatchEnded {
        watch_id: 5,
        outcome: WatchEnd::UnknownCluster,
    };
    assert_eq!(client_messages(&correct.ready()), vec![ended]);
    let ledger = correct.watch_ledger();
    assert_eq!((ledger.opened, ledger.ended, ledger.open), (1, 1, 0));

    let mut planted = proxy(&[Mutation::WatchLeakOnError]);
    planted.handle_watch_create(1, 5, "nowhere", watch(1));
    assert!(
        client_messages(&planted.ready()).is_empty(),
        "never answered"
    );
    let ledger = planted.watch_ledger();
    assert_eq!((ledger.opened, ledger.ended, ledger.open), (1, 0, 1));
}

#[test]
fn compaction_skips_watch_moves_a_watch_behind_the_compaction_point_up_to_it() {
    for planted in [vec![], vec![Mutation::CompactionSkipsWatch]] {
        let mut proxy = proxy(&planted);
        proxy.handle_watch_create(1, 5, "local", watch(1));
        let ready = proxy.ready();
        let [(target, Message::Subscribe { from_revision: 1 })] = master_messages(&ready)[..]
        else {
            panic!("{:?}", ready.messages)
        };
        let compacted = Message::SubscriptionCompacted {
            compact_revision: 3,
        };
        proxy.step("local", target, compacted).expect("routable");
        let ready = proxy.ready();
        if planted.is_empty() {
            let ended = Message::WatchEnded {
                watch_id: 5,
                outcome: WatchEnd::Compacted {
                    compact_revision: 3,
                },
            };
            assert_eq!(client_messages(&ready), vec![ended]);
            assert_eq!(proxy.watch_ledger().open, 0);
        } else {
            assert!(client_messages(&ready).is_empty(), "no end");
            let resubscribed = (target, Message::Subscribe { from_revision: 3 });
            assert_eq!(master_messages(&ready), vec![resubscribed]);
        }
    }
}

fn put_event(revision: u64) -> RevisionEvents {
    let kv = KeyValue {
        key: b"a".to_vec(),
        value: Some(b"1".to_vec()),
        create_revision: 2,
        mod_revision: revision,
        version: revision - 1,
    };
    RevisionEvents {
        revision,
        events: vec![Event {
            kind: EventKind::Put,
            kv,
            prev_kv: None,
        }],
    }
}

#[test]
fn watch_resume_from_current_resumes_at_the_new_masters_next_revision() {
    for (planted, from_revision) in [(vec![], 3), (vec![Mutation::WatchResumeFromCurrent], 0)] {
        let mut proxy = proxy(&planted);
        proxy.handle_watch_create(1, 5, "local", watch(1));
        let target = proxy.ready().messages[0].to;
        let events = Message::Events {
            revision: 2,
            revisions: vec![put_event(2)],
        };
        proxy.step("local", target, events).expect("routable");
        proxy.ready();
        proxy.link_closed("local", target);
        let ready = proxy.ready();
        let [(
            resumed_at,
            Message::Subscribe {
                from_revision: from,
            },
        )] = master_messages(&ready)[..]
        else {
            panic!("{:?}", ready.messages)
        };
        assert_ne!(resumed_at, target, "another master");
        assert_eq!(from, from_revision, "planted: {planted:?}");
    }
}
