//! The incident (`docs/incident.md`), replayed against the real proxy: a flood of
//! requests naming a cluster that does not exist, at full speed. Every one must be answered
//! `UnknownCluster`, the ledger must return to `in_flight == 0` with nothing dropped
//! unanswered, and valid requests must be served meanwhile.

mod common;

use std::time::Duration;

use common::{client, start_cluster, wait_for};
use vigil_core::{ClientError, Operation, OperationResult};

const FLOOD_REQUESTS: u64 = 10_000;
const FLOOD_CONNECTIONS: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_unknown_cluster_requests_are_all_answered() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start_cluster(5, directory.path()).await;
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let name = cluster.name().to_string();
    let before = cluster.ledger();

    let mut flooders = Vec::new();
    for connection in 0..FLOOD_CONNECTIONS {
        let mut flooder = client(&cluster).await;
        flooders.push(tokio::spawn(async move {
            let requests = FLOOD_REQUESTS / FLOOD_CONNECTIONS;
            let cluster_name = format!("no-such-cluster-{connection}");
            // Pipelined: all requests are written before the replies are read, as fast as the
            // socket takes them (2,500 per connection stays under the proxy's per-connection
            // cap of outstanding requests, so no side waits for the other).
            for index in 0..requests {
                let key = format!("k{index}").into_bytes();
                flooder
                    .send_request(&cluster_name, Operation::Get { key })
                    .await
                    .expect("the proxy takes the request");
            }
            let mut unknown_cluster = 0;
            for _ in 0..requests {
                let (_, outcome) = flooder
                    .next_reply()
                    .await
                    .expect("every request is answered");
                assert_eq!(outcome, Err(ClientError::UnknownCluster));
                unknown_cluster += 1;
            }
            unknown_cluster
        }));
    }

    // Meanwhile, valid requests are served.
    let mut valid = client(&cluster).await;
    let mut served = 0;
    let mut attempts = 0;
    for index in 0..20u64 {
        let key = format!("valid-{index}");
        // Retried only on an indeterminate outcome (a leader change under a loaded machine).
        loop {
            attempts += 1;
            let outcome = valid.put(&name, key.as_bytes(), b"v").await.unwrap();
            match outcome {
                Ok(OperationResult::Written { .. }) => break,
                Err(ClientError::NoLeader | ClientError::Timeout | ClientError::LeaderChanged)
                    if attempts < 200 => {}
                other => panic!("valid request answered {other:?}"),
            }
        }
        served += 1;
    }

    let mut answered = 0;
    for flooder in flooders {
        answered += flooder.await.unwrap();
    }
    assert_eq!(answered, FLOOD_REQUESTS);
    assert_eq!(served, 20, "valid requests were served during the flood");

    let ledger = wait_for(Duration::from_secs(10), "in_flight back to 0", || async {
        let ledger = cluster.ledger();
        (ledger.in_flight == 0 && ledger.accepted >= before.accepted + FLOOD_REQUESTS + attempts)
            .then_some(ledger)
    })
    .await;
    assert_eq!(ledger.accepted - before.accepted, FLOOD_REQUESTS + attempts);
    let retried = attempts - 20;
    assert_eq!(
        ledger.completed_err - before.completed_err,
        FLOOD_REQUESTS + retried
    );
    assert_eq!(ledger.completed_ok - before.completed_ok, 20);
    assert_eq!(ledger.dropped_unanswered, 0);
    assert!(ledger.is_balanced(), "{ledger:?}");
    cluster.shutdown().await.unwrap();
}
