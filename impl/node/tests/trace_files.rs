//! With a trace directory, every master and the proxy write their trace events as NDJSON that
//! parses back into `vigil_core::TraceEvent`: what conformance replays against the model.

mod common;

use std::time::Duration;

use vigil::cluster::LocalCluster;
use vigil_core::{OperationResult, TraceEvent, TraceKind};

/// The header line (checked against `node`), then the events.
fn read_events(path: &std::path::Path, node: &str) -> Vec<TraceEvent> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().expect("a header")).unwrap();
    assert_eq!(header["schema"], "vigil-trace");
    assert_eq!(header["version"], vigil::trace_sink::TRACE_SCHEMA_VERSION);
    assert_eq!(header["node"], node);
    assert!(header["config"]["masters"].as_u64() == Some(3), "{header}");
    lines
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{line}: {error}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_and_proxy_write_parseable_traces() {
    let directory = tempfile::tempdir().unwrap();
    let trace_dir = directory.path().join("traces");
    std::fs::create_dir_all(&trace_dir).unwrap();
    let mut options = common::test_options(3, &directory.path().join("data"));
    options.trace_dir = Some(trace_dir.clone());
    let cluster = LocalCluster::start(options).await.unwrap();
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let mut client = common::client(&cluster).await;
    let outcome = client.put(cluster.name(), b"k", b"v").await.unwrap();
    assert!(matches!(outcome, Ok(OperationResult::Written { .. })));
    let unknown = client.get("nope", b"k").await.unwrap();
    assert!(unknown.is_err());
    cluster.shutdown().await.unwrap();

    let mut leaders = 0;
    for node in 0..3 {
        let events = read_events(
            &trace_dir.join(format!("m{node}.ndjson")),
            &format!("m{node}"),
        );
        assert!(matches!(
            events.first().map(|e| &e.kind),
            Some(TraceKind::Restart)
        ));
        let sequences: Vec<u64> = events.iter().map(|event| event.sequence).collect();
        assert!(
            sequences.windows(2).all(|pair| pair[0] < pair[1]),
            "sequence grows"
        );
        leaders += events
            .iter()
            .filter(|event| matches!(event.kind, TraceKind::BecomeLeader { .. }))
            .count();
    }
    assert!(leaders >= 1);
    let proxy = read_events(&trace_dir.join("p1.ndjson"), "p1");
    let completed = proxy
        .iter()
        .filter(|event| matches!(event.kind, TraceKind::RequestCompleted { .. }))
        .count();
    assert_eq!(
        completed, 2,
        "one completion per request, the unknown cluster's included"
    );
}

/// `TraceSink::record` returns only once its lines are in the file: a message the host sends
/// after recording it always has its `Send` line there, even if the process is SIGKILLed at
/// once (the kernel keeps what was written; no `close` runs then). Without it the nemesis's
/// trace check met receives whose sends a killed master never wrote.
#[tokio::test]
async fn a_recorded_batch_is_in_the_file_before_record_returns() {
    use vigil::trace_sink::{TraceHeader, TraceSink};
    use vigil_core::{LedgerCounters, Origin, PostState, Timer, TraceEvent, TraceKind};

    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("p1.ndjson");
    let header = TraceHeader::new("p1".to_string(), None, vigil_core::Config::default());
    let mut sink = TraceSink::create(&path, &header).unwrap();
    for sequence in 0..50u64 {
        let event = TraceEvent {
            origin: Origin::Proxy(1),
            sequence,
            kind: TraceKind::Timeout {
                timer: Timer::Request,
            },
            post: PostState::Proxy(LedgerCounters::default()),
        };
        sink.record(vec![event], None).await.unwrap();
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(
            lines as u64,
            sequence + 2,
            "header and every recorded event"
        );
    }
    sink.close().await.unwrap();
}

/// A trace file that ends in a torn line (a write the machine lost part of) is continued after
/// its last whole event: the torn bytes are cut, the clock continues from that event, and the
/// file parses whole.
#[tokio::test]
async fn a_torn_last_line_is_cut_and_the_file_continues() {
    use std::io::Write;
    use vigil::trace_sink::{TraceHeader, TraceSink};
    use vigil_core::{LedgerCounters, Origin, PostState, Timer, TraceEvent, TraceKind};

    let event = |sequence| TraceEvent {
        origin: Origin::Proxy(1),
        sequence,
        kind: TraceKind::Timeout {
            timer: Timer::Request,
        },
        post: PostState::Proxy(LedgerCounters::default()),
    };
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("p1.ndjson");
    let header = TraceHeader::new("p1".to_string(), None, vigil_core::Config::default());
    let mut sink = TraceSink::create(&path, &header).unwrap();
    for sequence in 0..3 {
        sink.record(vec![event(sequence)], None).await.unwrap();
    }
    sink.close().await.unwrap();
    let whole = std::fs::read_to_string(&path).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(br#"{"lamport":4,"input":"#).unwrap();
    drop(file);
    let mut sink = TraceSink::create(&path, &header).unwrap();
    sink.record(vec![event(3)], None).await.unwrap();
    sink.close().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with(&whole),
        "the whole events stay as they were"
    );
    let lamports: Vec<u64> = text
        .lines()
        .skip(1)
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["lamport"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(lamports.len(), 4, "{text}");
    assert!(
        lamports.windows(2).all(|pair| pair[0] < pair[1]),
        "{lamports:?}"
    );
}
