//! The revisioned API beside etcd, driven by the same generator: a Range of 100 keys by prefix
//! and a two-key Txn (closed loop, as the throughput section), and watch fan-out — N watchers
//! of one key, each on its own connection, while one writer, or as many writers as the closed
//! loop has clients, put to it: events delivered per second and the latency from a put's send
//! to each watcher's event. Three masters (vigil) and three members (etcd).

use std::collections::BTreeMap;

use super::fan_out::{self, FanOutResult};
use super::load::{self, Arrival, Connection, LoadResult, LoadSpec, OperationKind, VALUE_BYTES};
use super::report::{ratio, thousands, Section, SectionOutcome, Table};
use super::vigil_cluster::VigilCluster;
use super::{BenchError, BenchOptions, EtcdOutcome};

/// Masters (vigil) and members (etcd).
const CLUSTER_SIZE: usize = 3;
/// Keys the two-key transactions draw from.
const TXN_KEY_SPACE: u64 = 10_000;
/// The revisioned operations measured in a closed loop.
const OPERATIONS: [OperationKind; 2] = [OperationKind::RangePrefix, OperationKind::TwoKeyTxn];

/// (system, operation) → result.
type Results = BTreeMap<(&'static str, &'static str), LoadResult>;
/// (system, watchers, writers) → result.
type FanOuts = BTreeMap<(&'static str, usize, usize), FanOutResult>;

/// Everything the section measured.
#[derive(Default)]
struct Measured {
    operations: Results,
    fan_outs: FanOuts,
    /// vigil's leader changes during the section, and the ballot round before and after.
    leader_changes: Option<(u64, u64, u64)>,
}

/// (watchers, writers) of the fan-out runs: one writer, whose put latency bounds the events
/// per second, and as many writers as the closed loop has clients, which bring each system's
/// own write batching into play.
fn fan_out_shapes(options: &BenchOptions) -> Vec<(usize, usize)> {
    let (watcher_counts, writer_counts) = if options.quick {
        (vec![2], vec![1, 2])
    } else {
        (vec![options.clients, 128], vec![1, options.clients])
    };
    let mut shapes = Vec::new();
    for watchers in watcher_counts {
        for writers in &writer_counts {
            shapes.push((watchers, *writers));
        }
    }
    shapes
}

/// Runs the section.
pub async fn run(options: &BenchOptions) -> Section {
    let title = "Revisioned API: range, transaction, watch fan-out".to_string();
    let mut measured = Measured::default();
    let mut notes = vec![format!(
        "{CLUSTER_SIZE} masters behind a proxy (vigil) and {CLUSTER_SIZE} members (etcd). Closed loop, {} clients, each with its own connection: `range 100` reads the {} keys under `{}` ({VALUE_BYTES}-byte values) by prefix, linearizable; `txn 2 keys` compares a key's value (keys drawn from {TXN_KEY_SPACE}) and writes it and a partner key if equal, else the key alone. {:?} warm-up, {:?} measured. Fan-out: N watchers of one key, each on its own connection (created from revision 0, etcd's now, before the writers start), and W writers, each on its own connection, putting to the key closed loop for {:?}; latency from each put's send to each watcher's event (the put carries its send time). Latency in ms.",
        options.clients,
        load::RANGE_KEYS,
        String::from_utf8_lossy(load::RANGE_PREFIX),
        options.warmup,
        options.duration,
        options.duration,
    )];
    if let Err(error) = measure_vigil(options, &mut measured).await {
        return Section::failed(title, format!("vigil: {error}"));
    }
    match measure_etcd(options, &mut measured).await {
        Ok(version) => notes.push(format!(
            "etcd: {version}, default durability, through the `etcd-client` crate (one gRPC channel per client and per watcher)."
        )),
        Err(EtcdOutcome::Skipped(reason)) => notes.push(format!("etcd: SKIPPED: {reason}")),
        Err(EtcdOutcome::Failed(error)) => return Section::failed(title, format!("etcd: {error}")),
    }
    if let Some((changes, from_round, to_round)) = measured.leader_changes {
        notes.push(format!(
            "vigil: {changes} leader changes during the section (the most any master counted; ballot round {from_round} before, {to_round} after)."
        ));
    }
    if let Some(missed) = missed_events(&measured.fan_outs) {
        return Section::failed(title, missed);
    }
    let tables = vec![
        operations_table(&measured.operations),
        fan_out_table(&measured.fan_outs),
        ratios_table(&measured),
    ];
    Section {
        title,
        outcome: SectionOutcome::Measured { tables, notes },
    }
}

/// A watcher that did not get every put within the drain time fails the section.
fn missed_events(fan_outs: &FanOuts) -> Option<String> {
    fan_outs.iter().find_map(|((system, watchers, writers), result)| {
        (result.missed > 0).then(|| {
            format!(
                "{system}, {watchers} watchers, {writers} writers: {} events missed of {} puts per watcher",
                result.missed, result.puts
            )
        })
    })
}

/// The closed-loop operations against `connect`'s connections (the range keys are written
/// first through the first connection).
async fn measure_operations<F, Fut>(
    options: &BenchOptions,
    system: &'static str,
    results: &mut Results,
    mut connect: F,
) -> Result<(), BenchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Connection>, BenchError>>,
{
    let value = [b'r'; VALUE_BYTES];
    let mut writer = connect().await?;
    for index in 0..load::RANGE_KEYS {
        let key = load::range_key(index);
        writer[0]
            .execute(OperationKind::Put, &key, &value)
            .await
            .map_err(|failure| BenchError::Setup(format!("writing the range keys: {failure:?}")))?;
    }
    let read = writer[0]
        .range_prefix_count()
        .await
        .map_err(|failure| BenchError::Setup(format!("reading the range keys: {failure:?}")))?;
    if read != load::RANGE_KEYS {
        return Err(BenchError::Setup(format!(
            "a range by prefix read {read} keys of the {} written",
            load::RANGE_KEYS
        )));
    }
    for kind in OPERATIONS {
        let spec = LoadSpec {
            kind,
            arrival: Arrival::ClosedLoop,
            warmup: options.warmup,
            duration: options.duration,
            key_space: TXN_KEY_SPACE,
        };
        let result = load::run(connect().await?, spec).await?;
        results.insert((system, kind.name()), result);
    }
    Ok(())
}

async fn measure_vigil(options: &BenchOptions, measured: &mut Measured) -> Result<(), BenchError> {
    let directory = options.temporary_directory("vigil-revisions")?;
    let mut cluster = VigilCluster::start(&options.vigil, directory.path(), CLUSTER_SIZE).await?;
    let clients = options.clients;
    let before = leadership(&cluster).await?;
    measure_operations(options, "vigil", &mut measured.operations, || {
        cluster.connections(clients)
    })
    .await?;
    let address = cluster.proxy_address.to_string();
    for (watchers, writers) in fan_out_shapes(options) {
        let connections = cluster.connections(writers).await?;
        let result = fan_out::vigil(&address, watchers, connections, options.duration).await?;
        measured
            .fan_outs
            .insert(("vigil", watchers, writers), result);
    }
    let after = leadership(&cluster).await?;
    measured.leader_changes = Some((after.0 - before.0, before.1, after.1));
    cluster.check_alive()
}

/// The most leader changes any master counted, and the highest ballot round promised.
async fn leadership(cluster: &VigilCluster) -> Result<(u64, u64), BenchError> {
    let mut changes = 0;
    let mut round = 0;
    for node in 0..CLUSTER_SIZE {
        let status = cluster.master_status(node as u64).await?;
        changes = changes.max(status.counters.leader_changes);
        round = round.max(status.promised.round);
    }
    Ok((changes, round))
}

#[cfg(not(feature = "etcd"))]
async fn measure_etcd(
    _options: &BenchOptions,
    _measured: &mut Measured,
) -> Result<String, EtcdOutcome> {
    Err(EtcdOutcome::Skipped(super::WITHOUT_ETCD.to_string()))
}

#[cfg(feature = "etcd")]
async fn measure_etcd(
    options: &BenchOptions,
    measured: &mut Measured,
) -> Result<String, EtcdOutcome> {
    use super::etcd::{self, EtcdCluster};
    let (program, version) = etcd::locate().map_err(EtcdOutcome::Skipped)?;
    let directory = options
        .temporary_directory("etcd-revisions")
        .map_err(EtcdOutcome::Failed)?;
    let cluster = EtcdCluster::start(&program, directory.path(), CLUSTER_SIZE)
        .await
        .map_err(EtcdOutcome::Failed)?;
    let clients = options.clients;
    measure_operations(options, "etcd", &mut measured.operations, || {
        cluster.connections(clients)
    })
    .await
    .map_err(EtcdOutcome::Failed)?;
    for (watchers, writers) in fan_out_shapes(options) {
        let connections = cluster
            .connections(writers)
            .await
            .map_err(EtcdOutcome::Failed)?;
        let result = fan_out::etcd(&cluster, watchers, connections, options.duration)
            .await
            .map_err(EtcdOutcome::Failed)?;
        measured
            .fan_outs
            .insert(("etcd", watchers, writers), result);
    }
    Ok(version)
}

fn operations_table(results: &Results) -> Table {
    let mut table = Table::new(&["system", "op", "ops/s", "p50", "p99", "p99.9", "refused"]);
    for kind in OPERATIONS {
        for system in ["vigil", "etcd"] {
            let Some(result) = results.get(&(system, kind.name())) else {
                continue;
            };
            let mut row = vec![system.to_string(), kind.name().to_string()];
            row.extend(result.figure_cells());
            table.push(row);
        }
    }
    table
}

fn fan_out_table(fan_outs: &FanOuts) -> Table {
    let mut table = Table::new(&[
        "system",
        "watchers",
        "writers",
        "puts/s",
        "events/s delivered",
        "put→event p50",
        "p99",
        "p99.9",
        "missed",
    ]);
    let mut shapes: Vec<(usize, usize)> = fan_outs
        .keys()
        .map(|(_, watchers, writers)| (*watchers, *writers))
        .collect();
    shapes.sort_unstable();
    shapes.dedup();
    let order = shapes.into_iter().flat_map(|(watchers, writers)| {
        ["vigil", "etcd"].map(|system| (system, watchers, writers))
    });
    for key in order {
        let Some(result) = fan_outs.get(&key) else {
            continue;
        };
        let (system, watchers, writers) = key;
        table.push(vec![
            system.to_string(),
            watchers.to_string(),
            writers.to_string(),
            thousands(result.puts_per_second().round() as u64),
            thousands(result.events_per_second().round() as u64),
            format!("{:.2}", result.latency_ms(0.5)),
            format!("{:.2}", result.latency_ms(0.99)),
            format!("{:.2}", result.latency_ms(0.999)),
            result.missed.to_string(),
        ]);
    }
    table
}

fn ratios_table(measured: &Measured) -> Table {
    let mut table = Table::new(&["measure", "throughput vigil/etcd", "p99 vigil/etcd"]);
    for kind in OPERATIONS {
        let vigil = measured.operations.get(&("vigil", kind.name()));
        let etcd = measured.operations.get(&("etcd", kind.name()));
        if let (Some(vigil), Some(etcd)) = (vigil, etcd) {
            table.push(vec![
                kind.name().to_string(),
                ratio(vigil.operations_per_second(), etcd.operations_per_second()),
                ratio(vigil.latency_ms(0.99), etcd.latency_ms(0.99)),
            ]);
        }
    }
    for ((system, watchers, writers), vigil) in &measured.fan_outs {
        if *system != "vigil" {
            continue;
        }
        if let Some(etcd) = measured.fan_outs.get(&("etcd", *watchers, *writers)) {
            let writers = match writers {
                1 => "1 writer".to_string(),
                count => format!("{count} writers"),
            };
            table.push(vec![
                format!("fan-out to {watchers} watchers, {writers} (events/s)"),
                ratio(vigil.events_per_second(), etcd.events_per_second()),
                ratio(vigil.latency_ms(0.99), etcd.latency_ms(0.99)),
            ]);
        }
    }
    table
}
