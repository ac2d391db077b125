//! One object, streamed: records are encoded and compressed as they are read, and the
//! compressed bytes go out as a single put while they stay under one part (`PART_BYTES`), or
//! as a multipart upload once they grow past it — so memory per object stays about two parts
//! whatever `object_max_bytes` is. A failed multipart upload is aborted (no parts left behind).
//! Where the store has the `MultipartStore` interface (S3, Azure, GCS), the upload's id is
//! recorded first (`UploadLog`: the sink's in-flight marker) so that a run killed mid-upload
//! can be aborted by the next one instead of staying in the bucket as garbage.

use std::io::Write;
use std::sync::Arc;

use ::object_store::multipart::{MultipartStore, PartId};
use ::object_store::path::Path as StorePath;
use ::object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use async_trait::async_trait;
use bytes::Bytes;

use super::config::Compression;
use crate::event::Event;
use crate::format::Format;

/// Compressed bytes handed to the store at a time; S3 parts must be at least 5 MiB.
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts in flight at once for one object.
const PARTS_IN_FLIGHT: usize = 2;

enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    Plain(Vec<u8>),
}

impl Encoder {
    fn new(c: Compression) -> std::io::Result<Encoder> {
        Ok(match c {
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3)?),
            Compression::None => Encoder::Plain(Vec::new()),
        })
    }

    fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.write_all(b),
            Encoder::Zstd(e) => e.write_all(b),
            Encoder::Plain(v) => v.write_all(b),
        }
    }

    /// The compressed bytes produced so far (the caller may take them).
    fn output(&mut self) -> &mut Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Zstd(e) => e.get_mut(),
            Encoder::Plain(v) => v,
        }
    }

    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Plain(v) => Ok(v),
        }
    }
}

/// Where multipart upload ids are recorded while their upload is under way.
#[async_trait]
pub trait UploadLog: Send + Sync {
    /// Before the first part of upload `id` to `path` goes up.
    async fn started(&self, path: &StorePath, id: &str) -> Result<(), ::object_store::Error>;
    /// After upload `id` was completed (or aborted).
    async fn ended(&self, path: &StorePath, id: &str) -> Result<(), ::object_store::Error>;
}

/// Where an object goes: the store, and its multipart interface with the log of uploads when
/// it has one (a local directory has not).
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub store: &'a Arc<dyn ObjectStore>,
    pub recorded: Option<(&'a Arc<dyn MultipartStore>, &'a dyn UploadLog)>,
}

/// A multipart upload under way.
enum Upload<'a> {
    Recorded {
        store: &'a Arc<dyn MultipartStore>,
        log: &'a dyn UploadLog,
        path: StorePath,
        id: String,
        parts: Vec<PartId>,
    },
    Plain(WriteMultipart),
}

impl<'a> Upload<'a> {
    async fn begin(
        target: Target<'a>,
        path: &StorePath,
    ) -> Result<Upload<'a>, ::object_store::Error> {
        let Some((store, log)) = target.recorded else {
            return Ok(Upload::Plain(WriteMultipart::new_with_chunk_size(
                target.store.put_multipart(path).await?,
                PART_BYTES,
            )));
        };
        let id = store.create_multipart(path).await?;
        if let Err(e) = log.started(path, &id).await {
            let _ = store.abort_multipart(path, &id).await;
            return Err(e);
        }
        Ok(Upload::Recorded {
            store,
            log,
            path: path.clone(),
            id,
            parts: Vec::new(),
        })
    }

    /// Sends one part; on failure the upload is aborted.
    async fn part(mut self, data: Bytes) -> Result<Upload<'a>, ::object_store::Error> {
        match &mut self {
            Upload::Recorded {
                store,
                path,
                id,
                parts,
                ..
            } => match store.put_part(path, id, parts.len(), data.into()).await {
                Ok(p) => parts.push(p),
                Err(e) => {
                    let _ = store.abort_multipart(path, id).await;
                    return Err(e);
                }
            },
            Upload::Plain(mp) => {
                if let Err(e) = mp.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    self.abort().await;
                    return Err(e);
                }
                mp.put(data);
            }
        }
        Ok(self)
    }

    async fn finish(self) -> Result<(), ::object_store::Error> {
        match self {
            Upload::Recorded {
                store,
                log,
                path,
                id,
                parts,
            } => {
                if let Err(e) = store.complete_multipart(&path, &id, parts).await {
                    let _ = store.abort_multipart(&path, &id).await;
                    return Err(e);
                }
                log.ended(&path, &id).await
            }
            // `finish` aborts the upload itself when a part or the completion fails.
            Upload::Plain(mp) => mp.finish().await.map(|_| ()),
        }
    }

    async fn abort(self) {
        match self {
            Upload::Recorded {
                store, path, id, ..
            } => {
                let _ = store.abort_multipart(&path, &id).await;
            }
            Upload::Plain(mp) => {
                let _ = mp.abort().await;
            }
        }
    }
}

fn io_error(e: std::io::Error) -> ::object_store::Error {
    ::object_store::Error::Generic {
        store: "encoder",
        source: Box::new(e),
    }
}

/// Writes `events` as one object at `path`; returns the stored (compressed) size once the
/// store has acknowledged the object.
pub async fn write_object<'a>(
    target: Target<'_>,
    path: &StorePath,
    events: impl Iterator<Item = &'a Event>,
    format: Format,
    compression: Compression,
) -> Result<u64, ::object_store::Error> {
    let mut enc = Encoder::new(compression).map_err(io_error)?;
    let mut line = Vec::with_capacity(4096);
    let mut multipart: Option<Upload> = None;
    let mut stored = 0u64;
    for event in events {
        line.clear();
        format.encode(event, &mut line);
        line.push(b'\n');
        enc.write(&line).map_err(io_error)?;
        if enc.output().len() >= PART_BYTES {
            let chunk = std::mem::take(enc.output());
            stored += chunk.len() as u64;
            let mp = match multipart.take() {
                Some(mp) => mp,
                None => Upload::begin(target, path).await?,
            };
            multipart = Some(mp.part(Bytes::from(chunk)).await?);
        }
    }
    let rest = match enc.finish() {
        Ok(rest) => rest,
        Err(e) => {
            if let Some(mp) = multipart.take() {
                mp.abort().await;
            }
            return Err(io_error(e));
        }
    };
    stored += rest.len() as u64;
    match multipart {
        None => {
            target.store.put(path, Bytes::from(rest).into()).await?;
        }
        Some(mut mp) => {
            if !rest.is_empty() {
                mp = mp.part(Bytes::from(rest)).await?;
            }
            mp.finish().await?;
        }
    }
    Ok(stored)
}

/// Stores `body` (a whole object already built, e.g. a Parquet file) at `path`: one put up to
/// one part, else a multipart upload of `PART_BYTES` parts (aborted if a part fails).
pub async fn put_bytes(
    target: Target<'_>,
    path: &StorePath,
    body: Vec<u8>,
) -> Result<(), ::object_store::Error> {
    if body.len() <= PART_BYTES {
        target.store.put(path, Bytes::from(body).into()).await?;
        return Ok(());
    }
    let body = Bytes::from(body);
    let mut mp = Upload::begin(target, path).await?;
    let mut at = 0;
    while at < body.len() {
        let end = (at + PART_BYTES).min(body.len());
        mp = mp.part(body.slice(at..end)).await?;
        at = end;
    }
    mp.finish().await
}
