//! The key-value state machine with versions (`docs/protocol.md` §9.1), used twice: masters apply
//! the committed log to it, and the linearizability tester uses it as the sequential reference.
//!
//! A refused operation (a definite error: `UnknownCluster`, `Overloaded`, `NoLeader`) takes no
//! effect, so the reference accepts a refusal at any point of the order without changing state.

use crate::state::Log;
use crate::types::{Command, Key, Operation, OperationResult, Slot, Value, Version};
use serde::{Deserialize, Serialize};
use stateright::semantics::SequentialSpec;
use std::collections::BTreeMap;

/// The store: key → (value, version); version 0 means never written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyValueStore {
    /// Current value (None when absent) and version per key.
    pub keys: BTreeMap<Key, (Option<Value>, Version)>,
}

impl KeyValueStore {
    /// Applies one operation and returns its result.
    pub fn apply(&mut self, operation: &Operation) -> OperationResult {
        let key = match operation {
            Operation::Get { key }
            | Operation::Put { key, .. }
            | Operation::Cas { key, .. }
            | Operation::Delete { key } => *key,
        };
        let (value, version) = self.keys.get(&key).copied().unwrap_or((None, 0));
        match *operation {
            Operation::Get { .. } => OperationResult::Value { value, version },
            Operation::Put { value: new, .. } => self.write(key, Some(new), version),
            Operation::Cas {
                expected_version,
                value: new,
                ..
            } => {
                if expected_version == version {
                    self.write(key, Some(new), version)
                } else {
                    OperationResult::VersionMismatch {
                        current_version: version,
                    }
                }
            }
            Operation::Delete { .. } => match value {
                None => OperationResult::Deleted { version: 0 },
                Some(_) => {
                    self.keys.insert(key, (None, version + 1));
                    OperationResult::Deleted {
                        version: version + 1,
                    }
                }
            },
        }
    }

    fn write(&mut self, key: Key, value: Option<Value>, version: Version) -> OperationResult {
        self.keys.insert(key, (value, version + 1));
        OperationResult::Written {
            version: version + 1,
        }
    }

    /// Applies the operations of `log` slots `after + 1..=through` in order (gaps are skipped:
    /// a committed prefix has none).
    pub fn apply_log(&mut self, log: &Log, after: Slot, through: Slot) {
        if through <= after {
            return;
        }
        for entry in log.range(after + 1..=through).map(|(_, entry)| entry) {
            if let Command::Operation { operation, .. } = &entry.command {
                self.apply(operation);
            }
        }
    }
}

impl SequentialSpec for KeyValueStore {
    type Op = Operation;
    type Ret = Option<OperationResult>;

    fn invoke(&mut self, operation: &Operation) -> Option<OperationResult> {
        Some(self.apply(operation))
    }

    fn is_valid_step(&mut self, operation: &Operation, result: &Option<OperationResult>) -> bool {
        match result {
            None => true,
            Some(result) => self.apply(operation) == *result,
        }
    }
}
