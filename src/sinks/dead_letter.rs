//! Dead-letter files (`dead_letter_path`): where a sink puts events its destination refused for
//! good and that must not be sent again as they are (a webhook 422, an Elasticsearch `_bulk`
//! item with a mapping error, OTLP records counted in `rejected_log_records`). One NDJSON line
//! per event — when, which sink, why, the event id, and the record exactly as the sink encodes
//! it (a JSON value, or a JSON string for `cef`) — appended and fsynced before the sink reports
//! the batch done, so nothing refused is lost and every line can be replayed
//! (`jq -c .record file | …`). Counted in `clickhouse_audit_sink_events_dead_lettered_total`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

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
    format: Format,
    counter: IntCounterVec,
}

/// One refused event and why.
pub struct Refused<'a> {
    pub event: &'a Event,
    /// The destination's own words (item error type and reason, partial-success message).
    pub reason: &'a str,
}

/// Checks a `dead_letter_path` key (`None`: not configured).
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
    /// Creates the file's parent directories, so a path that cannot be made fails at startup;
    /// the file itself (mode 0640) appears with the first refused event. Records are encoded
    /// in `format`, the sink's own.
    pub fn open(
        path: &Path,
        sink: &str,
        format: Format,
        metrics: &Metrics,
    ) -> anyhow::Result<DeadLetter> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "creating the directory of dead-letter file {}",
                    path.display()
                )
            })?;
        }
        Ok(DeadLetter {
            path: path.to_owned(),
            sink: sink.to_owned(),
            format,
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
            encode_line(&mut buf, &at, &self.sink, self.format, r);
        }
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
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
        tracing::error!(
            sink = %self.sink,
            events = refused.len(),
            reason = reason_label,
            first_event_id = %refused[0].event.event_id,
            first_reason = refused[0].reason,
            dead_letter_path = %self.path.display(),
            "the destination refused events for good; written to the dead-letter file, moving on"
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

fn encode_line(buf: &mut Vec<u8>, at: &str, sink: &str, format: Format, r: &Refused<'_>) {
    buf.extend_from_slice(b"{\"dead_lettered_at\":");
    push_json_str(buf, at);
    buf.extend_from_slice(b",\"sink\":");
    push_json_str(buf, sink);
    buf.extend_from_slice(b",\"reason\":");
    push_json_str(buf, r.reason);
    buf.extend_from_slice(b",\"event_id\":");
    push_json_str(buf, &r.event.event_id);
    buf.extend_from_slice(b",\"format\":");
    push_json_str(buf, format.as_str());
    buf.extend_from_slice(b",\"record\":");
    if !format.is_json() {
        let mut line = Vec::new();
        format.encode(r.event, &mut line);
        push_json_str(buf, &String::from_utf8_lossy(&line));
    } else {
        format.encode(r.event, buf);
    }
    buf.extend_from_slice(b"}\n");
}

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
        let dl = DeadLetter::open(&path, "es", Format::Json, &metrics).unwrap();
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
        assert_eq!(lines[1]["format"], "json");
        assert_eq!(lines[1]["record"]["activity"]["type"], "brand_new_type");
        assert_eq!(lines[1]["record"]["activity"]["extra"]["x"], 1);
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
        let dl = DeadLetter::open(&path, "es", Format::Json, &metrics).unwrap();
        // A file where the directory should be: neither the directory nor the file can be made.
        std::fs::remove_dir_all(dir.path().join("gone")).unwrap();
        std::fs::write(dir.path().join("gone"), b"").unwrap();
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

    #[tokio::test]
    async fn cef_records_are_kept_as_json_strings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.ndjson");
        let metrics = Metrics::new();
        let dl = DeadLetter::open(&path, "s", Format::Cef, &metrics).unwrap();
        assert!(!path.exists(), "created with the first refused event");
        let a = event(1);
        dl.write(
            &[Refused {
                event: &a,
                reason: "r",
            }],
            "rejected",
        )
        .await
        .unwrap();
        let line: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
        assert!(
            line["record"].as_str().unwrap().starts_with("CEF:0|"),
            "{line}"
        );
    }

    #[test]
    fn validate_names_the_key() {
        let at = KeyPath::sink(0, "es");
        let e = validate(&at, "dead_letter_path", Some(Path::new(""))).unwrap_err();
        assert!(e.to_string().contains("dead_letter_path"), "{e}");
        let e = validate(&at, "dead_letter_path", Some(Path::new("/tmp"))).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
        assert!(validate(&at, "dead_letter_path", None).is_ok());
    }
}
