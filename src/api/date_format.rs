//! The date format a `Client` sends activity windows in, shared by its clones: set from
//! `api.date_format` (or restored by `set_date_format`) and stepped down `rfc3339` → `naive` →
//! `date` for good, one step per 400 about dates, logged and counted once per step. Writing
//! bounds in each format is `dates.rs`; the window loop that steps down is `activities.rs`.

use std::sync::atomic::{AtomicU8, Ordering};

use super::{Client, dates};
use crate::config::DateFormat;

/// A `DateFormat` that every clone of the client reads and steps down without a lock.
#[derive(Debug)]
pub(super) struct EffectiveFormat(AtomicU8);

impl EffectiveFormat {
    pub(super) fn new(format: DateFormat) -> EffectiveFormat {
        EffectiveFormat(AtomicU8::new(code(format)))
    }

    pub(super) fn get(&self) -> DateFormat {
        format_of(self.0.load(Ordering::Relaxed))
    }

    fn set(&self, format: DateFormat) {
        self.0.store(code(format), Ordering::Relaxed);
    }

    /// Moves from `from` to `to` unless another caller already moved it; true if this call did.
    fn step(&self, from: DateFormat, to: DateFormat) -> bool {
        self.0
            .compare_exchange(code(from), code(to), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// The lower (later in `dates::step_down` order) of `format` and the one in use: another
    /// caller may have stepped further meanwhile.
    pub(super) fn lowest_with(&self, format: DateFormat) -> DateFormat {
        format_of(self.0.load(Ordering::Relaxed).max(code(format)))
    }
}

impl Client {
    /// The date format activity windows are sent in: `api.date_format` (or what
    /// `set_date_format` restored), stepped down once per refusal (see `activities_window`).
    pub fn effective_date_format(&self) -> DateFormat {
        self.inner.date_format.get()
    }

    /// Sets the date format of every clone, e.g. to restore at start the format a previous run
    /// stepped down to (persisted by the caller), so the refusals are not repeated.
    pub fn set_date_format(&self, format: DateFormat) {
        self.inner.date_format.set(format);
    }

    /// Moves the effective format from `from` to `to` (unless another caller already moved
    /// it), logging and counting the step once.
    pub(super) fn step_down(
        &self,
        from: DateFormat,
        to: DateFormat,
        request_id: Option<&str>,
        message: &str,
    ) {
        if self.inner.date_format.step(from, to) {
            let (from, to) = (dates::format_name(from), dates::format_name(to));
            self.inner
                .metrics
                .api_date_format_fallbacks
                .with_label_values(&[from, to])
                .inc();
            tracing::warn!(
                from,
                to,
                request_id = request_id.unwrap_or(""),
                api_error = message,
                "the API rejected the activity window's date format (400); retrying the window \
                 and every later one in the next format (api.date_format)"
            );
        }
    }
}

/// The format as stored: a higher code is a lower step (`dates::step_down` order).
fn code(f: DateFormat) -> u8 {
    match f {
        DateFormat::Rfc3339 => 0,
        DateFormat::Naive => 1,
        DateFormat::Date => 2,
    }
}

fn format_of(code: u8) -> DateFormat {
    match code {
        0 => DateFormat::Rfc3339,
        1 => DateFormat::Naive,
        _ => DateFormat::Date,
    }
}
