//! Writes a master's or the proxy's trace events (`vigil_core::TraceEvent`) to a file, one JSON
//! object per line, for conformance to replay against the model.
//!
//! Why a task of its own with a bounded queue that waits instead of dropping: a trace with a
//! hole cannot be replayed, so a slow disk must slow the traced node down rather than lose
//! events. Tracing is off unless a trace file is configured; then the core builds no events.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use vigil_core::TraceEvent;

/// Batches of events waiting for the writer at most.
const TRACE_BATCHES_MAX: usize = 256;

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
}

/// The first line of every trace file (`docs/trace.md` §1).
#[derive(Clone, Debug, serde::Serialize)]
pub struct TraceHeader {
    /// Always `vigil-trace`.
    pub schema: &'static str,
    /// The schema version, 1.
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
            version: 1,
            node,
            cluster,
            config,
        }
    }
}

/// The sending side: hand it each `Ready`'s trace events.
#[derive(Debug)]
pub struct TraceSink {
    target: Target,
}

#[derive(Debug)]
enum Target {
    /// A file, written by a blocking task of its own.
    File {
        batches: mpsc::Sender<Vec<TraceEvent>>,
        writer: JoinHandle<Result<(), TraceError>>,
    },
    /// Memory, written at once (a simulation: no thread, nothing lost when the host crashes).
    Memory(TraceBuffer),
}

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
    /// event) and starts the writer. A new (empty) file first gets the schema header line
    /// (`docs/trace.md` §1).
    pub fn create(path: &Path, header: &TraceHeader) -> Result<TraceSink, TraceError> {
        let io_error = |source| TraceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_error)?;
        if file.metadata().map_err(io_error)?.len() == 0 {
            let mut line = serde_json::to_vec(header).map_err(|error| io_error(error.into()))?;
            line.push(b'\n');
            file.write_all(&line).map_err(io_error)?;
        }
        let (batches, receiver) = mpsc::channel(TRACE_BATCHES_MAX);
        let path = path.to_path_buf();
        let writer = tokio::task::spawn_blocking(move || write_loop(file, &path, receiver));
        Ok(TraceSink {
            target: Target::File { batches, writer },
        })
    }

    /// A sink writing to `buffer` (a simulation's), continuing it if it is not empty.
    pub fn in_memory(buffer: TraceBuffer, header: &TraceHeader) -> Result<TraceSink, TraceError> {
        let mut bytes = buffer.lock();
        if bytes.is_empty() {
            write_line(&mut *bytes, header).map_err(memory_error)?;
        }
        drop(bytes);
        Ok(TraceSink {
            target: Target::Memory(buffer),
        })
    }

    /// Queues `events` (in order); waits if the writer is behind.
    pub async fn record(&self, events: Vec<TraceEvent>) -> Result<(), TraceError> {
        if events.is_empty() {
            return Ok(());
        }
        match &self.target {
            Target::File { batches, .. } => {
                batches.send(events).await.map_err(|_| TraceError::Stopped)
            }
            Target::Memory(buffer) => {
                let mut bytes = buffer.lock();
                for event in &events {
                    write_line(&mut *bytes, event).map_err(memory_error)?;
                }
                Ok(())
            }
        }
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
    mut batches: mpsc::Receiver<Vec<TraceEvent>>,
) -> Result<(), TraceError> {
    let io_error = |source| TraceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut writer = BufWriter::new(file);
    while let Some(batch) = batches.blocking_recv() {
        for event in batch {
            serde_json::to_writer(&mut writer, &event).map_err(|error| io_error(error.into()))?;
            writer.write_all(b"\n").map_err(io_error)?;
        }
        if batches.is_empty() {
            writer.flush().map_err(io_error)?;
        }
    }
    writer.flush().map_err(io_error)
}
