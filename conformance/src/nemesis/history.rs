//! The clients' history of a nemesis run: one record per operation with its invocation and
//! completion times and its outcome, as the linearizability checker and the durability check
//! read it.
//!
//! Why three outcomes: a client that got no definite answer (a timeout, a lost connection, a
//! `LeaderChanged`) cannot know whether its write was applied. Such an operation is
//! *indeterminate*: the checker must allow it to take effect at any time after its invocation,
//! or never. Treating it as failed would report false anomalies; treating it as applied would
//! hide lost writes.

use std::fmt;

use vigil_core::{ClientError, OperationResult, ReplyOutcome};

/// What a client asked, on one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// `Get`.
    Get,
    /// `Put` of a value unique in the run.
    Put {
        /// The value written.
        value: Vec<u8>,
    },
    /// `Cas` from `expected_version` to a value unique in the run.
    Cas {
        /// The version the key must have.
        expected_version: u64,
        /// The value written if it has.
        value: Vec<u8>,
    },
    /// `Delete` (the nemesis workload sends none; the replay's histories have them).
    Delete,
}

impl Call {
    /// True for the calls that may change the key.
    pub fn is_write(&self) -> bool {
        !matches!(self, Call::Get)
    }
}

/// How an operation ended, as far as the client knows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A definite answer from the service.
    Ok(OperationResult),
    /// A definite refusal: the operation was not applied (`Overloaded`, `NoLeader`,
    /// `UnknownCluster`, or the client could not even connect).
    Failed(String),
    /// No definite answer: the operation may or may not have been applied.
    Unknown(String),
}

impl Outcome {
    /// Classifies a proxy's reply. `Timeout` and `LeaderChanged` are indeterminate by the
    /// protocol (`protocol.md` §9.4); the other errors complete a request that was never
    /// proposed, or was refused before it entered the log.
    pub fn of_reply(reply: ReplyOutcome) -> Outcome {
        match reply {
            Ok(result) => Outcome::Ok(result),
            Err(error @ (ClientError::Timeout | ClientError::LeaderChanged)) => {
                Outcome::Unknown(error.to_string())
            }
            Err(error) => Outcome::Failed(error.to_string()),
        }
    }
}

/// One operation of one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The client that ran it.
    pub client: usize,
    /// The key.
    pub key: Vec<u8>,
    /// What was asked.
    pub call: Call,
    /// When the client sent it, nanoseconds since the run started.
    pub invoked_ns: u64,
    /// When the client got its answer (or gave up), nanoseconds since the run started.
    pub completed_ns: u64,
    /// The outcome.
    pub outcome: Outcome,
}

impl fmt::Display for Record {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = String::from_utf8_lossy(&self.key);
        let call = match &self.call {
            Call::Get => format!("get({key})"),
            Call::Put { value } => format!("put({key}, {})", String::from_utf8_lossy(value)),
            Call::Cas {
                expected_version,
                value,
            } => format!(
                "cas({key}, version {expected_version}, {})",
                String::from_utf8_lossy(value)
            ),
            Call::Delete => format!("delete({key})"),
        };
        let outcome = match &self.outcome {
            Outcome::Ok(result) => vigil::client::describe_result(result),
            Outcome::Failed(error) => format!("failed: {error}"),
            Outcome::Unknown(why) => format!("unknown ({why})"),
        };
        write!(
            formatter,
            "client {} {call} -> {outcome} [{:.3} s .. {:.3} s]",
            self.client,
            self.invoked_ns as f64 / 1e9,
            self.completed_ns as f64 / 1e9
        )
    }
}

/// Counts of a history by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryCounts {
    /// Operations in all.
    pub operations: usize,
    /// Definite answers.
    pub ok: usize,
    /// Definite refusals.
    pub failed: usize,
    /// Indeterminate.
    pub unknown: usize,
}

/// Counts `records` by outcome.
pub fn count(records: &[Record]) -> HistoryCounts {
    let mut counts = HistoryCounts {
        operations: records.len(),
        ..HistoryCounts::default()
    };
    for record in records {
        match record.outcome {
            Outcome::Ok(_) => counts.ok += 1,
            Outcome::Failed(_) => counts.failed += 1,
            Outcome::Unknown(_) => counts.unknown += 1,
        }
    }
    counts
}

/// What the durability check found on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDurability {
    /// The key.
    pub key: Vec<u8>,
    /// The highest version an acknowledged write on it returned.
    pub acknowledged_version_max: u64,
    /// Writes that may have been applied (acknowledged plus indeterminate).
    pub writes_possible: u64,
    /// The version the final read returned.
    pub final_version: u64,
}

/// Why acknowledged writes are not all present after the heal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurabilityError {
    /// A key has no successful final read.
    #[error("key {0}: no final read succeeded")]
    NoFinalRead(String),
    /// The final version is below an acknowledged write's version: that write was lost.
    #[error("key {key}: an acknowledged write returned version {acknowledged}, the final read shows version {found}: a write was lost")]
    Lost {
        /// The key.
        key: String,
        /// The acknowledged version.
        acknowledged: u64,
        /// The final version.
        found: u64,
    },
    /// The final version counts more writes than clients could have made.
    #[error("key {key}: final version {found} but at most {possible} writes may have been applied: a phantom write")]
    Phantom {
        /// The key.
        key: String,
        /// Writes possible.
        possible: u64,
        /// The final version.
        found: u64,
    },
}

/// Checks that every acknowledged write is present after the heal: each key's final read (the
/// last successful `Get` in `final_reads`) shows a version at least that of every acknowledged
/// write (versions count writes, `protocol.md` §9.1), and at most the number of writes that
/// may have been applied.
pub fn check_durability(
    keys: &[Vec<u8>],
    records: &[Record],
    final_reads: &[Record],
) -> Result<Vec<KeyDurability>, DurabilityError> {
    let mut found = Vec::new();
    for key in keys {
        let name = String::from_utf8_lossy(key).into_owned();
        let final_version = final_reads
            .iter()
            .rev()
            .filter(|record| &record.key == key)
            .find_map(|record| match record.outcome {
                Outcome::Ok(OperationResult::Value { version, .. }) => Some(version),
                _ => None,
            })
            .ok_or_else(|| DurabilityError::NoFinalRead(name.clone()))?;
        let mut durability = KeyDurability {
            key: key.clone(),
            acknowledged_version_max: 0,
            writes_possible: 0,
            final_version,
        };
        for record in records.iter().filter(|record| &record.key == key) {
            match (&record.call, &record.outcome) {
                (_, Outcome::Ok(OperationResult::Written { version })) => {
                    durability.acknowledged_version_max =
                        durability.acknowledged_version_max.max(*version);
                    durability.writes_possible += 1;
                }
                (call, Outcome::Unknown(_)) if call.is_write() => durability.writes_possible += 1,
                _ => {}
            }
        }
        if final_version < durability.acknowledged_version_max {
            return Err(DurabilityError::Lost {
                key: name,
                acknowledged: durability.acknowledged_version_max,
                found: final_version,
            });
        }
        if final_version > durability.writes_possible {
            return Err(DurabilityError::Phantom {
                key: name,
                possible: durability.writes_possible,
                found: final_version,
            });
        }
        found.push(durability);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(call: Call, outcome: Outcome) -> Record {
        Record {
            client: 0,
            key: b"k".to_vec(),
            call,
            invoked_ns: 0,
            completed_ns: 1,
            outcome,
        }
    }

    fn put(version: u64) -> Record {
        record(
            Call::Put {
                value: format!("v{version}").into_bytes(),
            },
            Outcome::Ok(OperationResult::Written { version }),
        )
    }

    fn final_read(version: u64) -> Record {
        record(
            Call::Get,
            Outcome::Ok(OperationResult::Value {
                value: Some(b"x".to_vec()),
                version,
            }),
        )
    }

    #[test]
    fn a_lost_acknowledged_write_fails() {
        let records = [put(1), put(2), put(3)];
        let error = check_durability(&[b"k".to_vec()], &records, &[final_read(2)]).unwrap_err();
        assert!(matches!(
            error,
            DurabilityError::Lost {
                acknowledged: 3,
                found: 2,
                ..
            }
        ));
    }

    #[test]
    fn a_phantom_write_fails_and_indeterminate_writes_may_count() {
        let records = [put(1), put(2)];
        let error = check_durability(&[b"k".to_vec()], &records, &[final_read(3)]).unwrap_err();
        assert!(matches!(
            error,
            DurabilityError::Phantom { possible: 2, .. }
        ));
        let unknown = record(
            Call::Put {
                value: b"u".to_vec(),
            },
            Outcome::Unknown("timeout".into()),
        );
        let records = [put(1), put(2), unknown];
        let found = check_durability(&[b"k".to_vec()], &records, &[final_read(3)]).unwrap();
        assert_eq!(found[0].writes_possible, 3);
    }

    #[test]
    fn a_key_without_a_final_read_fails() {
        let error = check_durability(&[b"k".to_vec()], &[put(1)], &[]).unwrap_err();
        assert!(matches!(error, DurabilityError::NoFinalRead(_)));
    }

    #[test]
    fn replies_are_classified_as_the_protocol_says() {
        assert!(matches!(
            Outcome::of_reply(Err(ClientError::Timeout)),
            Outcome::Unknown(_)
        ));
        assert!(matches!(
            Outcome::of_reply(Err(ClientError::LeaderChanged)),
            Outcome::Unknown(_)
        ));
        assert!(matches!(
            Outcome::of_reply(Err(ClientError::NoLeader)),
            Outcome::Failed(_)
        ));
    }
}
