//! Writes a master's or the proxy's trace events (`vigil_core::TraceEvent`) to a file, one JSON
//! object per line, for conformance to replay against the model.
//!
//! Why a task of its own with a bounded queue that waits instead of dropping: a trace with a
//! hole cannot be replayed, so a slow disk must slow the traced node down rather than lose
//! events. Tracing is off unless a trace file is configured; then the core builds no events.
//!
//! Why [`TraceSink::record`] returns only once its lines are in the file (written to the
//! kernel, not fsynced): the host sends a batch's messages after recording it, so a message
//! that left always has its `Send` line in the file, even if the process is SIGKILLed the next
//! moment (the kernel keeps what was written). Otherwise a killed master's last sends reach
//! their receivers with no `Send` in its trace, and the merge fails on a receive without a send
//! (`docs/reliability.md` §5, found by the nemesis's trace check).
//!
//! Why the host stamps message ids: without them the merge can only link a receive to an equal
//! message sent earlier on the link, and around a restart equal messages of two incarnations
//! are ambiguous. Each `Send` gets an id `<node>.<incarnation>.<peer>.<sequence>` (a per-link
//! sequence number), carried with its Lamport clock in the frame ([`TraceStamp`]) and written
//! into the receiver's `Receive`. The incarnation is the Lamport clock the node's trace file
//! resumed from: it grows over a node's restarts (clocks strictly increase along a trace file),
//! so ids stay unique without randomness and without touching the core, which stays sans-IO.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use vigil_core::{Endpoint, Message, Origin, PostState, TraceEvent, TraceKind};

pub use crate::wire::TraceStamp;

/// Batches of events waiting for the writer at most.
const TRACE_BATCHES_MAX: usize = 256;
/// The trace schema version this host writes (`docs/trace.md` §1).
pub const TRACE_SCHEMA_VERSION: u32 = 3;
/// Bytes read from the end of an existing trace file at a time, looking for its last event.
const TAIL_WINDOW_BYTES: u64 = 64 * 1024;

/// Why the trace could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be created or written.
    #[error("trace file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The writer stopped (after an error it logged).
    #[error("the trace writer stopped")]
    Stopped,
    /// An existing trace file cannot be continued (another schema version, an unreadable
    /// last event): appending would make one file of two formats.
    #[error("trace file {path} cannot be continued: {reason}; move it away")]
    Incompatible {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The first line of every trace file (`docs/trace.md` §1).
#[derive(Clone, Debug, serde::Serialize)]
pub struct TraceHeader {
    /// Always `vigil-trace`.
    pub schema: &'static str,
    /// The schema version, [`TRACE_SCHEMA_VERSION`].
    pub version: u32,
    /// `m<id>` for a master, `p<id>` for a proxy.
    pub node: String,
    /// The served cluster's name, if the node serves exactly one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The protocol configuration the node runs with.
    pub config: vigil_core::Config,
}

impl TraceHeader {
    /// A header for `node` (`m0`, `p1`).
    pub fn new(node: String, cluster: Option<String>, config: vigil_core::Config) -> TraceHeader {
        TraceHeader {
            schema: "vigil-trace",
            version: TRACE_SCHEMA_VERSION,
            node,
            cluster,
            config,
        }
    }
}

/// One event line as written: the core's event plus the stamps (`docs/trace.md` §1).
#[derive(Clone, Debug, Serialize)]
struct StampedEvent {
    origin: Origin,
    sequence: u64,
    input: u64,
    lamport: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
    kind: TraceKind,
    post: PostState,
}

/// Where a node's stamps resume: the last event of its trace file (zeros for a new file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Resume {
    lamport: u64,
    input: u64,
}

/// Stamps events: input numbers, the Lamport clock, message ids (per-link sequence numbers).
#[derive(Debug)]
struct Stamper {
    node: String,
    incarnation: u64,
    lamport: u64,
    inputs: u64,
    /// Next sequence number per peer (`m1`, `p3`): ids are per link.
    link_sequences: HashMap<String, u64>,
    last_post: Option<PostState>,
    /// Whether the current input began with a timer (a tick), which a second timer may join.
    input_is_tick: bool,
}

/// The peer's name in a message id; clients are not traced, so their messages get none.
fn peer_name(endpoint: &Endpoint) -> Option<String> {
    match endpoint {
        Endpoint::Master { node, .. } => Some(format!("m{node}")),
        Endpoint::Proxy(proxy) => Some(format!("p{proxy}")),
        Endpoint::Client(_) => None,
    }
}

impl Stamper {
    fn new(node: String, resume: Resume) -> Stamper {
        Stamper {
            node,
            incarnation: resume.lamport,
            lamport: resume.lamport,
            inputs: resume.input,
            link_sequences: HashMap::new(),
            last_post: None,
            input_is_tick: false,
        }
    }

    /// Stamps one batch (the events of one input). `received`: the stamp of the frame whose
    /// message this input handles, if its sender traces.
    fn stamp(
        &mut self,
        events: Vec<TraceEvent>,
        mut received: Option<TraceStamp>,
    ) -> (Vec<StampedEvent>, StampedSends) {
        let mut sends = StampedSends::default();
        let mut lines = Vec::with_capacity(events.len());
        for (position, event) in events.into_iter().enumerate() {
            let starts_input = event.kind.starts_input() || position == 0;
            // One tick may fire two leader timers: one input, one post-state. (A timer after a
            // `Resume` is the next input: `Master::resume` is several.)
            let same_tick_timer = matches!(event.kind, TraceKind::Timeout { .. })
                && position > 0
                && self.input_is_tick
                && self.last_post.as_ref() == Some(&event.post);
            if starts_input && !same_tick_timer {
                self.inputs += 1;
                self.input_is_tick = matches!(event.kind, TraceKind::Timeout { .. });
            }
            self.lamport += 1;
            let mut message_id = None;
            match &event.kind {
                TraceKind::Receive { from, .. } if peer_name(from).is_some() => {
                    if let Some(stamp) = received.take() {
                        self.lamport = self.lamport.max(stamp.lamport + 1);
                        message_id = Some(stamp.message_id);
                    }
                }
                TraceKind::Send { to, message } => {
                    if let Some(peer) = peer_name(to) {
                        let sequence = self.link_sequences.entry(peer.clone()).or_insert(0);
                        *sequence += 1;
                        let id = format!("{}.{}.{peer}.{sequence}", self.node, self.incarnation);
                        sends.sends.push(PendingStamp {
                            to: to.clone(),
                            message: message.clone(),
                            stamp: TraceStamp {
                                message_id: id.clone(),
                                lamport: self.lamport,
                            },
                            claimed: false,
                        });
                        message_id = Some(id);
                    }
                }
                _ => {}
            }
            self.last_post = Some(event.post.clone());
            lines.push(StampedEvent {
                origin: event.origin,
                sequence: event.sequence,
                input: self.inputs,
                lamport: self.lamport,
                message_id,
                kind: event.kind,
                post: event.post,
            });
        }
        (lines, sends)
    }
}

/// A stamped `Send` waiting for the host to hand its stamp to the frame.
#[derive(Clone, Debug)]
struct PendingStamp {
    to: Endpoint,
    message: Message,
    stamp: TraceStamp,
    claimed: bool,
}

/// The stamps of one batch's `Send` events, for the frames that carry those messages.
/// Empty when tracing is off: frames then carry no stamp.
#[derive(Clone, Debug, Default)]
pub struct StampedSends {
    sends: Vec<PendingStamp>,
}

impl StampedSends {
    /// The stamp of the first unclaimed `Send` of `message` to an endpoint `to` accepts
    /// (equal messages to one peer are interchangeable); `None` if there is none.
    pub fn take(
        &mut self,
        to: impl Fn(&Endpoint) -> bool,
        message: &Message,
    ) -> Option<TraceStamp> {
        let pending = self
            .sends
            .iter_mut()
            .find(|pending| !pending.claimed && pending.message == *message && to(&pending.to))?;
        pending.claimed = true;
        Some(pending.stamp.clone())
    }
}

/// The sending side: hand it each `Ready`'s trace events.
#[derive(Debug)]
pub struct TraceSink {
    target: Target,
    stamper: Stamper,
}

#[derive(Debug)]
enum Target {
    /// A file, written by a blocking task of its own.
    File {
        batches: mpsc::Sender<WriteBatch>,
        writer: JoinHandle<Result<(), TraceError>>,
    },
    /// Memory, written at once (a simulation: no thread, nothing lost when the host crashes).
    Memory(TraceBuffer),
}

/// One input's stamped events, and who waits until they are in the file.
type WriteBatch = (Vec<StampedEvent>, oneshot::Sender<()>);

/// An in-memory trace file (the same bytes a file sink writes), shared with whoever reads it;
/// it outlives the node, so a restarted node continues it as it would continue its file.
#[derive(Clone, Debug, Default)]
pub struct TraceBuffer(Arc<Mutex<Vec<u8>>>);

impl TraceBuffer {
    /// An empty buffer.
    pub fn new() -> TraceBuffer {
        TraceBuffer::default()
    }

    /// A copy of the bytes written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TraceSink {
    /// Opens `path` for appending (a restarted master continues its file after a `Restart`
    /// event; its clock and input numbers continue from the file's last event) and starts the
    /// writer. A new (empty) file first gets the schema header line (`docs/trace.md` §1).
    pub fn create(path: &Path, header: &TraceHeader) -> Result<TraceSink, TraceError> {
        let io_error = |source| TraceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(io_error)?;
        let resume = if file.metadata().map_err(io_error)?.len() == 0 {
            let mut line = serde_json::to_vec(header).map_err(|error| io_error(error.into()))?;
            line.push(b'\n');
            file.write_all(&line).map_err(io_error)?;
            Resume::default()
        } else {
            drop_torn_tail(&mut file).map_err(io_error)?;
            file_resume_point(&mut file, path)?
        };
        let (batches, receiver) = mpsc::channel(TRACE_BATCHES_MAX);
        let path = path.to_path_buf();
        let writer = tokio::task::spawn_blocking(move || {
            let written = write_loop(file, &path, receiver);
            if let Err(error) = &written {
                tracing::error!(%error, "the trace writer stopped");
            }
            written
        });
        Ok(TraceSink {
            target: Target::File { batches, writer },
            stamper: Stamper::new(header.node.clone(), resume),
        })
    }

    /// A sink writing to `buffer` (a simulation's), continuing it if it is not empty.
    pub fn in_memory(buffer: TraceBuffer, header: &TraceHeader) -> Result<TraceSink, TraceError> {
        let mut bytes = buffer.lock();
        let resume = if bytes.is_empty() {
            write_line(&mut *bytes, header).map_err(memory_error)?;
            Resume::default()
        } else {
            let text = String::from_utf8_lossy(&bytes);
            let mut lines = text.lines().filter(|line| !line.trim().is_empty());
            let first = lines.next().unwrap_or_default().to_string();
            let last = lines.next_back().map(str::to_string);
            resume_point(&first, last.as_deref(), Path::new("(memory)"))?
        };
        drop(bytes);
        Ok(TraceSink {
            target: Target::Memory(buffer),
            stamper: Stamper::new(header.node.clone(), resume),
        })
    }

    /// Stamps `events` (the events of one input, in order) and writes them; returns once they
    /// are in the file (see the module's documentation), so the caller may send what they
    /// record. `received`: the stamp of the frame this input handles. Returns the stamps the
    /// frames of this batch's sends must carry.
    pub async fn record(
        &mut self,
        events: Vec<TraceEvent>,
        received: Option<TraceStamp>,
    ) -> Result<StampedSends, TraceError> {
        if events.is_empty() {
            return Ok(StampedSends::default());
        }
        let (lines, sends) = self.stamper.stamp(events, received);
        match &self.target {
            Target::File { batches, .. } => {
                let (written, done) = oneshot::channel();
                batches
                    .send((lines, written))
                    .await
                    .map_err(|_| TraceError::Stopped)?;
                done.await.map_err(|_| TraceError::Stopped)?;
            }
            Target::Memory(buffer) => {
                let mut bytes = buffer.lock();
                for line in &lines {
                    write_line(&mut *bytes, line).map_err(memory_error)?;
                }
            }
        }
        Ok(sends)
    }

    /// Flushes everything queued and closes the file.
    pub async fn close(self) -> Result<(), TraceError> {
        match self.target {
            Target::File { batches, writer } => {
                drop(batches);
                writer.await.map_err(|_| TraceError::Stopped)?
            }
            Target::Memory(_) => Ok(()),
        }
    }
}

/// Checks an existing trace file's header and reads its last event's clock and input number.
fn file_resume_point(file: &mut File, path: &Path) -> Result<Resume, TraceError> {
    let io_error = |source| TraceError::Io {
        path: path.to_path_buf(),
        source,
    };
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    let mut first = String::new();
    BufReader::new(&mut *file)
        .read_line(&mut first)
        .map_err(io_error)?;
    let last = last_line(file).map_err(io_error)?;
    let last = last.filter(|last| last.as_str() != first.trim_end());
    resume_point(&first, last.as_deref(), path)
}

/// Where a trace continues: checks its header line's version and reads the clock and input
/// number of its last event (none: a header without events).
fn resume_point(first: &str, last: Option<&str>, path: &Path) -> Result<Resume, TraceError> {
    let incompatible = |reason: String| TraceError::Incompatible {
        path: path.to_path_buf(),
        reason,
    };
    let header: serde_json::Value = serde_json::from_str(first)
        .map_err(|error| incompatible(format!("unreadable header: {error}")))?;
    let version = header.get("version").and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(TRACE_SCHEMA_VERSION)) {
        return Err(incompatible(format!(
            "schema version {version:?}, this host writes {TRACE_SCHEMA_VERSION}"
        )));
    }
    let Some(last) = last else {
        return Ok(Resume::default());
    };
    let event: serde_json::Value = serde_json::from_str(last)
        .map_err(|error| incompatible(format!("unreadable last event: {error}")))?;
    let field = |name: &str| event.get(name).and_then(serde_json::Value::as_u64);
    match (field("lamport"), field("input")) {
        (Some(lamport), Some(input)) => Ok(Resume { lamport, input }),
        _ => Err(incompatible(
            "its last event has no Lamport clock or input number".to_string(),
        )),
    }
}

/// Cuts a last line without its newline (a write the machine lost part of, e.g. at a power
/// loss) so that the file continues after its last whole event; a torn event is one whose
/// input's sends never left (`record` returns only once its events are written).
fn drop_torn_tail(file: &mut File) -> std::io::Result<()> {
    let length = file.seek(SeekFrom::End(0))?;
    if length == 0 {
        return Ok(());
    }
    let mut window = TAIL_WINDOW_BYTES.min(length);
    loop {
        file.seek(SeekFrom::Start(length - window))?;
        let mut tail = Vec::with_capacity(window as usize);
        Read::by_ref(file).take(window).read_to_end(&mut tail)?;
        if tail.last() == Some(&b'\n') {
            return Ok(());
        }
        match tail.iter().rposition(|byte| *byte == b'\n') {
            Some(newline) => {
                let kept = length - window + newline as u64 + 1;
                tracing::warn!(
                    dropped_bytes = length - kept,
                    "trace file ended in a torn line; continuing after its last whole event"
                );
                return file.set_len(kept);
            }
            None if window == length => return Ok(()),
            None => window = (window * 2).min(length),
        }
    }
}

/// The file's last non-empty line, reading backwards from its end a window at a time.
fn last_line(file: &mut File) -> std::io::Result<Option<String>> {
    let length = file.seek(SeekFrom::End(0))?;
    let mut window = TAIL_WINDOW_BYTES.min(length);
    loop {
        file.seek(SeekFrom::Start(length - window))?;
        let mut tail = Vec::with_capacity(window as usize);
        Read::by_ref(file).take(window).read_to_end(&mut tail)?;
        let text = String::from_utf8_lossy(&tail);
        let trimmed = text.trim_end();
        match trimmed.rfind('\n') {
            Some(newline) => return Ok(Some(trimmed[newline + 1..].to_string())),
            None if window == length => {
                return Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
            }
            None => window = (window * 2).min(length),
        }
    }
}

/// Writes `value` as one JSON line.
fn write_line<W: Write, T: serde::Serialize>(writer: &mut W, value: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *writer, value)?;
    writer.write_all(b"\n")
}

fn memory_error(source: std::io::Error) -> TraceError {
    TraceError::Io {
        path: PathBuf::from("(memory)"),
        source,
    }
}

fn write_loop(
    file: File,
    path: &Path,
    mut batches: mpsc::Receiver<WriteBatch>,
) -> Result<(), TraceError> {
    let io_error = |source| TraceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = file;
    let mut buffer = Vec::new();
    while let Some((batch, written)) = batches.blocking_recv() {
        // One input's events in one `write`: a write to a regular file is not cut short by a
        // signal, so a SIGKILLed master leaves whole inputs in its file, never part of one.
        buffer.clear();
        for event in batch {
            serde_json::to_writer(&mut buffer, &event).map_err(|error| io_error(error.into()))?;
            buffer.push(b'\n');
        }
        file.write_all(&buffer).map_err(io_error)?;
        // The recorder may be gone (its node stopped): nothing waits, nothing to do.
        let _ = written.send(());
    }
    file.flush().map_err(io_error)
}
