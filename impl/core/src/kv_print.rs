//! The canonical one-line printer of the revisioned vocabulary (`kv_types.rs`), used by the
//! message printer (`message.rs`), the golden tests and humans reading traces. Byte strings
//! print lossily as UTF-8; a record is `key=value@create/mod/version`.

use std::fmt;

use crate::kv_types::{
    Compare, CompareResult, CompareTarget, Event, EventKind, KeyRange, KeyValue, KvOperation,
    KvResult, RangeEnd, RangeRequest, RevisionEvents, TxnOperation, TxnOperationResult,
};
use crate::message::Bytes;

/// Prints `[a b ...]` of anything printable.
pub(crate) struct List<'a, T>(pub &'a [T]);

impl<T: fmt::Display> fmt::Display for List<'_, T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "[")?;
        for (index, item) in self.0.iter().enumerate() {
            if index > 0 {
                write!(formatter, " ")?;
            }
            write!(formatter, "{item}")?;
        }
        write!(formatter, "]")
    }
}

impl fmt::Display for KeyRange {
    /// `k` (one key), `a..b` (`[a, b)`), `a..` (every key from `a`).
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.end {
            RangeEnd::Key => write!(formatter, "{}", Bytes(&self.key)),
            RangeEnd::Before(end) => write!(formatter, "{}..{}", Bytes(&self.key), Bytes(end)),
            RangeEnd::Unbounded => write!(formatter, "{}..", Bytes(&self.key)),
        }
    }
}

impl fmt::Display for KeyValue {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", Bytes(&self.key))?;
        if let Some(value) = &self.value {
            write!(formatter, "={}", Bytes(value))?;
        }
        write!(
            formatter,
            "@{}/{}/{}",
            self.create_revision, self.mod_revision, self.version
        )
    }
}

impl fmt::Display for Event {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            EventKind::Put => "put",
            EventKind::Delete => "delete",
        };
        write!(formatter, "{kind}({}", self.kv)?;
        if let Some(prev_kv) = &self.prev_kv {
            write!(formatter, " prev={prev_kv}")?;
        }
        write!(formatter, ")")
    }
}

impl fmt::Display for RevisionEvents {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.revision, List(&self.events))
    }
}

impl fmt::Display for RangeRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "range({}", self.range)?;
        if self.limit != 0 {
            write!(formatter, " limit={}", self.limit)?;
        }
        if self.revision != 0 {
            write!(formatter, " rev={}", self.revision)?;
        }
        if self.keys_only {
            write!(formatter, " keys_only")?;
        }
        if self.count_only {
            write!(formatter, " count_only")?;
        }
        write!(formatter, ")")
    }
}

impl fmt::Display for Compare {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operator = match self.result {
            CompareResult::Equal => "=",
            CompareResult::NotEqual => "!=",
            CompareResult::Less => "<",
            CompareResult::Greater => ">",
        };
        let key = Bytes(&self.key);
        match &self.target {
            CompareTarget::Version(version) => {
                write!(formatter, "version({key}){operator}{version}")
            }
            CompareTarget::CreateRevision(revision) => {
                write!(formatter, "create({key}){operator}{revision}")
            }
            CompareTarget::ModRevision(revision) => {
                write!(formatter, "mod({key}){operator}{revision}")
            }
            CompareTarget::Value(value) => {
                write!(formatter, "value({key}){operator}{}", Bytes(value))
            }
        }
    }
}

impl fmt::Display for TxnOperation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnOperation::Range(request) => write!(formatter, "{request}"),
            TxnOperation::Put(request) => {
                let prev = if request.prev_kv { " prev_kv" } else { "" };
                write!(
                    formatter,
                    "put({},{}{prev})",
                    Bytes(&request.key),
                    Bytes(&request.value)
                )
            }
            TxnOperation::DeleteRange(request) => {
                let prev = if request.prev_kv { " prev_kv" } else { "" };
                write!(formatter, "delete_range({}{prev})", request.range)
            }
        }
    }
}

impl fmt::Display for KvOperation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvOperation::Range(request) => write!(formatter, "{request}"),
            KvOperation::Put(request) => {
                write!(formatter, "{}", TxnOperation::Put(request.clone()))
            }
            KvOperation::DeleteRange(request) => {
                write!(formatter, "{}", TxnOperation::DeleteRange(request.clone()))
            }
            KvOperation::Txn(request) => write!(
                formatter,
                "txn(if {} then {} else {})",
                List(&request.compare),
                List(&request.success),
                List(&request.failure)
            ),
            KvOperation::Compact { revision } => write!(formatter, "compact({revision})"),
        }
    }
}

impl fmt::Display for TxnOperationResult {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnOperationResult::Range(result) => write!(
                formatter,
                "Range(rev={} count={} more={} {})",
                result.revision,
                result.count,
                result.more,
                List(&result.kvs)
            ),
            TxnOperationResult::Put(result) => {
                write!(formatter, "Put(rev={}", result.revision)?;
                if let Some(prev_kv) = &result.prev_kv {
                    write!(formatter, " prev={prev_kv}")?;
                }
                write!(formatter, ")")
            }
            TxnOperationResult::DeleteRange(result) => write!(
                formatter,
                "DeleteRange(rev={} deleted={} {})",
                result.revision,
                result.deleted,
                List(&result.prev_kvs)
            ),
        }
    }
}

impl fmt::Display for KvResult {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvResult::Range(result) => {
                write!(formatter, "{}", TxnOperationResult::Range(result.clone()))
            }
            KvResult::Put(result) => {
                write!(formatter, "{}", TxnOperationResult::Put(result.clone()))
            }
            KvResult::DeleteRange(result) => {
                write!(
                    formatter,
                    "{}",
                    TxnOperationResult::DeleteRange(result.clone())
                )
            }
            KvResult::Txn(result) => write!(
                formatter,
                "Txn(rev={} succeeded={} {})",
                result.revision,
                result.succeeded,
                List(&result.responses)
            ),
            KvResult::Compact { revision } => write!(formatter, "Compact(rev={revision})"),
            KvResult::Compacted { compact_revision } => {
                write!(formatter, "Compacted({compact_revision})")
            }
            KvResult::FutureRevision { current_revision } => {
                write!(formatter, "FutureRevision({current_revision})")
            }
        }
    }
}
