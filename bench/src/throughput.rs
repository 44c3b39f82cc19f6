//! Service throughput and latency: the same closed-loop generator against vigil (3 and 5
//! `vigil master` processes behind a `vigil proxy` process) and etcd (3 and 5 members), puts
//! then linearizable gets, and the ratio vigil/etcd for each cluster size and operation; then
//! the open loop at 50% and 90% of vigil's closed-loop capacity, the same rates for both
//! systems, latency from each operation's due time.

use std::collections::BTreeMap;

use super::load::{
    self, Arrival, Connection, LoadResult, LoadSpec, OperationKind, KEY_BYTES, VALUE_BYTES,
};
use super::report::{ratio, thousands, Section, SectionOutcome, Table};
use super::vigil_cluster::VigilCluster;
use super::{BenchError, BenchOptions, EtcdOutcome};

/// Cluster sizes measured.
const CLUSTER_SIZES: [usize; 2] = [3, 5];
/// Keys the generator draws from.
const KEY_SPACE: u64 = 10_000;

/// Open-loop rates, in percent of vigil's closed-loop throughput for the same size and operation.
const OPEN_LOOP_PERCENTS: [u32; 2] = [50, 90];

/// (system, size, operation) → result.
type Results = BTreeMap<(&'static str, usize, &'static str), LoadResult>;
/// (system, size, operation, percent of vigil's capacity) → (rate, result).
type OpenResults = BTreeMap<(&'static str, usize, &'static str, u32), (f64, LoadResult)>;

/// Everything the section measured.
#[derive(Default)]
struct Measured {
    closed: Results,
    open: OpenResults,
}

/// Runs the section.
pub async fn run(options: &BenchOptions) -> Section {
    let title = "Service throughput and latency".to_string();
    let mut results = Measured::default();
    let mut notes = vec![format!(
        "Closed loop: {} clients, each with its own connection, one request at a time; {KEY_BYTES}-byte keys drawn uniformly from {KEY_SPACE}, {VALUE_BYTES}-byte values; {:?} warm-up, then {:?} measured per row. vigil: real `vigil master` and `vigil proxy` processes on 127.0.0.1, default settings (fsync before every acknowledgement). Latency in ms.",
        options.clients, options.warmup, options.duration
    )];
    for masters in CLUSTER_SIZES {
        if let Err(error) = measure_vigil(options, masters, &mut results).await {
            return Section::failed(title, format!("vigil, {masters} masters: {error}"));
        }
    }
    match measure_etcd(options, &mut results).await {
        Ok(Some(version)) => notes.push(format!(
            "etcd: {version}, members on 127.0.0.1 with their own data directories, default durability (WAL fsync per commit), driven through the `etcd-client` crate; gets are linearizable (the default)."
        )),
        Ok(None) => {}
        Err(EtcdOutcome::Skipped(reason)) => notes.push(format!("etcd: SKIPPED: {reason}")),
        Err(EtcdOutcome::Failed(error)) => return Section::failed(title, format!("etcd: {error}")),
    }
    notes.push(format!(
        "Open loop: the same clients, operations due at a fixed total rate ({} and {}% of vigil's closed-loop throughput for that size and operation, the same rate for etcd), latency from each operation's due time, so a stall counts in every operation it delayed.",
        OPEN_LOOP_PERCENTS[0], OPEN_LOOP_PERCENTS[1]
    ));
    let tables = vec![
        figures_table(&results.closed),
        ratios_table(&results.closed),
        open_loop_table(&results.open),
    ];
    Section {
        title,
        outcome: SectionOutcome::Measured { tables, notes },
    }
}

/// Puts, then gets (over the keys the puts wrote), against `connections` made by `connect`:
/// closed loop, then open loop at each of [`OPEN_LOOP_PERCENTS`] of vigil's closed-loop
/// throughput (measured first).
async fn measure_operations<F, Fut>(
    options: &BenchOptions,
    system: &'static str,
    size: usize,
    results: &mut Measured,
    mut connect: F,
) -> Result<(), BenchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Connection>, BenchError>>,
{
    for kind in [OperationKind::Put, OperationKind::Get] {
        let mut spec = LoadSpec {
            kind,
            arrival: Arrival::ClosedLoop,
            warmup: options.warmup,
            duration: options.duration,
            key_space: KEY_SPACE,
        };
        let result = load::run(connect().await?, spec).await?;
        results.closed.insert((system, size, kind.name()), result);
        let Some(capacity) = results.closed.get(&("vigil", size, kind.name())) else {
            continue;
        };
        let capacity = capacity.operations_per_second();
        for percent in OPEN_LOOP_PERCENTS {
            let rate = (capacity * f64::from(percent) / 100.0).max(1.0);
            spec.arrival = Arrival::OpenLoop {
                operations_per_second: rate,
            };
            let result = load::run(connect().await?, spec).await?;
            let key = (system, size, kind.name(), percent);
            results.open.insert(key, (rate, result));
        }
    }
    Ok(())
}

async fn measure_vigil(
    options: &BenchOptions,
    masters: usize,
    results: &mut Measured,
) -> Result<(), BenchError> {
    let directory = options.temporary_directory(&format!("vigil-{masters}"))?;
    let mut cluster = VigilCluster::start(&options.vigil, directory.path(), masters).await?;
    let clients = options.clients;
    measure_operations(options, "vigil", masters, results, || {
        cluster.connections(clients)
    })
    .await?;
    cluster.check_alive()
}

#[cfg(not(feature = "etcd"))]
async fn measure_etcd(
    _options: &BenchOptions,
    _results: &mut Measured,
) -> Result<Option<String>, EtcdOutcome> {
    Err(EtcdOutcome::Skipped(super::WITHOUT_ETCD.to_string()))
}

#[cfg(feature = "etcd")]
async fn measure_etcd(
    options: &BenchOptions,
    results: &mut Measured,
) -> Result<Option<String>, EtcdOutcome> {
    use super::etcd::{self, EtcdCluster};
    let (program, version) = etcd::locate().map_err(EtcdOutcome::Skipped)?;
    for members in CLUSTER_SIZES {
        let directory = options
            .temporary_directory(&format!("etcd-{members}"))
            .map_err(EtcdOutcome::Failed)?;
        let cluster = EtcdCluster::start(&program, directory.path(), members)
            .await
            .map_err(EtcdOutcome::Failed)?;
        let clients = options.clients;
        measure_operations(options, "etcd", members, results, || {
            cluster.connections(clients)
        })
        .await
        .map_err(EtcdOutcome::Failed)?;
    }
    Ok(Some(version))
}

fn figures_table(results: &Results) -> Table {
    let mut table = Table::new(&[
        "system", "size", "op", "ops/s", "p50", "p99", "p99.9", "refused",
    ]);
    let order = CLUSTER_SIZES.iter().flat_map(|size| {
        ["vigil", "etcd"]
            .into_iter()
            .flat_map(move |system| ["put", "get"].map(|operation| (system, *size, operation)))
    });
    for (system, size, operation) in order {
        let Some(result) = results.get(&(system, size, operation)) else {
            continue;
        };
        let mut row = vec![system.to_string(), size.to_string(), operation.to_string()];
        row.extend(result.figure_cells());
        table.push(row);
    }
    table
}

fn ratios_table(results: &Results) -> Table {
    let mut table = Table::new(&[
        "size",
        "op",
        "throughput vigil/etcd",
        "p50 vigil/etcd",
        "p99 vigil/etcd",
        "p99.9 vigil/etcd",
    ]);
    for size in CLUSTER_SIZES {
        for operation in ["put", "get"] {
            let vigil = results.get(&("vigil", size, operation));
            let etcd = results.get(&("etcd", size, operation));
            let (Some(vigil), Some(etcd)) = (vigil, etcd) else {
                continue;
            };
            let latency = |quantile| ratio(vigil.latency_ms(quantile), etcd.latency_ms(quantile));
            table.push(vec![
                size.to_string(),
                operation.to_string(),
                ratio(vigil.operations_per_second(), etcd.operations_per_second()),
                latency(0.5),
                latency(0.99),
                latency(0.999),
            ]);
        }
    }
    table
}

fn open_loop_table(results: &OpenResults) -> Table {
    let mut table = Table::new(&[
        "system", "size", "op", "load", "due/s", "done/s", "p50", "p99", "p99.9", "refused",
    ]);
    let order = CLUSTER_SIZES.iter().flat_map(|size| {
        ["vigil", "etcd"].into_iter().flat_map(move |system| {
            ["put", "get"].into_iter().flat_map(move |operation| {
                OPEN_LOOP_PERCENTS.map(|percent| (system, *size, operation, percent))
            })
        })
    });
    for key in order {
        let Some((rate, result)) = results.get(&key) else {
            continue;
        };
        let (system, size, operation, percent) = key;
        let mut row = vec![
            system.to_string(),
            size.to_string(),
            operation.to_string(),
            format!("{percent}%"),
            thousands(rate.round() as u64),
        ];
        row.extend(result.figure_cells());
        table.push(row);
    }
    table
}
