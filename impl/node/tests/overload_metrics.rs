//! Every `Overloaded` on the request path is counted under the bound that was full
//! (`vigil_overloaded_total{bound=...}`, `docs/operations.md` §6): the proxy's `in_flight_max`
//! and the leader's `reads_waiting_max`, each set to 1 here so that a pipelined burst on one
//! connection meets it. The count equals the refusals the client saw.

mod common;

use std::time::Duration;

use common::metrics::{counter, recorder};
use common::{client, put_until_acknowledged, test_options};
use vigil::cluster::LocalCluster;
use vigil::metrics::OVERLOADED;
use vigil_core::{ClientError, Config, Operation};

/// Requests sent back to back on one connection before any reply is read.
const BURST: usize = 64;

/// A 3-master cluster with `protocol`'s limits; the proxy's deadline is beyond any wait here.
async fn cluster_with(protocol: impl FnOnce(&mut Config)) -> (LocalCluster, tempfile::TempDir) {
    let directory = tempfile::tempdir().unwrap();
    let mut options = test_options(3, directory.path());
    options.protocol.request_timeout_ticks = 100_000;
    protocol(&mut options.protocol);
    let cluster = LocalCluster::start(options).await.expect("cluster starts");
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    (cluster, directory)
}

/// Sends `BURST` `Get`s of one key back to back, then reads every reply; returns how many were
/// refused `Overloaded` (every other one must be answered with the value).
async fn burst_of_reads(cluster: &LocalCluster) -> u64 {
    let name = cluster.name().to_string();
    let mut connection = client(cluster).await;
    put_until_acknowledged(&mut connection, &name, "k", "v", Duration::from_secs(10)).await;
    for _ in 0..BURST {
        let get = Operation::Get { key: b"k".to_vec() };
        connection.send_request(&name, get).await.unwrap();
    }
    let mut refused = 0;
    for _ in 0..BURST {
        let (_, outcome) = connection.next_reply().await.expect("the proxy answers");
        match outcome {
            Err(ClientError::Overloaded) => refused += 1,
            Ok(_) => {}
            Err(other) => panic!("a read answered {other:?}"),
        }
    }
    refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_under_the_bound_that_was_full() {
    recorder();
    let in_flight = ["bound=\"in_flight_max\""];
    let reads = ["bound=\"reads_waiting_max\""];

    let (cluster, _directory) = cluster_with(|protocol| protocol.in_flight_max = 1).await;
    let before = counter(OVERLOADED, &in_flight);
    let refused = burst_of_reads(&cluster).await;
    assert!(refused > 0, "a burst of {BURST} meets in_flight_max = 1");
    common::wait_for(
        Duration::from_secs(5),
        "the proxy's refusals counted",
        || {
            let counted = counter(OVERLOADED, &in_flight) - before;
            async move { (counted == refused).then_some(()) }
        },
    )
    .await;
    cluster.shutdown().await.unwrap();

    let (cluster, _directory) = cluster_with(|protocol| protocol.reads_waiting_max = 1).await;
    let before = counter(OVERLOADED, &reads);
    let refused = burst_of_reads(&cluster).await;
    assert!(
        refused > 0,
        "a burst of {BURST} meets reads_waiting_max = 1"
    );
    common::wait_for(
        Duration::from_secs(5),
        "the leader's refusals counted",
        || {
            let counted = counter(OVERLOADED, &reads) - before;
            async move { (counted == refused).then_some(()) }
        },
    )
    .await;
    cluster.shutdown().await.unwrap();
}
