//! The `index` key at run time: a name with `strftime` date fields filled from an event's time
//! (UTC), rendered once per day and reused — consecutive events almost always share a day.

use std::fmt::Write;

const DAY_MS: i64 = 86_400_000;

/// An index name pattern (`clickhouse-audit-%Y.%m.%d`) or a fixed name (a data stream).
#[derive(Debug, Clone)]
pub struct IndexName {
    pattern: String,
    dated: bool,
    /// (day since the epoch, its rendered name)
    last: Option<(i64, String)>,
}

impl IndexName {
    /// `pattern` was checked by the config (only date fields follow `%`).
    pub fn new(pattern: &str) -> IndexName {
        IndexName {
            pattern: pattern.to_string(),
            dated: pattern.contains('%'),
            last: None,
        }
    }

    /// The name for an event at `time_ms` (ms since the epoch, UTC).
    pub fn for_time(&mut self, time_ms: i64) -> &str {
        if !self.dated {
            return &self.pattern;
        }
        let day = time_ms.div_euclid(DAY_MS);
        if self.last.as_ref().is_none_or(|(d, _)| *d != day) {
            self.last = Some((day, self.render(time_ms)));
        }
        self.last.as_ref().map_or("", |(_, name)| name.as_str())
    }

    /// Renders the pattern for `time_ms` (a time chrono cannot represent reads as the epoch;
    /// an unusable pattern renders as written rather than panicking).
    pub fn render(&self, time_ms: i64) -> String {
        if !self.dated {
            return self.pattern.clone();
        }
        let at = chrono::DateTime::from_timestamp_millis(time_ms).unwrap_or_default();
        let mut out = String::with_capacity(self.pattern.len() + 8);
        match write!(out, "{}", at.format(&self.pattern)) {
            Ok(()) => out,
            Err(_) => self.pattern.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_come_from_the_event_time_in_utc_and_fixed_names_stay() {
        let mut n = IndexName::new("clickhouse-audit-%Y.%m.%d");
        // 2025-03-04T23:59:59.999Z, then the next millisecond.
        let t = 1_741_132_799_999;
        assert_eq!(n.for_time(t), "clickhouse-audit-2025.03.04");
        assert_eq!(n.for_time(t + 1), "clickhouse-audit-2025.03.05");
        assert_eq!(n.for_time(0), "clickhouse-audit-1970.01.01");
        assert_eq!(IndexName::new("a-%G.w%V").render(t), "a-2025.w10");
        let mut fixed = IndexName::new("logs-clickhouse.audit-default");
        assert_eq!(fixed.for_time(t), "logs-clickhouse.audit-default");
        // Unusable patterns never panic.
        assert_eq!(IndexName::new("x-%").render(t), "x-%");
    }
}
