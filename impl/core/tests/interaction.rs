//! Golden scenario tests in the etcd-io/raft interaction style: each file under
//! `tests/testdata/` is a script of commands, each followed by the output the canonical printer
//! produces. `REWRITE=1 cargo nextest run -p vigil-core` regenerates the expected output for
//! review.
//!
//! Commands (master ids are bare words, e.g. `pause 2`):
//! - `add-masters 3 [heartbeat=1] [eviction=3] [election=10] [pipeline=64] [queued=16384]
//!   [reads=16384] [snapshot=10000] [in-flight=10000] [redirects=3] [timeout=50]`
//! - `tick [n=1] [0 1 ...] [no-proxy] [stabilize]`: tick masters (all if none listed) and the
//!   proxy n times; with `stabilize`, deliver after each tick (deliveries not printed; the
//!   filters of `deliver-msgs` apply)
//! - `deliver-msgs [from=m0|p0] [to=m1|p0] [type=Name] [hold=p0]`: deliver what is in flight
//!   now (`hold`: except what goes to that endpoint)
//! - `stabilize [quiet]`: deliver until nothing deliverable is in flight
//! - `drop [from=] [to=] [type=]`, `network`
//! - `pause 2`, `resume 2`, `crash 2`, `restart 2`, `isolate 0` / `heal 0` (messages from or
//!   to an isolated master are dropped on delivery)
//! - `request op=put|get|cas|delete key=k [value=v] [version=n] [cluster=local] [client=1]
//!   [n=1]`: client requests to the proxy (n of them, request ids counting up)
//! - `stall-disk 0` / `release-disk 0`: the master's durable writes wait (a slow fsync): each
//!   `Ready`'s messages and replies leave at once, its write and its `advance` wait for
//!   `release-disk`, which persists and advances them in order and sends what that released
//! - revisioned requests (`docs/protocol.md` §14–§16), each a `KvRequest` with the options
//!   `[cluster=local] [client=1]`: `kv-put key=k value=v [prev-kv]`,
//!   `kv-delete key=k [end=e] [from] [prev-kv]`,
//!   `range key=k [end=e] [from] [limit=n] [revision=n] [keys-only] [count-only]` (`end=e`:
//!   `[k, e)`; `from`: every key from `k`), `compact revision=n`, and
//!   `txn [compare=(k.version.eq.1, ...)] [success=(put.k.v, delete.k, range.k[.e], ...)]
//!   [failure=(...)]` (compare targets `version`, `create`, `mod`, `value`; operators `eq`,
//!   `ne`, `lt`, `gt`)
//! - watches (`docs/protocol.md` §17), with `[client=1] [cluster=local]`:
//!   `watch id=n key=k [end=e] [from] start=r [prev-kv]`, `watch-cancel id=n`,
//!   `watch-progress id=n`, `client-closed`; `link-closed 0` (the proxy's connection to that
//!   master closed: both hosts are told, and the subscription messages on it are lost);
//!   `watch-read id=n [client=1]` (one `WatchEvents` left for the client)
//! - `status`, `kv 0`, `kvstore 0` (the revisioned view), `log 0`, `watches` (the watch ledger
//!   and subscription)

mod harness;

use datadriven::TestCase;
use harness::{Address, Cluster, Filter, CLUSTER};
use vigil_core::kv_types::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyRange, KvOperation, PutRequest,
    RangeEnd, RangeRequest, TxnOperation, TxnRequest, WatchRequest,
};
use vigil_core::{Config, Message, Operation};

struct Script {
    cluster: Option<Cluster>,
    next_request_id: u64,
}

fn flag(case: &mut TestCase, name: &str) -> bool {
    case.args.remove(name).is_some()
}

fn value<T: std::str::FromStr>(case: &mut TestCase, name: &str) -> Option<T> {
    let values = case.args.remove(name)?;
    let first = values.first()?;
    first.parse().ok()
}

/// The bare numeric words of the directive line (master ids), in ascending order.
fn nodes(case: &mut TestCase) -> Vec<u64> {
    let mut ids: Vec<u64> = case
        .args
        .iter()
        .filter(|(_, values)| values.is_empty())
        .filter_map(|(name, _)| name.parse().ok())
        .collect();
    ids.sort_unstable();
    for id in &ids {
        case.args.remove(&id.to_string());
    }
    ids
}

fn address(text: &str) -> Address {
    if let Some(node) = text.strip_prefix('m') {
        Address::Master(node.parse().expect("master id"))
    } else {
        Address::Proxy
    }
}

fn filter(case: &mut TestCase) -> Filter {
    Filter {
        from: value::<String>(case, "from").map(|text| address(&text)),
        to: value::<String>(case, "to").map(|text| address(&text)),
        name: value(case, "type"),
        hold: value::<String>(case, "hold").map(|text| address(&text)),
    }
}

fn config(case: &mut TestCase) -> Config {
    let mut config = Config::default();
    let fields: [(&str, &mut u64); 14] = [
        ("heartbeat", &mut config.heartbeat_interval_ticks),
        ("eviction", &mut config.eviction_threshold),
        ("election", &mut config.election_timeout_ticks),
        ("pipeline", &mut config.pipeline_slots_max),
        ("queued", &mut config.proposals_queued_max),
        ("reads", &mut config.reads_waiting_max),
        ("snapshot", &mut config.snapshot_threshold_entries),
        ("in-flight", &mut config.in_flight_max),
        ("redirects", &mut config.redirects_max),
        ("timeout", &mut config.request_timeout_ticks),
        ("range-limit", &mut config.range_limit_max),
        ("txn-operations", &mut config.txn_operations_max),
        ("watches-per-client", &mut config.watches_per_client_max),
        ("watch-buffer", &mut config.watch_events_buffered_max),
    ];
    for (name, field) in fields {
        if let Some(parsed) = value(case, name) {
            *field = parsed;
        }
    }
    config
}

fn operation(case: &mut TestCase) -> Operation {
    let key = value::<String>(case, "key").expect("key=").into_bytes();
    let text = || -> Vec<u8> { Vec::new() };
    let value_bytes = value::<String>(case, "value").map_or_else(text, String::into_bytes);
    match value::<String>(case, "op").expect("op=").as_str() {
        "get" => Operation::Get { key },
        "put" => Operation::Put {
            key,
            value: value_bytes,
        },
        "cas" => Operation::Cas {
            key,
            expected_version: value(case, "version").expect("version="),
            value: value_bytes,
        },
        "delete" => Operation::Delete { key },
        other => panic!("unknown op {other}"),
    }
}

/// The key range of `key=k [end=e] [from]`.
fn key_range(case: &mut TestCase) -> KeyRange {
    let key = value::<String>(case, "key").expect("key=").into_bytes();
    let end = match value::<String>(case, "end") {
        Some(end) => RangeEnd::Before(end.into_bytes()),
        None if flag(case, "from") => RangeEnd::Unbounded,
        None => RangeEnd::Key,
    };
    KeyRange { key, end }
}

/// A client's watch message from the directive and its arguments.
fn watch_message(directive: &str, case: &mut TestCase) -> Message {
    let watch_id = || 0;
    match directive {
        "watch" => Message::WatchCreate {
            watch_id: value(case, "id").expect("id="),
            cluster: value::<String>(case, "cluster").unwrap_or(CLUSTER.to_string()),
            watch: WatchRequest {
                range: key_range(case),
                start_revision: value(case, "start").expect("start="),
                prev_kv: flag(case, "prev-kv"),
                filter: None,
            },
        },
        "watch-cancel" => Message::WatchCancel {
            watch_id: value(case, "id").unwrap_or_else(watch_id),
        },
        "watch-progress" => Message::WatchProgressRequest {
            watch_id: value(case, "id").unwrap_or_else(watch_id),
        },
        _ => Message::ClientClosed,
    }
}

/// A revisioned request from the directive and its arguments.
fn kv_operation(directive: &str, case: &mut TestCase) -> KvOperation {
    match directive {
        "kv-put" => KvOperation::Put(PutRequest {
            key: value::<String>(case, "key").expect("key=").into_bytes(),
            value: value::<String>(case, "value").expect("value=").into_bytes(),
            prev_kv: flag(case, "prev-kv"),
        }),
        "kv-delete" => KvOperation::DeleteRange(DeleteRangeRequest {
            range: key_range(case),
            prev_kv: flag(case, "prev-kv"),
        }),
        "range" => KvOperation::Range(RangeRequest {
            range: key_range(case),
            limit: value(case, "limit").unwrap_or(0),
            revision: value(case, "revision").unwrap_or(0),
            keys_only: flag(case, "keys-only"),
            count_only: flag(case, "count-only"),
        }),
        "compact" => KvOperation::Compact {
            revision: value(case, "revision").expect("revision="),
        },
        _ => {
            let mut list = |name: &str| case.args.remove(name).unwrap_or_default();
            let (compare, success, failure) = (list("compare"), list("success"), list("failure"));
            KvOperation::Txn(TxnRequest {
                compare: compare.iter().map(|text| txn_compare(text)).collect(),
                success: success.iter().map(|text| txn_operation(text)).collect(),
                failure: failure.iter().map(|text| txn_operation(text)).collect(),
            })
        }
    }
}

/// `k.target.operator.operand`, e.g. `a.version.eq.1`.
fn txn_compare(text: &str) -> Compare {
    let parts: Vec<&str> = text.split('.').collect();
    let [key, target, operator, operand] = parts[..] else {
        panic!("a compare is key.target.operator.operand, not {text}");
    };
    let number = || operand.parse().expect("a numeric operand");
    let target = match target {
        "version" => CompareTarget::Version(number()),
        "create" => CompareTarget::CreateRevision(number()),
        "mod" => CompareTarget::ModRevision(number()),
        "value" => CompareTarget::Value(operand.as_bytes().to_vec()),
        other => panic!("unknown compare target {other}"),
    };
    let result = match operator {
        "eq" => CompareResult::Equal,
        "ne" => CompareResult::NotEqual,
        "lt" => CompareResult::Less,
        "gt" => CompareResult::Greater,
        other => panic!("unknown compare operator {other}"),
    };
    Compare {
        key: key.as_bytes().to_vec(),
        target,
        result,
    }
}

/// `put.k.v`, `delete.k` or `range.k[.e]`.
fn txn_operation(text: &str) -> TxnOperation {
    let parts: Vec<&str> = text.split('.').collect();
    let bytes = |part: &str| part.as_bytes().to_vec();
    match parts[..] {
        ["put", key, value] => TxnOperation::Put(PutRequest {
            key: bytes(key),
            value: bytes(value),
            prev_kv: false,
        }),
        ["delete", key] => TxnOperation::DeleteRange(DeleteRangeRequest {
            range: KeyRange::single(key.as_bytes()),
            prev_kv: false,
        }),
        ["range", key] => TxnOperation::Range(RangeRequest::of(KeyRange::single(key.as_bytes()))),
        ["range", key, end] => TxnOperation::Range(RangeRequest::of(KeyRange {
            key: bytes(key),
            end: RangeEnd::Before(bytes(end)),
        })),
        _ => panic!("unknown txn operation {text}"),
    }
}

impl Script {
    fn cluster(&mut self) -> &mut Cluster {
        self.cluster.as_mut().expect("add-masters first")
    }

    fn run(&mut self, case: &mut TestCase) -> String {
        let directive = case.directive.clone();
        match directive.as_str() {
            "add-masters" => {
                let count = nodes(case)[0];
                let config = config(case);
                config.validate().expect("valid config");
                self.cluster = Some(Cluster::new(count, config));
                self.cluster().status()
            }
            "tick" => self.tick(case),
            "deliver-msgs" => {
                let filter = filter(case);
                self.cluster().deliver(&filter);
                self.cluster().take_output()
            }
            "stabilize" => {
                let quiet = flag(case, "quiet");
                let filter = filter(case);
                let cluster = self.cluster();
                cluster.verbose = !quiet;
                cluster.stabilize(&filter);
                cluster.verbose = true;
                cluster.take_output()
            }
            "drop" => {
                let filter = filter(case);
                self.cluster().drop_messages(&filter);
                self.cluster().take_output()
            }
            "network" => {
                let lines: Vec<String> = self
                    .cluster()
                    .network
                    .iter()
                    .map(|message| format!("{message}\n"))
                    .collect();
                lines.concat()
            }
            "isolate" | "heal" | "pause" | "resume" | "crash" | "restart" | "stall-disk"
            | "release-disk" => self.fault(&directive, case),
            "request" => self.request(case),
            "kv-put" | "kv-delete" | "range" | "compact" | "txn" => {
                let cluster_name = value::<String>(case, "cluster").unwrap_or(CLUSTER.to_string());
                let client = value(case, "client").unwrap_or(1);
                let operation = kv_operation(&directive, case);
                self.next_request_id += 1;
                let request_id = self.next_request_id;
                let cluster = self.cluster();
                cluster.kv_request(client, request_id, &cluster_name, operation);
                cluster.take_output()
            }
            "watch" | "watch-cancel" | "watch-progress" | "client-closed" => {
                let client = value(case, "client").unwrap_or(1);
                let message = watch_message(&directive, case);
                let cluster = self.cluster();
                cluster.watch_input(client, message);
                cluster.take_output()
            }
            "watch-read" => {
                let client = value(case, "client").unwrap_or(1);
                let watch_id = value(case, "id").expect("id=");
                self.cluster().proxy.watch_events_read(client, watch_id);
                String::new()
            }
            "link-closed" => {
                let node = nodes(case)[0];
                let cluster = self.cluster();
                cluster.link_closed(node);
                cluster.take_output()
            }
            "watches" => {
                let proxy = &self.cluster().proxy;
                let ledger = proxy.watch_ledger();
                let subscription = match proxy.subscription(CLUSTER) {
                    Some((master, next)) => format!("m{master} next={next}"),
                    None => "none".to_string(),
                };
                format!(
                    "p0 opened={} ended={} open={} dropped_unended={} subscription={subscription}\n",
                    ledger.opened, ledger.ended, ledger.open, ledger.dropped_unended
                )
            }
            "kvstore" => {
                let node = nodes(case)[0];
                let master = self.cluster().master(node).expect("master up");
                format!("{}\n", master.store().revisioned())
            }
            "status" => self.cluster().status(),
            "kv" => {
                let node = nodes(case)[0];
                let master = self.cluster().master(node).expect("master up");
                format!("{}\n", master.store())
            }
            "log" => {
                let node = nodes(case)[0];
                let master = self.cluster().master(node).expect("master up");
                let mut out = String::new();
                for slot in master.snapshot_slot() + 1..=master.last_slot() {
                    if let Some(entry) = master.entry(slot) {
                        out.push_str(&format!("{entry}\n"));
                    }
                }
                out
            }
            other => panic!("unknown directive {other}"),
        }
    }

    /// A fault (or its end) on each master named on the directive line.
    fn fault(&mut self, directive: &str, case: &mut TestCase) -> String {
        for node in nodes(case) {
            let cluster = self.cluster();
            match directive {
                "isolate" => {
                    cluster.isolated.insert(node);
                }
                "heal" => {
                    cluster.isolated.remove(&node);
                }
                "pause" => cluster.pause(node),
                "resume" => cluster.resume(node),
                "crash" => cluster.crash(node),
                "stall-disk" => cluster.stall_disk(node),
                "release-disk" => cluster.release_disk(node),
                _ => cluster.restart(node),
            }
        }
        self.cluster().take_output()
    }

    fn tick(&mut self, case: &mut TestCase) -> String {
        let count = value(case, "n").unwrap_or(1);
        let stabilize = flag(case, "stabilize");
        let proxy = !flag(case, "no-proxy");
        let filter = filter(case);
        let nodes = nodes(case);
        let cluster = self.cluster();
        for _ in 0..count {
            cluster.tick(&nodes, proxy);
            if stabilize {
                cluster.verbose = false;
                cluster.stabilize(&filter);
                cluster.verbose = true;
            }
        }
        cluster.take_output()
    }

    fn request(&mut self, case: &mut TestCase) -> String {
        let count = value(case, "n").unwrap_or(1u64);
        let cluster_name = value::<String>(case, "cluster").unwrap_or(CLUSTER.to_string());
        let client = value(case, "client").unwrap_or(1);
        let operation = operation(case);
        let summarise = count > 1;
        let replies_before = self.cluster().client_replies.len();
        for _ in 0..count {
            self.next_request_id += 1;
            let request_id = self.next_request_id;
            let cluster = self.cluster.as_mut().expect("add-masters first");
            cluster.verbose = !summarise;
            cluster.request(client, request_id, &cluster_name, operation.clone());
            cluster.verbose = true;
        }
        let cluster = self.cluster();
        let mut output = cluster.take_output();
        if summarise {
            output.push_str(&summarise_replies(
                &cluster.client_replies[replies_before..],
            ));
        }
        output
    }
}

/// `N replies: outcome` per distinct outcome, for floods of requests.
fn summarise_replies(replies: &[(u64, Message)]) -> String {
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for (_, message) in replies {
        let outcome = match message {
            Message::Reply { outcome, .. } => match outcome {
                Ok(result) => format!("Ok({result})"),
                Err(error) => format!("Err({error:?})"),
            },
            other => other.to_string(),
        };
        *counts.entry(outcome).or_default() += 1;
    }
    counts
        .iter()
        .map(|(outcome, count)| format!("{count} replies: {outcome}\n"))
        .collect()
}

#[test]
fn interaction_scripts() {
    datadriven::walk("tests/testdata", |file| {
        let mut script = Script {
            cluster: None,
            next_request_id: 0,
        };
        file.run(|case| {
            let output = script.run(case);
            let unused: Vec<&String> = case.args.keys().collect();
            assert!(unused.is_empty(), "unused arguments {unused:?}");
            if let Some(cluster) = &script.cluster {
                assert!(
                    cluster.violations.is_empty(),
                    "agreement violated: {:?}",
                    cluster.violations
                );
            }
            output
        });
    });
}
