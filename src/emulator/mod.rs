//! The built-in emulator of the ClickHouse Cloud control-plane API (`/v1/...`), for tests,
//! `demo` and the `emulator` command. `Emulator` is the public handle (cheap `Clone`, an `Arc`
//! inside): build it with options, `serve` it on a listener (or `start` on 127.0.0.1:0), and
//! steer it from tests through the control methods (faults, clock skew, keys, activities).
//!
//! Faithfulness notes (see `docs/clickhouse-cloud-api.md`): envelope `{status, requestId,
//! result}`, errors `{status, error: "CODE: message", requestId}`, Basic auth (401), per-key
//! permissions from the spec's `security` entries (403), per-key sliding-window rate limit with
//! `X-RateLimit-Reset` (429), unknown org/resource → 404.
//!
//! Choices where the docs are silent (API notes §9):
//! - Activities: `from_date`/`to_date` inclusive; a date-only `to_date` covers its whole UTC
//!   day; no `from_date` = from the start, no `to_date` = up to now; `from > to` → 400.
//!   Newest first; only rows visible by the emulator clock; `createdAt` on whole seconds.
//! - Activity window semantics (`WindowSemantics`, `window.rs`) default to the live evidence
//!   (API notes §3.2) and are otherwise exact: dates `strict` (`YYYY-MM-DD`, or RFC 3339 with
//!   exactly three fractional digits and `Z`/an offset; no fraction, 1, 2 or 6 digits and
//!   zone-less date-times → 400 `BAD_REQUEST: …date…`), bounds read exactly and in UTC, no cap,
//!   no extra visibility delay. Each unknown is a switch, set in `EmulatorOptions::window`, at
//!   runtime (`set_window`, `set_date_validation`, `set_whole_days`, `set_zone_offset`,
//!   `set_activity_cap`, `set_visibility_delay`) or by `emulator` CLI flags:
//!   - dates `lenient` (any ISO form, naive read as UTC) or `date-only` (400 on any date-time);
//!   - `whole_days`: the time part is ignored, whole days from `from_date`'s to `to_date`'s;
//!   - `zone_offset`: zone-less values (naive, date-only) are local time at that UTC offset;
//!   - `cap`: only the N newest activities of the window, silently;
//!   - `visibility_delay`: every activity shows only that long after its `createdAt`.
//! - Rate limit: every authenticated request takes a slot (403/404/400/injected 5xx included);
//!   401s and the 429 refusals do not. `X-RateLimit-Reset` = seconds until a slot frees.
//! - Keys: one id names a key everywhere (Basic-auth username = `ApiKey.id` = `whoami.keyId` =
//!   `actorId` = `targetKeyId`); `keySuffix` is its last 4 characters. Self-delete → 400.
//!   `key_create`/`key_delete` also carry `targetKeyId`.
//! - A key outside an org gets 404 for it; a key without `control-plane:service:view` sees an
//!   empty service list (the spec says so for prometheus; inferred here).
//! - `GET /v1` (the spec) needs no auth and bypasses rate limit and faults.
//!
//! Module map:
//! - `server`: accept loop and request pipeline; `routes`: operation table and matching
//! - `handlers/`: one file per resource; `validate`: request-field checks
//! - `inner`: the shared state behind `Emulator`; `model`: inventory types and their JSON;
//!   `seed`: seeded inventory
//! - `activity_log`: per-org pre-serialized activity rows; `generator` / `live`: activity data
//! - `control`: test controls on the inventory (key use/expiry, service state, backups, …)
//! - `dates`: `from_date`/`to_date` parsing and validation; `window`: window semantics switches
//! - `ratelimit`; `auth`; `faults`; `body`; `jsonfmt`

mod activity_log;
mod activity_types;
mod auth;
mod body;
mod control;
mod dates;
mod faults;
mod generator;
mod handlers;
mod inner;
mod jsonfmt;
mod live;
mod model;
mod ratelimit;
mod routes;
mod seed;
mod server;
mod validate;
mod window;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use activity_types::{ACTIVITY_TYPES, KEY_UPDATE_TYPES};

/// The vendor's OpenAPI spec as kept in the repository (the `clickhouse-cloud-api` crate's
/// copy): served at `GET /v1` and read by the conformance tests. Not embedded in the binary
/// (1.5 MB); `$CH_AUDIT_OPENAPI_SPEC` points elsewhere.
pub const SPEC_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/docs/api/clickhouse-cloud-openapi.json"
);
pub use routes::{ROUTES, RouteInfo};
pub use window::{DateValidation, WindowSemantics, parse_zone_offset};

use activity_log::Row;
use faults::BodyFault;
use generator::Pools;
use inner::Inner;
use jsonfmt::{ActivityJson, ts, uuid};
use model::{Credential, Key, Role};

/// How to build an emulator. `Default` suits tests: one org, seed 1, a week of history,
/// no live traffic, 10 requests per 10 s per key, activities visible at once, strict dates.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Organizations to emulate (at least 1); the admin key belongs to all of them.
    pub orgs: usize,
    /// Same seed → same ids, names and generated activities (timestamps follow the clock).
    pub seed: u64,
    /// How far back the generated activity history reaches.
    pub history: Duration,
    /// Generated history activities per day per org.
    pub history_events_per_day: u32,
    /// Live activities per minute per org while serving (0 = none).
    pub rate_per_min: f64,
    /// Stop live generation after this long (the server keeps answering); `None` = until
    /// shutdown. Soak runs use it to end with a fixed set of activities to check against.
    pub live_for: Option<Duration>,
    /// Admin key `(id, secret)`; `None` generates one from the seed.
    pub key: Option<(String, String)>,
    /// At most N requests per key in any rolling window; `None` = unlimited.
    pub rate_limit: Option<(u32, Duration)>,
    /// Generated activities become visible up to this long after `createdAt`.
    pub max_visibility_delay: Duration,
    /// How the activity list reads `from_date`/`to_date` (validation, days, zone, cap, delay);
    /// changeable later through `Emulator::set_window` and friends.
    pub window: WindowSemantics,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            orgs: 1,
            seed: 1,
            history: Duration::from_secs(7 * 86_400),
            history_events_per_day: 200,
            rate_per_min: 0.0,
            live_for: None,
            key: None,
            rate_limit: Some((10, Duration::from_secs(10))),
            max_visibility_delay: Duration::ZERO,
            window: WindowSemantics::default(),
        }
    }
}

/// One request as the emulator saw it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// Arrival (tokio clock, so paused-time tests line up); the rate limiter uses this instant.
    pub at: std::time::Instant,
    /// Arrival by the emulator's clock (real time + skew).
    pub wall: DateTime<Utc>,
    /// Basic-auth username, when the header parsed (also on 401).
    pub key_id: Option<String>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
}

/// A running emulator; dropping it cancels the server.
#[derive(Debug)]
pub struct EmulatorHandle {
    pub emulator: Emulator,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT` (no trailing slash, no `/v1`).
    pub base_url: String,
    pub shutdown: CancellationToken,
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The emulator; clones share one state.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("orgs", &self.inner.org_ids)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Builds the seeded inventory and activity history (no I/O).
    pub fn new(opts: EmulatorOptions) -> Emulator {
        Emulator {
            inner: Arc::new(Inner::new(opts)),
        }
    }

    /// Serves HTTP/1.1 on `listener` until `shutdown` is cancelled (and runs live generation).
    ///
    /// # Errors
    /// None today: accept errors are logged and retried. Kept for future listener failures.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        server::serve(self.inner, listener, shutdown).await
    }

    /// Binds 127.0.0.1:0 and serves in a background task.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn start(opts: EmulatorOptions) -> anyhow::Result<EmulatorHandle> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the emulator to 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let emulator = Emulator::new(opts);
        let shutdown = CancellationToken::new();
        tokio::spawn(emulator.clone().serve(listener, shutdown.clone()));
        Ok(EmulatorHandle {
            emulator,
            addr,
            base_url: format!("http://{addr}"),
            shutdown,
        })
    }

    pub fn key_id(&self) -> String {
        self.inner.admin_key.0.clone()
    }

    pub fn key_secret(&self) -> String {
        self.inner.admin_key.1.clone()
    }

    pub fn org_ids(&self) -> Vec<String> {
        self.inner.org_ids.clone()
    }

    /// The emulator's clock (real time + `set_clock_skew`): what visibility and `createdAt` use.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }

    /// The next `n` authenticated API requests answer `status` with the error envelope
    /// (a 429 also carries `X-RateLimit-Reset`). They count against the rate limit.
    pub fn fail_next(&self, n: u32, status: u16) {
        self.inner.faults.fail_next(n, status);
    }

    /// Each authenticated API request fails with `status` with probability `rate` (seeded).
    pub fn set_error_rate(&self, rate: f64, status: u16) {
        self.inner.faults.set_error_rate(rate, status);
    }

    /// Delay added before every response.
    pub fn set_latency(&self, d: Duration) {
        self.inner.faults.set_latency(d);
    }

    /// The next 200 announces its full `Content-Length`, sends about half, then the connection
    /// is closed: reqwest reports an error while reading the body (`.bytes()` fails).
    pub fn truncate_next(&self) {
        self.inner.faults.add_body_fault(BodyFault::Truncate);
    }

    /// The next 200 is complete but its body is not valid JSON.
    pub fn malformed_next(&self) {
        self.inner.faults.add_body_fault(BodyFault::Malformed);
    }

    /// The next 200 is a valid envelope whose `result` has the wrong type (an object for
    /// lists, an array for single objects).
    pub fn wrong_shape_next(&self) {
        self.inner.faults.add_body_fault(BodyFault::WrongShape);
    }

    /// `false`: 429s come without `X-RateLimit-Reset` (the header's semantics are only
    /// inferred; a client must cope without it).
    pub fn set_rate_limit_reset_header(&self, on: bool) {
        self.inner.faults.set_reset_header(on);
    }

    /// Whether 429s also send `Retry-After` (whole seconds, rounded up).
    pub fn set_retry_after_header(&self, on: bool) {
        self.inner.faults.set_retry_after(on);
    }

    /// `false`: activities accept only `YYYY-MM-DD` dates; date-times get 400 `BAD_REQUEST: …date…`
    /// (= `set_date_validation(DateValidation::DateOnly)`). `true` leaves date-only mode for the
    /// default, `Strict`, and changes nothing in the other modes.
    pub fn set_accept_datetime_params(&self, on: bool) {
        self.inner.update_window(|w| match (on, w.dates) {
            (false, _) => w.dates = DateValidation::DateOnly,
            (true, DateValidation::DateOnly) => w.dates = DateValidation::Strict,
            (true, _) => {}
        });
    }

    /// The activity window semantics in force now.
    pub fn window(&self) -> WindowSemantics {
        self.inner.window()
    }

    /// Replaces every window switch at once (from the next request on).
    pub fn set_window(&self, window: WindowSemantics) {
        self.inner.update_window(|w| *w = window);
    }

    /// Which `from_date`/`to_date` forms pass (`Strict` by default).
    pub fn set_date_validation(&self, dates: DateValidation) {
        self.inner.update_window(|w| w.dates = dates);
    }

    /// `true`: the time part is ignored; answers hold whole days from `from_date`'s date to
    /// `to_date`'s, both inclusive.
    pub fn set_whole_days(&self, on: bool) {
        self.inner.update_window(|w| w.whole_days = on);
    }

    /// Zone-less values (naive date-times, `YYYY-MM-DD`) are local time at `offset`; `None` = UTC.
    pub fn set_zone_offset(&self, offset: Option<chrono::FixedOffset>) {
        self.inner.update_window(|w| w.zone_offset = offset);
    }

    /// Activity lists hold at most the `cap` newest activities of the window, silently.
    pub fn set_activity_cap(&self, cap: Option<usize>) {
        self.inner.update_window(|w| w.cap = cap);
    }

    /// Every activity (existing and future) shows only `delay` after its `createdAt`.
    pub fn set_visibility_delay(&self, delay: Duration) {
        self.inner.update_window(|w| w.visibility_delay = delay);
    }

    /// The emulator's now = real now + `skew` (drives visibility, transitions, `createdAt`).
    pub fn set_clock_skew(&self, skew: chrono::Duration) {
        self.inner.faults.set_skew_ms(skew.num_milliseconds());
    }

    /// `false` → every request with that key id gets 401 (the key stays in the inventory).
    pub fn set_credentials_valid(&self, key_id: &str, valid: bool) {
        let hashed = auth::hash(key_id);
        let mut state = self.inner.state();
        for k in &mut state.keys {
            let hit = match &k.credential {
                Credential::Hashed { key_id_hash, .. } => *key_id_hash == hashed || k.id == key_id,
                Credential::Secret(_) => k.id == key_id,
            };
            if hit {
                k.credentials_valid = valid;
            }
        }
    }

    /// A new enabled key in `org` holding exactly `permissions` (through a custom role);
    /// returns `(key id, key secret)`. Records no activity.
    pub fn create_key(&self, org: &str, permissions: &[&str]) -> (String, String) {
        let (id, secret, role_id) = {
            let mut rng = self.inner.rng();
            (uuid(&mut rng), jsonfmt::token(&mut rng, 40), uuid(&mut rng))
        };
        let perms: BTreeSet<String> = permissions.iter().map(|p| (*p).to_owned()).collect();
        let now = self.inner.now();
        let mut state = self.inner.state();
        if let Some(o) = state.org_mut(org) {
            let name = format!("custom-{}", &id[..8]);
            o.roles.push(Role {
                id: role_id.clone(),
                name,
                kind: "custom",
                permissions: Some(perms.clone()),
            });
        }
        state.keys.push(Key {
            id: id.clone(),
            credential: Credential::Secret(secret.clone()),
            name: format!("test-key-{}", &id[..8]),
            enabled: true,
            roles: Vec::new(),
            role_ids: vec![role_id],
            permissions: Some(perms),
            created_at: now,
            expire_at: None,
            used_at: None,
            ip_access_list: Vec::new(),
            orgs: vec![org.to_owned()],
            credentials_valid: true,
        });
        (id, secret)
    }

    /// Inserts an activity (any JSON object; unknown fields and types kept verbatim, key order
    /// aside). Fills `id` (if absent), `organizationId` and `createdAt` (`YYYY-MM-DDTHH:MM:SSZ`
    /// from `created_at`) unless present. Sorted by `created_at`; visible from `visible_at`
    /// (emulator clock). Returns the id (a non-string id as its JSON text).
    pub fn add_activity(
        &self,
        org: &str,
        activity: Value,
        created_at: DateTime<Utc>,
        visible_at: DateTime<Utc>,
    ) -> String {
        let mut map = match activity {
            Value::Object(m) => m,
            other => Map::from_iter([("value".to_owned(), other)]),
        };
        let id = map
            .remove("id")
            .unwrap_or_else(|| Value::String(uuid(&mut self.inner.rng())));
        map.entry("organizationId")
            .or_insert_with(|| Value::String(org.to_owned()));
        map.entry("createdAt")
            .or_insert_with(|| Value::String(ts(created_at)));
        let mut a = ActivityJson::with_raw_id(&id);
        for (k, v) in &map {
            a.value(k, v);
        }
        let (json, id_end) = a.finish();
        let row = Row::new(
            created_at.timestamp_millis(),
            visible_at.timestamp_millis(),
            json,
            id_end,
        );
        self.inner.with_log(org, |log| log.insert(row));
        match id {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }

    /// Bulk-generates `n` realistic activities evenly over `[from, to)`, visible at once.
    pub fn generate_activities(&self, org: &str, n: usize, from: DateTime<Utc>, to: DateTime<Utc>) {
        let pools = Pools::of(&self.inner.state(), org);
        let mut rng = fastrand::Rng::with_seed(self.inner.rng().u64(..));
        let span = (from.timestamp_millis(), to.timestamp_millis());
        let rows = generator::rows(&mut rng, &pools, n, span, false, |_, _| i64::MIN);
        self.inner.with_log(org, |log| log.extend_sorted(rows));
    }

    /// Stored activities of `org`, visible or not.
    pub fn activity_count(&self, org: &str) -> usize {
        self.inner.with_log(org, |log| log.len()).unwrap_or(0)
    }

    /// Ids of every stored activity of `org`, oldest first, visible or not.
    pub fn all_activity_ids(&self, org: &str) -> Vec<String> {
        self.inner
            .log(org)
            .map(|l| l.read().unwrap_or_else(|p| p.into_inner()).ids())
            .unwrap_or_default()
    }

    /// Every request seen so far, in arrival order of completion.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.inner.requests().clone()
    }

    pub fn clear_request_log(&self) {
        self.inner.requests().clear();
    }
}

/// CLI entry for `clickhouse-audit-exporter emulator --listen ADDR …`: binds, prints
/// `emulator listening on http://ADDR` (and `key_id=… key_secret=…` when no key was given) to
/// stderr, and serves until `shutdown` is cancelled.
///
/// # Errors
/// When `listen` cannot be bound.
pub async fn run_cli(
    opts: EmulatorOptions,
    listen: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let print_key = opts.key.is_none();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the emulator to {listen}"))?;
    let addr = listener.local_addr()?;
    let emulator = Emulator::new(opts);
    eprintln!("emulator listening on http://{addr}");
    if print_key {
        eprintln!(
            "key_id={} key_secret={}",
            emulator.key_id(),
            emulator.key_secret()
        );
    }
    emulator
        .serve(listener, shutdown)
        .await
        .context("serving the emulator")?;
    Ok(())
}
