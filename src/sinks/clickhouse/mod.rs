//! `clickhouse` sink: inserts into a ClickHouse table over the HTTP interface —
//! `INSERT INTO db.table FORMAT JSONEachRow`, one row per event, gzip, basic auth, TLS.
//!
//! Row: `event_id`, `kind`, `org_id`, `type` (activity type; `inventory_<resource>_<action>`,
//! `finding_<rule>`), `occurred_at` (createdAt, UTC), `observed_at`, `actor_type`, `actor_id`,
//! `actor_ip`, and `record` — the event in the sink's format (default: the JSON envelope, so
//! `JSONExtract*` reaches every vendor field).
//!
//! On first use the sink asks `SELECT version()`. With `create_table = true` it then creates the
//! database and a `ReplacingMergeTree` table whose sorting key ends in `event_id`, so
//! at-least-once redeliveries collapse at merge time (`FINAL` or `argMax` before that): DDL with
//! `DateTime64(3)` and `LowCardinality` on 20.1 and later, `DateTime` and `String` before (the
//! Debian 18.16 server this is tested against). From 22.3 on, each insert carries
//! `insert_deduplication_token` = a hash of the batch's event ids, so a retried batch is
//! dropped by replicated/shared tables (ClickHouse Cloud) or tables with
//! `non_replicated_deduplication_window`; older servers reject the setting, so it is not sent.
//!
//! Answers: 2xx = stored. Authentication and access errors (HTTP 401/403, or exception codes
//! 192–195, 497, 516) → `SinkError::Unauthorized`. Errors that blame the data or the schema
//! (unknown table/database/column, parse errors) → `Rejected` with ClickHouse's message.
//! Otherwise the status decides (`http::classify`): 401/403/407 → `Unauthorized`, anything else
//! (5xx, timeouts, connection refused, too many parts, memory, 404 of an old server) →
//! `Transient`, honouring `Retry-After`. Settings and their checks are in `config.rs`.

mod config;

pub use self::config::ClickhouseConfig;

use anyhow::Context;
use async_trait::async_trait;
use reqwest::header::{self, HeaderMap, HeaderValue};
use secrecy::SecretString;
use sha2::Digest;

use super::{Sink, SinkError};
use crate::event::{Event, EventKind};
use crate::format::view::{ActivityView, first_time_ms, parse_object, push_rfc3339_ms};
use crate::format::{Facts, Format, push_envelope_head, push_json_str};
use crate::http::{self, Answer, StatusClass};
use crate::values::resolve_secret;

/// What the server supports, from `SELECT version()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
}

impl ServerVersion {
    pub fn parse(text: &str) -> Option<ServerVersion> {
        let mut parts = text.trim().split('.');
        Some(ServerVersion {
            major: parts.next()?.parse().ok()?,
            minor: parts.next()?.parse().ok()?,
        })
    }

    fn at_least(self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// DateTime64 and LowCardinality (GA) arrived by 20.1.
    pub fn modern_types(self) -> bool {
        self.at_least(20, 1)
    }

    /// `insert_deduplication_token` exists from 22.3.
    pub fn dedup_token(self) -> bool {
        self.at_least(22, 3)
    }
}

/// The DDL `create_table = true` runs for `version`.
pub fn create_table_sql(database: &str, table: &str, version: ServerVersion) -> String {
    let (lc, time) = if version.modern_types() {
        ("LowCardinality(String)", "DateTime64(3, 'UTC')")
    } else {
        ("String", "DateTime('UTC')")
    };
    format!(
        "CREATE TABLE IF NOT EXISTS `{database}`.`{table}` (\n\
         \x20   event_id String,\n\
         \x20   kind {lc},\n\
         \x20   org_id {lc},\n\
         \x20   type {lc},\n\
         \x20   occurred_at {time},\n\
         \x20   observed_at {time},\n\
         \x20   actor_type {lc},\n\
         \x20   actor_id String,\n\
         \x20   actor_ip String,\n\
         \x20   record String\n\
         ) ENGINE = ReplacingMergeTree\n\
         PARTITION BY toYYYYMM(occurred_at)\n\
         ORDER BY (org_id, kind, occurred_at, event_id)"
    )
}

pub struct ClickhouseSink {
    name: String,
    format: Format,
    client: reqwest::Client,
    url: reqwest::Url,
    shown_url: String,
    auth: HeaderValue,
    database: String,
    table: String,
    create_table: bool,
    compression: bool,
    /// Known after the first successful `SELECT version()` (and DDL, when asked for).
    version: Option<ServerVersion>,
    body: Vec<u8>,
    scratch: Vec<u8>,
}

impl ClickhouseSink {
    pub fn new(cfg: &ClickhouseConfig, name: &str, format: Format) -> anyhow::Result<Self> {
        let client = http::client(
            cfg.timeout,
            cfg.ca_file.as_deref(),
            "the ClickHouse HTTP client",
        )?;
        let password = resolve_secret(
            &cfg.password,
            &cfg.password_file,
            &format!("sinks.{name}.password_file"),
        )?
        .unwrap_or_else(|| SecretString::from(""));
        let auth = http::basic_auth(&cfg.user, &password).ok_or_else(|| {
            anyhow::anyhow!("sink {name:?}: user/password are not valid in a header")
        })?;
        Ok(ClickhouseSink {
            name: name.to_string(),
            format,
            client,
            url: reqwest::Url::parse(cfg.url.as_str()).context("parsing url")?,
            shown_url: cfg.url.redacted(),
            auth,
            database: cfg.database.clone(),
            table: cfg.table.clone(),
            create_table: cfg.create_table,
            compression: cfg.compression,
            version: None,
            body: Vec::with_capacity(256 * 1024),
            scratch: Vec::new(),
        })
    }

    /// Runs one query; `body` is gzipped at that level when `gzip` is set. Returns the answer
    /// text.
    async fn query(
        &self,
        params: &[(&str, &str)],
        body: Vec<u8>,
        gzip: Option<flate2::Compression>,
    ) -> Result<String, SinkError> {
        let mut url = self.url.clone();
        if !params.is_empty() {
            url.query_pairs_mut().extend_pairs(params);
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, self.auth.clone());
        let target = format!("ClickHouse {}", self.shown_url);
        let answer = http::post(&self.client, url, headers, body, gzip, &target).await?;
        if answer.class() == StatusClass::Success {
            return Ok(answer.text);
        }
        Err(classify(&self.shown_url, &answer))
    }

    /// `SELECT version()`, then the DDL when `create_table` is on.
    async fn prepare(&mut self) -> Result<ServerVersion, SinkError> {
        if let Some(v) = self.version {
            return Ok(v);
        }
        let text = self.query(&[], b"SELECT version()".to_vec(), None).await?;
        let version = ServerVersion::parse(&text).ok_or_else(|| {
            SinkError::transient(format!(
                "ClickHouse {}: unexpected answer to SELECT version(): {}",
                self.shown_url,
                crate::http::excerpt(&text, 300)
            ))
        })?;
        if self.create_table {
            let db = format!("CREATE DATABASE IF NOT EXISTS `{}`", self.database);
            self.query(&[], db.into_bytes(), None).await?;
            let ddl = create_table_sql(&self.database, &self.table, version);
            self.query(&[], ddl.into_bytes(), None).await?;
        }
        tracing::info!(sink = %self.name, version = %text.trim(), create_table = self.create_table, "ClickHouse ready");
        self.version = Some(version);
        Ok(version)
    }

    /// JSONEachRow rows for the batch into `body`.
    fn encode(&mut self, batch: &[Event], version: ServerVersion) {
        self.body.clear();
        for event in batch {
            let row = Row::of(event);
            let out = &mut self.body;
            push_envelope_head(out, event);
            out.extend_from_slice(b",\"type\":");
            push_json_str(out, &row.ty);
            out.extend_from_slice(b",\"occurred_at\":");
            push_time(out, row.occurred_ms, version);
            out.extend_from_slice(b",\"observed_at\":");
            push_time(out, row.observed_ms, version);
            out.extend_from_slice(b",\"actor_type\":");
            push_json_str(out, &row.actor_type);
            out.extend_from_slice(b",\"actor_id\":");
            push_json_str(out, &row.actor_id);
            out.extend_from_slice(b",\"actor_ip\":");
            push_json_str(out, &row.actor_ip);
            out.extend_from_slice(b",\"record\":");
            self.scratch.clear();
            self.format.encode(event, &mut self.scratch);
            push_json_str(out, &String::from_utf8_lossy(&self.scratch));
            out.extend_from_slice(b"}\n");
        }
    }
}

/// The columns derived from the payload.
struct Row {
    ty: String,
    occurred_ms: i64,
    observed_ms: i64,
    actor_type: String,
    actor_id: String,
    actor_ip: String,
}

impl Row {
    fn of(event: &Event) -> Row {
        let observed_ms = first_time_ms(&[Some(&event.observed_at)]);
        let envelope = [Some(event.occurred_at.as_str()), Some(&event.observed_at)];
        let mut row = Row {
            ty: String::new(),
            occurred_ms: first_time_ms(&envelope),
            observed_ms,
            actor_type: String::new(),
            actor_id: String::new(),
            actor_ip: String::new(),
        };
        let facts = match event.kind {
            EventKind::Activity => {
                let a = parse_object::<ActivityView>(&event.payload).unwrap_or_default();
                row.actor_type = a.actor_type.get().unwrap_or("").to_string();
                row.actor_id = a.actor_id.get().unwrap_or("").to_string();
                row.actor_ip = a.actor_ip_address.get().unwrap_or("").to_string();
                let f = Facts::activity(event, &a);
                (f.ty.into_owned(), f.time_ms)
            }
            _ => {
                let f = Facts::of(event);
                (f.ty.into_owned(), f.time_ms)
            }
        };
        (row.ty, row.occurred_ms) = facts;
        row
    }
}

/// `"YYYY-MM-DD hh:mm:ss[.mmm]"` (UTC): the text both DateTime and DateTime64 parse; old
/// servers' DateTime takes no fraction.
fn push_time(out: &mut Vec<u8>, ms: i64, version: ServerVersion) {
    // Years before 1970 do not fit DateTime; the formats' epoch fallback is 0 anyway.
    let ms = ms.max(0);
    let mut iso = Vec::with_capacity(24);
    push_rfc3339_ms(&mut iso, ms); // YYYY-MM-DDTHH:MM:SS.mmmZ
    iso[10] = b' ';
    let end = if version.modern_types() { 23 } else { 19 };
    out.push(b'"');
    out.extend_from_slice(&iso[..end]);
    out.push(b'"');
}

/// ClickHouse exception codes that mean "who you are", not "what you sent".
const AUTH_CODES: &[u32] = &[192, 193, 194, 195, 497, 516];
/// Codes that blame the data or the schema: waiting will not help.
const REJECT_CODES: &[u32] = &[
    16, 26, 27, 38, 41, 47, 53, 60, 62, 69, 70, 72, 81, 117, 131, 173,
];

/// `Code: N` from an exception text.
fn exception_code(text: &str) -> Option<u32> {
    let rest = &text[text.find("Code: ")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn classify(shown_url: &str, answer: &Answer) -> SinkError {
    let message = format!(
        "ClickHouse {shown_url} answered {}: {}",
        answer.status,
        http::excerpt(&answer.text, 300)
    );
    match exception_code(&answer.text) {
        Some(c) if AUTH_CODES.contains(&c) => SinkError::Unauthorized(message),
        Some(60 | 81) => SinkError::Rejected(format!(
            "{message} (create the table, or set create_table = true)"
        )),
        Some(c) if REJECT_CODES.contains(&c) => SinkError::Rejected(message),
        // ClickHouse answers most errors with 500 and its own code; an unknown code with a 4xx
        // is not known to blame the batch, so only the credentials classes are taken from
        // the status.
        _ => match answer.class() {
            StatusClass::Unauthorized => SinkError::Unauthorized(message),
            _ => http::sink_error(StatusClass::Retry, answer, message),
        },
    }
}

/// Stable per batch content: the same events give the same token on every retry.
fn dedup_token(batch: &[Event]) -> String {
    let mut h = sha2::Sha256::new();
    for e in batch {
        h.update(e.event_id.as_bytes());
        h.update([0u8]);
    }
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[async_trait]
impl Sink for ClickhouseSink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let version = self.prepare().await?;
        self.encode(batch, version);
        let insert = format!(
            "INSERT INTO `{}`.`{}` FORMAT JSONEachRow",
            self.database, self.table
        );
        let token = dedup_token(batch);
        let mut params = vec![("query", insert.as_str())];
        if version.dedup_token() {
            params.push(("insert_deduplication_token", token.as_str()));
        }
        // ClickHouse favours fast compression: it decompresses every insert.
        let gzip = self.compression.then(flate2::Compression::fast);
        self.query(&params, self.body.clone(), gzip).await?;
        Ok(())
    }
}

impl std::fmt::Debug for ClickhouseSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickhouseSink")
            .field("name", &self.name)
            .field("url", &self.shown_url)
            .field("table", &format!("{}.{}", self.database, self.table))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_pick_the_ddl_and_the_dedup_token() {
        let old = ServerVersion::parse("18.16.1").unwrap();
        assert!(!old.modern_types() && !old.dedup_token());
        assert!(create_table_sql("db", "t", old).contains("DateTime('UTC')"));
        assert!(!create_table_sql("db", "t", old).contains("LowCardinality"));
        let new = ServerVersion::parse("25.8.1.1\n").unwrap();
        assert!(new.modern_types() && new.dedup_token());
        let ddl = create_table_sql("db", "t", new);
        assert!(ddl.contains("DateTime64(3, 'UTC')") && ddl.contains("ReplacingMergeTree"));
        assert!(ServerVersion::parse("22.2.1").is_some_and(|v| !v.dedup_token()));
    }

    fn answer(status: u16, text: &str) -> Answer {
        Answer {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            text: text.to_string(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn errors_are_classified_by_exception_code_then_status() {
        use std::time::Duration;
        let auth = "Code: 516. DB::Exception: default: Authentication failed";
        assert!(matches!(
            classify("u", &answer(500, auth)),
            SinkError::Unauthorized(_)
        ));
        let wrong_password = "Code: 193, e.displayText() = DB::Exception: Wrong password";
        assert!(matches!(
            classify("u", &answer(401, wrong_password)),
            SinkError::Unauthorized(_)
        ));
        let missing = "Code: 60, e.displayText() = DB::Exception: Table x.y doesn't exist.";
        match classify("u", &answer(404, missing)) {
            SinkError::Rejected(m) => assert!(m.contains("create_table"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify("u", &answer(500, "Code: 27, Cannot parse input")),
            SinkError::Rejected(_)
        ));
        assert!(matches!(
            classify("u", &answer(500, "Code: 252. Too many parts")),
            SinkError::Transient { .. }
        ));
        let mut busy = answer(503, "");
        busy.retry_after = Some(Duration::from_secs(7));
        match classify("u", &busy) {
            SinkError::Transient { retry_after, .. } => {
                assert_eq!(
                    retry_after,
                    Some(Duration::from_secs(7)),
                    "Retry-After is honoured"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let cfg: ClickhouseConfig = serde_json::from_value(serde_json::json!({
            "url": "http://127.0.0.1:8123", "password": "ch-pass-987",
        }))
        .unwrap();
        assert!(!format!("{cfg:?}").contains("ch-pass-987"));
        let sink = ClickhouseSink::new(&cfg, "c", Format::Json).unwrap();
        assert!(!format!("{sink:?}").contains("ch-pass-987"));
    }
}
