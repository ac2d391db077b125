//! `ApiError`: why an API call failed for good, worded so an operator can act on it, plus the
//! metric label (`kind`) and the retry classification the client's retry loop uses.
//! Built by `api::call` from HTTP statuses, transport failures and `api::decode` failures.

use std::fmt;
use std::time::Duration;

/// A failed API call. Messages never contain the key secret or the Authorization header.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: the key id/secret pair was rejected.
    Unauthorized {
        request_id: Option<String>,
        message: String,
    },
    /// 403: the key lacks the permission the endpoint needs (`permission`, when the vendor's
    /// spec names one for that endpoint).
    Forbidden {
        permission: Option<&'static str>,
        request_id: Option<String>,
        message: String,
    },
    /// 404: unknown organization/service, or (for `whoami`) the beta endpoint is absent.
    NotFound {
        request_id: Option<String>,
        message: String,
    },
    /// 400 (and other 4xx without a variant of their own): the API rejected the request.
    BadRequest {
        request_id: Option<String>,
        message: String,
    },
    /// 429 answers outlasted every retry. `reset` is the last wait the API asked for.
    RateLimited {
        reset: Option<Duration>,
        request_id: Option<String>,
    },
    /// 5xx, or an HTTP status the client has no better variant for (3xx, 409, …).
    Server {
        status: u16,
        request_id: Option<String>,
        message: String,
    },
    /// No complete answer within `api.request_timeout`, on every attempt.
    Timeout { endpoint: &'static str },
    /// Connection refused/reset, DNS, TLS, …: the request never got an answer.
    Transport { message: String },
    /// The answer passed the byte cap the caller set: split the request (activities window).
    TooLarge {
        endpoint: &'static str,
        limit: usize,
        bytes: usize,
    },
    /// An answer that could not be read: truncated transfer, malformed JSON, unexpected shape.
    Decode {
        endpoint: &'static str,
        request_id: Option<String>,
        message: String,
        /// The start of the body (short, control characters escaped, secret removed).
        excerpt: String,
    },
}

impl ApiError {
    /// Stable label for `api_errors_total{kind}` and poll error metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::NotFound { .. } => "not_found",
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Server { .. } => "server",
            ApiError::Timeout { .. } => "timeout",
            ApiError::Transport { .. } => "transport",
            ApiError::Decode { .. } => "decode",
            ApiError::TooLarge { .. } => "too_large",
        }
    }

    /// Whether trying the same request again can help: rate limits, 5xx (and 408/409/425),
    /// timeouts, connection errors, and unreadable bodies (a truncated transfer is transient).
    /// Never 400/401/403/404: those need an operator.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::RateLimited { .. }
            | ApiError::Timeout { .. }
            | ApiError::Transport { .. }
            | ApiError::Decode { .. } => true,
            ApiError::Server { status, .. } => *status >= 500 || matches!(status, 408 | 409 | 425),
            ApiError::Unauthorized { .. }
            | ApiError::Forbidden { .. }
            | ApiError::NotFound { .. }
            | ApiError::BadRequest { .. }
            | ApiError::TooLarge { .. } => false,
        }
    }

    /// The API's request id, when the answer carried one (quote it to ClickHouse support).
    pub fn request_id(&self) -> Option<&str> {
        match self {
            ApiError::Unauthorized { request_id, .. }
            | ApiError::Forbidden { request_id, .. }
            | ApiError::NotFound { request_id, .. }
            | ApiError::BadRequest { request_id, .. }
            | ApiError::RateLimited { request_id, .. }
            | ApiError::Server { request_id, .. }
            | ApiError::Decode { request_id, .. } => request_id.as_deref(),
            ApiError::Timeout { .. } | ApiError::Transport { .. } | ApiError::TooLarge { .. } => {
                None
            }
        }
    }
}

/// ` (request <id>)`, or nothing.
struct Req<'a>(&'a Option<String>);

impl fmt::Display for Req<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " (request {id})"),
            None => Ok(()),
        }
    }
}

/// `; the API said: <message>`, or nothing.
struct Said<'a>(&'a str);

impl fmt::Display for Said<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "; the API said: {}", self.0)
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unauthorized {
                request_id,
                message,
            } => write!(
                f,
                "401 Unauthorized{}: the API key id/secret were rejected — check \
                 CLICKHOUSE_CLOUD_API_KEY/SECRET (or api.key_id/api.key_secret) and that the key \
                 is enabled and not expired{}",
                Req(request_id),
                Said(message)
            ),
            ApiError::Forbidden {
                permission: Some(p),
                request_id,
                message,
            } => write!(
                f,
                "403 Forbidden{}: the key lacks {p} — give it that permission (or the Admin \
                 role){}",
                Req(request_id),
                Said(message)
            ),
            ApiError::Forbidden {
                permission: None,
                request_id,
                message,
            } => write!(
                f,
                "403 Forbidden{}: the key may not make this call — check its role (Admin allows \
                 every call) and its IP access list{}",
                Req(request_id),
                Said(message)
            ),
            ApiError::NotFound {
                request_id,
                message,
            } => write!(
                f,
                "404 Not Found{}: check the organization id (api.organizations) and that the \
                 service still exists{}",
                Req(request_id),
                Said(message)
            ),
            ApiError::BadRequest {
                request_id,
                message,
            } => write!(
                f,
                "400 Bad Request{}: the API rejected the request{}",
                Req(request_id),
                Said(message)
            ),
            ApiError::RateLimited { reset, request_id } => {
                write!(
                    f,
                    "429 rate limited{}: still limited after every retry",
                    Req(request_id)
                )?;
                if let Some(r) = reset {
                    write!(f, " (the API asked to wait {:.1} s)", r.as_secs_f64())?;
                }
                f.write_str(
                    " — the vendor allows 10 requests per 10 s per key: make sure no other \
                     program uses this key, or lower api.rate_limit_requests",
                )
            }
            ApiError::Server {
                status,
                request_id,
                message,
            } if *status >= 500 => write!(
                f,
                "{status} server error{}: the API failed — if this persists, give ClickHouse \
                 Cloud support the request id{}",
                Req(request_id),
                Said(message)
            ),
            ApiError::Server {
                status,
                request_id,
                message,
            } if (300..400).contains(status) => write!(
                f,
                "unexpected HTTP {status}{}: check api.base_url (expected \
                 https://api.clickhouse.cloud); {message}",
                Req(request_id),
            ),
            ApiError::Server {
                status,
                request_id,
                message,
            } => write!(
                f,
                "HTTP {status}{}: the API could not serve the request now{}",
                Req(request_id),
                Said(message)
            ),
            ApiError::Timeout { endpoint } => write!(
                f,
                "request to the {endpoint} endpoint timed out (api.request_timeout) — the API is \
                 slow or unreachable; for activities, a shorter activities.max_window makes \
                 answers smaller"
            ),
            ApiError::Transport { message } => write!(
                f,
                "cannot reach the API: {message} — check api.base_url, DNS, proxies and firewalls"
            ),
            ApiError::TooLarge {
                endpoint,
                limit,
                bytes,
            } => write!(
                f,
                "the {endpoint} answer passed {bytes} bytes, over the {limit}-byte cap \
                 (activities.max_response_bytes): the window will be split"
            ),
            ApiError::Decode {
                endpoint,
                request_id,
                message,
                excerpt,
            } => {
                write!(
                    f,
                    "cannot decode the {endpoint} response{}: {message}",
                    Req(request_id)
                )?;
                if !excerpt.is_empty() {
                    write!(f, "; the body starts with: {excerpt}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_cause_and_the_fix() {
        let e = ApiError::Unauthorized {
            request_id: Some("r-1".into()),
            message: "UNAUTHORIZED".into(),
        };
        let s = e.to_string();
        assert!(
            s.starts_with("401 Unauthorized (request r-1): the API key id/secret were rejected")
        );
        assert!(s.contains("CLICKHOUSE_CLOUD_API_KEY/SECRET"));
        assert!(s.ends_with("the API said: UNAUTHORIZED"), "{s}");

        let e = ApiError::Forbidden {
            permission: Some("control-plane:organization:view-activities"),
            request_id: None,
            message: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "403 Forbidden: the key lacks control-plane:organization:view-activities — give it \
             that permission (or the Admin role)"
        );

        let e = ApiError::RateLimited {
            reset: Some(Duration::from_millis(2500)),
            request_id: None,
        };
        assert!(e.to_string().starts_with(
            "429 rate limited: still limited after every retry (the API asked to wait 2.5 s)"
        ));

        let e = ApiError::Server {
            status: 302,
            request_id: None,
            message: "redirected to https://example.com/".into(),
        };
        assert_eq!(
            e.to_string(),
            "unexpected HTTP 302: check api.base_url (expected https://api.clickhouse.cloud); \
             redirected to https://example.com/"
        );
        let e = ApiError::Server {
            status: 409,
            request_id: None,
            message: "CONFLICT: busy".into(),
        };
        assert_eq!(
            e.to_string(),
            "HTTP 409: the API could not serve the request now; the API said: CONFLICT: busy"
        );
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        let server = |status| ApiError::Server {
            status,
            request_id: None,
            message: String::new(),
        };
        assert!(server(500).is_retryable());
        assert!(server(503).is_retryable());
        assert!(server(409).is_retryable());
        assert!(!server(302).is_retryable());
        assert!(ApiError::Timeout { endpoint: "keys" }.is_retryable());
        assert!(
            !ApiError::NotFound {
                request_id: None,
                message: String::new()
            }
            .is_retryable()
        );
        assert!(
            !ApiError::Forbidden {
                permission: None,
                request_id: None,
                message: String::new()
            }
            .is_retryable()
        );
        assert_eq!(ApiError::Timeout { endpoint: "keys" }.kind(), "timeout");
    }
}
