//! The incident (`docs/incident.md`), replayed against vigil: while valid clients write
//! through the proxy, other connections flood it with requests naming a cluster it does not
//! serve, as fast as they can (each keeps a window of requests outstanding). Measured: the
//! valid traffic's p99 before and during the flood, the proxy's RSS before and after, the flood's
//! rate, and the proxy ledger's `in_flight` at the end (the seed leaked one callback per such
//! request; vigil must answer each at once and hold nothing).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_core::{ClientError, Operation, ReplyOutcome};

use vigil::client::{CallError, Client};
use vigil_testkit::resident::resident_bytes;

use super::load::{self, LoadResult, LoadSpec, OperationKind};
use super::report::{ratio, thousands, Section, SectionOutcome, Table};
use super::vigil_cluster::{VigilCluster, REQUEST_TIMEOUT};
use super::{BenchError, BenchOptions};

/// Masters of the incident's cluster (the seed's size).
const MASTERS: usize = 5;
/// Flooding connections.
const FLOOD_CONNECTIONS: usize = 4;
/// Requests each flooding connection keeps outstanding.
const FLOOD_WINDOW: usize = 64;
/// The cluster name the flood uses (not served by the proxy).
const WRONG_CLUSTER: &str = "wrong-cluster";
/// Time the flood has to drain its outstanding replies after it stops sending.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the flood did.
#[derive(Debug, Default)]
struct FloodCounts {
    replies: AtomicU64,
    unknown_cluster: AtomicU64,
}

/// Runs the section.
pub async fn run(options: &BenchOptions) -> Section {
    let title = "The incident: wrong-cluster flood under load".to_string();
    match measure(options).await {
        Ok((table, notes)) => Section {
            title,
            outcome: SectionOutcome::Measured {
                tables: vec![table],
                notes,
            },
        },
        Err(error) => Section {
            title,
            outcome: SectionOutcome::Failed(error.to_string()),
        },
    }
}

async fn measure(options: &BenchOptions) -> Result<(Table, Vec<String>), BenchError> {
    let directory = options.temporary_directory("incident")?;
    let mut cluster = VigilCluster::start(&options.vigil, directory.path(), MASTERS).await?;
    let proxy_pid = cluster.proxy_pid()?;
    let spec = LoadSpec {
        arrival: load::Arrival::ClosedLoop,
        kind: OperationKind::Put,
        warmup: options.warmup,
        duration: options.flood_duration,
        key_space: 10_000,
    };
    let before = load::run(cluster.connections(options.clients).await?, spec).await?;
    let rss_before_kib = resident_bytes(proxy_pid)? / 1024;
    let counts = Arc::new(FloodCounts::default());
    let flood_deadline = Instant::now() + spec.warmup + spec.duration;
    let mut flooders = Vec::new();
    for _ in 0..FLOOD_CONNECTIONS {
        let client = Client::connect(&cluster.proxy_address.to_string(), REQUEST_TIMEOUT)
            .await
            .map_err(|error| BenchError::Setup(format!("flood connection: {error}")))?;
        flooders.push(tokio::spawn(flood(client, flood_deadline, counts.clone())));
    }
    let flood_started = Instant::now();
    let during = load::run(cluster.connections(options.clients).await?, spec).await?;
    for flooder in flooders {
        flooder
            .await
            .map_err(|error| BenchError::Load(format!("flood task: {error}")))??;
    }
    let flood_seconds = flood_started.elapsed().as_secs_f64();
    let rss_after_kib = resident_bytes(proxy_pid)? / 1024;
    let in_flight = cluster.proxy_in_flight().await?;
    cluster.check_alive()?;
    let flood = Flood {
        replies: counts.replies.load(Ordering::Relaxed),
        unknown_cluster: counts.unknown_cluster.load(Ordering::Relaxed),
        seconds: flood_seconds,
    };
    let table = incident_table(
        &before,
        &during,
        &flood,
        rss_before_kib,
        rss_after_kib,
        in_flight,
    );
    let notes = vec![format!(
        "{MASTERS} `vigil master` processes and a `vigil proxy` process; valid traffic: {} closed-loop clients writing {}-byte values, {:?} warm-up then {:?} measured, before and during the flood; flood: {FLOOD_CONNECTIONS} connections each keeping {FLOOD_WINDOW} requests for cluster `{WRONG_CLUSTER}` outstanding for the whole window. RSS is the proxy process's VmRSS.",
        options.clients,
        load::VALUE_BYTES,
        spec.warmup,
        spec.duration
    )];
    Ok((table, notes))
}

struct Flood {
    replies: u64,
    unknown_cluster: u64,
    seconds: f64,
}

fn incident_table(
    before: &LoadResult,
    during: &LoadResult,
    flood: &Flood,
    rss_before_kib: u64,
    rss_after_kib: u64,
    in_flight: u64,
) -> Table {
    let mut table = Table::new(&["measure", "before the flood", "during the flood", "ratio"]);
    let mebibytes = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    table.push(vec![
        "valid puts/s".to_string(),
        thousands(before.operations_per_second().round() as u64),
        thousands(during.operations_per_second().round() as u64),
        ratio(
            during.operations_per_second(),
            before.operations_per_second(),
        ),
    ]);
    for (name, quantile) in [("valid p50 (ms)", 0.5), ("valid p99 (ms)", 0.99)] {
        table.push(vec![
            name.to_string(),
            format!("{:.2}", before.latency_ms(quantile)),
            format!("{:.2}", during.latency_ms(quantile)),
            ratio(during.latency_ms(quantile), before.latency_ms(quantile)),
        ]);
    }
    table.push(vec![
        "valid requests refused".to_string(),
        before.refusals(),
        during.refusals(),
        String::new(),
    ]);
    table.push(vec![
        "wrong-cluster requests answered/s (UnknownCluster)".to_string(),
        "0".to_string(),
        format!(
            "{} ({} of {} answered UnknownCluster)",
            thousands((flood.replies as f64 / flood.seconds.max(1e-9)).round() as u64),
            thousands(flood.unknown_cluster),
            thousands(flood.replies)
        ),
        String::new(),
    ]);
    table.push(vec![
        "proxy RSS (before / after)".to_string(),
        mebibytes(rss_before_kib),
        mebibytes(rss_after_kib),
        ratio(rss_after_kib as f64, rss_before_kib as f64),
    ]);
    table.push(vec![
        "proxy ledger in_flight at the end".to_string(),
        String::new(),
        in_flight.to_string(),
        String::new(),
    ]);
    table
}

/// One flooding connection: keeps `FLOOD_WINDOW` wrong-cluster requests outstanding until
/// `deadline`, then collects the replies still owed.
async fn flood(
    mut client: Client,
    deadline: Instant,
    counts: Arc<FloodCounts>,
) -> Result<(), BenchError> {
    let request = || Operation::Get {
        key: b"flood".to_vec(),
    };
    let broken = |error: CallError| BenchError::Load(format!("flood: {error}"));
    let mut outstanding = 0usize;
    for _ in 0..FLOOD_WINDOW {
        client
            .send_request(WRONG_CLUSTER, request())
            .await
            .map_err(broken)?;
        outstanding += 1;
    }
    let drain_deadline = deadline + DRAIN_TIMEOUT;
    while outstanding > 0 {
        if Instant::now() > drain_deadline {
            return Err(BenchError::Load(format!(
                "flood: {outstanding} wrong-cluster requests unanswered {DRAIN_TIMEOUT:?} after the flood"
            )));
        }
        let (_, outcome) = client.next_reply().await.map_err(broken)?;
        outstanding -= 1;
        counts.replies.fetch_add(1, Ordering::Relaxed);
        if outcome == ReplyOutcome::Err(ClientError::UnknownCluster) {
            counts.unknown_cluster.fetch_add(1, Ordering::Relaxed);
        }
        if Instant::now() < deadline {
            client
                .send_request(WRONG_CLUSTER, request())
                .await
                .map_err(broken)?;
            outstanding += 1;
        }
    }
    Ok(())
}
