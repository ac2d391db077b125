//! Response bodies: the `{status, requestId, result}` / `{status, error, requestId}` envelopes,
//! written as byte chunks. A list of pre-serialized activities is streamed in 256 KiB chunks
//! with an exact `Content-Length`, never collected into one `serde_json::Value`. Also the
//! spoiled variants a `BodyFault` asks for.

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use serde_json::Value;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::faults::BodyFault;
use super::jsonfmt::push_json_str;

const CHUNK: usize = 256 * 1024;

/// What goes into `result`.
#[derive(Debug)]
pub(crate) enum Payload {
    Value(Value),
    /// A JSON array whose elements are already serialized.
    Items(Vec<Arc<str>>),
    /// One already-serialized JSON value.
    Raw(Arc<str>),
}

/// A successful answer: `result` (absent for deletes) plus any extra top-level fields
/// (`limit`, `nextCursor`, `totalCount` on paginated lists).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) result: Option<Payload>,
    pub(crate) extra: Vec<(&'static str, Value)>,
}

impl Reply {
    pub(crate) fn ok(v: Value) -> Reply {
        Reply {
            result: Some(Payload::Value(v)),
            extra: Vec::new(),
        }
    }

    pub(crate) fn raw(json: Arc<str>) -> Reply {
        Reply {
            result: Some(Payload::Raw(json)),
            extra: Vec::new(),
        }
    }

    pub(crate) fn items(items: Vec<Arc<str>>) -> Reply {
        Reply {
            result: Some(Payload::Items(items)),
            extra: Vec::new(),
        }
    }

    /// `{status, requestId}` only (the spec's delete responses).
    pub(crate) fn empty() -> Reply {
        Reply {
            result: None,
            extra: Vec::new(),
        }
    }

    pub(crate) fn with(mut self, key: &'static str, v: Value) -> Reply {
        self.extra.push((key, v));
        self
    }
}

/// The `CODE` part of `error` for an HTTP status.
pub(crate) fn code(status: u16) -> &'static str {
    match status {
        400 => "BAD_REQUEST",
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        409 => "CONFLICT",
        410 => "GONE",
        413 => "PAYLOAD_TOO_LARGE",
        422 => "UNPROCESSABLE_ENTITY",
        424 => "FAILED_DEPENDENCY",
        429 => "TOO_MANY_REQUESTS",
        500 => "INTERNAL_SERVER_ERROR",
        502 => "BAD_GATEWAY",
        503 => "SERVICE_UNAVAILABLE",
        504 => "GATEWAY_TIMEOUT",
        _ => "ERROR",
    }
}

fn head(status: u16, request_id: &str) -> String {
    format!("{{\"status\":{status},\"requestId\":\"{request_id}\"")
}

/// `{"status":N,"error":"…","requestId":"…"}`.
pub(crate) fn error_body(status: u16, error: &str, request_id: &str) -> EmuBody {
    let mut s = format!("{{\"status\":{status},\"error\":");
    push_json_str(&mut s, error);
    s.push_str(",\"requestId\":\"");
    s.push_str(request_id);
    s.push_str("\"}");
    EmuBody::full(s)
}

/// The 200 envelope for `reply`, spoiled as `fault` says.
pub(crate) fn success_body(reply: Reply, request_id: &str, fault: Option<BodyFault>) -> EmuBody {
    let mut h = head(200, request_id);
    if fault == Some(BodyFault::Malformed) {
        h.push_str(",\"result\":{\"id\":\"malformed\",\"createdAt\":2024-01-01T00:00:00Z,");
        return EmuBody::full(h);
    }
    for (k, v) in &reply.extra {
        h.push(',');
        push_json_str(&mut h, k);
        h.push(':');
        h.push_str(&v.to_string());
    }
    let result = match (fault, reply.result) {
        (Some(BodyFault::WrongShape), Some(Payload::Items(_))) => {
            Some(Payload::Value(serde_json::json!({"data": []})))
        }
        (Some(BodyFault::WrongShape), Some(Payload::Value(v))) => Some(Payload::Value(match v {
            Value::Array(_) => serde_json::json!({"data": []}),
            other => Value::Array(vec![other]),
        })),
        (Some(BodyFault::WrongShape), Some(Payload::Raw(r))) => Some(Payload::Items(vec![r])),
        (Some(BodyFault::WrongShape), None) => Some(Payload::Value(Value::Array(Vec::new()))),
        (_, r) => r,
    };
    let mut body = match result {
        None => {
            h.push('}');
            EmuBody::full(h)
        }
        Some(Payload::Value(v)) => {
            h.push_str(",\"result\":");
            h.push_str(&v.to_string());
            h.push('}');
            EmuBody::full(h)
        }
        Some(Payload::Raw(r)) => {
            h.push_str(",\"result\":");
            h.push_str(&r);
            h.push('}');
            EmuBody::full(h)
        }
        Some(Payload::Items(items)) => {
            h.push_str(",\"result\":[");
            EmuBody::list(h, items, "]}")
        }
    };
    if fault == Some(BodyFault::Truncate) {
        body.cut_at = Some(body.total / 2);
    }
    body
}

/// A response body: `head`, then `items` joined by commas, then `tail`.
#[derive(Debug)]
pub(crate) struct EmuBody {
    head: Option<Bytes>,
    items: std::vec::IntoIter<Arc<str>>,
    first: bool,
    tail: Option<Bytes>,
    total: u64,
    sent: u64,
    /// Stop after this many bytes and fail the stream (hyper then drops the connection).
    cut_at: Option<u64>,
}

impl EmuBody {
    pub(crate) fn full(s: impl Into<Bytes>) -> EmuBody {
        EmuBody::list(s, Vec::new(), Bytes::new())
    }

    fn list(head: impl Into<Bytes>, items: Vec<Arc<str>>, tail: impl Into<Bytes>) -> EmuBody {
        let (head, tail) = (head.into(), tail.into());
        let items_len: usize =
            items.iter().map(|i| i.len()).sum::<usize>() + items.len().saturating_sub(1);
        EmuBody {
            total: (head.len() + items_len + tail.len()) as u64,
            head: Some(head),
            items: items.into_iter(),
            first: true,
            tail: Some(tail),
            sent: 0,
            cut_at: None,
        }
    }

    fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(h) = self.head.take().filter(|h| !h.is_empty()) {
            return Some(h);
        }
        let mut buf = String::new();
        while buf.len() < CHUNK {
            let Some(item) = self.items.next() else { break };
            if buf.is_empty() {
                buf.reserve(CHUNK + item.len());
            }
            if !std::mem::take(&mut self.first) {
                buf.push(',');
            }
            buf.push_str(&item);
        }
        if !buf.is_empty() {
            return Some(Bytes::from(buf));
        }
        self.tail.take().filter(|t| !t.is_empty())
    }
}

impl Body for EmuBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(cut) = this.cut_at
            && this.sent >= cut
        {
            let err = std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "emulator: truncated body",
            );
            return Poll::Ready(Some(Err(err)));
        }
        let Some(mut chunk) = this.next_chunk() else {
            return Poll::Ready(None);
        };
        if let Some(cut) = this.cut_at {
            let room = usize::try_from(cut - this.sent).unwrap_or(usize::MAX);
            chunk.truncate(room);
        }
        this.sent += chunk.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.total)
    }
}
