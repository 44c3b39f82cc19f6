//! Durable per-master storage: an append-only record log plus two small files written
//! atomically (metadata, e.g. the promised ballot; and the snapshot of the state machine).
//!
//! Why a hand-written log and not an embedded store: the protocol needs exactly three things
//! (`docs/protocol.md` §2, §8) — append accepted entries and fsync before the dependent message
//! leaves, replace `promised` atomically, and replace the log prefix by a snapshot. An
//! append-only file with length + CRC32C framed records gives that with one `fsync` per batch
//! and a recovery rule simple enough to test exhaustively:
//!
//! - a record is `[length: u32 LE][crc32c(payload): u32 LE][payload]`, payload in postcard;
//! - on open, a record cut short at the end of the file, or a last record whose checksum fails,
//!   is a **torn tail** (a crash during the last append, never acknowledged): it is truncated
//!   with a warning;
//! - a record whose checksum fails with more data after it is a **corrupt middle**: the data was
//!   acknowledged and is now wrong, so opening refuses with an error naming the file and offset.
//!
//! Metadata and snapshot files are written as temp file, fsync, rename, fsync of the directory,
//! so a crash leaves either the old or the new version, never a mix. Each of them carries the
//! same length + checksum header, so a damaged one is also refused with its path.
//!
//! The store is generic over serde types (metadata `M`, snapshot `S`, record `R`) so it does
//! not depend on the core's vocabulary; the master driver picks the types. It is also generic
//! over the file system (`crate::platform::FileSystem`): the real disk, or conformance's
//! simulated one, where a crash loses exactly what was never synced.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

use crate::platform::{FileSystem, StdFileSystem, StorageFile};

/// Bytes of the header in front of every record: length then checksum.
const RECORD_HEADER_BYTES: usize = 8;
/// Largest record accepted; a length above it in the log can only be damage. A snapshot is one
/// record, so this bounds the store a master can compact: it is as large as the largest frame
/// a peer may send (`codec::PEER_FRAME_BYTES_MAX_DEFAULT`), which a snapshot must also fit to
/// reach a follower.
pub const RECORD_BYTES_MAX: usize = crate::codec::PEER_FRAME_BYTES_MAX_DEFAULT;

const LOG_FILE_NAME: &str = "log";
const METADATA_FILE_NAME: &str = "metadata";
const SNAPSHOT_FILE_NAME: &str = "snapshot";

/// Everything that can go wrong with a master's durable storage. Each variant names the file,
/// because the operator's next step is to look at that file.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The operating system refused an operation on a file.
    #[error("{path}: {operation}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What we were doing (open, write, fsync, rename…).
        operation: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// A record in the middle of the log fails its checksum: acknowledged data is damaged.
    #[error("{path}: corrupt record at offset {offset}: {reason}; refusing to start: keep this master stopped and see docs/operations.md (do not wipe the directory: a master that forgets its promises can break agreement)")]
    CorruptRecord {
        /// The log file.
        path: PathBuf,
        /// Byte offset of the damaged record's header.
        offset: u64,
        /// What was wrong with it.
        reason: String,
    },
    /// A metadata or snapshot file is damaged (these are replaced atomically, so this is not a torn write).
    #[error("{path}: corrupt file: {reason}; refusing to start")]
    CorruptFile {
        /// The damaged file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// A value could not be encoded (a bug or a record above the size limit).
    #[error("encoding a record: {0}")]
    Encode(String),
}

/// What `Storage::open` found on disk.
#[derive(Debug)]
pub struct Recovered<M, S, R> {
    /// The last metadata written, if any.
    pub metadata: Option<M>,
    /// The last snapshot written, if any.
    pub snapshot: Option<S>,
    /// Every intact record of the log, in append order.
    pub records: Vec<R>,
    /// Bytes cut from the end of the log as a torn tail (0 when the log was clean).
    pub torn_tail_bytes: u64,
}

/// A master's durable storage in one directory. Not thread-safe by design: one task owns it.
pub struct Storage<M, S, R, F: FileSystem = StdFileSystem> {
    file_system: F,
    directory: PathBuf,
    log: F::File,
    log_bytes: u64,
    log_records: u64,
    _types: PhantomData<StoredTypes<M, S, R>>,
}

/// Storage holds no value of its types, only encodes and decodes them; `fn() -> T` keeps it `Send`.
type StoredTypes<M, S, R> = fn() -> (M, S, R);

impl<M, S, R, F: FileSystem> std::fmt::Debug for Storage<M, S, R, F> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Storage")
            .field("directory", &self.directory)
            .field("log_bytes", &self.log_bytes)
            .field("log_records", &self.log_records)
            .finish()
    }
}

impl<M, S, R> Storage<M, S, R>
where
    M: Serialize + DeserializeOwned,
    S: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    /// Opens (creating if needed) the storage in `directory` on the real disk and reads back
    /// everything in it. A torn tail is truncated (with a warning); any other damage is an error.
    pub fn open(directory: &Path) -> Result<(Self, Recovered<M, S, R>), StorageError> {
        Storage::open_on(StdFileSystem, directory)
    }
}

impl<M, S, R, F> Storage<M, S, R, F>
where
    M: Serialize + DeserializeOwned,
    S: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
    F: FileSystem,
{
    /// [`Storage::open`] on `file_system`.
    pub fn open_on(
        file_system: F,
        directory: &Path,
    ) -> Result<(Self, Recovered<M, S, R>), StorageError> {
        let fs = &file_system;
        fs.create_dir_all(directory)
            .map_err(io_error(directory, "create directory"))?;
        remove_stale_temporaries(fs, directory)?;
        let metadata = read_atomic_file(fs, &directory.join(METADATA_FILE_NAME))?;
        let snapshot = read_atomic_file(fs, &directory.join(SNAPSHOT_FILE_NAME))?;
        let log_path = directory.join(LOG_FILE_NAME);
        let mut log = fs
            .open_append(&log_path)
            .map_err(io_error(&log_path, "open"))?;
        let mut contents = Vec::new();
        log.read_to_end(&mut contents)
            .map_err(io_error(&log_path, "read"))?;
        if contents.is_empty() {
            // Possibly just created: its directory entry must be durable before an append to
            // it is acknowledged, or a crash could take the whole log with it.
            sync_directory(fs, directory)?;
        }
        let scan = scan_records(&log_path, &contents)?;
        let torn_tail_bytes = contents.len() as u64 - scan.intact_bytes;
        if torn_tail_bytes > 0 {
            tracing::warn!(
                path = %log_path.display(),
                offset = scan.intact_bytes,
                torn_tail_bytes,
                "torn tail in the log (a crash during the last append); truncating it"
            );
            log.set_len(scan.intact_bytes)
                .map_err(io_error(&log_path, "truncate torn tail"))?;
            log.sync_all().map_err(io_error(&log_path, "fsync"))?;
        }
        log.seek(SeekFrom::End(0))
            .map_err(io_error(&log_path, "seek"))?;
        let mut records = Vec::with_capacity(scan.payloads.len());
        for (offset, payload) in scan.payloads {
            let record =
                postcard::from_bytes(payload).map_err(|error| StorageError::CorruptRecord {
                    path: log_path.clone(),
                    offset,
                    reason: format!("checksum ok but not decodable: {error}"),
                })?;
            records.push(record);
        }
        let storage = Storage {
            file_system,
            directory: directory.to_path_buf(),
            log,
            log_bytes: scan.intact_bytes,
            log_records: records.len() as u64,
            _types: PhantomData,
        };
        let recovered = Recovered {
            metadata,
            snapshot,
            records,
            torn_tail_bytes,
        };
        Ok((storage, recovered))
    }

    /// Appends `records` and fsyncs before returning: when this returns `Ok`, they survive a crash.
    pub fn append(&mut self, records: &[R]) -> Result<(), StorageError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buffer = Vec::new();
        for record in records {
            encode_record(record, &mut buffer)?;
        }
        let path = self.log_path();
        self.log
            .write_all(&buffer)
            .map_err(io_error(&path, "append"))?;
        self.sync_log()?;
        self.log_bytes += buffer.len() as u64;
        self.log_records += records.len() as u64;
        Ok(())
    }

    /// Replaces the metadata file atomically (and durably) with `metadata`.
    pub fn write_metadata(&mut self, metadata: &M) -> Result<(), StorageError> {
        write_atomic_file(
            &self.file_system,
            &self.directory,
            METADATA_FILE_NAME,
            metadata,
        )
        .map(|_| ())
    }

    /// Compaction: durably writes `snapshot`, then replaces the log by `kept_records` (the
    /// records the snapshot does not cover). A crash between the two steps leaves the new
    /// snapshot with the old log, which the caller must tolerate (records the snapshot covers
    /// are skipped on recovery by their slot).
    pub fn compact(&mut self, snapshot: &S, kept_records: &[R]) -> Result<(), StorageError> {
        let fs = &self.file_system;
        let snapshot_bytes = write_atomic_file(fs, &self.directory, SNAPSHOT_FILE_NAME, snapshot)?;
        metrics::gauge!(crate::metrics::SNAPSHOT_BYTES).set(snapshot_bytes as f64);
        let mut buffer = Vec::new();
        for record in kept_records {
            encode_record(record, &mut buffer)?;
        }
        let temporary_path = self.directory.join(format!("{LOG_FILE_NAME}.tmp"));
        write_and_sync(fs, &temporary_path, &buffer)?;
        let log_path = self.log_path();
        fs.rename(&temporary_path, &log_path)
            .map_err(io_error(&log_path, "rename"))?;
        sync_directory(fs, &self.directory)?;
        let mut log = fs
            .open_append(&log_path)
            .map_err(io_error(&log_path, "reopen"))?;
        log.seek(SeekFrom::End(0))
            .map_err(io_error(&log_path, "seek"))?;
        self.log = log;
        self.log_bytes = buffer.len() as u64;
        self.log_records = kept_records.len() as u64;
        Ok(())
    }

    /// Bytes in the log file (after recovery and appends).
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes
    }

    /// Records in the log file.
    pub fn log_records(&self) -> u64 {
        self.log_records
    }

    /// The directory this storage lives in.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    fn log_path(&self) -> PathBuf {
        self.directory.join(LOG_FILE_NAME)
    }

    fn sync_log(&mut self) -> Result<(), StorageError> {
        let started = Instant::now();
        let path = self.log_path();
        self.log.sync_data().map_err(io_error(&path, "fsync"))?;
        metrics::histogram!(crate::metrics::FSYNC_SECONDS).record(started.elapsed().as_secs_f64());
        Ok(())
    }
}

/// The intact prefix of a log file: its length and each record's (offset, payload).
struct Scan<'a> {
    intact_bytes: u64,
    payloads: Vec<(u64, &'a [u8])>,
}

/// Walks the records of `contents`, stopping at a torn tail and refusing a corrupt middle.
fn scan_records<'a>(path: &Path, contents: &'a [u8]) -> Result<Scan<'a>, StorageError> {
    let mut offset = 0usize;
    let mut payloads = Vec::new();
    while offset < contents.len() {
        let remaining = contents.len() - offset;
        if remaining < RECORD_HEADER_BYTES {
            break; // header cut short: torn tail
        }
        let length = u32::from_le_bytes(header_word(contents, offset)) as usize;
        let checksum = u32::from_le_bytes(header_word(contents, offset + 4));
        let end = offset + RECORD_HEADER_BYTES + length;
        if length <= RECORD_BYTES_MAX && end > contents.len() {
            break; // payload cut short: torn tail
        }
        let damage = if length == 0 || length > RECORD_BYTES_MAX {
            Some(format!("length {length} outside 1..={RECORD_BYTES_MAX}"))
        } else if crc32c::crc32c(&contents[offset + RECORD_HEADER_BYTES..end]) != checksum {
            Some("checksum mismatch".to_string())
        } else {
            None
        };
        if let Some(reason) = damage {
            // The last record, or space the file system allocated but never wrote (zeros),
            // is a crash during the append; anything followed by real data is damage.
            let rest = &contents[offset..];
            if end == contents.len() || rest.iter().all(|byte| *byte == 0) {
                break;
            }
            return Err(StorageError::CorruptRecord {
                path: path.to_path_buf(),
                offset: offset as u64,
                reason,
            });
        }
        let payload = &contents[offset + RECORD_HEADER_BYTES..end];
        payloads.push((offset as u64, payload));
        offset = end;
    }
    Ok(Scan {
        intact_bytes: offset as u64,
        payloads,
    })
}

fn header_word(contents: &[u8], offset: usize) -> [u8; 4] {
    let mut word = [0u8; 4];
    word.copy_from_slice(&contents[offset..offset + 4]);
    word
}

/// Appends one framed record (header + postcard payload) to `buffer`.
fn encode_record<T: Serialize>(value: &T, buffer: &mut Vec<u8>) -> Result<(), StorageError> {
    let payload =
        postcard::to_allocvec(value).map_err(|error| StorageError::Encode(error.to_string()))?;
    if payload.is_empty() || payload.len() > RECORD_BYTES_MAX {
        return Err(StorageError::Encode(format!(
            "record of {} bytes outside 1..={RECORD_BYTES_MAX}",
            payload.len()
        )));
    }
    buffer.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buffer.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    buffer.extend_from_slice(&payload);
    Ok(())
}

/// Writes `value` as one framed record to `directory/name` atomically and durably; returns
/// the file's size.
fn write_atomic_file<T: Serialize, F: FileSystem>(
    fs: &F,
    directory: &Path,
    name: &str,
    value: &T,
) -> Result<usize, StorageError> {
    let mut buffer = Vec::new();
    encode_record(value, &mut buffer)?;
    let temporary_path = directory.join(format!("{name}.tmp"));
    write_and_sync(fs, &temporary_path, &buffer)?;
    let path = directory.join(name);
    fs.rename(&temporary_path, &path)
        .map_err(io_error(&path, "rename"))?;
    sync_directory(fs, directory)?;
    Ok(buffer.len())
}

/// Reads a file written by `write_atomic_file`; `None` when it does not exist.
fn read_atomic_file<T: DeserializeOwned, F: FileSystem>(
    fs: &F,
    path: &Path,
) -> Result<Option<T>, StorageError> {
    let contents = match fs.read(path) {
        Ok(contents) => contents,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(path, "read")(error)),
    };
    let corrupt = |reason: String| StorageError::CorruptFile {
        path: path.to_path_buf(),
        reason,
    };
    if contents.len() < RECORD_HEADER_BYTES {
        return Err(corrupt(format!(
            "{} bytes, shorter than a header",
            contents.len()
        )));
    }
    let length = u32::from_le_bytes(header_word(&contents, 0)) as usize;
    let checksum = u32::from_le_bytes(header_word(&contents, 4));
    let payload = &contents[RECORD_HEADER_BYTES..];
    if payload.len() != length {
        return Err(corrupt(format!(
            "length {length} but {} payload bytes",
            payload.len()
        )));
    }
    if crc32c::crc32c(payload) != checksum {
        return Err(corrupt("checksum mismatch".to_string()));
    }
    postcard::from_bytes(payload)
        .map(Some)
        .map_err(|error| corrupt(format!("not decodable: {error}")))
}

fn write_and_sync<F: FileSystem>(fs: &F, path: &Path, contents: &[u8]) -> Result<(), StorageError> {
    let mut file = fs.create(path).map_err(io_error(path, "create"))?;
    file.write_all(contents).map_err(io_error(path, "write"))?;
    let started = Instant::now();
    file.sync_all().map_err(io_error(path, "fsync"))?;
    metrics::histogram!(crate::metrics::FSYNC_SECONDS).record(started.elapsed().as_secs_f64());
    Ok(())
}

fn sync_directory<F: FileSystem>(fs: &F, directory: &Path) -> Result<(), StorageError> {
    fs.sync_directory(directory)
        .map_err(io_error(directory, "fsync directory"))
}

/// A crash between writing a temporary file and renaming it leaves the temporary behind;
/// it was never acknowledged, so it is removed.
fn remove_stale_temporaries<F: FileSystem>(fs: &F, directory: &Path) -> Result<(), StorageError> {
    for name in [LOG_FILE_NAME, METADATA_FILE_NAME, SNAPSHOT_FILE_NAME] {
        let path = directory.join(format!("{name}.tmp"));
        match fs.remove_file(&path) {
            Ok(()) => {
                tracing::warn!(path = %path.display(), "removed an unfinished temporary file")
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(&path, "remove temporary")(error)),
        }
    }
    Ok(())
}

fn io_error(path: &Path, operation: &'static str) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io {
        path,
        operation,
        source,
    }
}
