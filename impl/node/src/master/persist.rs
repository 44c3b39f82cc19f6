//! The persist task: it owns a master's storage and makes the driver's durable writes durable,
//! strictly first in, first out, off the driver's task, so that neither heartbeats nor
//! replication wait behind the disk. The jobs that queue during one fsync share the next
//! (group commit). A storage error is reported and ends the task: the master stops.

use tokio::sync::mpsc;
use vigil_core::DurableWrite;

use crate::durable::MasterStorage;
use crate::platform::FileSystem;
use crate::storage::StorageError;

/// Ready batches handed to the persist task and not yet advanced, at most. Beyond it the driver
/// waits for the disk (and stops ticking, so its followers stop hearing heartbeats and elect
/// another leader). A stalled fsync fills this with new proposals (and, at a follower, with the
/// leader's `Accept`s): over 1,000 of them on a disk that answers nothing. Batches that do not
/// wait for the disk ride with the newest job (`driver::READY_GROUP_MAX`).
pub(super) const PERSIST_PENDING_MAX: usize = 1024;
/// Persist jobs made durable by one fsync at most (group commit): the jobs that queued while
/// the previous fsync ran are written together, then reported done one by one, in order.
const PERSIST_BATCH_JOBS_MAX: usize = 256;

/// A durable write for the persist task; none when the `Ready` only holds output released by
/// `advance` (it is done once every earlier write is).
#[derive(Debug)]
pub(super) struct PersistJob {
    pub(super) write: Option<DurableWrite>,
}

/// The persist task: owns the storage; makes the jobs' writes durable in order (as blocking
/// work of the file system, off the async threads) and reports each job done to the driver,
/// which advances the core (releasing what waited for the write). The jobs that queued during
/// one fsync share the next ([`DurableWrite::merge`]: the same result as writing them in turn).
pub(super) async fn persist_loop<F: FileSystem>(
    file_system: F,
    mut storage: MasterStorage<F>,
    mut jobs: mpsc::Receiver<PersistJob>,
    done: mpsc::Sender<Result<(), StorageError>>,
) {
    while let Some(job) = jobs.recv().await {
        let (batch_write, batch_jobs) = with_queued_jobs(job, &mut jobs);
        if let Some(write) = batch_write {
            let (returned, persisted) = file_system
                .run_blocking(move || {
                    let persisted = storage.persist(&write);
                    (storage, persisted)
                })
                .await;
            storage = returned;
            if let Err(error) = persisted {
                let _ = done.send(Err(error)).await;
                return;
            }
        }
        for _ in 0..batch_jobs {
            if done.send(Ok(())).await.is_err() {
                return;
            }
        }
    }
}

/// `first` and the jobs queued behind it (at most [`PERSIST_BATCH_JOBS_MAX`] in all), as one
/// write equal to theirs in turn, and how many jobs it covers.
fn with_queued_jobs(
    first: PersistJob,
    jobs: &mut mpsc::Receiver<PersistJob>,
) -> (Option<DurableWrite>, usize) {
    let mut batch_write = first.write;
    let mut batch_jobs = 1;
    while batch_jobs < PERSIST_BATCH_JOBS_MAX {
        let Ok(next) = jobs.try_recv() else {
            break;
        };
        batch_jobs += 1;
        batch_write = match (batch_write, next.write) {
            (Some(mut earlier), Some(later)) => {
                earlier.merge(later);
                Some(earlier)
            }
            (earlier, later) => earlier.or(later),
        };
    }
    (batch_write, batch_jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::{Ballot, Command, Entry};

    fn job(slot: Option<u64>) -> PersistJob {
        PersistJob {
            write: slot.map(|slot| DurableWrite {
                promised: None,
                snapshot: None,
                entries: vec![Entry {
                    slot,
                    ballot: Ballot::new(1, 0),
                    command: Command::Noop,
                }],
            }),
        }
    }

    #[test]
    fn the_jobs_queued_behind_one_share_its_write() {
        let (sender, mut receiver) = mpsc::channel(PERSIST_BATCH_JOBS_MAX + 8);
        for slot in [None, Some(2), Some(3)] {
            sender.try_send(job(slot)).unwrap();
        }
        let (write, jobs) = with_queued_jobs(job(Some(1)), &mut receiver);
        assert_eq!(jobs, 4, "each job is reported done");
        let slots: Vec<u64> = write.unwrap().entries.iter().map(|e| e.slot).collect();
        assert_eq!(slots, vec![1, 2, 3], "in order");
        assert!(receiver.try_recv().is_err(), "the queue is drained");
    }

    #[test]
    fn a_batch_is_bounded() {
        let (sender, mut receiver) = mpsc::channel(PERSIST_BATCH_JOBS_MAX + 8);
        for slot in 0..PERSIST_BATCH_JOBS_MAX as u64 + 5 {
            sender.try_send(job(Some(slot + 2))).unwrap();
        }
        let (_, jobs) = with_queued_jobs(job(Some(1)), &mut receiver);
        assert_eq!(jobs, PERSIST_BATCH_JOBS_MAX);
        let (_, rest) = with_queued_jobs(receiver.try_recv().unwrap(), &mut receiver);
        assert_eq!(rest, 6, "the rest make the next batch");
    }
}
