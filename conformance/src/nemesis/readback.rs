//! Reads the committed history of the accounts' prefix back after the heal, with linearizable
//! `Range`s only (no watch: the watchers are what it is compared with).
//!
//! How: a `Range` of the prefix at the current revision gives every account's record; the
//! highest `mod_revision` among them is the last revision that changed the prefix. A `Range` at
//! the revision just below it gives the state before that change, and so on back to the empty
//! prefix (before the seeding). One `Range` per revision that changed the prefix, however many
//! revisions the register clients made meanwhile. It needs the history uncompacted, which the
//! nemesis's `history_revisions_max` keeps (`mod.rs`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use vigil::client::Client;
use vigil_core::kv_types::{KeyRange, KvOperation, KvResult, RangeRequest, Revision};

use super::accounts::PrefixHistory;
use super::workload::WorkloadSettings;

/// Pause between two attempts at one `Range`.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The prefix's records at `revision` (0: the current one) and the header revision.
async fn range_at(
    settings: &WorkloadSettings,
    client: &mut Option<Client>,
    prefix: &[u8],
    revision: Revision,
    deadline: Instant,
) -> Result<(Revision, BTreeMap<Vec<u8>, vigil_core::kv_types::KeyValue>), String> {
    let request = KvOperation::Range(RangeRequest {
        revision,
        ..RangeRequest::of(KeyRange::prefix(prefix))
    });
    let mut last = String::new();
    while Instant::now() < deadline {
        if client.is_none() {
            match Client::connect(&settings.proxy, settings.call_timeout).await {
                Ok(mut connected) => {
                    connected.set_token(&settings.cluster, settings.token.clone());
                    *client = Some(connected);
                }
                Err(error) => last = error.to_string(),
            }
        }
        if let Some(connected) = client.as_mut() {
            let answer = tokio::time::timeout(
                settings.call_timeout,
                connected.kv_call(&settings.cluster, request.clone()),
            )
            .await;
            match answer {
                Ok(Ok(Ok(KvResult::Range(result)))) => {
                    let records = result
                        .kvs
                        .into_iter()
                        .map(|record| (record.key.clone(), record))
                        .collect();
                    return Ok((result.revision, records));
                }
                Ok(Ok(Ok(other))) => {
                    return Err(format!("a range at revision {revision} answered {other:?}"))
                }
                Ok(Ok(Err(error))) => last = error.to_string(),
                Ok(Err(error)) => {
                    last = error.to_string();
                    *client = None;
                }
                Err(_) => {
                    last = "no answer".to_string();
                    *client = None;
                }
            }
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    Err(format!("a range at revision {revision}: {last}"))
}

/// The prefix's committed history, oldest change first, or why it could not be read.
pub async fn read_history(
    settings: &WorkloadSettings,
    prefix: &[u8],
    deadline: Instant,
) -> Result<PrefixHistory, String> {
    let mut client = None;
    let (final_revision, mut state) = range_at(settings, &mut client, prefix, 0, deadline).await?;
    let mut states = Vec::new();
    while let Some(changed) = state.values().map(|record| record.mod_revision).max() {
        if let Some((newer, _)) = states.last() {
            if changed >= *newer {
                return Err(format!(
                    "a range at revision {} shows a change at revision {changed}",
                    *newer - 1
                ));
            }
        }
        let (_, before) = range_at(settings, &mut client, prefix, changed - 1, deadline).await?;
        states.push((changed, std::mem::replace(&mut state, before)));
    }
    states.reverse();
    Ok(PrefixHistory {
        states,
        final_revision,
    })
}
