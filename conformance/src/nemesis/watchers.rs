//! The watchers of a nemesis run: each holds a watch on the accounts' prefix from revision 1
//! (`docs/protocol.md` §17) through every fault and records what it receives (`WatcherLog`).
//!
//! The proxy resumes its subscription across master kills and leader changes, so a watch
//! normally lives for the whole run. When one ends anyway (a terminal outcome from the proxy,
//! or the watcher's connection to the proxy failing) the watcher records how and opens another
//! from the revision after the last one it is known to have covered (after `Compacted`, from
//! the compaction point), so the watcher's segments together still cover its span. At the end
//! it asks for progress until the proxy reports the final revision, then cancels: its span then
//! reaches the end of the history and `watch_check.rs` can compare all of it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil::client::Client;
use vigil::wire::ProxyFrame;
use vigil_core::kv_types::{KeyRange, Revision, WatchEnd, WatchId, WatchRequest};

use super::accounts::{WatchSegment, WatcherLog};
use super::workload::WorkloadSettings;

/// How often a watcher looks at the end signal, and asks for progress once it is set.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Pause before dialing again after a failed connection.
const REDIAL_PAUSE: Duration = Duration::from_millis(200);

/// How the run tells its watchers to finish: 0 while the workload runs, then the final
/// revision they must report progress to (set once every client has stopped).
#[derive(Clone, Debug, Default)]
pub struct FinalRevision(Arc<AtomicU64>);

impl FinalRevision {
    /// Sets the revision the watchers must reach, which tells them to finish.
    pub fn set(&self, revision: Revision) {
        self.0.store(revision.max(1), Ordering::SeqCst);
    }

    fn get(&self) -> Option<Revision> {
        Some(self.0.load(Ordering::SeqCst)).filter(|revision| *revision > 0)
    }
}

/// What one watcher does with one frame.
enum Step {
    /// Keep reading this watch.
    Continue,
    /// The watch ended; open another unless finishing.
    Ended,
}

fn apply_frame(segment: &mut WatchSegment, watch_id: WatchId, frame: ProxyFrame) -> Step {
    match frame {
        ProxyFrame::WatchEvents {
            watch_id: id,
            revision,
            events,
        } if id == watch_id => segment.deliveries.push((revision, events)),
        ProxyFrame::WatchProgress {
            watch_id: id,
            revision,
        } if id == watch_id => {
            segment.progress_revision = segment.progress_revision.max(revision);
        }
        ProxyFrame::WatchEnded {
            watch_id: id,
            outcome,
        } if id == watch_id => {
            segment.end = Some(outcome);
            return Step::Ended;
        }
        // `WatchCreated`, and frames of an earlier watch of this connection.
        _ => {}
    }
    Step::Continue
}

/// The revision the watch after `segment` starts from.
fn next_start(segment: &WatchSegment) -> Revision {
    match segment.end {
        Some(WatchEnd::Compacted { compact_revision }) => {
            compact_revision.max(segment.covered_revision() + 1)
        }
        _ => segment.covered_revision() + 1,
    }
}

/// One watcher until it has reported progress to the final revision (or `deadline` after the
/// final revision was set): its log.
pub async fn watcher_loop(
    settings: WorkloadSettings,
    prefix: Vec<u8>,
    watcher: usize,
    final_revision: FinalRevision,
    finish_within: Duration,
) -> WatcherLog {
    let mut log = WatcherLog {
        watcher,
        segments: Vec::new(),
    };
    let mut start_revision: Revision = 1;
    let mut watch_id: WatchId = 0;
    let mut client: Option<Client> = None;
    let mut finish_deadline = None;
    loop {
        if let Some(revision) = final_revision.get() {
            let deadline = *finish_deadline.get_or_insert_with(|| Instant::now() + finish_within);
            let reached = log
                .segments
                .last()
                .is_some_and(|segment| segment.covered_revision() >= revision);
            if reached || Instant::now() >= deadline {
                break;
            }
        }
        let connected = match client.as_mut() {
            Some(connected) => connected,
            None => match Client::connect(&settings.proxy, settings.call_timeout).await {
                Ok(mut connected) => {
                    connected.set_token(&settings.cluster, settings.token.clone());
                    client.insert(connected)
                }
                Err(_) => {
                    tokio::time::sleep(REDIAL_PAUSE).await;
                    continue;
                }
            },
        };
        watch_id += 1;
        let request = WatchRequest {
            range: KeyRange::prefix(&prefix),
            start_revision,
            prev_kv: false,
            filter: None,
        };
        let mut segment = WatchSegment {
            start_revision,
            ..WatchSegment::default()
        };
        let lost = match connected
            .create_watch(&settings.cluster, watch_id, request)
            .await
        {
            Err(error) => Some(error.to_string()),
            Ok(()) => {
                let until = Finish {
                    final_revision: &final_revision,
                    within: finish_within,
                };
                follow(connected, &mut segment, watch_id, until).await
            }
        };
        if lost.is_some() {
            client = None;
        }
        segment.connection_error = lost;
        start_revision = next_start(&segment);
        let cancelled = segment.end == Some(WatchEnd::Cancelled);
        log.segments.push(segment);
        if cancelled {
            break;
        }
    }
    log
}

/// When a watch is finished with: the final revision, and how long after it is set the watch
/// may take to report progress up to it.
struct Finish<'a> {
    final_revision: &'a FinalRevision,
    within: Duration,
}

/// Reads watch `watch_id` until it ends or, once the final revision is set, until it has
/// covered it (then cancels it and reads to its end). `Some(why)` if the connection failed or
/// the watch did not reach the final revision in time.
async fn follow(
    client: &mut Client,
    segment: &mut WatchSegment,
    watch_id: WatchId,
    until: Finish<'_>,
) -> Option<String> {
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    let mut cancelled = false;
    let mut deadline = None;
    loop {
        tokio::select! {
            frame = client.next_watch_frame() => match frame {
                Err(error) => return Some(error.to_string()),
                Ok(frame) => {
                    if let Step::Ended = apply_frame(segment, watch_id, frame) {
                        return None;
                    }
                }
            },
            _ = poll.tick() => {
                let Some(revision) = until.final_revision.get() else { continue };
                if Instant::now() >= *deadline.get_or_insert_with(|| Instant::now() + until.within) {
                    return Some(format!(
                        "no progress up to revision {revision} within {:?}",
                        until.within
                    ));
                }
                let sent = if segment.covered_revision() >= revision {
                    if cancelled {
                        continue;
                    }
                    cancelled = true;
                    client.cancel_watch(watch_id).await
                } else {
                    client.request_watch_progress(watch_id).await
                };
                if let Err(error) = sent {
                    return Some(error.to_string());
                }
            }
        }
    }
}
