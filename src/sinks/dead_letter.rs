//! Dead-letter files: where a sink puts events its destination refused for good and that must
//! not be sent again as they are (an Elasticsearch `_bulk` item with a mapping error, OTLP
//! records counted in `rejected_log_records`). One NDJSON line per event — when, which sink, why,
//! the event id and the event as the `json` envelope (the verbatim activity inside) — appended
//! and fsynced before the sink reports the batch delivered, so nothing refused is lost and every
//! line can be replayed (`jq -c .event file | …`). Counted in
//! `clickhouse_audit_sink_events_dead_lettered_total{sink,reason}`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chrono::{SecondsFormat, Utc};
use prometheus::IntCounterVec;

use super::SinkError;
use crate::event::Event;
use crate::format::{Format, push_json_str};
use crate::metrics::Metrics;
use crate::values::{ConfigError, KeyPath};

/// An open dead-letter file of one sink.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    path: PathBuf,
    sink: String,
    counter: IntCounterVec,
}

/// One refused event and why.
pub struct Refused<'a> {
    pub event: &'a Event,
    /// The destination's own words (item error type and reason, partial-success message).
    pub reason: &'a str,
}

/// Checks a `dead_letter_file` key (`None`: not configured).
pub fn validate(at: &KeyPath, key: &str, path: Option<&Path>) -> Result<(), ConfigError> {
    match path {
        Some(p) if p.as_os_str().is_empty() => Err(at.err(key, "\"\"", "must be a file path")),
        Some(p) if p.is_dir() => Err(at.err(
            key,
            format!("{:?}", p.display().to_string()),
            "is a directory; give a file path",
        )),
        _ => Ok(()),
    }
}

impl DeadLetter {
    /// Opens (creating it and its parent directories, mode 0640) the file at `path`, so a path
    /// that cannot be written fails at startup rather than when the first event is refused.
    pub fn open(path: &Path, sink: &str, metrics: &Metrics) -> anyhow::Result<DeadLetter> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "creating the directory of dead-letter file {}",
                    path.display()
                )
            })?;
        }
        open_append(path)
            .with_context(|| format!("opening dead-letter file {}", path.display()))?;
        Ok(DeadLetter {
            path: path.to_owned(),
            sink: sink.to_owned(),
            counter: metrics.sink_events_dead_lettered.clone(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line per refused event and fsyncs. `reason_label` is a short fixed code
    /// (`item_rejected`, `partial_success`) for the metric; each line carries the full reason.
    /// A write failure (disk full, file removed with its directory) is transient: the sink
    /// reports the batch as not delivered and dispatch brings it back.
    pub async fn write(
        &self,
        refused: &[Refused<'_>],
        reason_label: &'static str,
    ) -> Result<(), SinkError> {
        if refused.is_empty() {
            return Ok(());
        }
        let at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut buf = Vec::with_capacity(refused.len() * 1024);
        for r in refused {
            encode_line(&mut buf, &at, &self.sink, r);
        }
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut f = open_append(&path)?;
            f.write_all(&buf)?;
            f.sync_data()
        })
        .await
        .map_err(|e| SinkError::transient(format!("dead-letter write task failed: {e}")))?;
        written.map_err(|e| {
            SinkError::transient(format!(
                "cannot write dead-letter file {}: {e}; the batch stays undelivered and is retried",
                self.path.display()
            ))
        })?;
        self.counter
            .with_label_values(&[&self.sink, reason_label])
            .inc_by(refused.len() as u64);
        tracing::warn!(
            sink = %self.sink,
            events = refused.len(),
            reason = reason_label,
            file = %self.path.display(),
            first_reason = refused[0].reason,
            "events refused by the destination were written to the dead-letter file"
        );
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

fn encode_line(buf: &mut Vec<u8>, at: &str, sink: &str, r: &Refused<'_>) {
    buf.extend_from_slice(b"{\"dead_lettered_at\":");
    push_json_str(buf, at);
    buf.extend_from_slice(b",\"sink\":");
    push_json_str(buf, sink);
    buf.extend_from_slice(b",\"reason\":");
    push_json_str(buf, r.reason);
    buf.extend_from_slice(b",\"event_id\":");
    push_json_str(buf, &r.event.event_id);
    buf.extend_from_slice(b",\"event\":");
    Format::Json.encode(r.event, buf);
    buf.extend_from_slice(b"}\n");
}

/// Shared so a sink can hold it next to its client.
pub type SharedDeadLetter = Arc<DeadLetter>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn event(n: i64) -> Event {
        Event {
            seq: n,
            event_id: format!("activity:org-1:a{n}"),
            kind: EventKind::Activity,
            org_id: "org-1".into(),
            occurred_at: "2026-12-05T08:00:00Z".into(),
            observed_at: "2026-12-05T08:00:01Z".into(),
            payload: format!(r#"{{"id":"a{n}","type":"brand_new_type","extra":{{"x":1}}}}"#),
        }
    }

    #[tokio::test]
    async fn refused_events_are_appended_as_replayable_lines_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dead.ndjson");
        let metrics = Metrics::new();
        let dl = DeadLetter::open(&path, "es", &metrics).unwrap();
        let (a, b) = (event(1), event(2));
        dl.write(
            &[
                Refused {
                    event: &a,
                    reason: "mapper_parsing_exception: \"quoted\"",
                },
                Refused {
                    event: &b,
                    reason: "second",
                },
            ],
            "item_rejected",
        )
        .await
        .unwrap();
        dl.write(
            &[Refused {
                event: &a,
                reason: "again",
            }],
            "item_rejected",
        )
        .await
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["sink"], "es");
        assert_eq!(lines[0]["reason"], "mapper_parsing_exception: \"quoted\"");
        assert_eq!(lines[1]["event_id"], "activity:org-1:a2");
        // The envelope carries the activity verbatim, unknown fields and type included.
        assert_eq!(lines[1]["event"]["activity"]["type"], "brand_new_type");
        assert_eq!(lines[1]["event"]["activity"]["extra"]["x"], 1);
        assert_eq!(lines[2]["reason"], "again");
        let n = metrics
            .sink_events_dead_lettered
            .with_label_values(&["es", "item_rejected"])
            .get();
        assert_eq!(n, 3);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o007, 0, "not world-accessible: {mode:o}");
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_written_is_a_transient_error_not_a_loss() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone/dead.ndjson");
        let metrics = Metrics::new();
        let dl = DeadLetter::open(&path, "es", &metrics).unwrap();
        std::fs::remove_dir_all(dir.path().join("gone")).unwrap();
        let a = event(1);
        let err = dl
            .write(
                &[Refused {
                    event: &a,
                    reason: "r",
                }],
                "item_rejected",
            )
            .await
            .unwrap_err();
        assert!(matches!(err, SinkError::Transient { .. }), "{err:?}");
        assert!(err.to_string().contains("dead-letter file"), "{err}");
        assert_eq!(
            metrics
                .sink_events_dead_lettered
                .with_label_values(&["es", "item_rejected"])
                .get(),
            0
        );
    }

    #[test]
    fn validate_names_the_key() {
        let at = KeyPath::sink(0, "es");
        let e = validate(&at, "dead_letter_file", Some(Path::new(""))).unwrap_err();
        assert!(e.to_string().contains("dead_letter_file"), "{e}");
        let e = validate(&at, "dead_letter_file", Some(Path::new("/tmp"))).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
        assert!(validate(&at, "dead_letter_file", None).is_ok());
    }
}
