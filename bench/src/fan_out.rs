//! Watch fan-out, the same for both systems: `watchers` watchers of one key, each on its own
//! connection, created before `writers` writers (each on its own connection, through the
//! generator's `load::Connection`) put to the key in a closed loop for the measured time; then
//! one of them puts once more with a stop mark, after every other put was answered. Every put carries its send time (microseconds since
//! the run's origin, big-endian, in the value's first 8 bytes), so each watcher measures
//! put→event latency per event; a watcher reads until the stop mark (or a drain limit, after
//! which what it did not get counts as missed).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use vigil::client::Client;
use vigil::wire::ProxyFrame;
use vigil_core::kv_types::{KeyRange, WatchRequest};

use super::load::{Connection, OperationKind, VALUE_BYTES};
use super::vigil_cluster::CLUSTER;
use super::BenchError;

/// The key every watcher watches and the writer writes.
const FAN_OUT_KEY: &[u8] = b"fan-out";
/// The send time of the stop mark: no put carries it.
const STOP_MARK: u64 = u64::MAX;
/// How long a watcher waits for the stop mark after the writer's last put.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// Client timeout of the writer's requests and of connecting.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest latency recorded, microseconds.
const LATENCY_MAX_US: u64 = 60_000_000;

/// What a fan-out run measured, all watchers together.
#[derive(Clone, Debug)]
pub struct FanOutResult {
    /// Puts the writer made (the stop mark not counted).
    pub puts: u64,
    /// The writer's measured time, seconds.
    pub seconds: f64,
    /// Events the watchers received (the stop marks not counted).
    pub events: u64,
    /// Events owed to some watcher and not received by the drain limit.
    pub missed: u64,
    /// put→event latency of every received event, microseconds.
    pub latency_us: Histogram<u64>,
}

impl FanOutResult {
    /// Puts per second.
    pub fn puts_per_second(&self) -> f64 {
        self.puts as f64 / self.seconds.max(1e-9)
    }

    /// Events delivered per second, all watchers together.
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }

    /// Latency at `quantile`, milliseconds.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// One watcher's tally.
struct Tally {
    events: u64,
    latency_us: Histogram<u64>,
}

impl Tally {
    fn new() -> Result<Tally, BenchError> {
        let latency_us = Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
            .map_err(|error| BenchError::Setup(format!("histogram: {error}")))?;
        Ok(Tally {
            events: 0,
            latency_us,
        })
    }

    /// Records the event whose value is `value`; false when it is the stop mark.
    fn record(&mut self, origin: Instant, value: &[u8]) -> bool {
        let sent = send_time(value);
        if sent == STOP_MARK {
            return false;
        }
        let now = origin.elapsed().as_micros() as u64;
        let micros = now.saturating_sub(sent).clamp(1, LATENCY_MAX_US);
        self.latency_us.saturating_record(micros);
        self.events += 1;
        true
    }
}

/// The value of a put sent at `sent` microseconds after the origin.
fn stamped_value(sent: u64) -> Vec<u8> {
    let mut value = vec![b'f'; VALUE_BYTES];
    value[..8].copy_from_slice(&sent.to_be_bytes());
    value
}

/// The send time a value carries (the stop mark for a value too short to carry one).
fn send_time(value: &[u8]) -> u64 {
    value
        .get(..8)
        .and_then(|bytes| bytes.try_into().ok())
        .map_or(STOP_MARK, u64::from_be_bytes)
}

/// Sums the writer's count and the watchers' tallies.
fn total(puts: u64, seconds: f64, tallies: Vec<Tally>) -> Result<FanOutResult, BenchError> {
    let mut result = FanOutResult {
        puts,
        seconds,
        events: 0,
        missed: 0,
        latency_us: Tally::new()?.latency_us,
    };
    for tally in tallies {
        result.events += tally.events;
        result.missed += puts.saturating_sub(tally.events);
        result
            .latency_us
            .add(&tally.latency_us)
            .map_err(|error| BenchError::Setup(format!("histogram: {error}")))?;
    }
    Ok(result)
}

/// Every watcher's tally, once each has read to the stop mark.
async fn join(
    tasks: Vec<tokio::task::JoinHandle<Result<Tally, BenchError>>>,
) -> Result<Vec<Tally>, BenchError> {
    let mut tallies = Vec::with_capacity(tasks.len());
    for task in tasks {
        let tally = task
            .await
            .map_err(|error| BenchError::Load(format!("watcher task: {error}")))??;
        tallies.push(tally);
    }
    Ok(tallies)
}

/// Fan-out through a vigil proxy at `address`, `writers` its connections.
pub async fn vigil(
    address: &str,
    watchers: usize,
    writers: Vec<Connection>,
    duration: Duration,
) -> Result<FanOutResult, BenchError> {
    let origin = Instant::now();
    let mut tasks = Vec::with_capacity(watchers);
    for _ in 0..watchers {
        let mut client = vigil_connect(address).await?;
        let watch = WatchRequest {
            range: KeyRange::single(FAN_OUT_KEY),
            start_revision: 0,
            prev_kv: false,
            filter: None,
        };
        client
            .create_watch(CLUSTER, 1, watch)
            .await
            .map_err(|error| BenchError::Load(format!("creating a watch: {error}")))?;
        match client.next_frame().await {
            Ok(ProxyFrame::WatchCreated { .. }) => {}
            other => return Err(BenchError::Load(format!("creating a watch: {other:?}"))),
        }
        tasks.push(tokio::spawn(vigil_watcher(client, origin)));
    }
    let (puts, seconds) = write(writers, origin, duration).await?;
    total(puts, seconds, join(tasks).await?)
}

/// The writers' closed loops for `duration`, then the stop mark: the puts made and the
/// measured seconds.
async fn write(
    writers: Vec<Connection>,
    origin: Instant,
    duration: Duration,
) -> Result<(u64, f64), BenchError> {
    let started = Instant::now();
    let loops: Vec<_> = writers
        .into_iter()
        .map(|writer| tokio::spawn(write_until(writer, origin, started + duration)))
        .collect();
    let mut puts = 0;
    let mut last = None;
    for task in loops {
        let (writer, count) = task
            .await
            .map_err(|error| BenchError::Load(format!("writer task: {error}")))??;
        puts += count;
        last = Some(writer);
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut last = last.ok_or_else(|| BenchError::Setup("fan-out without a writer".into()))?;
    put(&mut last, stamped_value(STOP_MARK)).await?;
    Ok((puts, seconds))
}

/// One writer's closed loop until `deadline`: the connection back and the puts it made.
async fn write_until(
    mut writer: Connection,
    origin: Instant,
    deadline: Instant,
) -> Result<(Connection, u64), BenchError> {
    let mut puts = 0;
    while Instant::now() < deadline {
        put(
            &mut writer,
            stamped_value(origin.elapsed().as_micros() as u64),
        )
        .await?;
        puts += 1;
    }
    Ok((writer, puts))
}

async fn put(writer: &mut Connection, value: Vec<u8>) -> Result<(), BenchError> {
    writer
        .execute(OperationKind::Put, FAN_OUT_KEY, &value)
        .await
        .map_err(|failure| BenchError::Load(format!("fan-out put: {failure:?}")))
}

async fn vigil_connect(address: &str) -> Result<Client, BenchError> {
    Client::connect(address, REQUEST_TIMEOUT)
        .await
        .map_err(|error| BenchError::Setup(format!("connecting to the proxy: {error}")))
}

/// Reads one vigil watch until the stop mark or the drain limit after the run's end.
async fn vigil_watcher(mut client: Client, origin: Instant) -> Result<Tally, BenchError> {
    let mut tally = Tally::new()?;
    loop {
        let frame = tokio::time::timeout(DRAIN_LIMIT, client.next_watch_frame()).await;
        let Ok(frame) = frame else {
            return Ok(tally);
        };
        match frame.map_err(|error| BenchError::Load(format!("watch: {error}")))? {
            ProxyFrame::WatchEvents { events, .. } => {
                for event in events {
                    let value = event.kv.value.unwrap_or_default();
                    if !tally.record(origin, &value) {
                        return Ok(tally);
                    }
                }
            }
            ProxyFrame::WatchEnded { outcome, .. } => {
                return Err(BenchError::Load(format!("a watch ended: {outcome:?}")))
            }
            _ => {}
        }
    }
}

/// Fan-out through etcd members, `writers` connections to them.
#[cfg(feature = "etcd")]
pub async fn etcd(
    cluster: &super::etcd::EtcdCluster,
    watchers: usize,
    writers: Vec<Connection>,
    duration: Duration,
) -> Result<FanOutResult, BenchError> {
    let origin = Instant::now();
    let mut tasks = Vec::with_capacity(watchers);
    for _ in 0..watchers {
        let mut client = cluster.watch_client().await?;
        let (watcher, stream) = client
            .watch(FAN_OUT_KEY, None)
            .await
            .map_err(|error| BenchError::Load(format!("creating an etcd watch: {error}")))?;
        tasks.push(tokio::spawn(etcd_watcher(watcher, stream, origin)));
    }
    let (puts, seconds) = write(writers, origin, duration).await?;
    total(puts, seconds, join(tasks).await?)
}

/// Reads one etcd watch until the stop mark or the drain limit; the watcher handle is kept so
/// the watch stays open.
#[cfg(feature = "etcd")]
async fn etcd_watcher(
    _watcher: etcd_client::Watcher,
    mut stream: etcd_client::WatchStream,
    origin: Instant,
) -> Result<Tally, BenchError> {
    let mut tally = Tally::new()?;
    loop {
        let Ok(message) = tokio::time::timeout(DRAIN_LIMIT, stream.message()).await else {
            return Ok(tally);
        };
        let response = message.map_err(|error| BenchError::Load(format!("etcd watch: {error}")))?;
        let Some(response) = response else {
            return Ok(tally);
        };
        for event in response.events() {
            let value = event.kv().map(|kv| kv.value()).unwrap_or_default();
            if !tally.record(origin, value) {
                return Ok(tally);
            }
        }
    }
}
