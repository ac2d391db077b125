//! What a failed store request means for dispatch: an `object_store::Error` becomes a
//! `SinkError` plus the `reason` label of `sink_object_failures_total`. The crate hides the
//! HTTP status behind its error text for most answers, so the status is read from there.

use crate::sinks::SinkError;

/// Why an object was not stored (the metric's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The bucket (container) does not exist.
    BucketMissing,
    /// Credentials missing, wrong or not allowed to write.
    Unauthorized,
    /// The signature's time is too far from the store's clock.
    ClockSkew,
    /// 429 / 503 SlowDown: the store asks us to slow down.
    Throttled,
    /// Another 5xx.
    ServerError,
    /// Another 4xx: the store refuses the request as made (wrong region, bad endpoint …).
    Refused,
    /// A local destination (`file://`, or a mounted store) is out of space or quota.
    DiskFull,
    /// Connection, timeout, local file system or anything else.
    Io,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BucketMissing => "bucket_missing",
            Reason::Unauthorized => "unauthorized",
            Reason::ClockSkew => "clock_skew",
            Reason::Throttled => "throttled",
            Reason::ServerError => "server_error",
            Reason::Refused => "refused",
            Reason::DiskFull => "disk_full",
            Reason::Io => "io",
        }
    }
}

/// The HTTP status in `text` ("… status code: 503 Service Unavailable …").
fn status_in(text: &str) -> Option<u16> {
    let at = text.find("status code: ")? + "status code: ".len();
    text.get(at..at + 3)?.parse().ok()
}

/// Whether an I/O error in `err`'s source chain is the OS saying the disk is full (ENOSPC) or
/// the quota is used up (EDQUOT): the local store keeps the `io::Error` as a source, so its
/// kind is read, not its text.
fn disk_full(err: &::object_store::Error) -> bool {
    use std::io::ErrorKind;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(io.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
        }) {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Classifies `err` from writing to `bucket` (shown as `where_`, e.g. `s3://audit`).
pub fn classify(err: &::object_store::Error, where_: &str) -> (Reason, SinkError) {
    use ::object_store::Error as E;
    let text = err.to_string();
    let skew = text.contains("RequestTimeTooSkewed")
        || text.contains("RequestExpired")
        || text.contains("AuthenticationFailed") && text.contains("time");
    match err {
        _ if skew => (
            Reason::ClockSkew,
            SinkError::Unauthorized(format!(
                "{where_} refused the request's time (clock skew): check this host's clock (NTP): {text}"
            )),
        ),
        // `file://`: the store writes a staging file and renames it into place; on ENOSPC
        // or EDQUOT it removes the staging file, so nothing half-written is left (checked on
        // a full tmpfs). Space can come back: transient, the batch stays in the outbox.
        _ if disk_full(err) => (
            Reason::DiskFull,
            SinkError::transient(format!(
                "{where_}: the destination's file system is full (or over quota): free space there; the batch stays in the outbox and is retried: {text}"
            )),
        ),
        E::NotFound { .. } => (
            Reason::BucketMissing,
            SinkError::Rejected(format!(
                "{where_}: the bucket (container) does not exist: create it or fix `url`: {text}"
            )),
        ),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => (
            Reason::Unauthorized,
            SinkError::Unauthorized(format!(
                "{where_} refused the credentials or denies writing: {text}"
            )),
        ),
        _ => {
            let (reason, transient) = match status_in(&text) {
                Some(429 | 503) => (Reason::Throttled, true),
                Some(s) if s >= 500 => (Reason::ServerError, true),
                Some(404) => (Reason::BucketMissing, false),
                Some(401 | 403) => (Reason::Unauthorized, false),
                Some(s) if s >= 400 => (Reason::Refused, false),
                _ if text.contains("SlowDown") => (Reason::Throttled, true),
                _ => (Reason::Io, true),
            };
            let message = format!("{where_}: {text}");
            let e = match reason {
                _ if transient => SinkError::transient(message),
                Reason::Unauthorized => SinkError::Unauthorized(message),
                _ => SinkError::Rejected(message),
            };
            (reason, e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(text: &str) -> ::object_store::Error {
        ::object_store::Error::Generic {
            store: "S3",
            source: text.to_string().into(),
        }
    }

    #[test]
    fn throttling_and_server_errors_are_transient() {
        let slow = generic(
            "Error performing PUT http://s3/b/k: Server returned non-2xx status code: 503 Service Unavailable: <Code>SlowDown</Code>",
        );
        let (reason, e) = classify(&slow, "s3://b");
        assert_eq!(reason, Reason::Throttled);
        assert!(matches!(e, SinkError::Transient { .. }), "{e:?}");
        let (reason, e) = classify(
            &generic("Server returned non-2xx status code: 500 Internal Server Error"),
            "s3://b",
        );
        assert_eq!(reason, Reason::ServerError);
        assert!(matches!(e, SinkError::Transient { .. }));
        let (reason, e) = classify(
            &generic("error sending request: connection refused"),
            "s3://b",
        );
        assert_eq!(reason, Reason::Io);
        assert!(matches!(e, SinkError::Transient { .. }));
    }

    #[test]
    fn a_full_local_disk_is_named_and_transient() {
        // As LocalFileSystem answered on a full 512 KiB tmpfs (`file:///mnt/full/audit`): the
        // OS error inside a generic one ("… Unable to copy data to file: No space left on
        // device (os error 28)").
        let os = |code| ::object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from_raw_os_error(code)),
        };
        let full = os(28);
        let (reason, e) = classify(&full, "file:///mnt/full/audit");
        assert_eq!(reason, Reason::DiskFull);
        assert_eq!(reason.as_str(), "disk_full");
        assert!(matches!(e, SinkError::Transient { .. }), "{e:?}");
        let shown = e.to_string();
        assert!(
            shown.contains("file:///mnt/full/audit") && shown.contains("free space"),
            "{shown}"
        );
        let quota = os(122);
        assert_eq!(classify(&quota, "file:///q").0, Reason::DiskFull);
        // An S3 body that merely mentions a number is not a full disk.
        let other = generic("Server returned non-2xx status code: 500: error 28 in shard");
        assert_eq!(classify(&other, "s3://b").0, Reason::ServerError);
    }

    #[test]
    fn credentials_missing_buckets_skew_and_refusals_are_named() {
        let denied = ::object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "403 Forbidden".to_string().into(),
        };
        let (reason, e) = classify(&denied, "s3://b");
        assert_eq!(reason, Reason::Unauthorized);
        assert!(matches!(e, SinkError::Unauthorized(ref m) if m.contains("s3://b")));
        let missing = ::object_store::Error::NotFound {
            path: "k".into(),
            source: "NoSuchBucket".to_string().into(),
        };
        let (reason, e) = classify(&missing, "s3://audit");
        assert_eq!(reason, Reason::BucketMissing);
        assert!(
            matches!(e, SinkError::Rejected(ref m) if m.contains("s3://audit") && m.contains("does not exist"))
        );
        let skew = ::object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "<Code>RequestTimeTooSkewed</Code>".to_string().into(),
        };
        let (reason, e) = classify(&skew, "s3://b");
        assert_eq!(reason, Reason::ClockSkew);
        assert!(e.to_string().contains("clock"));
        let (reason, e) = classify(
            &generic(
                "Server returned non-2xx status code: 400 Bad Request: AuthorizationHeaderMalformed",
            ),
            "s3://b",
        );
        assert_eq!(reason, Reason::Refused);
        assert!(matches!(e, SinkError::Rejected(_)));
    }
}
