//! A master's durable state (`docs/protocol.md` §2) on top of [`crate::storage::Storage`]:
//! `promised` in the metadata file, the snapshot in the snapshot file, accepted entries as
//! records of the log.
//!
//! Why a mirror in memory: compaction rewrites the log with the entries above the new snapshot,
//! which the core does not hand back; the mirror is the state `Master::new` would restart from,
//! kept exactly as `DurableState::apply` defines it, so restart equals replay.
//!
//! Order inside one `DurableWrite` (all of it is durable before any dependent message leaves):
//! `promised` first, then the snapshot (with the log rewritten), then new entries. A crash part
//! way through leaves a promise without the acceptance, which is safe (a promise that was never
//! sent); entries never become durable under a `promised` lower than their ballot.

use std::path::Path;

use vigil_core::{Ballot, DurableState, DurableWrite, Entry, Snapshot};

use crate::platform::{FileSystem, StdFileSystem};
use crate::storage::{Storage, StorageError};

/// The master's storage plus its in-memory mirror.
#[derive(Debug)]
pub struct MasterStorage<F: FileSystem = StdFileSystem> {
    storage: Storage<Ballot, Snapshot, Entry, F>,
    mirror: DurableState,
}

impl MasterStorage {
    /// Opens the data directory on the real disk and rebuilds the durable state from it.
    pub fn open(directory: &Path) -> Result<MasterStorage, StorageError> {
        MasterStorage::open_on(StdFileSystem, directory)
    }
}

impl<F: FileSystem> MasterStorage<F> {
    /// [`MasterStorage::open`] on `file_system`.
    pub fn open_on(file_system: F, directory: &Path) -> Result<MasterStorage<F>, StorageError> {
        let (storage, recovered) = Storage::open_on(file_system, directory)?;
        let mut mirror = DurableState {
            promised: recovered.metadata.unwrap_or(Ballot::ZERO),
            snapshot: recovered.snapshot.unwrap_or_default(),
            log: Vec::new(),
        };
        // Replaying records one by one is exactly `apply`: later records for a slot win,
        // records the snapshot covers are skipped.
        mirror.apply(&DurableWrite {
            promised: None,
            snapshot: None,
            entries: recovered.records,
        });
        tracing::info!(
            directory = %directory.display(),
            promised = %mirror.promised,
            snapshot_slot = mirror.snapshot.slot,
            entries = mirror.log.len(),
            "durable state loaded"
        );
        Ok(MasterStorage { storage, mirror })
    }

    /// What the core restarts from.
    pub fn state(&self) -> &DurableState {
        &self.mirror
    }

    /// Makes `write` durable (fsync) before returning.
    pub fn persist(&mut self, write: &DurableWrite) -> Result<(), StorageError> {
        if let Some(promised) = write.promised {
            self.storage.write_metadata(&promised)?;
        }
        self.mirror.apply(write);
        if write.snapshot.is_some() {
            // The rewritten log already holds this write's entries (the mirror has them).
            self.storage
                .compact(&self.mirror.snapshot, &self.mirror.log)?;
        } else {
            self.storage.append(&write.entries)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::Command;

    fn entry(slot: u64, round: u64) -> Entry {
        Entry {
            slot,
            ballot: Ballot::new(round, 1),
            command: Command::Noop,
        }
    }

    #[test]
    fn restart_equals_replay() {
        let directory = tempfile::tempdir().unwrap();
        let writes = [
            DurableWrite {
                promised: Some(Ballot::new(1, 1)),
                snapshot: None,
                entries: vec![entry(1, 1), entry(2, 1)],
            },
            DurableWrite {
                promised: Some(Ballot::new(2, 1)),
                snapshot: None,
                entries: vec![entry(2, 2), entry(3, 2)],
            },
            DurableWrite {
                promised: None,
                snapshot: Some(Snapshot {
                    slot: 1,
                    store: Default::default(),
                }),
                entries: vec![entry(4, 2)],
            },
            DurableWrite {
                promised: None,
                snapshot: None,
                entries: vec![entry(5, 2)],
            },
        ];
        let mut reference = DurableState::default();
        {
            let mut storage = MasterStorage::open(directory.path()).unwrap();
            for write in &writes {
                storage.persist(write).unwrap();
                reference.apply(write);
                assert_eq!(storage.state(), &reference);
            }
        }
        let storage = MasterStorage::open(directory.path()).unwrap();
        assert_eq!(storage.state(), &reference);
        assert_eq!(storage.state().log.len(), 4);
        assert_eq!(storage.state().promised, Ballot::new(2, 1));
    }
}
