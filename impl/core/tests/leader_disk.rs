//! The leader's own write runs in parallel with replication (`ready.rs`): these tests pin what
//! that must not break — a leader's entry is durable only once its `Ready` is advanced, so a
//! leader killed before that restarts without it while a follower may hold it, and the leader
//! counts its own acceptance only at the `Persist` input that `advance` records.

mod harness;

use harness::{Address, Cluster, Filter, CLUSTER};
use vigil_core::{Config, DurableState, Master, Operation, Peer, Role, TraceKind};

fn put(key: &str) -> Operation {
    Operation::Put {
        key: key.as_bytes().to_vec(),
        value: b"v".to_vec(),
    }
}

fn elected(cluster: &mut Cluster) -> u64 {
    for _ in 0..100 {
        cluster.tick(&[], false);
        cluster.stabilize(&Filter::default());
        let leader = cluster
            .nodes()
            .into_iter()
            .find(|node| cluster.master(*node).map(Master::role) == Some(Role::Leader));
        if let Some(leader) = leader {
            return leader;
        }
    }
    panic!("no leader within 100 ticks");
}

#[test]
fn a_leader_killed_before_its_write_is_durable_restarts_without_the_entry() {
    let mut cluster = Cluster::new(3, Config::default());
    let leader = elected(&mut cluster);
    let follower = (leader + 1) % 3;
    cluster.stall_disk(leader);
    cluster.request(1, 1, CLUSTER, put("a"));
    cluster.deliver(&Filter {
        from: Some(Address::Proxy),
        ..Filter::default()
    });
    let accepts = cluster
        .network
        .iter()
        .filter(|message| message.message.name() == "Accept")
        .count();
    assert_eq!(accepts, 2, "the Accepts left before the leader's write");
    cluster.deliver(&Filter {
        to: Some(Address::Master(follower)),
        name: Some("Accept".to_string()),
        ..Filter::default()
    });
    assert_eq!(cluster.master(leader).unwrap().last_slot(), 1);
    assert!(cluster.storage[&leader].log.is_empty(), "not durable yet");
    assert_eq!(cluster.storage[&follower].log.len(), 1, "the follower's is");
    cluster.crash(leader);
    cluster.restart(leader);
    let restarted = cluster.master(leader).unwrap();
    assert_eq!(restarted.last_slot(), 0, "restarted without the entry");
    assert!(restarted.entry(1).is_none());
    assert!(cluster.master(follower).unwrap().entry(1).is_some());
}

#[test]
fn a_single_master_commits_at_the_persist_of_its_own_write() {
    let config = Config {
        masters: 1,
        ..Config::default()
    };
    let mut master = Master::new(0, config, DurableState::default()).unwrap();
    master.set_tracing(true);
    while master.role() != Role::Leader {
        master.tick();
        while master.has_ready() {
            let ready = master.ready();
            master.advance(ready);
        }
    }
    master.propose(7, 1, put("k"));
    let ready = master.ready();
    assert!(ready.waits_for_disk());
    assert!(ready.replies.is_empty(), "nothing commits before the write");
    assert_eq!(master.commit_index(), 0);
    master.advance(ready);
    let released = master.ready();
    let kinds: Vec<String> = released
        .trace
        .iter()
        .map(|event| event.kind.to_string())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "Persist".to_string(),
            "send ->p7 ProposeReply{request=1 Ok(Written(1))}".to_string(),
            "CommitAdvance 0->1".to_string(),
        ]
    );
    assert!(matches!(released.trace[0].kind, TraceKind::Persist));
    assert_eq!(released.replies[0].to, Peer::Proxy(7));
    assert!(!released.waits_for_disk());
    master.advance(released);
    assert!(!master.has_ready(), "a Ready with no group records nothing");
}

#[test]
fn a_dropped_ready_never_releases_what_waited_for_it() {
    let config = Config {
        masters: 3,
        ..Config::default()
    };
    let mut follower = Master::new(1, config.clone(), DurableState::default()).unwrap();
    follower
        .step(
            Peer::Master(0),
            vigil_core::Message::Prepare {
                ballot: vigil_core::Ballot::new(1, 0),
                commit_index: 0,
            },
        )
        .unwrap();
    let ready = follower.ready();
    assert_eq!(ready.held_messages(), 1);
    drop(ready); // a crash before the write was durable
    assert!(!follower.has_ready(), "the Promise is gone with the write");
}
