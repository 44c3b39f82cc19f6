//! The load generator: N clients, each with its own connection and one operation outstanding
//! at a time, for a warm-up and then a fixed measured duration. The same generator drives
//! vigil (through its proxy) and etcd (through `etcd-client`), so the two are measured by the
//! same code with the same sizes.
//!
//! Two arrival modes ([`Arrival`]). Closed loop: a client sends its next operation when the
//! previous one is answered, so a stall slows the senders and hides itself (coordinated
//! omission). Open loop: operations are due at a fixed total rate, spread evenly over the
//! clients; a client sends each at its due time, or at once if it is still waiting for the
//! previous answer, and latency counts from the due time, so a stall shows in every operation
//! it delayed (the correction of wrk2 and HdrHistogram).
//!
//! Keys are 8 bytes (a big-endian index into a key space), values 256 bytes. Latency is
//! recorded per operation in microseconds in an HDR histogram (3 significant digits); only
//! operations due after the warm-up and answered before the deadline are counted.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use vigil::client::Client;
use vigil_core::kv_types::{
    Compare, CompareResult, CompareTarget, KeyRange, KvOperation, KvResult, PutRequest,
    RangeRequest, TxnOperation, TxnRequest,
};
use vigil_core::ReplyOutcome;

use super::BenchError;

/// Bytes of every key.
pub const KEY_BYTES: usize = 8;
/// Bytes of every value.
pub const VALUE_BYTES: usize = 256;
/// Largest latency recorded (longer ones are clamped to it), in microseconds.
const LATENCY_MAX_US: u64 = 60_000_000;

/// Which operation a run sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationKind {
    /// Write a 256-byte value.
    Put,
    /// Linearizable read.
    Get,
    /// Linearizable read of every key under [`RANGE_PREFIX`] ([`RANGE_KEYS`] of them, written
    /// before the run), in one request.
    RangePrefix,
    /// A two-key transaction: if the drawn key's value is the run's value, write it and its
    /// partner key (the drawn key followed by `/b`), else write the drawn key alone.
    TwoKeyTxn,
}

impl OperationKind {
    /// As printed in the tables.
    pub fn name(self) -> &'static str {
        match self {
            OperationKind::Put => "put",
            OperationKind::Get => "get",
            OperationKind::RangePrefix => "range 100",
            OperationKind::TwoKeyTxn => "txn 2 keys",
        }
    }
}

/// The prefix of the keys a [`OperationKind::RangePrefix`] reads.
pub const RANGE_PREFIX: &[u8] = b"range/";
/// How many keys are under [`RANGE_PREFIX`].
pub const RANGE_KEYS: usize = 100;

/// The `i`-th key under [`RANGE_PREFIX`] (three digits, so key order is index order).
pub fn range_key(index: usize) -> Vec<u8> {
    let mut key = RANGE_PREFIX.to_vec();
    key.extend_from_slice(format!("{index:03}").as_bytes());
    key
}

/// The partner of `key` in a [`OperationKind::TwoKeyTxn`].
fn partner_key(key: &[u8]) -> Vec<u8> {
    let mut partner = key.to_vec();
    partner.extend_from_slice(b"/b");
    partner
}

/// One client's connection to the service under test.
pub enum Connection {
    /// A vigil proxy; requests name `cluster`.
    Vigil {
        /// The connection.
        client: Client,
        /// The cluster name put in every request.
        cluster: String,
    },
    /// An etcd cluster (linearizable gets: the client's default).
    #[cfg(feature = "etcd")]
    Etcd(etcd_client::KvClient),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Connection::Vigil { cluster, .. } => write!(formatter, "vigil cluster {cluster}"),
            #[cfg(feature = "etcd")]
            Connection::Etcd(_) => write!(formatter, "etcd"),
        }
    }
}

/// How an operation ended, when it did not succeed.
#[derive(Debug)]
pub enum OperationFailure {
    /// The service answered with an error (counted, the client goes on).
    Refused(String),
    /// The connection failed (the client stops).
    Broken(String),
}

impl Connection {
    /// Sends one operation and waits for its outcome.
    pub async fn execute(
        &mut self,
        kind: OperationKind,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), OperationFailure> {
        match self {
            Connection::Vigil { client, cluster } => {
                let outcome = match kind {
                    OperationKind::Put => client.put(cluster, key, value).await,
                    OperationKind::Get => client.get(cluster, key).await,
                    OperationKind::RangePrefix | OperationKind::TwoKeyTxn => {
                        let operation = vigil_operation(kind, key, value);
                        return match client.kv_call(cluster, operation).await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err(error)) => Err(OperationFailure::Refused(format!("{error:?}"))),
                            Err(error) => Err(OperationFailure::Broken(error.to_string())),
                        };
                    }
                };
                match outcome {
                    Ok(ReplyOutcome::Ok(_)) => Ok(()),
                    Ok(ReplyOutcome::Err(error)) => {
                        Err(OperationFailure::Refused(format!("{error:?}")))
                    }
                    Err(error) => Err(OperationFailure::Broken(error.to_string())),
                }
            }
            #[cfg(feature = "etcd")]
            Connection::Etcd(client) => {
                let outcome = match kind {
                    OperationKind::Put => client.put(key, value, None).await.map(|_| ()),
                    OperationKind::Get => client.get(key, None).await.map(|_| ()),
                    OperationKind::RangePrefix => {
                        let options = etcd_client::GetOptions::new().with_prefix();
                        client.get(RANGE_PREFIX, Some(options)).await.map(|_| ())
                    }
                    OperationKind::TwoKeyTxn => client.txn(etcd_txn(key, value)).await.map(|_| ()),
                };
                outcome.map_err(|error| OperationFailure::Refused(error.to_string()))
            }
        }
    }
}

impl Connection {
    /// How many keys a [`OperationKind::RangePrefix`] returns now (the section checks it
    /// reads all [`RANGE_KEYS`] before measuring).
    pub async fn range_prefix_count(&mut self) -> Result<usize, OperationFailure> {
        match self {
            Connection::Vigil { client, cluster } => {
                let operation = vigil_operation(OperationKind::RangePrefix, b"", b"");
                match client.kv_call(cluster, operation).await {
                    Ok(Ok(KvResult::Range(result))) => Ok(result.kvs.len()),
                    Ok(other) => Err(OperationFailure::Refused(format!("{other:?}"))),
                    Err(error) => Err(OperationFailure::Broken(error.to_string())),
                }
            }
            #[cfg(feature = "etcd")]
            Connection::Etcd(client) => {
                let options = etcd_client::GetOptions::new().with_prefix();
                match client.get(RANGE_PREFIX, Some(options)).await {
                    Ok(response) => Ok(response.kvs().len()),
                    Err(error) => Err(OperationFailure::Refused(error.to_string())),
                }
            }
        }
    }
}

/// vigil's request for a revisioned `kind`.
fn vigil_operation(kind: OperationKind, key: &[u8], value: &[u8]) -> KvOperation {
    match kind {
        OperationKind::RangePrefix => {
            KvOperation::Range(RangeRequest::of(KeyRange::prefix(RANGE_PREFIX)))
        }
        OperationKind::TwoKeyTxn => {
            let put = |key: &[u8]| {
                TxnOperation::Put(PutRequest {
                    key: key.to_vec(),
                    value: value.to_vec(),
                    prev_kv: false,
                })
            };
            KvOperation::Txn(TxnRequest {
                compare: vec![Compare {
                    key: key.to_vec(),
                    target: CompareTarget::Value(value.to_vec()),
                    result: CompareResult::Equal,
                }],
                success: vec![put(key), put(&partner_key(key))],
                failure: vec![put(key)],
            })
        }
        OperationKind::Put | OperationKind::Get => {
            unreachable!("the register's operations are not revisioned requests")
        }
    }
}

/// etcd's transaction for [`OperationKind::TwoKeyTxn`], the same as [`vigil_operation`]'s.
#[cfg(feature = "etcd")]
fn etcd_txn(key: &[u8], value: &[u8]) -> etcd_client::Txn {
    use etcd_client::{Compare as EtcdCompare, CompareOp, Txn, TxnOp};
    let put = |key: Vec<u8>| TxnOp::put(key, value.to_vec(), None);
    Txn::new()
        .when([EtcdCompare::value(
            key.to_vec(),
            CompareOp::Equal,
            value.to_vec(),
        )])
        .and_then([put(key.to_vec()), put(partner_key(key))])
        .or_else([put(key.to_vec())])
}

/// How the clients pace their operations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arrival {
    /// Each client sends its next operation when the previous one is answered.
    ClosedLoop,
    /// Operations are due at this total rate, spread evenly over the clients; latency counts
    /// from the due time.
    OpenLoop {
        /// Operations due per second, all clients together.
        operations_per_second: f64,
    },
}

/// When one client's operations are due (open loop), or none (closed loop).
struct Schedule {
    next_due: Option<Instant>,
    interval: Duration,
}

impl Schedule {
    /// Client `index` of `clients`: its first operation is due at `started` plus its share of
    /// one interval, so the clients' operations interleave evenly.
    fn new(arrival: Arrival, clients: usize, index: usize, started: Instant) -> Schedule {
        match arrival {
            Arrival::ClosedLoop => Schedule {
                next_due: None,
                interval: Duration::ZERO,
            },
            Arrival::OpenLoop {
                operations_per_second,
            } => {
                assert!(operations_per_second > 0.0, "an open loop has a rate");
                let interval = Duration::from_secs_f64(clients as f64 / operations_per_second);
                let offset = interval.mul_f64(index as f64 / clients as f64);
                Schedule {
                    next_due: Some(started + offset),
                    interval,
                }
            }
        }
    }

    /// Waits until the next operation is due and returns its due time (now in a closed loop).
    async fn next(&mut self) -> Instant {
        let Some(due) = self.next_due else {
            return Instant::now();
        };
        self.next_due = Some(due + self.interval);
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        due
    }
}

/// The shape of one run.
#[derive(Clone, Copy, Debug)]
pub struct LoadSpec {
    /// The operation every client sends.
    pub kind: OperationKind,
    /// Closed or open loop.
    pub arrival: Arrival,
    /// Time before measuring starts.
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
    /// Keys are drawn uniformly from `0..key_space`.
    pub key_space: u64,
}

/// What one run measured (all clients together).
#[derive(Clone, Debug)]
pub struct LoadResult {
    /// Operations that succeeded within the measured window.
    pub operations: u64,
    /// Operations refused within the measured window.
    pub refused: u64,
    /// The first refusal, for the report.
    pub first_refusal: Option<String>,
    /// The measured window, seconds.
    pub seconds: f64,
    /// Latency of the successful operations, microseconds.
    pub latency_us: Histogram<u64>,
}

impl LoadResult {
    /// Refusals in the measured window, with the first one's reason when there was one.
    pub fn refusals(&self) -> String {
        match &self.first_refusal {
            Some(reason) => format!("{} (first: {reason})", self.refused),
            None => self.refused.to_string(),
        }
    }

    /// Successful operations per second.
    pub fn operations_per_second(&self) -> f64 {
        self.operations as f64 / self.seconds.max(1e-9)
    }

    /// The cells every table prints for a run: operations per second, p50, p99 and p99.9 in
    /// milliseconds, and the refusals.
    pub fn figure_cells(&self) -> Vec<String> {
        let mut cells = vec![super::report::thousands(
            self.operations_per_second().round() as u64,
        )];
        cells
            .extend([0.5, 0.99, 0.999].map(|quantile| format!("{:.2}", self.latency_ms(quantile))));
        cells.push(self.refusals());
        cells
    }

    /// Latency at `quantile` (0.5, 0.99, 0.999), milliseconds.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn empty(seconds: f64) -> Result<LoadResult, BenchError> {
        let latency_us = Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
            .map_err(|error| BenchError::Setup(format!("histogram: {error}")))?;
        Ok(LoadResult {
            operations: 0,
            refused: 0,
            first_refusal: None,
            seconds,
            latency_us,
        })
    }

    fn merge(&mut self, other: LoadResult) -> Result<(), BenchError> {
        self.operations += other.operations;
        self.refused += other.refused;
        if self.first_refusal.is_none() {
            self.first_refusal = other.first_refusal;
        }
        self.latency_us
            .add(&other.latency_us)
            .map_err(|error| BenchError::Setup(format!("histogram: {error}")))
    }
}

/// Runs `spec` with one client per connection; fails if a connection breaks.
pub async fn run(connections: Vec<Connection>, spec: LoadSpec) -> Result<LoadResult, BenchError> {
    assert!(!connections.is_empty(), "a load run needs a client");
    let started = Instant::now();
    let measure_from = started + spec.warmup;
    let deadline = measure_from + spec.duration;
    let clients = connections.len();
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(index, connection)| {
            let schedule = Schedule::new(spec.arrival, clients, index, started);
            tokio::spawn(client_loop(
                connection,
                spec,
                (index as u64, schedule),
                measure_from,
                deadline,
            ))
        })
        .collect();
    let mut total = LoadResult::empty(spec.duration.as_secs_f64())?;
    for task in tasks {
        let result = task
            .await
            .map_err(|error| BenchError::Load(format!("client task: {error}")))??;
        total.merge(result)?;
    }
    Ok(total)
}

/// One client until `deadline`, its keys drawn from `seed`, paced by `schedule`.
async fn client_loop(
    mut connection: Connection,
    spec: LoadSpec,
    (seed, mut schedule): (u64, Schedule),
    measure_from: Instant,
    deadline: Instant,
) -> Result<LoadResult, BenchError> {
    let mut result = LoadResult::empty(spec.duration.as_secs_f64())?;
    let mut keys = KeyStream::new(seed, spec.key_space);
    let value = [b'v'; VALUE_BYTES];
    loop {
        let key = keys.next_key();
        // In an open loop `sent` is the due time, which may have passed while the previous
        // operation waited: the delay counts as latency.
        let sent = schedule.next().await;
        if sent >= deadline {
            return Ok(result);
        }
        let outcome = connection.execute(spec.kind, &key, &value).await;
        let answered = Instant::now();
        let measured = sent >= measure_from && answered <= deadline;
        match outcome {
            Ok(()) if measured => {
                let micros = (answered - sent)
                    .as_micros()
                    .clamp(1, LATENCY_MAX_US as u128);
                result.latency_us.saturating_record(micros as u64);
                result.operations += 1;
            }
            Ok(()) => {}
            Err(OperationFailure::Refused(reason)) => {
                if measured {
                    result.refused += 1;
                    result.first_refusal.get_or_insert(reason);
                }
            }
            Err(OperationFailure::Broken(reason)) => {
                return Err(BenchError::Load(format!("{connection:?}: {reason}")));
            }
        }
    }
}

/// Uniform keys from a small xorshift generator (no shared state between clients).
struct KeyStream {
    state: u64,
    key_space: u64,
}

impl KeyStream {
    fn new(seed: u64, key_space: u64) -> KeyStream {
        assert!(key_space > 0, "the key space holds at least one key");
        KeyStream {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            key_space,
        }
    }

    fn next_key(&mut self) -> [u8; KEY_BYTES] {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state % self.key_space).to_be_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil::cluster::{ClusterOptions, LocalCluster};

    #[test]
    fn keys_stay_in_the_key_space_and_vary() {
        let mut keys = KeyStream::new(3, 10);
        let drawn: std::collections::BTreeSet<u64> = (0..200)
            .map(|_| u64::from_be_bytes(keys.next_key()))
            .collect();
        assert!(drawn.iter().all(|key| *key < 10));
        assert!(drawn.len() > 5, "{drawn:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_open_loop_spreads_its_rate_over_the_clients_and_sends_no_more() {
        let started = Instant::now();
        let arrival = Arrival::OpenLoop {
            operations_per_second: 1000.0,
        };
        let mut schedules: Vec<Schedule> = (0..4)
            .map(|index| Schedule::new(arrival, 4, index, started))
            .collect();
        let mut due = Vec::new();
        for schedule in &mut schedules {
            for _ in 0..3 {
                due.push(schedule.next().await - started);
            }
        }
        due.sort();
        // 1,000/s over 4 clients: one due every millisecond, each client every 4 ms.
        let expected: Vec<Duration> = (0..12).map(Duration::from_millis).collect();
        assert_eq!(due, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_generator_measures_puts_and_gets_on_a_local_cluster() {
        let directory = tempfile::tempdir().unwrap();
        let cluster = LocalCluster::start(ClusterOptions::local(3, directory.path().into()))
            .await
            .unwrap();
        cluster
            .wait_for_leader(Duration::from_secs(10))
            .await
            .unwrap();
        for kind in [OperationKind::Put, OperationKind::Get] {
            let mut connections = Vec::new();
            for _ in 0..2 {
                let client =
                    Client::connect(&cluster.proxy_address().to_string(), Duration::from_secs(5))
                        .await
                        .unwrap();
                connections.push(Connection::Vigil {
                    client,
                    cluster: cluster.name().to_string(),
                });
            }
            let spec = LoadSpec {
                kind,
                arrival: Arrival::ClosedLoop,
                warmup: Duration::from_millis(100),
                duration: Duration::from_millis(400),
                key_space: 16,
            };
            let result = run(connections, spec).await.unwrap();
            assert!(result.operations > 0, "{kind:?}: nothing measured");
            assert_eq!(result.latency_us.len(), result.operations);
            assert!(result.latency_ms(0.99) >= result.latency_ms(0.5));
        }
        let client = Client::connect(&cluster.proxy_address().to_string(), Duration::from_secs(5))
            .await
            .unwrap();
        let connections = vec![Connection::Vigil {
            client,
            cluster: cluster.name().to_string(),
        }];
        let spec = LoadSpec {
            kind: OperationKind::Get,
            arrival: Arrival::OpenLoop {
                operations_per_second: 100.0,
            },
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(400),
            key_space: 16,
        };
        let result = run(connections, spec).await.unwrap();
        // 100/s: at most 40 operations are due in the 400 ms window.
        assert!(result.operations > 0, "open loop: nothing measured");
        assert!(
            result.operations + result.refused <= 40,
            "{}",
            result.operations
        );
        cluster.shutdown().await.unwrap();
    }
}
