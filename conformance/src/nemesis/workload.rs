//! The clients of a nemesis run: tokio tasks, each with its own connection to the proxy through
//! the Rust client library, doing `get`, `put` and `cas` on a few keys one at a time and
//! recording every operation (`history::Record`). Also the wrong-cluster flood and the final
//! reads after the heal.
//!
//! Why one operation at a time per client: a client's operations are then ordered by real time,
//! which is what linearizability compares. After an error without a definite answer the client
//! drops its connection (a late reply must not be matched to the next request) and dials again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil::client::Client;
use vigil_core::{ClientError, Operation, OperationResult};

use super::history::{Call, Outcome, Record};

/// What every client shares.
#[derive(Clone, Debug)]
pub struct WorkloadSettings {
    /// The proxy's address.
    pub proxy: String,
    /// The cluster's name.
    pub cluster: String,
    /// The keys.
    pub keys: Vec<Vec<u8>>,
    /// How long a client waits for one answer (above the proxy's request timeout).
    pub call_timeout: Duration,
    /// Pause between two operations of one client.
    pub think_time: Duration,
    /// When the run started (times in the history count from here).
    pub started: Instant,
    /// Distinct values per client: the trace check's model numbers values in a byte, so a
    /// client cycles through this many (versions still tell every write apart).
    pub values_per_client: u64,
    /// The cluster's client token, presented with every request.
    pub token: vigil::auth::Token,
}

/// A small deterministic generator (xorshift64): the workload needs no cryptographic quality.
#[derive(Clone, Debug)]
pub struct Xorshift(u64);

impl Xorshift {
    /// A generator for `seed` (any value).
    pub fn new(seed: u64) -> Xorshift {
        Xorshift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number below `bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

fn nanoseconds_since(started: Instant) -> u64 {
    started.elapsed().as_nanos() as u64
}

fn operation_of(key: &[u8], call: &Call) -> Operation {
    let key = key.to_vec();
    match call {
        Call::Get => Operation::Get { key },
        Call::Put { value } => Operation::Put {
            key,
            value: value.clone(),
        },
        Call::Cas {
            expected_version,
            value,
        } => Operation::Cas {
            key,
            expected_version: *expected_version,
            value: value.clone(),
        },
        Call::Delete => Operation::Delete { key },
    }
}

/// Runs one operation on `client` (dialing first if there is none) and records it. Drops the
/// connection after an answer that is not definite.
pub async fn run_operation(
    settings: &WorkloadSettings,
    client: &mut Option<Client>,
    client_id: usize,
    key: &[u8],
    call: Call,
) -> Record {
    let invoked_ns = nanoseconds_since(settings.started);
    let outcome = match client.as_mut() {
        Some(connected) => call_on(connected, settings, key, &call).await,
        None => match Client::connect(&settings.proxy, settings.call_timeout).await {
            // A dial that failed is a definite refusal: no request left the client.
            Err(error) => Outcome::Failed(error.to_string()),
            Ok(mut connected) => {
                connected.set_token(&settings.cluster, settings.token.clone());
                call_on(client.insert(connected), settings, key, &call).await
            }
        },
    };
    if matches!(outcome, Outcome::Unknown(_)) {
        *client = None;
    }
    Record {
        client: client_id,
        key: key.to_vec(),
        call,
        invoked_ns,
        completed_ns: nanoseconds_since(settings.started),
        outcome,
    }
}

async fn call_on(
    client: &mut Client,
    settings: &WorkloadSettings,
    key: &[u8],
    call: &Call,
) -> Outcome {
    let operation = operation_of(key, call);
    match tokio::time::timeout(
        settings.call_timeout,
        client.call(&settings.cluster, operation),
    )
    .await
    {
        Ok(Ok(reply)) => Outcome::of_reply(reply),
        Ok(Err(error)) => Outcome::Unknown(error.to_string()),
        Err(_) => Outcome::Unknown(format!("no answer within {:?}", settings.call_timeout)),
    }
}

/// One client until `stop`: its history.
pub async fn client_loop(
    settings: WorkloadSettings,
    client_id: usize,
    stop: Arc<AtomicBool>,
) -> Vec<Record> {
    let mut random = Xorshift::new(client_id as u64 + 1);
    let mut records = Vec::new();
    let mut client = None;
    // The last version this client saw per key: its `cas` expects it.
    let mut seen_versions = vec![0u64; settings.keys.len()];
    let mut sequence = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let key_index = random.below(settings.keys.len() as u64) as usize;
        sequence += 1;
        let value = format!("c{client_id}-{}", sequence % settings.values_per_client).into_bytes();
        let call = match random.below(10) {
            0..=3 => Call::Get,
            4..=6 => Call::Put { value },
            _ => Call::Cas {
                expected_version: seen_versions[key_index],
                value,
            },
        };
        let key = settings.keys[key_index].clone();
        let record = run_operation(&settings, &mut client, client_id, &key, call).await;
        if let Outcome::Ok(result) = &record.outcome {
            seen_versions[key_index] = match result {
                OperationResult::Value { version, .. }
                | OperationResult::Written { version }
                | OperationResult::Deleted { version } => *version,
                OperationResult::VersionMismatch { current_version } => *current_version,
            };
        }
        let failed = !matches!(record.outcome, Outcome::Ok(_));
        records.push(record);
        // Back off a little after a failure so a leaderless minute is not a busy loop.
        let pause = if failed {
            settings.think_time * 10
        } else {
            settings.think_time
        };
        tokio::time::sleep(pause).await;
    }
    records
}

/// Reads every key until each read succeeds or `deadline` passes; the reads (all of them, in
/// the history too) and whether every key was read.
pub async fn final_reads(
    settings: &WorkloadSettings,
    client_id: usize,
    deadline: Instant,
) -> Vec<Record> {
    let mut records = Vec::new();
    let mut client = None;
    for key in &settings.keys {
        loop {
            let record = run_operation(settings, &mut client, client_id, key, Call::Get).await;
            let done = matches!(record.outcome, Outcome::Ok(_));
            records.push(record);
            if done || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    records
}

/// What a wrong-cluster flood did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FloodResult {
    /// Requests sent.
    pub sent: u64,
    /// Answered `UnknownCluster`, as they must be.
    pub refused: u64,
    /// Why a flood connection stopped early (no answer, a wrong answer), if one did.
    pub error: Option<String>,
}

/// How long a flood connection waits for one answer.
const FLOOD_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `requests` wrong-cluster requests over `connections` connections, `batch` pipelined
/// at a time, and counts those answered `UnknownCluster`. A connection that gets no answer or a
/// wrong one stops and says why; the flood's result is then short of refusals, which the report
/// counts as an anomaly (a proxy that swallows wrong-cluster requests is the incident's bug).
pub async fn wrong_cluster_flood(
    proxy: &str,
    requests: u64,
    connections: u64,
    batch: u64,
) -> FloodResult {
    let mut tasks = tokio::task::JoinSet::new();
    for connection in 0..connections {
        let share = requests / connections + u64::from(connection < requests % connections);
        let proxy = proxy.to_string();
        tasks.spawn(async move { flood_one(&proxy, share, batch).await });
    }
    let mut total = FloodResult::default();
    while let Some(joined) = tasks.join_next().await {
        let result = joined.unwrap_or_else(|error| FloodResult {
            error: Some(format!("flood task: {error}")),
            ..FloodResult::default()
        });
        total.sent += result.sent;
        total.refused += result.refused;
        total.error = total.error.or(result.error);
    }
    total
}

async fn flood_one(proxy: &str, requests: u64, batch: u64) -> FloodResult {
    let mut result = FloodResult::default();
    let mut client = match Client::connect(proxy, FLOOD_REPLY_TIMEOUT).await {
        Ok(client) => client,
        Err(error) => {
            result.error = Some(error.to_string());
            return result;
        }
    };
    while result.sent < requests {
        let now = batch.min(requests - result.sent);
        for _ in 0..now {
            // One key for the whole flood: the trace check's model numbers keys in a byte.
            let key = b"flood".to_vec();
            if let Err(error) = client
                .send_request("no-such-cluster", Operation::Get { key })
                .await
            {
                result.error = Some(error.to_string());
                return result;
            }
            result.sent += 1;
        }
        for _ in 0..now {
            match client.next_reply().await {
                Ok((_, Err(ClientError::UnknownCluster))) => result.refused += 1,
                Ok((_, outcome)) => {
                    result.error =
                        Some(format!("a wrong-cluster request was answered {outcome:?}"));
                    return result;
                }
                Err(error) => {
                    result.error = Some(error.to_string());
                    return result;
                }
            }
        }
    }
    result
}
