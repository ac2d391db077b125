//! Pollers: `activities` (the audit log, windows + overlap + dedupe) and `inventory` (snapshots,
//! change events, posture findings). Each runs one task per
//! organization, writes to the store and wakes the sinks through a `watch` of the max seq.
//! `decode_permit` lets one activities answer be read at a time across organizations.
//! `ActivitySource` and `Clock` are seams so the cursor rule is tested without HTTP or real time.

pub mod activities;
pub mod decode_permit;
pub mod inventory;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::store::QuarantineRow;

/// Time sources (tests move them by hand).
pub trait Clock: Send + Sync {
    /// Wall-clock time: may step back or forward (NTP, `date -s`, a resumed VM).
    fn now(&self) -> DateTime<Utc>;
    /// Milliseconds on a clock that never steps but counts suspended time (`CLOCK_BOOTTIME`).
    fn elapsed_ms(&self) -> i64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn elapsed_ms(&self) -> i64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_BOOTTIME exists on Linux ≥ 2.6.39.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        if rc != 0 {
            return std::time::UNIX_EPOCH
                .elapsed()
                .map_or(0, |d| d.as_millis() as i64);
        }
        ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }
}

/// One activity as fetched: typed key fields plus the verbatim JSON text.
#[derive(Debug, Clone)]
pub struct FetchedActivity {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub created_at_raw: String,
    pub raw: Box<str>,
}

/// What one window fetch returned.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Empty when the answer was streamed (`WindowQuery::stream`).
    pub activities: Vec<FetchedActivity>,
    pub quarantined: Vec<QuarantineRow>,
    /// The server's clock when it answered (HTTP `Date`), if it said.
    pub server_date: Option<DateTime<Utc>>,
    pub body_bytes: usize,
    /// Activities and quarantined elements in the answer, streamed or not.
    pub count: usize,
    /// The inclusive UTC range the answer may cover if the server reads the bounds sent as
    /// UTC (whole seconds, or whole days for date-only bounds); `None` = exactly the query's.
    pub bounds: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The date format the request that succeeded used; `None` when the source has none.
    pub format: Option<crate::config::DateFormat>,
}

/// One chunk of a streamed answer.
#[derive(Debug, Default)]
pub struct Chunk {
    pub activities: Vec<FetchedActivity>,
    pub quarantined: Vec<QuarantineRow>,
    /// The date format of the request that read it (`None`: the source has none).
    pub format: Option<crate::config::DateFormat>,
}

/// Where a streamed answer goes: chunks of at most `batch` elements.
#[derive(Debug, Clone)]
pub struct StreamTo {
    pub batch: usize,
    pub tx: tokio::sync::mpsc::Sender<Chunk>,
}

/// One activities request.
#[derive(Debug, Clone)]
pub struct WindowQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Abandon the answer with `TooLarge` past this many bytes (chunks streamed before that
    /// stay sent).
    pub max_bytes: Option<usize>,
    /// A background sweep: yields the shared rate budget to regular polls.
    pub background: bool,
    /// Hand the activities over in chunks while the body is read (bounded memory whatever
    /// the answer's size) instead of collecting them; a retried request may stream some twice.
    pub stream: Option<StreamTo>,
}

/// Why a window fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The answer exceeded the byte cap: the window must be split. `bytes` is its size when
    /// announced (Content-Length), else how much was read before giving up.
    #[error("the answer for this window exceeded {limit} bytes")]
    TooLarge { limit: usize, bytes: usize },
    /// Anything else; `kind` is a metric label (unauthorized, forbidden, rate_limited, …).
    #[error("{message}")]
    Api { kind: &'static str, message: String },
}

impl FetchError {
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::TooLarge { .. } => "too_large",
            FetchError::Api { kind, .. } => kind,
        }
    }
}

/// Where activities come from (the API client; a fake in tests).
#[async_trait]
pub trait ActivitySource: Send + Sync {
    /// Activities of `org` created in `[q.from, q.to]` (inclusive, as far as the API filters
    /// the way it is asked), aborting with `TooLarge` once the body passes `q.max_bytes`.
    async fn fetch(&self, org: &str, q: WindowQuery) -> Result<Fetched, FetchError>;

    /// The date format requests use now (`None`: the source has no such notion).
    fn date_format(&self) -> Option<crate::config::DateFormat> {
        None
    }
}

/// The API client as an `ActivitySource`: typed errors become metric kinds and messages,
/// verbatim activities become owned text without a copy.
#[derive(Clone)]
pub struct ClientSource(pub crate::api::Client);

fn fetched_activity(a: crate::api::Activity) -> FetchedActivity {
    FetchedActivity {
        id: a.id,
        created_at: a.created_at,
        created_at_raw: a.created_at_raw,
        raw: a.raw.into(),
    }
}

fn quarantine_row(q: crate::api::Quarantined) -> QuarantineRow {
    QuarantineRow {
        reason: q.reason.to_string(),
        detail: q.detail,
        payload: q.raw.into(),
    }
}

#[async_trait]
impl ActivitySource for ClientSource {
    async fn fetch(&self, org: &str, q: WindowQuery) -> Result<Fetched, FetchError> {
        use crate::api::{ApiError, Priority, StreamTo as ApiStream, WindowRequest};
        let priority = if q.background {
            Priority::Low
        } else {
            Priority::Normal
        };
        // Streamed chunks are converted to the poller's types on the way (bounded channels
        // on both sides, so memory stays a few chunks whatever the answer's size).
        let (stream, forward) = match q.stream {
            Some(to) => {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<crate::api::ActivityChunk>(1);
                let forward = async move {
                    while let Some(c) = rx.recv().await {
                        let chunk = Chunk {
                            activities: c.activities.into_iter().map(fetched_activity).collect(),
                            quarantined: c.quarantined.into_iter().map(quarantine_row).collect(),
                            format: c.format,
                        };
                        if to.tx.send(chunk).await.is_err() {
                            break;
                        }
                    }
                };
                (
                    Some(ApiStream {
                        batch: to.batch,
                        tx,
                    }),
                    Some(forward),
                )
            }
            None => (None, None),
        };
        let req = WindowRequest {
            max_bytes: q.max_bytes,
            priority,
            stream,
        };
        let fetch = self.0.activities_window(org, q.from, q.to, req);
        let result = match forward {
            Some(forward) => tokio::join!(fetch, forward).0,
            None => fetch.await,
        };
        let batch = match result {
            Ok(b) => b,
            Err(ApiError::TooLarge { limit, bytes, .. }) => {
                return Err(FetchError::TooLarge { limit, bytes });
            }
            Err(e) => {
                return Err(FetchError::Api {
                    kind: e.kind(),
                    message: e.to_string(),
                });
            }
        };
        Ok(Fetched {
            activities: batch.activities.into_iter().map(fetched_activity).collect(),
            quarantined: batch.quarantined.into_iter().map(quarantine_row).collect(),
            server_date: batch.server_date,
            body_bytes: batch.body_bytes,
            count: batch.count,
            bounds: Some(batch.bounds),
            format: Some(batch.format),
        })
    }

    fn date_format(&self) -> Option<crate::config::DateFormat> {
        Some(self.0.effective_date_format())
    }
}
