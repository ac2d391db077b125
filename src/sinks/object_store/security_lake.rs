//! `[sinks.security_lake]`: where Security Lake mode (`encoding = "parquet"`, `format = "ocsf"`)
//! puts objects. Amazon Security Lake's custom-source guidance (User Guide, "Collecting data
//! from custom sources", best practices: partitioning, object size and Parquet settings) asks
//! for objects under
//! `ext/<source name>/<source version>/region=<region>/accountId=<account id>/eventDay=<YYYYMMDD>/`,
//! Parquet with zstd, one OCSF class per object, records ordered by time, and one custom
//! source per OCSF class: `{class}` in `source_name` gives each class its own source.

use serde::Deserialize;

use crate::values::{ConfigError, KeyPath};

/// `[sinks.security_lake]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityLakeConfig {
    /// The custom source's name as registered in Security Lake; `{class}` becomes the OCSF
    /// class (`api_activity`, `authentication`, `account_change`, `user_access`,
    /// `entity_management`, `detection_finding`), one source per class as AWS recommends.
    pub source_name: String,
    /// The custom source's version as registered.
    #[serde(default = "default_source_version")]
    pub source_version: String,
    /// The 12-digit AWS account id of the `accountId=` partition.
    pub account_id: String,
    /// The AWS region of the `region=` partition (the Security Lake bucket's region).
    pub region: String,
    /// Rows per Parquet row group at most (row groups also stay under 128 MiB).
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
}

fn default_source_version() -> String {
    "1.0".to_string()
}
fn default_row_group_rows() -> usize {
    100_000
}

/// The `{class}` word of an OCSF class uid.
pub fn class_word(class_uid: i64) -> String {
    match class_uid {
        6003 => "api_activity".to_string(),
        3002 => "authentication".to_string(),
        3001 => "account_change".to_string(),
        3005 => "user_access".to_string(),
        3004 => "entity_management".to_string(),
        2004 => "detection_finding".to_string(),
        other => format!("class_{other}"),
    }
}

/// Security Lake's source name and version: letters, digits, `_`, `-`, `:`, `.`; 1–64.
fn name_ok(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.'))
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-4` …
fn region_ok(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

impl SecurityLakeConfig {
    pub fn validate(&self, at: &KeyPath) -> Result<(), ConfigError> {
        let longest = self.source_name.replace("{class}", "entity_management");
        if !name_ok(&longest) {
            return Err(at.err(
                "security_lake.source_name",
                format!("{:?}", self.source_name),
                "expected 1-64 of letters, digits, `_`, `-`, `:`, `.` (and `{class}`)",
            ));
        }
        if !name_ok(&self.source_version) {
            return Err(at.err(
                "security_lake.source_version",
                format!("{:?}", self.source_version),
                "expected 1-64 of letters, digits, `_`, `-`, `:`, `.`",
            ));
        }
        if self.account_id.len() != 12 || !self.account_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(at.err(
                "security_lake.account_id",
                format!("{:?}", self.account_id),
                "expected a 12-digit AWS account id",
            ));
        }
        if !region_ok(&self.region) {
            return Err(at.err(
                "security_lake.region",
                format!("{:?}", self.region),
                "expected an AWS region such as \"us-east-1\"",
            ));
        }
        if self.row_group_rows == 0 {
            return Err(at.err(
                "security_lake.row_group_rows",
                self.row_group_rows,
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// `ext/<source>/<version>` of class `class_uid`.
    pub fn source_dir(&self, class_uid: i64) -> String {
        format!(
            "ext/{}/{}",
            self.source_name.replace("{class}", &class_word(class_uid)),
            self.source_version
        )
    }

    /// The directory of an object of class `class_uid` whose events happened on the UTC day
    /// of `time_ms`.
    pub fn partition(&self, class_uid: i64, time_ms: i64) -> String {
        let day = chrono::DateTime::from_timestamp_millis(time_ms).unwrap_or_default();
        format!(
            "{}/region={}/accountId={}/eventDay={}",
            self.source_dir(class_uid),
            self.region,
            self.account_id,
            day.format("%Y%m%d")
        )
    }

    /// Where the in-flight marker lives: inside the source's own prefix (the write permission
    /// Security Lake grants a custom source covers only `ext/<source>/`); with `{class}`, in
    /// the `state` sibling, which a policy for `ext/<source name start>*` covers too.
    pub fn marker_dir(&self) -> String {
        format!(
            "ext/{}/_ch_audit_exporter",
            self.source_name.replace("{class}", "state")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str, account: &str, region: &str) -> SecurityLakeConfig {
        SecurityLakeConfig {
            source_name: name.to_string(),
            source_version: default_source_version(),
            account_id: account.to_string(),
            region: region.to_string(),
            row_group_rows: default_row_group_rows(),
        }
    }

    #[test]
    fn the_layout_is_security_lakes_custom_source_layout() {
        let c = cfg("clickhouse-{class}", "123456789012", "eu-west-1");
        // 2025-03-04T10:15:30Z
        assert_eq!(
            c.partition(6003, 1_741_083_330_000),
            "ext/clickhouse-api_activity/1.0/region=eu-west-1/accountId=123456789012/eventDay=20250304"
        );
        assert_eq!(c.marker_dir(), "ext/clickhouse-state/_ch_audit_exporter");
        let one = cfg("clickhouse", "123456789012", "eu-west-1");
        assert!(
            one.partition(3002, 0)
                .starts_with("ext/clickhouse/1.0/region=")
        );
        assert!(one.partition(3002, 0).ends_with("eventDay=19700101"));
    }

    #[test]
    fn bad_values_are_named() {
        let at = KeyPath::sink(0, "lake");
        let e = cfg("ch", "12345", "us-east-1").validate(&at).unwrap_err();
        assert!(e.to_string().contains("security_lake.account_id"), "{e}");
        assert!(e.to_string().contains("12345"), "{e}");
        let e = cfg("ch", "123456789012", "US East")
            .validate(&at)
            .unwrap_err();
        assert!(e.to_string().contains("security_lake.region"), "{e}");
        let e = cfg("a/b", "123456789012", "us-east-1")
            .validate(&at)
            .unwrap_err();
        assert!(e.to_string().contains("security_lake.source_name"), "{e}");
        for r in [
            "us-east-1",
            "us-gov-west-1",
            "ap-southeast-4",
            "eu-central-2",
        ] {
            cfg("ch-{class}", "123456789012", r).validate(&at).unwrap();
        }
        for r in ["us-east", "useast1", "us--1", "-east-1"] {
            assert!(cfg("ch", "123456789012", r).validate(&at).is_err(), "{r}");
        }
    }
}
