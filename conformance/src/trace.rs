//! Reading trace files (`docs/trace.md`): one NDJSON file per node, a schema header on the first
//! line, then one `vigil_core::TraceEvent` per line with the conformance fields (Lamport clock,
//! message id, input number) next to it.
//!
//! Why so strict: a trace that cannot be read, or that is empty, proves nothing. Every problem is
//! an error naming the file and the line, never a silently skipped event.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_core::{Origin, PostState, TraceEvent, TraceKind};

/// The `schema` value of the header line.
pub const SCHEMA_NAME: &str = "vigil-trace";
/// The schema version this workspace writes. Version 2 added the `Pause` and `Resume` events;
/// version 3 the `Persist` event, and a held message's `Send` is traced when it leaves, after
/// its `Persist` (`docs/trace.md` §1).
pub const SCHEMA_VERSION: u32 = 3;
/// The first schema version whose hosts write in the background and trace `Persist`: its
/// traces replay on the model's queued disk, older ones on the immediate disk (their hosts
/// sent nothing that depended on a write before it was durable, and traced the leader's
/// acceptance at once).
pub const SCHEMA_VERSION_PERSIST: u32 = 3;
/// The oldest schema version this reader accepts: a version 1 trace is a version 2 trace
/// without pauses (its hosts fired a pause's overdue ticks as ordinary ticks, which the model
/// also allows), so it is read and replayed as it is.
pub const SCHEMA_VERSION_OLDEST: u32 = 1;
/// Fewer events than this over all files of a run is a vacuous trace (`docs/trace.md`).
pub const EVENTS_FLOOR_DEFAULT: usize = 20;

/// The first line of every trace file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always `vigil-trace`.
    pub schema: String,
    /// [`SCHEMA_VERSION`] when written here; [`SCHEMA_VERSION_OLDEST`] and up are read.
    pub version: u32,
    /// The node that wrote the file: `m<id>` for a master, `p<id>` for a proxy.
    pub node: String,
    /// The cluster the node serves (masters) or the served cluster (proxy).
    #[serde(default)]
    pub cluster: Option<String>,
    /// The protocol configuration the node ran with (the model's parameters come from it).
    #[serde(default)]
    pub config: Option<vigil_core::Config>,
}

impl Header {
    /// The header of a file written by `node`.
    pub fn new(node: &str, cluster: &str, config: &vigil_core::Config) -> Header {
        Header {
            schema: SCHEMA_NAME.to_string(),
            version: SCHEMA_VERSION,
            node: node.to_string(),
            cluster: Some(cluster.to_string()),
            config: Some(config.clone()),
        }
    }
}

/// One event line: the core's event plus what the sink stamps on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceLine {
    /// Who produced it.
    pub origin: Origin,
    /// Per-node sequence number (from 0; again from 0 after a `Restart`).
    pub sequence: u64,
    /// The node's input number (events of one input share it), if the sink stamps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<u64>,
    /// Lamport clock, if the sink stamps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lamport: Option<u64>,
    /// On a `Send`: the message's id; on a `Receive`: the id of the send it receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// What happened (a closed set: `vigil_core::TraceKind`).
    pub kind: TraceKind,
    /// The node's state at the end of the input.
    pub post: PostState,
}

impl TraceLine {
    /// A line for `event` with the given stamps.
    pub fn new(
        event: TraceEvent,
        input: Option<u64>,
        lamport: Option<u64>,
        message_id: Option<String>,
    ) -> TraceLine {
        TraceLine {
            origin: event.origin,
            sequence: event.sequence,
            input,
            lamport,
            message_id,
            kind: event.kind,
            post: event.post,
        }
    }
}

impl fmt::Display for TraceLine {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}#{} {}", self.origin, self.sequence, self.kind)
    }
}

/// Why a trace could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is empty: no header, no event.
    #[error("{path}: empty trace file (no header, no event)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The first line is not a `vigil-trace` header of a known version.
    #[error("{path}:1: {reason}")]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A line is not an event of the schema.
    #[error("{path}:{line}: unparsable event: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parser's message.
        reason: String,
    },
    /// An event's origin is not the node the header names.
    #[error("{path}:{line}: event of {origin} in the trace file of {node}")]
    WrongOrigin {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The event's origin.
        origin: String,
        /// The header's node.
        node: String,
    },
    /// No trace file was given or found.
    #[error("no trace file in {0}")]
    NoFiles(String),
    /// The trace has fewer events than the floor.
    #[error("vacuous trace: {events} events in total, below the floor of {floor}")]
    BelowFloor {
        /// Events read.
        events: usize,
        /// The floor.
        floor: usize,
    },
}

/// The trace of one node, read from one file.
#[derive(Clone, Debug)]
pub struct NodeTrace {
    /// Where it came from (for reports).
    pub path: PathBuf,
    /// The header line.
    pub header: Header,
    /// The events, in file order.
    pub events: Vec<TraceLine>,
}

/// The name a header uses for an origin.
pub fn node_name(origin: Origin) -> String {
    origin.to_string()
}

/// Parses one trace file's text.
pub fn parse(path: &Path, text: &str) -> Result<NodeTrace, TraceError> {
    let mut lines = text.lines().enumerate();
    let Some((_, first)) = lines.next() else {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
        });
    };
    let header = parse_header(path, first)?;
    let mut events = Vec::new();
    for (index, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let event: TraceLine = serde_json::from_str(line).map_err(|error| TraceError::Line {
            path: path.to_path_buf(),
            line: index + 1,
            reason: error.to_string(),
        })?;
        if node_name(event.origin) != header.node {
            return Err(TraceError::WrongOrigin {
                path: path.to_path_buf(),
                line: index + 1,
                origin: event.origin.to_string(),
                node: header.node.clone(),
            });
        }
        events.push(event);
    }
    Ok(NodeTrace {
        path: path.to_path_buf(),
        header,
        events,
    })
}

fn parse_header(path: &Path, line: &str) -> Result<Header, TraceError> {
    let header_error = |reason: String| TraceError::Header {
        path: path.to_path_buf(),
        reason,
    };
    let header: Header = serde_json::from_str(line).map_err(|error| {
        header_error(format!(
            "the first line must be the schema header {{\"schema\":\"{SCHEMA_NAME}\",\"version\":{SCHEMA_VERSION},\"node\":...}}: {error}"
        ))
    })?;
    if header.schema != SCHEMA_NAME {
        return Err(header_error(format!(
            "schema is {:?}, expected {SCHEMA_NAME:?}",
            header.schema
        )));
    }
    if !(SCHEMA_VERSION_OLDEST..=SCHEMA_VERSION).contains(&header.version) {
        return Err(header_error(format!(
            "schema version {} is not supported (this reader: {SCHEMA_VERSION_OLDEST} to {SCHEMA_VERSION})",
            header.version
        )));
    }
    Ok(header)
}

/// Reads one file.
pub fn read_file(path: &Path) -> Result<NodeTrace, TraceError> {
    let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Reads files and directories (every `*.ndjson` in a directory, in name order).
pub fn read_paths(paths: &[PathBuf]) -> Result<Vec<NodeTrace>, TraceError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|source| TraceError::Io {
                path: path.clone(),
                source,
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|file| file.extension().is_some_and(|ext| ext == "ndjson"))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(TraceError::NoFiles(path.display().to_string()));
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    if files.is_empty() {
        return Err(TraceError::NoFiles("the arguments".to_string()));
    }
    files.iter().map(|file| read_file(file)).collect()
}

/// Fails on a trace with fewer than `floor` events over all nodes (non-vacuity).
pub fn check_floor(traces: &[NodeTrace], floor: usize) -> Result<usize, TraceError> {
    let events: usize = traces.iter().map(|trace| trace.events.len()).sum();
    if events < floor.max(1) {
        return Err(TraceError::BelowFloor { events, floor });
    }
    Ok(events)
}

/// Writes one node's trace as text (header, then one line per event).
pub fn render(header: &Header, events: &[TraceLine]) -> String {
    let mut text = serde_json::to_string(header).expect("a header serialises");
    text.push('\n');
    for event in events {
        text.push_str(&serde_json::to_string(event).expect("an event serialises"));
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_line() -> String {
        serde_json::to_string(&Header::new("m0", "local", &vigil_core::Config::default())).unwrap()
    }

    #[test]
    fn an_empty_file_is_an_error() {
        let error = parse(Path::new("m0.ndjson"), "").unwrap_err();
        assert!(error.to_string().contains("empty trace file"), "{error}");
    }

    #[test]
    fn a_missing_header_is_an_error() {
        let error = parse(Path::new("m0.ndjson"), "{\"origin\":{\"Master\":0}}\n").unwrap_err();
        assert!(error.to_string().contains("m0.ndjson:1:"), "{error}");
        assert!(error.to_string().contains("schema header"), "{error}");
    }

    #[test]
    fn an_unknown_version_is_an_error() {
        let line =
            header_line().replace(&format!("\"version\":{SCHEMA_VERSION}"), "\"version\":99");
        let error = parse(Path::new("m0.ndjson"), &line).unwrap_err();
        assert!(error.to_string().contains("version 99"), "{error}");
    }

    #[test]
    fn a_version_1_trace_is_still_read() {
        let line = header_line().replace(&format!("\"version\":{SCHEMA_VERSION}"), "\"version\":1");
        assert_ne!(line, header_line());
        let trace = parse(Path::new("m0.ndjson"), &line).unwrap();
        assert_eq!(trace.header.version, 1);
    }

    #[test]
    fn an_unparsable_line_names_its_number() {
        let text = format!("{}\nnot json\n", header_line());
        let error = parse(Path::new("m0.ndjson"), &text).unwrap_err();
        assert!(
            error.to_string().contains("m0.ndjson:2: unparsable"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_event_kind_is_an_error() {
        let text = format!(
            "{}\n{{\"origin\":{{\"Master\":0}},\"sequence\":0,\"kind\":\"Teleport\",\"post\":{{\"Proxy\":{{\"accepted\":0,\"completed_ok\":0,\"completed_err\":0,\"in_flight\":0,\"late_replies\":0,\"dropped_unanswered\":0}}}}}}\n",
            header_line()
        );
        let error = parse(Path::new("m0.ndjson"), &text).unwrap_err();
        assert!(error.to_string().contains("Teleport"), "{error}");
    }

    #[test]
    fn a_header_only_trace_is_below_the_floor() {
        let trace = parse(Path::new("m0.ndjson"), &header_line()).unwrap();
        let error = check_floor(&[trace], 1).unwrap_err();
        assert!(error.to_string().contains("vacuous"), "{error}");
    }
}
