//! The `vigil` binary's revisioned commands (`range`, `put --prev-kv`, `delete-range`, `txn`,
//! `watch`, `compact`): their arguments, the request each sends, and what each prints. Part of
//! the binary, not the library; the text syntax itself is `vigil::kv_text`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use vigil::kv_text::{self, describe_event, describe_key_value, describe_range};
use vigil::wire::ProxyFrame;
use vigil_core::kv_types::{
    DeleteRangeRequest, EventKind, KvOperation, KvResult, PutRequest, RangeRequest, Revision,
    TxnRequest, WatchEnd, WatchRequest,
};

use crate::{describe_error, termination, Target};

/// A key or a range of keys, as `range`, `delete-range` and `watch` take it.
#[derive(clap::Args, Debug)]
pub struct RangeArguments {
    /// The key (with --prefix: the prefix).
    key: String,
    /// The range's end, excluded: the keys in [KEY, RANGE_END). `\0`: every key from KEY on.
    range_end: Option<String>,
    /// Every key that starts with KEY.
    #[arg(long)]
    prefix: bool,
}

impl RangeArguments {
    fn key_range(&self) -> anyhow::Result<vigil_core::kv_types::KeyRange> {
        Ok(kv_text::key_range(
            &self.key,
            self.range_end.as_deref(),
            self.prefix,
        )?)
    }
}

/// `vigil range`.
#[derive(clap::Args, Debug)]
pub struct RangeCommand {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    range: RangeArguments,
    /// At most this many keys (0: the server's limit, `range_limit_max`).
    #[arg(long, default_value_t = 0)]
    limit: u64,
    /// Read at this revision (0: the current one); below the compaction point it fails.
    #[arg(long, default_value_t = 0)]
    revision: Revision,
    /// Keys and revisions without values.
    #[arg(long)]
    keys_only: bool,
    /// Only the number of keys.
    #[arg(long)]
    count_only: bool,
}

/// `vigil delete-range`.
#[derive(clap::Args, Debug)]
pub struct DeleteRangeCommand {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    range: RangeArguments,
    /// Print the records removed.
    #[arg(long)]
    prev_kv: bool,
}

/// `vigil txn`.
#[derive(clap::Args, Debug)]
pub struct TxnCommand {
    #[command(flatten)]
    target: Target,
    /// A condition, `FIELD(KEY) OP OPERAND` (e.g. 'mod(k) = 5', 'value(k) = "x"'); all must
    /// hold for the success branch to run. Repeatable.
    #[arg(long = "compare", value_name = "COMPARE")]
    compares: Vec<String>,
    /// An operation run when every compare holds: 'put KEY VALUE', 'get KEY [RANGE_END]
    /// [--prefix]', 'del KEY [RANGE_END] [--prefix]'. Repeatable.
    #[arg(long = "success", value_name = "OPERATION")]
    success: Vec<String>,
    /// An operation run otherwise (same syntax). Repeatable.
    #[arg(long = "failure", value_name = "OPERATION")]
    failure: Vec<String>,
    /// Read the transaction from this file instead: compares, a blank line, success
    /// operations, a blank line, failure operations (`#` starts a comment line).
    #[arg(long, conflicts_with_all = ["compares", "success", "failure"])]
    file: Option<PathBuf>,
}

/// What a watch leaves out.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WatchFilter {
    /// Puts are not shown.
    NoPut,
    /// Deletes are not shown.
    NoDelete,
}

/// `vigil watch`.
#[derive(clap::Args, Debug)]
pub struct WatchCommand {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    range: RangeArguments,
    /// The first revision to show (0: from now on). Older revisions are replayed, in order;
    /// a future one is waited for.
    #[arg(long, default_value_t = 0)]
    start_revision: Revision,
    /// Show each change's previous record.
    #[arg(long)]
    prev_kv: bool,
    /// Leave out one kind of event.
    #[arg(long, value_enum)]
    filter: Option<WatchFilter>,
}

/// Runs `operation` and returns its result, or the error as one clear line.
async fn kv_call(target: &Target, operation: KvOperation) -> anyhow::Result<KvResult> {
    let mut client = target.connect().await?;
    match client.kv_call(&target.cluster, operation).await? {
        Ok(KvResult::Compacted { compact_revision }) => bail!(
            "compacted: revisions below {compact_revision} are gone; read at {compact_revision} or later"
        ),
        Ok(KvResult::FutureRevision { current_revision }) => bail!(
            "future revision: the store is at revision {current_revision}"
        ),
        Ok(result) => Ok(result),
        Err(error) => bail!("{}", describe_error(&target.cluster, &error)),
    }
}

/// `vigil range`.
pub async fn run_range(command: RangeCommand) -> anyhow::Result<()> {
    let request = RangeRequest {
        range: command.range.key_range()?,
        limit: command.limit,
        revision: command.revision,
        keys_only: command.keys_only,
        count_only: command.count_only,
    };
    match kv_call(&command.target, KvOperation::Range(request)).await? {
        KvResult::Range(result) => {
            describe_range(&result)
                .iter()
                .for_each(|line| println!("{line}"));
            Ok(())
        }
        other => bail!("unexpected answer to a range: {other:?}"),
    }
}

/// `vigil put --prev-kv`: the revisioned put, with the write's revision and the record before.
pub async fn run_put_with_previous(target: &Target, key: &str, value: &str) -> anyhow::Result<()> {
    let request = PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        prev_kv: true,
    };
    match kv_call(target, KvOperation::Put(request)).await? {
        KvResult::Put(result) => {
            println!("written at revision {}", result.revision);
            match result.prev_kv {
                Some(previous) => println!("previous: {}", describe_key_value(&previous)),
                None => println!("previous: (absent)"),
            }
            Ok(())
        }
        other => bail!("unexpected answer to a put: {other:?}"),
    }
}

/// `vigil delete-range`.
pub async fn run_delete_range(command: DeleteRangeCommand) -> anyhow::Result<()> {
    let request = DeleteRangeRequest {
        range: command.range.key_range()?,
        prev_kv: command.prev_kv,
    };
    match kv_call(&command.target, KvOperation::DeleteRange(request)).await? {
        KvResult::DeleteRange(result) => {
            println!("deleted {} at revision {}", result.deleted, result.revision);
            for previous in &result.prev_kvs {
                println!("previous: {}", describe_key_value(previous));
            }
            Ok(())
        }
        other => bail!("unexpected answer to a delete-range: {other:?}"),
    }
}

fn txn_request(command: &TxnCommand) -> anyhow::Result<TxnRequest> {
    match &command.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("transaction file {}", path.display()))?;
            Ok(kv_text::parse_txn_file(&text)?)
        }
        None => Ok(kv_text::parse_txn(
            &command.compares,
            &command.success,
            &command.failure,
        )?),
    }
}

/// `vigil txn`: exits 0 whichever branch ran, and says which.
pub async fn run_txn(command: TxnCommand) -> anyhow::Result<()> {
    let request = txn_request(&command)?;
    match kv_call(&command.target, KvOperation::Txn(request)).await? {
        KvResult::Txn(result) => {
            let branch = if result.succeeded {
                "succeeded: every compare held; the success branch ran"
            } else {
                "failed: a compare did not hold; the failure branch ran"
            };
            println!("{branch} (revision {})", result.revision);
            for response in &result.responses {
                kv_text::describe_txn_operation(response)
                    .iter()
                    .for_each(|line| println!("{line}"));
            }
            Ok(())
        }
        other => bail!("unexpected answer to a txn: {other:?}"),
    }
}

/// `vigil compact`.
pub async fn run_compact(target: &Target, revision: Revision) -> anyhow::Result<()> {
    let mut client = target.connect().await?;
    match client
        .kv_call(&target.cluster, KvOperation::Compact { revision })
        .await?
    {
        Ok(KvResult::Compact { revision: current }) => {
            println!("compacted: history below revision {revision} dropped (store at revision {current})");
            Ok(())
        }
        Ok(KvResult::Compacted { compact_revision }) => bail!(
            "already compacted: the compaction point is {compact_revision}, not below {revision}"
        ),
        Ok(KvResult::FutureRevision { current_revision }) => {
            bail!("future revision: the store is at revision {current_revision}, below {revision}")
        }
        Ok(other) => bail!("unexpected answer to a compact: {other:?}"),
        Err(error) => bail!("{}", describe_error(&target.cluster, &error)),
    }
}

/// The one watch `vigil watch` opens on its connection.
const WATCH_ID: u64 = 1;

/// `vigil watch`: prints each revision's events until interrupted (then cancels and exits 0)
/// or until the server ends the watch (then exits non-zero with the outcome).
pub async fn run_watch(command: WatchCommand) -> anyhow::Result<()> {
    let request = WatchRequest {
        range: command.range.key_range()?,
        start_revision: command.start_revision,
        prev_kv: command.prev_kv,
        filter: command.filter.map(|filter| match filter {
            WatchFilter::NoPut => EventKind::Put,
            WatchFilter::NoDelete => EventKind::Delete,
        }),
    };
    let target = &command.target;
    let mut client = target.connect().await?;
    client
        .create_watch(&target.cluster, WATCH_ID, request)
        .await?;
    let interrupted = termination();
    tokio::pin!(interrupted);
    let mut cancelled = false;
    loop {
        let frame = tokio::select! {
            _ = &mut interrupted, if !cancelled => {
                cancelled = true;
                client.cancel_watch(WATCH_ID).await?;
                continue;
            }
            frame = client.next_watch_frame() => frame?,
        };
        if let Some(outcome) = show_watch_frame(frame)? {
            return finish_watch(target, outcome);
        }
    }
}

/// Prints one frame of the watch; returns its outcome when it is the end.
fn show_watch_frame(frame: ProxyFrame) -> anyhow::Result<Option<WatchEnd>> {
    match frame {
        ProxyFrame::WatchCreated { .. } => {
            eprintln!("watching; Ctrl-C to stop");
        }
        ProxyFrame::WatchEvents {
            revision, events, ..
        } => {
            for event in &events {
                println!("revision {revision}: {}", describe_event(event));
            }
        }
        ProxyFrame::WatchProgress { revision, .. } => {
            println!("progress: every change up to revision {revision} shown");
        }
        ProxyFrame::WatchEnded { outcome, .. } => return Ok(Some(outcome)),
        other => bail!("unexpected frame on a watch: {other:?}"),
    }
    Ok(None)
}

/// Exit 0 for a cancel asked for here; otherwise the outcome as an error.
fn finish_watch(target: &Target, outcome: WatchEnd) -> anyhow::Result<()> {
    let cluster = &target.cluster;
    match outcome {
        WatchEnd::Cancelled => {
            eprintln!("watch cancelled");
            Ok(())
        }
        WatchEnd::Compacted { compact_revision } => bail!(
            "watch ended: compacted — revisions below {compact_revision} are gone; read at {compact_revision} and watch again with --start-revision {compact_revision}"
        ),
        WatchEnd::UnknownCluster => bail!(
            "watch ended: unknown cluster {cluster:?} (the proxy does not serve it)"
        ),
        WatchEnd::PermissionDenied => bail!(
            "watch ended: permission denied: the client token for cluster {cluster:?} is missing or wrong (--token-file or VIGIL_CLIENT_TOKEN)"
        ),
        WatchEnd::Overflow => bail!(
            "watch ended: overflow — this watcher read too slowly and its buffer (watch_events_buffered_max) filled"
        ),
        WatchEnd::TooManyWatches => bail!(
            "watch ended: too many watches on this connection (watches_per_client_max)"
        ),
        WatchEnd::ClientGone | WatchEnd::Dropped => bail!("watch ended: {outcome:?}"),
    }
}
