//! One object, streamed: records are encoded and compressed as they are read, and the
//! compressed bytes go out as a single put while they stay under one part (`PART_BYTES`), or
//! as a multipart upload once they grow past it — so memory per object stays about two parts
//! whatever `object_max_bytes` is. A failed multipart upload is aborted (no parts left behind).

use std::io::Write;
use std::sync::Arc;

use ::object_store::path::Path as StorePath;
use ::object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
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

fn io_error(e: std::io::Error) -> ::object_store::Error {
    ::object_store::Error::Generic {
        store: "encoder",
        source: Box::new(e),
    }
}

/// Writes `events` as one object at `path`; returns the stored (compressed) size once the
/// store has acknowledged the object.
pub async fn write_object<'a>(
    store: &Arc<dyn ObjectStore>,
    path: &StorePath,
    events: impl Iterator<Item = &'a Event>,
    format: Format,
    compression: Compression,
) -> Result<u64, ::object_store::Error> {
    let mut enc = Encoder::new(compression).map_err(io_error)?;
    let mut line = Vec::with_capacity(4096);
    let mut multipart: Option<WriteMultipart> = None;
    let mut stored = 0u64;
    for event in events {
        line.clear();
        format.encode(event, &mut line);
        line.push(b'\n');
        enc.write(&line).map_err(io_error)?;
        if enc.output().len() >= PART_BYTES {
            let chunk = std::mem::take(enc.output());
            stored += chunk.len() as u64;
            let mp = match &mut multipart {
                Some(mp) => mp,
                None => multipart.insert(WriteMultipart::new_with_chunk_size(
                    store.put_multipart(path).await?,
                    PART_BYTES,
                )),
            };
            if let Err(e) = mp.wait_for_capacity(PARTS_IN_FLIGHT).await {
                if let Some(mp) = multipart.take() {
                    let _ = mp.abort().await;
                }
                return Err(e);
            }
            mp.put(Bytes::from(chunk));
        }
    }
    let rest = match enc.finish() {
        Ok(rest) => rest,
        Err(e) => {
            if let Some(mp) = multipart.take() {
                let _ = mp.abort().await;
            }
            return Err(io_error(e));
        }
    };
    stored += rest.len() as u64;
    match multipart {
        None => {
            store.put(path, Bytes::from(rest).into()).await?;
        }
        Some(mut mp) => {
            mp.put(Bytes::from(rest));
            // `finish` aborts the upload itself when a part or the completion fails.
            mp.finish().await?;
        }
    }
    Ok(stored)
}

/// Stores `body` (a whole object already built, e.g. a Parquet file) at `path`: one put up to
/// one part, else a multipart upload of `PART_BYTES` parts (aborted if a part fails).
pub async fn put_bytes(
    store: &Arc<dyn ObjectStore>,
    path: &StorePath,
    body: Vec<u8>,
) -> Result<(), ::object_store::Error> {
    if body.len() <= PART_BYTES {
        store.put(path, Bytes::from(body).into()).await?;
        return Ok(());
    }
    let body = Bytes::from(body);
    let mut mp = WriteMultipart::new_with_chunk_size(store.put_multipart(path).await?, PART_BYTES);
    let mut at = 0;
    while at < body.len() {
        if let Err(e) = mp.wait_for_capacity(PARTS_IN_FLIGHT).await {
            let _ = mp.abort().await;
            return Err(e);
        }
        let end = (at + PART_BYTES).min(body.len());
        mp.put(body.slice(at..end));
        at = end;
    }
    mp.finish().await?;
    Ok(())
}
