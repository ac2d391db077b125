//! The ClickHouse Cloud control-plane API client (`https://api.clickhouse.cloud/v1/...`): one
//! `Client` per API key, shared by every poller. Every request of a `Client` passes one sliding
//! window rate limiter (`ratelimit`, `Normal` or `Low` priority), is retried when transient
//! (`call`), and its envelope is decoded in one streaming pass that keeps each object's exact
//! bytes (`decode`, `models`); an activity window can instead be handed on in chunks as it is
//! decoded (`activities_window` with `StreamTo`). The activity window's date format steps down
//! `rfc3339` → `naive` → `date`, one step per 400 about dates (`dates`).
//! Facts and uncertainties about the API: docs/clickhouse-cloud-api.md.
//!
//! Files: `client.rs` (`Client`: construction, shared state, URLs), `endpoints.rs`
//! (`Endpoint`, the list endpoints and `whoami`), `activities.rs` (activity windows, collected
//! or streamed; the date-format probe), `date_format.rs` (the effective date format and its
//! step-down), `call.rs` (one call: limiter, send, retry, pages), `response.rs` (read one
//! answer: stream into the decoder, or classify the error), `decode.rs` (envelopes), `scan.rs` (value extents in a body read in chunks),
//! `models.rs` (wire types), `dates.rs` (window bounds, `createdAt`), `error.rs` (`ApiError`),
//! `ratelimit/` (`RateLimiter`).

mod activities;
mod call;
mod client;
mod date_format;
pub mod dates;
mod decode;
mod endpoints;
pub mod error;
pub mod models;
pub mod ratelimit;
mod response;
mod scan;

pub use activities::{DateProbe, StreamTo, WindowRequest};
pub use client::Client;
pub use endpoints::Endpoint;
pub use error::ApiError;
pub use models::{Activity, ActivityBatch, ActivityChunk, Quarantined, RawObject, WhoAmI};
pub use ratelimit::{Priority, RateLimiter};
// Entry points for the fuzz targets in fuzz/ (issue 8); not a stable API.
#[doc(hidden)]
pub use decode::{decode_activities_body, error_body};
#[doc(hidden)]
pub use response::reset_after;

// The state every clone of a `Client` shares, for the request plumbing (`call`, `response`).
use client::Inner;

/// `User-Agent` of every request (the one of every HTTP client of ours).
pub use crate::http::USER_AGENT;
