//! Change notifications: `GET /v1/secret-events` is a long poll for
//! "AWSCURRENT of secret S is now version V" (a put, a label move, a
//! rotation), so caches refresh at once instead of at their TTL.
//!
//! Query: `since` (the `NextSequence` of the previous answer; without it the
//! poll waits for the next change), `wait` (seconds to wait when nothing is
//! new, 0-60, default 20), `SecretId` (ARNs to filter on, repeatable).
//! Answer: `{"Events": [{"Sequence", "ARN", "VersionId", "Time"}],
//! "NextSequence"}`. The request is SigV4-signed for `secretsmanager`, and
//! an event is delivered only if the caller may `DescribeSecret` the
//! secret. Events live in memory (the last 10,000): a poll whose `since`
//! is older than that gets `"Truncated": true`, and should re-read.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tumbler_wire::AwsError;

use crate::AppState;

const KEEP: usize = 10_000;
const MAX_WAIT_S: u64 = 60;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    pub sequence: u64,
    #[serde(rename = "ARN")]
    pub arn: String,
    pub version_id: String,
    pub time: f64,
}

#[derive(Default)]
pub struct CurrentEvents {
    log: Mutex<(VecDeque<Event>, u64)>,
    changed: tokio::sync::Notify,
}

impl CurrentEvents {
    pub fn push(&self, arn: &str, version_id: &str) {
        {
            let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            log.1 += 1;
            let sequence = log.1;
            log.0.push_back(Event {
                sequence,
                arn: arn.to_owned(),
                version_id: version_id.to_owned(),
                time: jiff::Timestamp::now().as_millisecond() as f64 / 1000.0,
            });
            if log.0.len() > KEEP {
                log.0.pop_front();
            }
        }
        self.changed.notify_waiters();
    }

    /// Events after `since`, whether some were dropped, and the last sequence.
    fn after(&self, since: u64) -> (Vec<Event>, bool, u64) {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let truncated = log.0.front().is_some_and(|e| e.sequence > since.saturating_add(1));
        let events = log.0.iter().filter(|e| e.sequence > since).cloned().collect();
        (events, truncated, log.1)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    events: Vec<Event>,
    next_sequence: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

/// The long poll, for an authenticated caller.
pub async fn poll(
    state: &Arc<AppState>,
    caller: &crate::gate::Caller,
    info: crate::ConnInfo,
    query: Option<&str>,
) -> Result<Vec<u8>, AwsError> {
    let params = tumbler_wire::query::parse_params(query, b"");
    let number = |name: &str| -> Result<Option<u64>, AwsError> {
        params
            .get(name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| AwsError::invalid_parameter(format!("{name} must be a whole number, not {v}")))
            })
            .transpose()
    };
    let wait = number("wait")?.unwrap_or(20);
    if wait > MAX_WAIT_S {
        return Err(AwsError::invalid_parameter(format!(
            "wait is at most {MAX_WAIT_S} seconds"
        )));
    }
    let filter: Vec<String> = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "SecretId")
        .map(|(_, v)| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
        .collect();
    let events = &state.current_events;
    let since = match number("since")? {
        Some(s) => s,
        None => events.after(u64::MAX).2,
    };
    let authorizer = crate::authz::CallerAuthorizer::new(state, caller, info, jiff::Timestamp::now());
    let visible = |e: &Event| {
        (filter.is_empty() || filter.contains(&e.arn))
            && tumbler_secrets::Authorizer::authorize(
                &authorizer,
                "secretsmanager:DescribeSecret",
                &e.arn,
                tumbler_identity::ContextKeys::new(),
                None,
            )
            .is_ok()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let mut since = since;
    loop {
        // Registered before looking, so a change in between is not missed.
        let changed = events.changed.notified();
        let (new, truncated, last) = events.after(since);
        let mine: Vec<Event> = new.into_iter().filter(|e| visible(e)).collect();
        if !mine.is_empty() || truncated || tokio::time::Instant::now() >= deadline {
            return Ok(serde_json::to_vec(&Answer {
                events: mine,
                next_sequence: last,
                truncated,
            })
            .unwrap_or_default());
        }
        // Nothing the caller may see: skip past it.
        since = last;
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            let last = events.after(since).2;
            return Ok(serde_json::to_vec(&Answer {
                events: Vec::new(),
                next_sequence: last,
                truncated: false,
            })
            .unwrap_or_default());
        }
    }
}
