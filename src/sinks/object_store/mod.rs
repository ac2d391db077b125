//! `object_store` sink (issue 14): NDJSON objects (gzip, zstd or plain) in S3, GCS, Azure Blob
//! or a local directory, through the Arrow project's `object_store` crate (no hand-written
//! signing). Each delivered batch becomes the objects of one flush: events grouped by the
//! `partition` template, cut at `object_max_events` / `object_max_bytes`, each named after
//! the outbox seqs it holds (`layout`). `deliver` returns only after the store acknowledged
//! every object, so the position never passes an unstored event.
//!
//! Exactly-once objects: before uploading, the sink records the seq ranges of the batch in a
//! small marker object (`<prefix>/_ch_audit_exporter/<sink>.inflight`). After a crash,
//! dispatch may hand over a longer batch starting at the same seq; the recorded ranges are
//! planned first, exactly as before, so the objects already written are rewritten under the
//! same names instead of being joined by overlapping ones. Hive readers (Athena, Spark) skip
//! `_`-prefixed directories. The marker also holds the ids of multipart uploads under way
//! (`upload::UploadLog`); the first delivery after a restart aborts those a killed run left.
//!
//! Security Lake mode (`encoding = "parquet"`, `security_lake.rs`): the events of a range are
//! grouped by OCSF class and event day instead of the `partition` template, each group written
//! as zstd Parquet with nested OCSF columns (`ocsf_parquet.rs`), rows ordered by time, under
//! the custom-source layout; names, the marker and redelivery work as above.

pub mod config;
mod errors;
pub mod layout;
mod marker;
mod ocsf_parquet;
pub mod security_lake;
mod upload;

pub use config::ObjectStoreConfig;

use std::sync::Arc;
use std::time::Instant;

use ::object_store::path::Path as StorePath;
use ::object_store::{ObjectStore, ObjectStoreExt};
use async_trait::async_trait;
use serde::Deserialize;

use self::config::Compression;
use self::layout::Template;
use self::marker::{Inflight, RecordedUpload};
use self::security_lake::SecurityLakeConfig;
use super::{BuildContext, Sink, SinkError};
use crate::event::Event;
use crate::format::Format;
use crate::metrics::Metrics;

/// The two attributes of an OCSF record that place it in Security Lake.
#[derive(Debug, Default, Deserialize)]
struct OcsfKey {
    #[serde(default)]
    class_uid: i64,
    #[serde(default)]
    time: i64,
}

pub struct ObjectStoreSink {
    name: String,
    format: Format,
    store: Arc<dyn ObjectStore>,
    /// The store's multipart interface (uploads recorded in the marker), if it has one.
    multipart: Option<config::Multipart>,
    /// Multipart uploads under way (also in the marker).
    uploads: std::sync::Mutex<Vec<RecordedUpload>>,
    /// The url as configured (no secrets in it), for messages.
    shown: String,
    prefix: String,
    template: Template,
    compression: Compression,
    max_events: usize,
    max_bytes: u64,
    /// Security Lake mode (`encoding = "parquet"`).
    lake: Option<SecurityLakeConfig>,
    marker: StorePath,
    /// The marker's content as last read or written; `None` until read after start.
    inflight: Option<Inflight>,
    metrics: Arc<Metrics>,
}

impl ObjectStoreSink {
    pub fn new(cfg: &ObjectStoreConfig, ctx: BuildContext<'_>) -> anyhow::Result<Self> {
        let (store, multipart, prefix) = cfg.stores()?;
        let template =
            Template::parse(&cfg.partition).map_err(|e| anyhow::anyhow!("partition: {e}"))?;
        let safe: String = ctx
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let prefix = prefix.to_string();
        let marker = match prefix.as_str() {
            "" => format!("{}/{safe}.inflight", marker_dir(cfg)),
            p => format!("{p}/{}/{safe}.inflight", marker_dir(cfg)),
        };
        Ok(ObjectStoreSink {
            name: ctx.name.to_string(),
            format: ctx.format,
            store,
            multipart,
            uploads: std::sync::Mutex::new(Vec::new()),
            shown: cfg.url.clone(),
            prefix,
            template,
            compression: cfg.compression_kind(),
            max_events: cfg.object_max_events,
            max_bytes: cfg.object_max_bytes,
            lake: cfg.security_lake.clone(),
            marker: StorePath::from(marker),
            inflight: None,
            metrics: ctx.metrics,
        })
    }

    fn extension(&self) -> String {
        let base = if self.format.is_json() {
            "ndjson"
        } else {
            "log"
        };
        format!("{base}{}", self.compression.suffix())
    }

    /// Counts the failure and turns it into what dispatch needs.
    fn failed(&self, err: &::object_store::Error) -> SinkError {
        let (reason, e) = errors::classify(err, &self.shown);
        self.metrics
            .sink_object_failures
            .with_label_values(&[&self.name, reason.as_str()])
            .inc();
        e
    }

    /// The seq ranges `batch` is delivered in: those recorded for a batch starting at the same
    /// seq (an interrupted delivery) as far as they fit, then the rest as one range.
    fn ranges(&self, batch: &[Event]) -> Vec<(i64, i64)> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Vec::new();
        };
        let recorded = self.inflight.as_ref().map(|i| &i.ranges[..]).unwrap_or(&[]);
        let mut out = Vec::new();
        if recorded.first().is_some_and(|r| r.0 == first.seq) {
            out.extend(recorded.iter().take_while(|r| r.1 <= last.seq).copied());
            if out.len() < recorded.len() {
                tracing::warn!(sink = %self.name, "the batch is shorter than the interrupted one (batch_max_events lowered?): some objects may hold events another object also holds");
            }
        }
        let done = out.last().map_or(first.seq - 1, |r| r.1);
        if done < last.seq {
            let start = batch
                .iter()
                .find(|e| e.seq > done)
                .map_or(last.seq, |e| e.seq);
            out.push((start, last.seq));
        }
        out
    }

    /// Counts one stored object.
    fn stored(&self, started: Instant, bytes: u64) {
        let labels = [self.name.as_str()];
        self.metrics
            .sink_object_upload_duration
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .sink_objects_written
            .with_label_values(&labels)
            .inc();
        self.metrics
            .sink_object_bytes_written
            .with_label_values(&labels)
            .inc_by(bytes);
    }

    /// Security Lake mode: the range's events as Parquet objects, one per OCSF class and
    /// event day (cut at `object_max_events` / `object_max_bytes`), rows ordered by time.
    async fn write_lake_range(
        &self,
        lake: &SecurityLakeConfig,
        events: &[Event],
    ) -> Result<(), SinkError> {
        let mut scratch = Vec::with_capacity(4096);
        let mut times = Vec::with_capacity(events.len());
        let plan = layout::plan(events, self.max_events, self.max_bytes, |e| {
            scratch.clear();
            Format::Ocsf.encode(e, &mut scratch);
            let k: OcsfKey = serde_json::from_slice(&scratch).unwrap_or_default();
            times.push(k.time);
            let dir = lake.partition(k.class_uid, k.time);
            ((k.class_uid, dir), scratch.len() as u64 + 1)
        });
        for object in plan {
            let (class_uid, dir) = &object.partition;
            let path = StorePath::from(object.name_in(events, &self.prefix, dir, "parquet"));
            let mut rows = object.events.clone();
            rows.sort_by_key(|&i| (times[i], events[i].seq));
            let started = Instant::now();
            let body =
                parquet_object(*class_uid, lake.row_group_rows, &rows, events).map_err(|e| {
                    self.failed(&::object_store::Error::Generic {
                        store: "parquet",
                        source: Box::new(e),
                    })
                })?;
            let size = body.len() as u64;
            upload::put_bytes(self.upload_target(), &path, body)
                .await
                .map_err(|e| self.failed(&e))?;
            self.stored(started, size);
        }
        Ok(())
    }

    async fn write_range(&self, events: &[Event]) -> Result<(), SinkError> {
        if let Some(lake) = &self.lake {
            return self.write_lake_range(lake, events).await;
        }
        let mut scratch = Vec::with_capacity(4096);
        let format = self.format;
        let plan = layout::plan(events, self.max_events, self.max_bytes, |e| {
            scratch.clear();
            format.encode(e, &mut scratch);
            (self.template.render(e), scratch.len() as u64 + 1)
        });
        let ext = self.extension();
        for object in plan {
            let path = StorePath::from(object.name(events, &self.prefix, &ext));
            let started = Instant::now();
            let stored = upload::write_object(
                self.upload_target(),
                &path,
                object.events.iter().map(|&i| &events[i]),
                self.format,
                self.compression,
            )
            .await
            .map_err(|e| self.failed(&e))?;
            self.stored(started, stored);
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for ObjectStoreSink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.inflight.is_none() {
            let read = self.read_marker().await?;
            self.abort_recorded(&read.uploads).await?;
            self.inflight = Some(read);
        }
        let ranges = self.ranges(batch);
        self.write_marker(Inflight {
            ranges: ranges.clone(),
            uploads: Vec::new(),
        })
        .await?;
        let mut rest = batch;
        for (_, end) in ranges {
            let n = rest.iter().take_while(|e| e.seq <= end).count();
            let (range, after) = rest.split_at(n);
            self.write_range(range).await?;
            rest = after;
        }
        Ok(())
    }
}

/// `validate`'s check: a probe object put and deleted again (`write`) or a listing of the
/// prefix (`list`); the answer names the url, errors say why as `deliver` would.
pub async fn probe(cfg: &ObjectStoreConfig) -> Result<String, String> {
    let (store, prefix) = cfg.store().map_err(|e| format!("{}: {e:#}", cfg.url))?;
    let why = |e: &::object_store::Error| errors::classify(e, &cfg.url).1.to_string();
    if cfg.validate_probe == "list" {
        store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| why(&e))?;
        return Ok(format!("{} listable", cfg.url));
    }
    let dir = match prefix.as_ref() {
        "" => marker_dir(cfg),
        p => format!("{p}/{}", marker_dir(cfg)),
    };
    let path = StorePath::from(format!("{dir}/validate-probe-{}", uuid::Uuid::new_v4()));
    store
        .put(&path, bytes::Bytes::from_static(b"probe\n").into())
        .await
        .map_err(|e| why(&e))?;
    store.delete(&path).await.map_err(|e| why(&e))?;
    Ok(format!(
        "{} writable (probe object put and deleted)",
        cfg.url
    ))
}

/// The directory (below the url's prefix) of the in-flight marker and the validate probe: in
/// Security Lake mode inside the custom source's prefix, the only place its role may write.
fn marker_dir(cfg: &ObjectStoreConfig) -> String {
    match &cfg.security_lake {
        Some(lake) if cfg.encoding == "parquet" => lake.marker_dir(),
        _ => "_ch_audit_exporter".to_string(),
    }
}

/// One Parquet object of class `class_uid`: `rows` (indexes into `events`, in row order)
/// encoded as OCSF, parsed and built into columns `CHUNK_ROWS` at a time.
fn parquet_object(
    class_uid: i64,
    row_group_rows: usize,
    rows: &[usize],
    events: &[Event],
) -> Result<Vec<u8>, arrow_schema::ArrowError> {
    let mut file = ocsf_parquet::ParquetFile::new(class_uid, row_group_rows)?;
    let mut line = Vec::with_capacity(4096);
    let mut records = Vec::with_capacity(ocsf_parquet::CHUNK_ROWS);
    for chunk in rows.chunks(ocsf_parquet::CHUNK_ROWS) {
        records.clear();
        for &i in chunk {
            line.clear();
            Format::Ocsf.encode(&events[i], &mut line);
            records.push(serde_json::from_slice(&line).unwrap_or_default());
        }
        file.write(&records)?;
    }
    file.finish()
}

#[cfg(test)]
mod tests;
