//! Criterion micro-benchmarks of the sans-IO core (`cargo bench -p vigil-core`): what one
//! proposal costs from `propose` at the leader to its `ProposeReply`, through 3 and 5 masters
//! in memory (every `Ready` handled as a host would, durable writes into a `DurableState`,
//! no I/O), one at a time and in batches that fill the pipeline.
//!
//! Why here and not in `vigil bench`: these isolate the protocol's CPU cost from sockets, fsync
//! and scheduling, so a change to the core shows up without the noise of a whole cluster.

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use vigil_core::{Config, DurableState, Envelope, Master, Message, NodeId, Operation, Peer, Role};

/// The proxy id every proposal comes from.
const PROXY: u64 = 0;
/// Ticks master 0 may take to win its first election.
const ELECTION_TICKS_MAX: usize = 1_000;
/// Messages delivered at most while settling one batch (a bound, never reached when healthy).
const DELIVERIES_MAX: usize = 1_000_000;

/// N masters connected by a perfect in-memory network.
struct InMemoryCluster {
    masters: Vec<Master>,
    storage: Vec<DurableState>,
    in_flight: VecDeque<(NodeId, Envelope)>,
    replies: usize,
    next_request_id: u64,
}

impl InMemoryCluster {
    /// `masters` masters with the default configuration; master 0 is elected.
    fn elected(masters: u64) -> InMemoryCluster {
        let config = Config {
            masters,
            ..Config::default()
        };
        let mut cluster = InMemoryCluster {
            masters: (0..masters)
                .map(|node| Master::new(node, config.clone(), DurableState::default()).unwrap())
                .collect(),
            storage: vec![DurableState::default(); masters as usize],
            in_flight: VecDeque::new(),
            replies: 0,
            next_request_id: 1,
        };
        for _ in 0..ELECTION_TICKS_MAX {
            if cluster.masters[0].role() == Role::Leader {
                return cluster;
            }
            // Only master 0's clock runs: the others never time out, so it alone campaigns.
            cluster.masters[0].tick();
            cluster.settle();
        }
        panic!("master 0 was not elected within {ELECTION_TICKS_MAX} ticks");
    }

    /// Handles every pending `Ready` of `node` as a host would.
    fn drain(&mut self, node: NodeId) {
        let index = node as usize;
        while self.masters[index].has_ready() {
            let ready = self.masters[index].ready();
            if let Some(write) = &ready.durable {
                self.storage[index].apply(write);
            }
            let outgoing = ready.messages.iter().chain(&ready.replies);
            for envelope in outgoing {
                match envelope.to {
                    Peer::Master(_) => self.in_flight.push_back((node, envelope.clone())),
                    Peer::Proxy(_) => {
                        if matches!(envelope.message, Message::ProposeReply { .. }) {
                            self.replies += 1;
                        }
                    }
                }
            }
            self.masters[index].advance(ready);
        }
    }

    /// Delivers messages until none is left.
    fn settle(&mut self) {
        for node in 0..self.masters.len() as NodeId {
            self.drain(node);
        }
        for _ in 0..DELIVERIES_MAX {
            let Some((from, envelope)) = self.in_flight.pop_front() else {
                return;
            };
            let Peer::Master(to) = envelope.to else {
                unreachable!("only master-bound messages are queued");
            };
            self.masters[to as usize]
                .step(Peer::Master(from), envelope.message)
                .expect("a message between masters of one cluster is valid");
            self.drain(to);
        }
        panic!("the network did not settle within {DELIVERIES_MAX} deliveries");
    }

    /// Proposes `count` puts at the leader and delivers until all are answered.
    fn propose_and_commit(&mut self, count: usize) {
        let expected = self.replies + count;
        for _ in 0..count {
            let request_id = self.next_request_id;
            self.next_request_id += 1;
            let operation = Operation::Put {
                key: (request_id % 1024).to_be_bytes().to_vec(),
                value: vec![b'v'; 256],
            };
            self.masters[0].propose(PROXY, request_id, operation);
        }
        self.drain(0);
        self.settle();
        assert_eq!(self.replies, expected, "every proposal answered");
    }
}

fn propose_to_commit(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("propose_to_commit");
    for masters in [3u64, 5] {
        for batch in [1usize, 64] {
            let mut cluster = InMemoryCluster::elected(masters);
            group.throughput(Throughput::Elements(batch as u64));
            let id = BenchmarkId::new(format!("{masters}_masters"), format!("batch_{batch}"));
            group.bench_function(id, |bencher| {
                bencher.iter(|| cluster.propose_and_commit(black_box(batch)));
            });
        }
    }
    group.finish();
}

/// criterion's macro defines an undocumented `pub fn benches`; it lives here.
#[allow(missing_docs)]
mod registration {
    criterion::criterion_group!(benches, super::propose_to_commit);
}

criterion_main!(registration::benches);
