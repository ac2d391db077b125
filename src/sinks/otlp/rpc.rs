//! The few `google.rpc` messages an OTLP receiver answers with on failure: `Status` (the body
//! of an HTTP error answer; the `grpc-status-details-bin` of a gRPC one) and `RetryInfo` (the
//! detail that makes RESOURCE_EXHAUSTED retryable and says when). Declared here with prost's
//! derive instead of pulling another crate in for three small messages.

use std::time::Duration;

use prost::Message;

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

pub const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

impl Status {
    /// Decodes a serialized `google.rpc.Status` (`None`: not one).
    pub fn decode_bytes(bytes: &[u8]) -> Option<Status> {
        Status::decode(bytes).ok()
    }

    /// The `RetryInfo` delay among the details, if any (capped at `cap`). `Some(ZERO)` when
    /// the detail is there without a delay: retryable, no hint.
    pub fn retry_delay(&self, cap: Duration) -> Option<Duration> {
        let detail = self
            .details
            .iter()
            .find(|d| d.type_url == RETRY_INFO_TYPE)?;
        let info = RetryInfo::decode(detail.value.as_slice()).ok()?;
        let delay = info.retry_delay.map_or(Duration::ZERO, |d| {
            Duration::new(
                u64::try_from(d.seconds).unwrap_or(0),
                u32::try_from(d.nanos).unwrap_or(0).min(999_999_999),
            )
        });
        Some(delay.min(cap))
    }
}

/// A `google.rpc.Status` with a `RetryInfo` of `delay` (tests and the test receiver).
pub fn status_with_retry(code: i32, message: &str, delay: Option<Duration>) -> Status {
    let details = delay
        .map(|d| Any {
            type_url: RETRY_INFO_TYPE.into(),
            value: RetryInfo {
                retry_delay: Some(ProtoDuration {
                    seconds: d.as_secs() as i64,
                    nanos: d.subsec_nanos() as i32,
                }),
            }
            .encode_to_vec(),
        })
        .into_iter()
        .collect();
    Status {
        code,
        message: message.into(),
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_info_round_trips_and_is_capped() {
        let s = status_with_retry(8, "slow down", Some(Duration::from_millis(1500)));
        let back = Status::decode_bytes(&s.encode_to_vec()).unwrap();
        assert_eq!(back.message, "slow down");
        let cap = Duration::from_secs(3600);
        assert_eq!(back.retry_delay(cap), Some(Duration::from_millis(1500)));
        assert_eq!(
            back.retry_delay(Duration::from_secs(1)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(status_with_retry(8, "", None).retry_delay(cap), None);
    }
}
