//! The replicated state machine: a key-value store with a version per key (`protocol.md` §9.1),
//! and the snapshot that replaces a compacted log prefix (§7.4).
//!
//! It is deterministic and applied in slot order by every master, so all masters that applied the
//! same prefix hold the same store. Deleted keys keep their version as a tombstone, because
//! "a deleted key keeps counting from its last version".

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::types::{Operation, OperationResult, Slot};

/// One key's state: its value (None once deleted) and its version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// The current value; None after a delete (the version is kept).
    pub value: Option<Vec<u8>>,
    /// Incremented by every write, starting at 1.
    pub version: u64,
}

/// The key-value store. Keys never written are not stored (version 0).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvStore {
    keys: BTreeMap<Vec<u8>, Versioned>,
}

impl KvStore {
    /// An empty store.
    pub fn new() -> KvStore {
        KvStore::default()
    }

    /// Reads a key as stored here (status and tests: a client's `Get` is answered by
    /// [`KvStore::read`] only once the leader confirmed it still leads, §9.2).
    pub fn get(&self, key: &[u8]) -> Option<&Versioned> {
        self.keys.get(key)
    }

    /// The result of a `Get` without changing the store (`protocol.md` §9.2): what applying it
    /// would answer. Only a `Get` is read-only; anything else is a programmer error.
    pub fn read(&self, operation: &Operation) -> OperationResult {
        let Operation::Get { key } = operation else {
            panic!("only a Get is read without the log, not {operation:?}");
        };
        let (value, version) = match self.keys.get(key) {
            Some(state) => (state.value.clone(), state.version),
            None => (None, 0),
        };
        OperationResult::Value { value, version }
    }

    /// Number of keys stored, tombstones included.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True if no key was ever written.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every key with its state, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Versioned)> {
        self.keys.iter()
    }

    /// Applies one operation and returns its result (`protocol.md` §9.1).
    pub fn apply(&mut self, operation: &Operation) -> OperationResult {
        match operation {
            Operation::Get { .. } => self.read(operation),
            Operation::Put { key, value } => {
                let version = self.write(key, Some(value.clone()));
                OperationResult::Written { version }
            }
            Operation::Cas {
                key,
                expected_version,
                value,
            } => {
                let current_version = self.version(key);
                if current_version != *expected_version {
                    return OperationResult::VersionMismatch { current_version };
                }
                let version = self.write(key, Some(value.clone()));
                OperationResult::Written { version }
            }
            Operation::Delete { key } => {
                let present = self
                    .keys
                    .get(key)
                    .is_some_and(|state| state.value.is_some());
                if !present {
                    return OperationResult::Deleted { version: 0 };
                }
                let version = self.write(key, None);
                OperationResult::Deleted { version }
            }
        }
    }

    fn version(&self, key: &[u8]) -> u64 {
        self.keys.get(key).map_or(0, |state| state.version)
    }

    fn write(&mut self, key: &[u8], value: Option<Vec<u8>>) -> u64 {
        let version = self.version(key) + 1;
        self.keys.insert(key.to_vec(), Versioned { value, version });
        version
    }
}

impl fmt::Display for KvStore {
    /// `{key=value@version, key=<deleted>@version}`, keys and values printed lossily as UTF-8.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{{")?;
        for (index, (key, state)) in self.keys.iter().enumerate() {
            if index > 0 {
                write!(formatter, ", ")?;
            }
            let key = String::from_utf8_lossy(key);
            match &state.value {
                Some(value) => {
                    let value = String::from_utf8_lossy(value);
                    write!(formatter, "{key}={value}@{}", state.version)?;
                }
                None => write!(formatter, "{key}=<deleted>@{}", state.version)?,
            }
        }
        write!(formatter, "}}")
    }
}

/// The state machine after applying every slot up to and including `slot` (§7.4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last slot the snapshot covers; 0 for the empty initial state.
    pub slot: Slot,
    /// The store after applying slots `1..=slot`.
    pub store: KvStore,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Vec<u8> {
        name.as_bytes().to_vec()
    }

    #[test]
    fn versions_count_through_deletes() {
        let mut store = KvStore::new();
        let put = Operation::Put {
            key: key("a"),
            value: key("1"),
        };
        assert_eq!(store.apply(&put), OperationResult::Written { version: 1 });
        let delete = Operation::Delete { key: key("a") };
        assert_eq!(
            store.apply(&delete),
            OperationResult::Deleted { version: 2 }
        );
        assert_eq!(
            store.apply(&delete),
            OperationResult::Deleted { version: 0 }
        );
        let get = Operation::Get { key: key("a") };
        assert_eq!(
            store.apply(&get),
            OperationResult::Value {
                value: None,
                version: 2
            }
        );
        assert_eq!(store.apply(&put), OperationResult::Written { version: 3 });
    }

    #[test]
    fn cas_checks_the_version() {
        let mut store = KvStore::new();
        let cas = |expected_version| Operation::Cas {
            key: key("k"),
            expected_version,
            value: key("v"),
        };
        assert_eq!(
            store.apply(&cas(0)),
            OperationResult::Written { version: 1 }
        );
        assert_eq!(
            store.apply(&cas(0)),
            OperationResult::VersionMismatch { current_version: 1 }
        );
        assert_eq!(
            store.apply(&cas(1)),
            OperationResult::Written { version: 2 }
        );
        assert_eq!(
            store.apply(&Operation::Delete { key: key("never") }),
            OperationResult::Deleted { version: 0 }
        );
    }
}
