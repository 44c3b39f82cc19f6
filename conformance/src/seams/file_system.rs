//! Disk faults through the host's `FileSystem` seam: [`FaultyFileSystem`] wraps the file
//! system a master's storage runs on and makes its disk slow, dead or full on demand.
//!
//! - **Stalled** until a deadline: the disk work (every write with its fsync, run by the
//!   persist task through `run_blocking`) waits until then, as on a disk that answers nothing
//!   for a while. Heartbeats and the leader's `Accept`s must not wait behind it.
//! - **Failed**: every write, sync, create, rename and removal returns an I/O error from then
//!   on (reads still work), as on a dead disk. The storage reports it and the master stops
//!   (a storage error is fatal: `vigil_core` `ready.rs`).
//! - **Full**: the disk accepts a number of bytes more, then answers every write with
//!   `StorageFull` (ENOSPC). A write that does not fit writes what fits, as a real one does,
//!   which leaves a torn tail for recovery to cut. Space freed by renames and removals is not
//!   counted: the disk only fills.
//!
//! The faults hold for the files already open as well as for new ones, until
//! [`DiskFaults::repair`].

use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;
use vigil::platform::{FileSystem, StorageFile};

/// One host's disk faults; cheap to clone (every clone is the same disk).
#[derive(Clone, Debug, Default)]
pub struct DiskFaults {
    state: Arc<Mutex<DiskState>>,
}

#[derive(Debug, Default)]
struct DiskState {
    stalled_until: Option<Instant>,
    failed: bool,
    /// Bytes the disk still accepts; none: unlimited.
    bytes_free: Option<u64>,
}

impl DiskFaults {
    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the disk work that starts within `duration` from now wait until then.
    pub fn stall_for(&self, duration: Duration) {
        self.lock().stalled_until = Some(Instant::now() + duration);
    }

    /// Makes every write, sync, create, rename and removal fail from now on.
    pub fn fail(&self) {
        self.lock().failed = true;
    }

    /// Lets the disk accept `bytes` more bytes, then fail every write with `StorageFull`.
    pub fn fill_after(&self, bytes: u64) {
        self.lock().bytes_free = Some(bytes);
    }

    /// A healthy disk again: no stall, no failure, no limit.
    pub fn repair(&self) {
        *self.lock() = DiskState::default();
    }

    fn check(&self, operation: &str) -> io::Result<()> {
        if self.lock().failed {
            return Err(io::Error::other(format!(
                "{operation} failed: the disk is dead (fault injection)"
            )));
        }
        Ok(())
    }

    /// How many of `wanted` bytes the disk takes now (an error if it is dead or full), counted
    /// as written.
    fn take_bytes(&self, wanted: usize) -> io::Result<usize> {
        self.check("write")?;
        let mut state = self.lock();
        let Some(free) = state.bytes_free.as_mut() else {
            return Ok(wanted);
        };
        if *free == 0 && wanted > 0 {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device (fault injection)",
            ));
        }
        let taken = wanted.min(usize::try_from(*free).unwrap_or(usize::MAX));
        *free -= taken as u64;
        Ok(taken)
    }

    async fn wait_out_stall(&self) {
        let stalled_until = self.lock().stalled_until;
        if let Some(until) = stalled_until {
            tokio::time::sleep_until(until).await;
        }
    }
}

/// `F` with this host's disk faults.
#[derive(Clone, Debug)]
pub struct FaultyFileSystem<F> {
    inner: F,
    faults: DiskFaults,
}

impl<F> FaultyFileSystem<F> {
    /// `inner`, made slow, dead or full by `faults`.
    pub fn new(inner: F, faults: DiskFaults) -> FaultyFileSystem<F> {
        FaultyFileSystem { inner, faults }
    }
}

/// A file of [`FaultyFileSystem`].
#[derive(Debug)]
pub struct FaultyFile<T> {
    inner: T,
    faults: DiskFaults,
}

impl<T: Read> Read for FaultyFile<T> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buffer)
    }
}

impl<T: Write> Write for FaultyFile<T> {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let taken = self.faults.take_bytes(buffer.len())?;
        self.inner.write(&buffer[..taken])
    }
    fn flush(&mut self) -> io::Result<()> {
        self.faults.check("flush")?;
        self.inner.flush()
    }
}

impl<T: Seek> Seek for FaultyFile<T> {
    fn seek(&mut self, position: SeekFrom) -> io::Result<u64> {
        self.inner.seek(position)
    }
}

impl<T: StorageFile> StorageFile for FaultyFile<T> {
    fn set_len(&self, bytes: u64) -> io::Result<()> {
        self.faults.check("truncate")?;
        self.inner.set_len(bytes)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.faults.check("fsync")?;
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.faults.check("fsync")?;
        self.inner.sync_all()
    }
}

impl<F: FileSystem> FaultyFileSystem<F> {
    fn file(&self, inner: F::File) -> FaultyFile<F::File> {
        FaultyFile {
            inner,
            faults: self.faults.clone(),
        }
    }
}

impl<F: FileSystem> FileSystem for FaultyFileSystem<F> {
    type File = FaultyFile<F::File>;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.faults.check("create directory")?;
        self.inner.create_dir_all(path)
    }
    fn open_append(&self, path: &Path) -> io::Result<Self::File> {
        self.faults.check("open")?;
        self.inner.open_append(path).map(|file| self.file(file))
    }
    fn create(&self, path: &Path) -> io::Result<Self::File> {
        self.faults.check("create")?;
        self.inner.create(path).map(|file| self.file(file))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.faults.check("rename")?;
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.faults.check("remove")?;
        self.inner.remove_file(path)
    }
    fn sync_directory(&self, path: &Path) -> io::Result<()> {
        self.faults.check("fsync directory")?;
        self.inner.sync_directory(path)
    }

    /// After a stall's deadline, if one is set.
    fn run_blocking<T, W>(&self, work: W) -> impl Future<Output = T> + Send
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
    {
        let faults = self.faults.clone();
        let inner = self.inner.clone();
        async move {
            faults.wait_out_stall().await;
            inner.run_blocking(work).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil::platform::StdFileSystem;

    #[test]
    fn a_full_disk_takes_what_fits_then_refuses() {
        let directory = tempfile::tempdir().unwrap();
        let faults = DiskFaults::default();
        let disk = FaultyFileSystem::new(StdFileSystem, faults.clone());
        let path = directory.path().join("file");
        let mut file = disk.create(&path).unwrap();
        faults.fill_after(5);
        let error = file.write_all(b"0123456789").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::StorageFull, "{error}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"01234",
            "what fit was written"
        );
        faults.repair();
        file.write_all(b"!").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"01234!");
    }

    #[tokio::test]
    async fn a_stalled_disk_runs_its_work_after_the_deadline() {
        let faults = DiskFaults::default();
        let disk = FaultyFileSystem::new(StdFileSystem, faults.clone());
        let stall = Duration::from_millis(50);
        let started = Instant::now();
        faults.stall_for(stall);
        let finished = disk.run_blocking(Instant::now).await;
        assert!(finished - started >= stall, "{:?}", finished - started);
        faults.repair();
        assert!(
            faults.lock().stalled_until.is_none(),
            "a repaired disk does not wait"
        );
    }

    #[test]
    fn a_dead_disk_refuses_writes_and_syncs_but_reads() {
        let directory = tempfile::tempdir().unwrap();
        let faults = DiskFaults::default();
        let disk = FaultyFileSystem::new(StdFileSystem, faults.clone());
        let path = directory.path().join("file");
        let mut file = disk.create(&path).unwrap();
        file.write_all(b"kept").unwrap();
        faults.fail();
        assert!(file.write_all(b"lost").is_err());
        assert!(file.sync_data().is_err());
        assert!(disk.create(&directory.path().join("other")).is_err());
        assert!(disk.rename(&path, &directory.path().join("moved")).is_err());
        assert_eq!(disk.read(&path).unwrap(), b"kept");
    }
}
