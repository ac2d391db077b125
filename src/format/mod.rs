//! Output formats: `Event` → bytes. `json` is the contract envelope, `raw` the verbatim
//! activity. Encoders append one record (no trailing newline) to a caller-owned buffer so a
//! batch is encoded without a per-event allocation.

mod json;

use serde::Deserialize;

use crate::event::Event;

/// The `format` key of every sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The contract envelope: event_id, kind, org_id, occurred_at, observed_at, activity.
    #[default]
    Json,
    /// The verbatim activity object alone (inventory/finding: the envelope, as json).
    Raw,
}

impl Format {
    /// Every accepted `format` value (for error messages).
    pub const NAMES: &'static [&'static str] = &["json", "raw"];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Raw => "raw",
        }
    }

    /// Appends one encoded record for `event` to `out` (no line terminator).
    pub fn encode(self, event: &Event, out: &mut Vec<u8>) {
        match self {
            Format::Json => json::encode(event, out),
            Format::Raw => json::encode_raw(event, out),
        }
    }
}
