//! Output formats: `Event` → bytes. `json` is the contract envelope, `raw` the verbatim
//! activity, `ecs`/`ocsf`/`cef` the SIEM-native shapes (mapped through one activity-type
//! catalogue, `catalog.rs`, over lenient payload views, `view.rs` on `lenient.rs`). An event's
//! type label, severity and time are derived once, in `facts.rs`; times are read and written by
//! `time.rs`, strings and numbers by `write.rs`. Encoders append one record (no trailing
//! newline) to a caller-owned buffer so a batch is encoded without a per-event allocation, and
//! never fail: any payload renders.

pub mod catalog;
mod cef;
mod ecs;
pub mod facts;
mod json;
mod lenient;
mod ocsf;
#[cfg(test)]
mod testing;
pub mod time;
pub mod view;
mod write;

use serde::Deserialize;

use crate::event::Event;

pub use facts::Facts;
pub use json::push_envelope_head;
pub use write::{push_int, push_json_str, push_json_str_contents};

/// The `format` key of every sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The contract envelope: event_id, kind, org_id, occurred_at, observed_at, activity.
    #[default]
    Json,
    /// The verbatim activity object alone (inventory/finding: the envelope, as json).
    Raw,
    /// Elastic Common Schema 8.x documents.
    Ecs,
    /// OCSF 1.3.0 events.
    Ocsf,
    /// ArcSight Common Event Format lines (not JSON).
    Cef,
}

impl Format {
    /// Every accepted `format` value (for error messages).
    pub const NAMES: &'static [&'static str] = &["json", "raw", "ecs", "ocsf", "cef"];

    /// Every format (tests and benchmarks iterate over them).
    pub const ALL: &'static [Format] = &[
        Format::Json,
        Format::Raw,
        Format::Ecs,
        Format::Ocsf,
        Format::Cef,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Raw => "raw",
            Format::Ecs => "ecs",
            Format::Ocsf => "ocsf",
            Format::Cef => "cef",
        }
    }

    /// Whether a record is a JSON value (all but `cef`, whose records are text lines).
    pub fn is_json(self) -> bool {
        !matches!(self, Format::Cef)
    }

    /// Appends one encoded record for `event` to `out` (no line terminator).
    pub fn encode(self, event: &Event, out: &mut Vec<u8>) {
        match self {
            Format::Json => json::encode(event, out),
            Format::Raw => json::encode_raw(event, out),
            Format::Ecs => ecs::encode(event, out),
            Format::Ocsf => ocsf::encode(event, out),
            Format::Cef => cef::encode(event, out),
        }
    }
}
