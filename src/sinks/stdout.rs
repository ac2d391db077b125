//! `stdout` sink: NDJSON, one event per line, flushed per batch. A closed pipe (EPIPE) is a
//! fatal error for this sink (it stops; the others go on), never a panic or a retry loop.

use async_trait::async_trait;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{Sink, SinkError};
use crate::event::Event;
use crate::format::Format;
use crate::values::{ConfigError, KeyPath};

/// `type = "stdout"` has no keys of its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {}

impl super::SinkSpec for StdoutConfig {
    fn validate(&self, _at: &KeyPath) -> Result<(), ConfigError> {
        Ok(())
    }

    fn build(&self, ctx: super::BuildContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        Ok(Box::new(StdoutSink::new(ctx.format)))
    }
}

pub struct StdoutSink {
    format: Format,
    out: tokio::io::Stdout,
    buf: Vec<u8>,
}

impl StdoutSink {
    pub fn new(format: Format) -> Self {
        StdoutSink {
            format,
            out: tokio::io::stdout(),
            buf: Vec::with_capacity(64 * 1024),
        }
    }
}

/// Encodes a batch as NDJSON into `buf` (cleared first).
pub fn encode_ndjson(format: Format, batch: &[Event], buf: &mut Vec<u8>) {
    buf.clear();
    for event in batch {
        format.encode(event, buf);
        buf.push(b'\n');
    }
}

#[async_trait]
impl Sink for StdoutSink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        encode_ndjson(self.format, batch, &mut self.buf);
        let res = async {
            self.out.write_all(&self.buf).await?;
            self.out.flush().await
        }
        .await;
        match res {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(SinkError::Fatal(
                "stdout is closed (EPIPE): the reading process went away".into(),
            )),
            Err(e) => Err(SinkError::transient(format!("writing to stdout: {e}"))),
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.out
            .flush()
            .await
            .map_err(|e| SinkError::transient(format!("flushing stdout: {e}")))
    }
}
