//! Request-field checks shared by the handlers, mirroring the constraints the spec states
//! (name lengths, provider/region pairs, IP/CIDR sources, tag patterns, memory multiples,
//! replica counts, idle timeouts). Each failure is a 400 `BAD_REQUEST` naming the field.

use serde_json::{Value, json};
use std::net::IpAddr;

use super::handlers::{ApiError, Result};

const AWS: &[&str] = &[
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "eu-central-1",
    "eu-west-1",
    "eu-west-2",
    "il-central-1",
    "us-east-1",
    "us-east-2",
    "us-west-2",
];
const GCP: &[&str] = &[
    "us-east1",
    "us-central1",
    "europe-west2",
    "europe-west4",
    "asia-southeast1",
    "asia-northeast1",
];
const AZURE: &[&str] = &[
    "eastus",
    "eastus2",
    "westus3",
    "germanywestcentral",
    "centralus",
];

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

/// 1–50 characters.
pub(crate) fn service_name(name: Option<&str>) -> Result<String> {
    let name = name.ok_or_else(|| bad("name is required"))?;
    let n = name.chars().count();
    if n == 0 || n > 50 || name.trim().is_empty() {
        return Err(bad("name must be 1 to 50 characters"));
    }
    Ok(name.to_owned())
}

pub(crate) fn region(provider: &str, region: &str) -> Result<()> {
    let regions = match provider {
        "aws" => AWS,
        "gcp" => GCP,
        "azure" => AZURE,
        other => {
            return Err(bad(format!(
                "Invalid provider '{other}': expected aws, gcp or azure"
            )));
        }
    };
    match regions.contains(&region) {
        true => Ok(()),
        false => Err(bad(format!(
            "Invalid region '{region}' for provider {provider}"
        ))),
    }
}

fn ip_or_cidr(s: &str) -> bool {
    match s.split_once('/') {
        None => s.parse::<IpAddr>().is_ok(),
        Some((ip, bits)) => match (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(b)) => b <= 32,
            (Ok(IpAddr::V6(_)), Ok(b)) => b <= 128,
            _ => false,
        },
    }
}

/// `[{source: IP|CIDR, description?}]`, normalized to exactly those two fields.
pub(crate) fn ip_access_list(entries: &[Value]) -> Result<Vec<Value>> {
    entries
        .iter()
        .map(|e| {
            let source = e.get("source").and_then(Value::as_str).unwrap_or("");
            if !ip_or_cidr(source) {
                return Err(bad(format!(
                    "Invalid ipAccessList source '{source}': expected an IP address or CIDR"
                )));
            }
            let description = e.get("description").and_then(Value::as_str).unwrap_or("");
            Ok(json!({ "source": source, "description": description }))
        })
        .collect()
}

fn tag_text(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// `ResourceTagsV1`: key `^[a-zA-Z0-9._-]+$` (≤128), optional value of the same form (≤256).
pub(crate) fn tags(entries: &[Value]) -> Result<Vec<(String, Option<String>)>> {
    if entries.len() > 50 {
        return Err(bad("At most 50 tags are allowed"));
    }
    entries
        .iter()
        .map(|t| {
            let key = t.get("key").and_then(Value::as_str).unwrap_or("");
            if !tag_text(key, 128) {
                return Err(bad(format!("Invalid tag key '{key}'")));
            }
            match t.get("value") {
                None | Some(Value::Null) => Ok((key.to_owned(), None)),
                Some(Value::String(v)) if tag_text(v, 256) => Ok((key.to_owned(), Some(v.clone()))),
                Some(v) => Err(bad(format!("Invalid tag value {v} for key '{key}'"))),
            }
        })
        .collect()
}

fn whole(field: &str, v: f64) -> Result<u32> {
    if v.fract() != 0.0 || !(0.0..=u32::MAX as f64).contains(&v) {
        return Err(bad(format!("{field} must be a whole number")));
    }
    Ok(v as u32)
}

/// A multiple of 4 in 8..=356.
pub(crate) fn replica_memory(field: &str, v: Option<f64>) -> Result<Option<u32>> {
    let Some(v) = v else { return Ok(None) };
    let gb = whole(field, v)?;
    if gb % 4 != 0 || !(8..=356).contains(&gb) {
        return Err(bad(format!(
            "{field} must be a multiple of 4 between 8 and 356"
        )));
    }
    Ok(Some(gb))
}

/// Deprecated three-replica totals: a multiple of 12 in 24..=1068, returned per replica.
pub(crate) fn total_memory(field: &str, v: Option<f64>) -> Result<Option<u32>> {
    let Some(v) = v else { return Ok(None) };
    let gb = whole(field, v)?;
    if gb % 12 != 0 || !(24..=1068).contains(&gb) {
        return Err(bad(format!(
            "{field} must be a multiple of 12 between 24 and 1068"
        )));
    }
    Ok(Some(gb / 3))
}

pub(crate) fn min_le_max(min: u32, max: u32) -> Result<()> {
    match min <= max {
        true => Ok(()),
        false => Err(bad("minReplicaMemoryGb must not exceed maxReplicaMemoryGb")),
    }
}

/// 1..=50.
pub(crate) fn replicas(v: Option<f64>) -> Result<Option<u32>> {
    let Some(v) = v else { return Ok(None) };
    let n = whole("numReplicas", v)?;
    if !(1..=50).contains(&n) {
        return Err(bad("numReplicas must be between 1 and 50"));
    }
    Ok(Some(n))
}

/// At least 5 minutes.
pub(crate) fn idle_timeout(v: Option<f64>) -> Result<Option<u32>> {
    let Some(v) = v else { return Ok(None) };
    let n = whole("idleTimeoutMinutes", v)?;
    if n < 5 {
        return Err(bad("idleTimeoutMinutes must be >= 5"));
    }
    Ok(Some(n))
}

pub(crate) fn release_channel(v: Option<&str>) -> Result<Option<&'static str>> {
    match v {
        None => Ok(None),
        Some("slow") => Ok(Some("slow")),
        Some("default") => Ok(Some("default")),
        Some("fast") => Ok(Some("fast")),
        Some(o) => Err(bad(format!(
            "Invalid releaseChannel '{o}': expected slow, default or fast"
        ))),
    }
}

/// A plausible address: one `@`, something on both sides, a dot in the domain.
pub(crate) fn email(v: &str) -> Result<String> {
    let ok = matches!(v.split_once('@'), Some((local, domain))
        if !local.is_empty() && domain.contains('.') && !domain.contains('@') && !v.contains(char::is_whitespace));
    match ok {
        true => Ok(v.to_lowercase()),
        false => Err(bad(format!("Invalid email '{v}'"))),
    }
}
