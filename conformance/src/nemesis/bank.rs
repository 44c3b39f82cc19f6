//! The transaction clients of a nemesis run: etcd's bank-transfer shape on the revisioned API
//! (`docs/protocol.md` §14–§15). The accounts live under their own prefix (`acct/`), apart from
//! the register clients' keys, and are seeded once with the initial total. Each client then, one
//! operation at a time, either reads the prefix (`Range`) or moves an amount between two
//! accounts with one `Txn`: compare both accounts' `mod_revision` with what it last saw;
//! success: put both new balances; failure: read the prefix (which tells it the state for its
//! next attempt). Every operation is recorded (`BankRecord`) with its times and outcome.
//!
//! Why the amounts are the client's own: a transfer whose answer is indeterminate is found in
//! the history by what it wrote on top of the state its compares name. Client `c` of `n` moves
//! amounts `c + 1 + n·j` (`j` counting its transfers), so two transfers on the same state write
//! different balances unless the amounts wrapped around; `bank_check.rs` resolves the rare tie.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use vigil::client::Client;
use vigil_core::kv_types::{
    Compare, CompareResult, CompareTarget, KeyRange, KeyValue, KvOperation, KvReplyOutcome,
    KvResult, PutRequest, RangeRequest, TxnOperation, TxnOperationResult, TxnRequest,
};
use vigil_core::ClientError;

use super::accounts::{balance_of, balance_value, BankCall, BankOutcome, BankRecord, Transfer};
use super::workload::{WorkloadSettings, Xorshift};

/// What the transaction clients share besides the workload's settings.
#[derive(Clone, Debug)]
pub struct BankSettings {
    /// The accounts' prefix.
    pub prefix: Vec<u8>,
    /// The accounts, in key order.
    pub accounts: Vec<Vec<u8>>,
    /// The sum of the balances.
    pub total: u64,
    /// Transaction clients in the run.
    pub clients: usize,
}

impl BankSettings {
    /// `accounts` accounts named `acct/0`, `acct/1`, ... holding `total` between them.
    pub fn new(accounts: usize, total: u64, clients: usize) -> BankSettings {
        BankSettings {
            prefix: b"acct/".to_vec(),
            accounts: (0..accounts)
                .map(|account| format!("acct/{account}").into_bytes())
                .collect(),
            total,
            clients,
        }
    }

    /// The initial balances: the total shared out, the remainder to the first account.
    pub fn initial_balances(&self) -> Vec<u64> {
        let count = self.accounts.len() as u64;
        let mut balances = vec![self.total / count; self.accounts.len()];
        balances[0] += self.total % count;
        balances
    }

    fn range(&self) -> RangeRequest {
        RangeRequest::of(KeyRange::prefix(&self.prefix))
    }
}

fn nanoseconds_since(started: Instant) -> u64 {
    started.elapsed().as_nanos() as u64
}

/// Sends `operation` on `client` (dialing first if there is none) and classifies the answer as
/// the register clients do: `Timeout`, `LeaderChanged`, a lost connection or no answer are
/// indeterminate, and the connection is dropped after them (a late reply must not be matched
/// to the next request).
async fn call(
    settings: &WorkloadSettings,
    client: &mut Option<Client>,
    operation: KvOperation,
) -> Answer {
    if client.is_none() {
        match Client::connect(&settings.proxy, settings.call_timeout).await {
            Ok(mut connected) => {
                connected.set_token(&settings.cluster, settings.token.clone());
                *client = Some(connected);
            }
            // A dial that failed is a definite refusal: no request left the client.
            Err(error) => return Answer::Failed(error.to_string()),
        }
    }
    let connected = client.as_mut().expect("dialed above");
    let answer = tokio::time::timeout(
        settings.call_timeout,
        connected.kv_call(&settings.cluster, operation),
    )
    .await;
    let answer = match answer {
        Ok(Ok(outcome)) => Answer::of_reply(outcome),
        Ok(Err(error)) => Answer::Unknown(error.to_string()),
        Err(_) => Answer::Unknown(format!("no answer within {:?}", settings.call_timeout)),
    };
    if matches!(answer, Answer::Unknown(_)) {
        *client = None;
    }
    answer
}

/// A revisioned call's answer, classified.
enum Answer {
    /// A result from the store.
    Result(KvResult),
    /// Definitely not applied.
    Failed(String),
    /// Maybe applied.
    Unknown(String),
}

impl Answer {
    fn of_reply(outcome: KvReplyOutcome) -> Answer {
        match outcome {
            Ok(result) => Answer::Result(result),
            Err(error @ (ClientError::Timeout | ClientError::LeaderChanged)) => {
                Answer::Unknown(error.to_string())
            }
            Err(error) => Answer::Failed(error.to_string()),
        }
    }
}

/// Writes the initial balances once: a `Txn` that puts every account if the first has never
/// been written, repeated until an answer is definite (an indeterminate first attempt that
/// applied makes the repeat take the failure branch). Then the seeding's revision, read back.
pub async fn seed(
    settings: &WorkloadSettings,
    bank: &BankSettings,
    deadline: Instant,
) -> Result<u64, String> {
    let puts = bank
        .accounts
        .iter()
        .zip(bank.initial_balances())
        .map(|(account, balance)| {
            TxnOperation::Put(PutRequest {
                key: account.clone(),
                value: balance_value(balance),
                prev_kv: false,
            })
        })
        .collect();
    let seeding = TxnRequest {
        compare: vec![Compare {
            key: bank.accounts[0].clone(),
            target: CompareTarget::Version(0),
            result: CompareResult::Equal,
        }],
        success: puts,
        failure: Vec::new(),
    };
    let mut client = None;
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        match call(settings, &mut client, KvOperation::Txn(seeding.clone())).await {
            Answer::Result(KvResult::Txn(_)) => {
                return read_seed_revision(settings, bank, deadline).await
            }
            Answer::Result(other) => last = format!("seeding answered {other:?}"),
            Answer::Failed(why) | Answer::Unknown(why) => last = why,
        }
        tokio::time::sleep(settings.think_time * 10).await;
    }
    Err(format!("seeding the accounts: {last}"))
}

/// The revision of the seeding: the accounts' `create_revision` (one `Txn` made them all).
async fn read_seed_revision(
    settings: &WorkloadSettings,
    bank: &BankSettings,
    deadline: Instant,
) -> Result<u64, String> {
    let mut client = None;
    while Instant::now() < deadline {
        if let Answer::Result(KvResult::Range(result)) =
            call(settings, &mut client, KvOperation::Range(bank.range())).await
        {
            return result
                .kvs
                .first()
                .map(|record| record.create_revision)
                .ok_or_else(|| "the seeded accounts read back empty".to_string());
        }
        tokio::time::sleep(settings.think_time * 10).await;
    }
    Err("reading the seeded accounts: no answer before the deadline".to_string())
}

/// What one transaction client knows of the accounts: each one's last record it saw.
type Known = BTreeMap<Vec<u8>, KeyValue>;

/// The next transfer of client `client_id` on `known`, its `sequence`-th: two distinct
/// accounts and an amount from the client's own set that the source account holds.
fn next_transfer(
    bank: &BankSettings,
    known: &Known,
    random: &mut Xorshift,
    client_id: usize,
    sequence: u64,
) -> Option<Transfer> {
    let count = bank.accounts.len() as u64;
    let from = random.below(count) as usize;
    let to = (from + 1 + random.below(count - 1) as usize) % bank.accounts.len();
    let record = |index: usize| known.get(&bank.accounts[index]);
    let (from_record, to_record) = (record(from)?, record(to)?);
    let balance = |record: &KeyValue| record.value.as_deref().and_then(balance_of);
    let (from_balance, to_balance) = (balance(from_record)?, balance(to_record)?);
    let clients = bank.clients.max(1) as u64;
    let steps = (bank.total / 2 / clients).max(1);
    let amount = client_id as u64 + 1 + clients * (sequence % steps);
    // Move the amount the way a balance allows (the larger one of a pair always can when the
    // pair holds twice the amount; otherwise all of the larger one).
    let (source, target) = if from_balance >= to_balance {
        ((from, from_balance), (to, to_balance))
    } else {
        ((to, to_balance), (from, from_balance))
    };
    let moved = amount.min(source.1);
    let expected = [source.0, target.0]
        .iter()
        .map(|&index| {
            (
                bank.accounts[index].clone(),
                record(index).map_or(0, |r| r.mod_revision),
            )
        })
        .collect();
    Some(Transfer {
        expected,
        writes: vec![
            (bank.accounts[source.0].clone(), source.1 - moved),
            (bank.accounts[target.0].clone(), target.1 + moved),
        ],
    })
}

fn transfer_request(bank: &BankSettings, transfer: &Transfer) -> TxnRequest {
    TxnRequest {
        compare: transfer
            .expected
            .iter()
            .map(|(key, revision)| Compare {
                key: key.clone(),
                target: CompareTarget::ModRevision(*revision),
                result: CompareResult::Equal,
            })
            .collect(),
        success: transfer
            .writes
            .iter()
            .map(|(key, balance)| {
                TxnOperation::Put(PutRequest {
                    key: key.clone(),
                    value: balance_value(*balance),
                    prev_kv: false,
                })
            })
            .collect(),
        failure: vec![TxnOperation::Range(bank.range())],
    }
}

/// The outcome of a transfer's answer.
fn transfer_outcome(answer: Answer) -> BankOutcome {
    match answer {
        Answer::Result(KvResult::Txn(result)) if result.succeeded => BankOutcome::Committed {
            revision: result.revision,
        },
        Answer::Result(KvResult::Txn(result)) => match result.responses.first() {
            Some(TxnOperationResult::Range(range)) => BankOutcome::Refused {
                revision: result.revision,
                accounts: range.kvs.clone(),
            },
            other => BankOutcome::Failed(format!("the failure branch answered {other:?}")),
        },
        Answer::Result(other) => BankOutcome::Failed(format!("a txn answered {other:?}")),
        Answer::Failed(why) => BankOutcome::Failed(why),
        Answer::Unknown(why) => BankOutcome::Unknown(why),
    }
}

/// The outcome of a read's answer.
fn read_outcome(answer: Answer) -> BankOutcome {
    match answer {
        Answer::Result(KvResult::Range(result)) => BankOutcome::Read {
            revision: result.revision,
            accounts: result.kvs,
        },
        Answer::Result(other) => BankOutcome::Failed(format!("a range answered {other:?}")),
        Answer::Failed(why) => BankOutcome::Failed(why),
        Answer::Unknown(why) => BankOutcome::Unknown(why),
    }
}

/// What the client knows after `record`: the accounts a read or a failure branch returned, its
/// own writes after a success, nothing after an indeterminate answer (it reads again).
fn learn(known: &mut Option<Known>, record: &BankRecord) {
    match (&record.call, &record.outcome) {
        (_, BankOutcome::Read { accounts, .. } | BankOutcome::Refused { accounts, .. }) => {
            *known = Some(
                accounts
                    .iter()
                    .map(|account| (account.key.clone(), account.clone()))
                    .collect(),
            );
        }
        (BankCall::Transfer(transfer), BankOutcome::Committed { revision }) => {
            if let Some(known) = known.as_mut() {
                for (key, balance) in &transfer.writes {
                    if let Some(account) = known.get_mut(key) {
                        account.value = Some(balance_value(*balance));
                        account.mod_revision = *revision;
                        account.version += 1;
                    }
                }
            }
        }
        (_, BankOutcome::Unknown(_)) => *known = None,
        _ => {}
    }
}

/// One transaction client until `stop`: its history. A quarter of its operations are plain
/// reads; it also reads whenever it does not know the accounts.
pub async fn client_loop(
    settings: WorkloadSettings,
    bank: BankSettings,
    client_id: usize,
    stop: Arc<AtomicBool>,
) -> Vec<BankRecord> {
    let mut random = Xorshift::new(1000 + client_id as u64);
    let mut records = Vec::new();
    let mut client = None;
    let mut known: Option<Known> = None;
    let mut sequence = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let transfer = match &known {
            Some(known) if random.below(4) != 0 => {
                next_transfer(&bank, known, &mut random, client_id, sequence)
            }
            _ => None,
        };
        let invoked_ns = nanoseconds_since(settings.started);
        let (call_made, outcome) = match transfer {
            Some(transfer) => {
                sequence += 1;
                let request = KvOperation::Txn(transfer_request(&bank, &transfer));
                let answer = call(&settings, &mut client, request).await;
                (BankCall::Transfer(transfer), transfer_outcome(answer))
            }
            None => {
                let answer = call(&settings, &mut client, KvOperation::Range(bank.range())).await;
                (BankCall::Read, read_outcome(answer))
            }
        };
        let record = BankRecord {
            client: client_id,
            call: call_made,
            invoked_ns,
            completed_ns: nanoseconds_since(settings.started),
            outcome,
        };
        learn(&mut known, &record);
        let definite = !matches!(
            record.outcome,
            BankOutcome::Failed(_) | BankOutcome::Unknown(_)
        );
        records.push(record);
        // Back off after a failure so a leaderless minute is not a busy loop.
        let pause = if definite {
            settings.think_time
        } else {
            settings.think_time * 10
        };
        tokio::time::sleep(pause).await;
    }
    records
}
