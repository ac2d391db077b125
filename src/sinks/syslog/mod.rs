//! `syslog` sink: RFC 5424 messages (`message.rs`) over UDP (RFC 5426, one message per datagram),
//! TCP (RFC 6587 octet counting or newline framing) or TLS (RFC 5425). Settings in `config.rs`.
//!
//! Plain TCP syslog has no acknowledgement: a write that succeeds may still be lost when the
//! receiver goes away before reading it. So before each batch the connection is checked (the
//! receiver never talks back, so a readable socket means EOF or a reset), and when it turns out
//! broken — there, or by a failed write — the next connection first carries the last batch
//! written on the old one again, then the current one. At-least-once, with duplicates bounded
//! by one batch (rsyslog's omfwd uses the same check). A batch whose write fails returns
//! `Transient`, and dispatch hands it back.
//!
//! UDP cannot tell whether anything arrived; a message larger than `max_message_bytes` is cut on
//! a UTF-8 boundary, logged and counted.

pub mod config;
pub mod message;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

pub use self::config::{Framing, Protocol, SyslogConfig};
use self::message::{Header, sanitize_header_field, utf8_prefix_len};
use super::{Sink, SinkError};
use crate::event::Event;
use crate::format::Format;
use crate::metrics::Metrics;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

pub struct SyslogSink {
    name: String,
    format: Format,
    header: Header,
    protocol: Protocol,
    framing: Framing,
    address: String,
    timeout: Duration,
    max_message_bytes: usize,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
    conn: Option<Box<dyn Stream>>,
    udp: Option<UdpSocket>,
    /// The framed bytes of the last batch written on `conn`.
    last: Vec<u8>,
    /// `conn` broke after `last` was written: send `last` again on the next connection.
    resend_last: bool,
    buf: Vec<u8>,
    msg: Vec<u8>,
    scratch: Vec<u8>,
    metrics: Arc<Metrics>,
}

impl SyslogSink {
    /// Prepares the sink; TLS settings (`ca_file`) are read now so a bad file fails at startup.
    /// Connections open on the first delivery.
    pub fn new(
        cfg: &SyslogConfig,
        name: &str,
        format: Format,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<SyslogSink> {
        let tls = if cfg.protocol == Protocol::Tls {
            let config = super::tls::client_config(cfg.ca_file.as_deref())?;
            Some((
                tokio_rustls::TlsConnector::from(config),
                super::tls::server_name(&cfg.address)?,
            ))
        } else {
            None
        };
        let hostname = match &cfg.hostname {
            Some(h) => h.clone(),
            None => sanitize_header_field(&host_name(), 255),
        };
        Ok(SyslogSink {
            name: name.to_string(),
            format,
            header: Header {
                facility: cfg.facility,
                severities: cfg.severity,
                hostname,
                app_name: cfg.app_name.clone(),
                procid: std::process::id().to_string(),
                sd_id: cfg.sd_id.clone(),
            },
            protocol: cfg.protocol,
            framing: cfg.framing,
            address: cfg.address.clone(),
            timeout: cfg.timeout,
            max_message_bytes: usize::try_from(cfg.max_message_bytes).unwrap_or(65507),
            tls,
            conn: None,
            udp: None,
            last: Vec::new(),
            resend_last: false,
            buf: Vec::with_capacity(256 * 1024),
            msg: Vec::new(),
            scratch: Vec::new(),
            metrics,
        })
    }

    /// Frames every event of the batch into `buf`.
    fn encode_stream(&mut self, batch: &[Event]) {
        self.buf.clear();
        for event in batch {
            self.msg.clear();
            message::encode(
                &self.header,
                self.format,
                event,
                &mut self.scratch,
                &mut self.msg,
            );
            match self.framing {
                Framing::OctetCounting => {
                    self.buf
                        .extend_from_slice(self.msg.len().to_string().as_bytes());
                    self.buf.push(b' ');
                    self.buf.extend_from_slice(&self.msg);
                }
                Framing::Newline => {
                    self.buf.extend_from_slice(&self.msg);
                    self.buf.push(b'\n');
                }
            }
        }
    }

    async fn connect(&self) -> Result<Box<dyn Stream>, SinkError> {
        let what = if self.tls.is_some() { "tls" } else { "tcp" };
        let fail = |e: &dyn std::fmt::Display| {
            SinkError::transient(format!(
                "syslog {what}://{}: cannot connect: {e}",
                self.address
            ))
        };
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(&self.address))
            .await
            .map_err(|_| fail(&"timed out"))?
            .map_err(|e| fail(&e))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some((connector, server_name)) => {
                let tls =
                    tokio::time::timeout(self.timeout, connector.connect(server_name.clone(), tcp))
                        .await
                        .map_err(|_| fail(&"TLS handshake timed out"))?
                        .map_err(|e| fail(&format!("TLS handshake: {e}")))?;
                Ok(Box::new(tls))
            }
        }
    }

    async fn write(&mut self, which: Which) -> Result<(), SinkError> {
        let (conn, bytes) = match (&mut self.conn, which) {
            (Some(c), Which::Last) => (c, &self.last),
            (Some(c), Which::Current) => (c, &self.buf),
            (None, _) => return Err(SinkError::transient("syslog: not connected")),
        };
        let res = tokio::time::timeout(self.timeout, async {
            conn.write_all(bytes).await?;
            conn.flush().await
        })
        .await;
        let err = match res {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "write timed out".to_string(),
        };
        self.conn = None;
        self.resend_last = true;
        Err(SinkError::transient(format!(
            "syslog {}: connection lost while sending: {err}; the batch will be sent again",
            self.address
        )))
    }

    async fn deliver_stream(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        self.encode_stream(batch);
        if let Some(conn) = &mut self.conn
            && !still_open(conn)
        {
            tracing::info!(sink = %self.name, address = %self.address, "syslog receiver closed the connection; reconnecting and re-sending the last batch");
            self.conn = None;
            self.resend_last = true;
        }
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
            if self.resend_last && !self.last.is_empty() {
                self.write(Which::Last).await?;
            }
            self.resend_last = false;
        }
        self.write(Which::Current).await?;
        std::mem::swap(&mut self.last, &mut self.buf);
        Ok(())
    }

    async fn deliver_udp(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        if self.udp.is_none() {
            self.udp = Some(self.bind_udp().await?);
        }
        for event in batch {
            self.msg.clear();
            message::encode(
                &self.header,
                self.format,
                event,
                &mut self.scratch,
                &mut self.msg,
            );
            let len = utf8_prefix_len(&self.msg, self.max_message_bytes);
            if len < self.msg.len() {
                self.metrics
                    .sink_messages_truncated
                    .with_label_values(&[&self.name])
                    .inc();
                tracing::warn!(sink = %self.name, event_id = %event.event_id, bytes = self.msg.len(), max_message_bytes = self.max_message_bytes, "syslog message cut to fit one UDP datagram");
            }
            let Some(socket) = &self.udp else { break };
            if let Err(e) = socket.send(&self.msg[..len]).await {
                self.udp = None;
                return Err(SinkError::transient(format!(
                    "syslog udp://{}: send failed: {e}",
                    self.address
                )));
            }
        }
        Ok(())
    }

    async fn bind_udp(&self) -> Result<UdpSocket, SinkError> {
        let fail = |e: &dyn std::fmt::Display| {
            SinkError::transient(format!("syslog udp://{}: {e}", self.address))
        };
        let target = tokio::net::lookup_host(&self.address)
            .await
            .map_err(|e| fail(&e))?
            .next()
            .ok_or_else(|| fail(&"no address"))?;
        let local = if target.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(local).await.map_err(|e| fail(&e))?;
        socket.connect(target).await.map_err(|e| fail(&e))?;
        Ok(socket)
    }
}

#[derive(Clone, Copy)]
enum Which {
    Last,
    Current,
}

/// Whether the receiver still holds the connection open. Syslog receivers never send, so a
/// read that completes at once means EOF or a reset (TLS: close_notify); TLS session tickets
/// are consumed by the TLS layer and read as "nothing yet".
fn still_open(conn: &mut Box<dyn Stream>) -> bool {
    let mut buf = [0u8; 1024];
    for _ in 0..64 {
        match conn.read(&mut buf).now_or_never() {
            None => return true,
            Some(Ok(0)) | Some(Err(_)) => return false,
            Some(Ok(_)) => continue, // unexpected data: ignore it
        }
    }
    true
}

/// This machine's host name (empty when it cannot be read).
pub(crate) fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `len` bytes; gethostname NUL-terminates within it or
    // truncates, and we stop at the first NUL or the end.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[async_trait]
impl Sink for SyslogSink {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        match self.protocol {
            Protocol::Udp => self.deliver_udp(batch).await,
            Protocol::Tcp | Protocol::Tls => self.deliver_stream(batch).await,
        }
    }

    /// Closes the connection cleanly (TLS close_notify) so the receiver sees a normal end.
    async fn flush(&mut self) -> Result<(), SinkError> {
        if let Some(mut conn) = self.conn.take() {
            let _ = tokio::time::timeout(self.timeout, conn.shutdown()).await;
        }
        Ok(())
    }
}

impl std::fmt::Debug for SyslogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSink")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}
