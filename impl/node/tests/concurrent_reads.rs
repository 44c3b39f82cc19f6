//! 1,024 readers at once, each on its own connection to the proxy of an in-process cluster on
//! 127.0.0.1: every `Get` is answered with the value, none `Overloaded`. All reads that wait at
//! the leader share the next read round (`docs/protocol.md` §9.2), and `reads_waiting_max` is a
//! memory bound far above what 1,024 closed-loop clients can have waiting.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{client, put_until_acknowledged, test_options};
use tokio::sync::Barrier;
use vigil::cluster::LocalCluster;
use vigil_core::{OperationResult, ReplyOutcome};

/// Readers, each with its own connection and one `Get` outstanding at a time.
const READERS: usize = 1024;
/// `Get`s each reader sends, one after the other.
const READS_PER_READER: usize = 4;
/// The test's bound: it fails instead of hanging (not a latency assertion).
const TEST_BOUND: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_readers_are_all_answered_none_overloaded() {
    tokio::time::timeout(TEST_BOUND, readers_against_three_masters())
        .await
        .expect("every reader finishes within the test's bound");
}

async fn readers_against_three_masters() {
    let directory = tempfile::tempdir().unwrap();
    let mut options = test_options(3, directory.path());
    // A loaded 2-core machine must not turn slow replies into `Timeout`s: this test is about
    // refusals, so the proxy's deadline is far beyond the test's bound.
    options.protocol.request_timeout_ticks = 100_000;
    // The readers' connections and the writer's.
    options.host.connections_max = READERS + 1;
    let cluster = LocalCluster::start(options).await.expect("cluster starts");
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let name = cluster.name().to_string();
    let mut writer = client(&cluster).await;
    let version =
        put_until_acknowledged(&mut writer, &name, "k", "v", Duration::from_secs(10)).await;

    let barrier = Arc::new(Barrier::new(READERS));
    let mut readers = Vec::with_capacity(READERS);
    for _ in 0..READERS {
        let mut reader = client(&cluster).await;
        let (barrier, name) = (barrier.clone(), name.clone());
        readers.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut outcomes = Vec::with_capacity(READS_PER_READER);
            for _ in 0..READS_PER_READER {
                outcomes.push(reader.get(&name, b"k").await.expect("the proxy answers"));
            }
            outcomes
        }));
    }
    let expected: ReplyOutcome = Ok(OperationResult::Value {
        value: Some(b"v".to_vec()),
        version,
    });
    let mut answered = 0;
    for reader in readers {
        for outcome in reader.await.expect("the reader does not panic") {
            assert_eq!(outcome, expected);
            answered += 1;
        }
    }
    assert_eq!(answered, READERS * READS_PER_READER);
    let ledger = cluster.ledger();
    assert!(ledger.is_balanced(), "{ledger:?}");
    assert_eq!(ledger.completed_err, 0, "{ledger:?}");
    assert_eq!(ledger.dropped_unanswered, 0);
    cluster.shutdown().await.unwrap();
}
