//! `type = "syslog"` settings: serde data with a documented default per key, checked by
//! `validate` (errors name `sinks[i].key`). Facility and severity accept RFC 5424 names or
//! numbers; the severity mapping turns the catalogue's levels (info … critical) into syslog
//! severities and can be fixed or overridden per level.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::format::catalog::Severity;
use crate::sinks::{BuildContext, Sink, SinkSpec};
use crate::values::{ConfigError, KeyPath};

/// `type = "syslog"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `host:port` of the syslog receiver (`[v6]:port` for IPv6).
    pub address: String,
    /// `tcp` (default), `udp` (one message per datagram) or `tls` (RFC 5425).
    #[serde(default, deserialize_with = "de_protocol")]
    pub protocol: Protocol,
    /// TCP/TLS framing: `octet-counting` (RFC 6587 `LEN SP MSG`, default) or `newline`.
    #[serde(default, deserialize_with = "de_framing")]
    pub framing: Framing,
    /// Facility name (`auth`, `authpriv`, `local0` … `local7`, …) or number 0–23.
    #[serde(default = "default_facility", deserialize_with = "de_facility")]
    pub facility: u8,
    /// `"auto"` (default: info→info, low→notice, medium→warning, high→err, critical→crit, from
    /// the activity-type catalogue), one fixed severity (`"notice"`, `5`), or a table overriding
    /// levels of the automatic mapping: `{ high = "alert" }`.
    #[serde(default, deserialize_with = "de_severity")]
    pub severity: SeverityMap,
    /// RFC 5424 APP-NAME (up to 48 printable ASCII characters).
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// SD-ID of the structured-data element carrying event id, org, kind and type:
    /// `name@<private enterprise number>` (the default uses 32473, the PEN reserved for
    /// documentation: set your own).
    #[serde(default = "default_sd_id")]
    pub sd_id: String,
    /// RFC 5424 HOSTNAME; default: this machine's host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// `tls`: PEM file of CA certificates to trust besides the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Timeout for connecting and for writing one batch.
    #[serde(default = "crate::sinks::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// `udp`: the largest datagram; longer messages are cut on a UTF-8 boundary (and counted
    /// in `clickhouse_audit_sink_messages_truncated_total`). TCP/TLS never cut.
    #[serde(
        default = "default_max_message_bytes",
        deserialize_with = "crate::values::de_size"
    )]
    pub max_message_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    #[default]
    OctetCounting,
    Newline,
}

/// Syslog severity (0–7) per catalogue level, indexed by `Severity::id() - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeverityMap(pub [u8; 5]);

impl Default for SeverityMap {
    fn default() -> Self {
        // info, notice, warning, err, crit
        SeverityMap([6, 5, 4, 3, 2])
    }
}

impl SeverityMap {
    pub fn get(&self, level: Severity) -> u8 {
        self.0[usize::from(level.id() - 1)]
    }
}

fn default_facility() -> u8 {
    4 // auth: security/authorization messages
}
fn default_app_name() -> String {
    "clickhouse-audit".into()
}
fn default_sd_id() -> String {
    "chaudit@32473".into()
}
fn default_max_message_bytes() -> u64 {
    8192
}

const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "security", "console", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];
const SEVERITIES: &[&str] = &[
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// A number or a name from `names` (its index); `aliases` map other spellings.
#[derive(Deserialize)]
#[serde(untagged)]
enum NameOrNumber {
    N(u64),
    S(String),
}

fn pick(v: NameOrNumber, names: &[&str], aliases: &[(&str, usize)]) -> Option<u8> {
    let i = match v {
        NameOrNumber::N(n) => usize::try_from(n).ok()?,
        NameOrNumber::S(s) => {
            let s = s.trim().to_ascii_lowercase();
            names
                .iter()
                .position(|n| *n == s)
                .or_else(|| aliases.iter().find(|(a, _)| *a == s).map(|(_, i)| *i))?
        }
    };
    (i < names.len()).then_some(i as u8)
}

fn severity_value(v: NameOrNumber) -> Option<u8> {
    pick(
        v,
        SEVERITIES,
        &[
            ("emergency", 0),
            ("critical", 2),
            ("error", 3),
            ("warn", 4),
            ("informational", 6),
        ],
    )
}

fn de_facility<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    pick(
        NameOrNumber::deserialize(d)?,
        FACILITIES,
        &[("auth-priv", 10)],
    )
    .ok_or_else(|| {
        serde::de::Error::custom(format!(
            "facility: expected a number 0-23 or one of {}",
            FACILITIES.join(", ")
        ))
    })
}

fn de_severity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SeverityMap, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Spec {
        One(NameOrNumber),
        Table(BTreeMap<String, NameOrNumber>),
    }
    let bad = |what: String| {
        serde::de::Error::custom(format!(
            "severity: {what}; expected \"auto\", a severity ({} or 0-7), or a table such as {{ high = \"alert\" }} with keys info, low, medium, high, critical",
            SEVERITIES.join(", ")
        ))
    };
    match Spec::deserialize(d)? {
        Spec::One(NameOrNumber::S(s)) if s.trim().eq_ignore_ascii_case("auto") => {
            Ok(SeverityMap::default())
        }
        Spec::One(v) => severity_value(v)
            .map(|s| SeverityMap([s; 5]))
            .ok_or_else(|| bad("unknown severity".into())),
        Spec::Table(table) => {
            let mut map = SeverityMap::default();
            for (level, v) in table {
                let level = Severity::parse(&level)
                    .ok_or_else(|| bad(format!("unknown level {level:?}")))?;
                map.0[usize::from(level.id() - 1)] = severity_value(v)
                    .ok_or_else(|| bad(format!("unknown severity for {}", level.caption())))?;
            }
            Ok(map)
        }
    }
}

fn de_protocol<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
    match String::deserialize(d)?.as_str() {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "tls" => Ok(Protocol::Tls),
        other => Err(serde::de::Error::custom(format!(
            "protocol = {other:?}: expected \"tcp\", \"udp\" or \"tls\""
        ))),
    }
}

fn de_framing<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Framing, D::Error> {
    match String::deserialize(d)?.as_str() {
        "octet-counting" => Ok(Framing::OctetCounting),
        "newline" => Ok(Framing::Newline),
        other => Err(serde::de::Error::custom(format!(
            "framing = {other:?}: expected \"octet-counting\" or \"newline\""
        ))),
    }
}

/// RFC 5424 SD-NAME: 1–32 printable US-ASCII characters except `=`, space, `]` and `"`.
pub fn is_sd_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"'))
}

impl SinkSpec for SyslogConfig {
    fn validate(&self, at: &KeyPath) -> Result<(), ConfigError> {
        if crate::sinks::tls::split_host_port(&self.address).is_none() {
            return Err(at.err(
                "address",
                format!("{:?}", self.address),
                "expected \"host:port\" (\"[v6]:port\" for IPv6)",
            ));
        }
        let (sd_name, pen) = self.sd_id.split_once('@').unwrap_or(("", ""));
        if !is_sd_name(&self.sd_id)
            || sd_name.is_empty()
            || pen.is_empty()
            || !pen.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        {
            return Err(at.err(
                "sd_id",
                format!("{:?}", self.sd_id),
                "expected name@<private enterprise number>, at most 32 printable ASCII characters without '=', ']', '\"' or space",
            ));
        }
        if self.app_name.is_empty()
            || self.app_name.len() > 48
            || !self.app_name.bytes().all(|b| (33..=126).contains(&b))
        {
            return Err(at.err(
                "app_name",
                format!("{:?}", self.app_name),
                "1-48 printable ASCII characters without spaces",
            ));
        }
        if let Some(h) = &self.hostname
            && (h.is_empty() || h.len() > 255 || !h.bytes().all(|b| (33..=126).contains(&b)))
        {
            return Err(at.err(
                "hostname",
                format!("{h:?}"),
                "1-255 printable ASCII characters without spaces",
            ));
        }
        if self.timeout.is_zero() {
            return Err(at.err("timeout", "\"0s\"", "must be greater than zero"));
        }
        if !(480..=65507).contains(&self.max_message_bytes) {
            return Err(at.err(
                "max_message_bytes",
                self.max_message_bytes,
                "must be between 480 (RFC 5426's minimum) and 65507 (the largest UDP payload)",
            ));
        }
        if self.ca_file.is_some() && self.protocol != Protocol::Tls {
            return Err(at.err("ca_file", "…", "only used with protocol = \"tls\""));
        }
        Ok(())
    }

    fn build(&self, ctx: BuildContext<'_>) -> anyhow::Result<Box<dyn Sink>> {
        Ok(Box::new(super::SyslogSink::new(
            self,
            ctx.name,
            ctx.format,
            ctx.metrics,
        )?))
    }
}
