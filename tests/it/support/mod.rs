//! Helpers shared by the integration tests: an HTTP client for the emulator (`api`), the
//! vendor OpenAPI spec as a JSON-Schema validator (`spec`), configs pointing at an emulator and
//! reading NDJSON outputs back, fixed event sets for the formats (`fixtures`) and a scriptable
//! webhook receiver with a Standard Webhooks verifier (`receiver`).

#![allow(dead_code, reason = "each test module uses a different subset")]

pub mod api;
pub mod azure_monitor;
pub mod azurite;
pub mod clickhouse;
pub mod daemon;
pub mod elasticsearch;
pub mod fixtures;
pub mod http;
pub mod moto;
pub mod net;
pub mod objects;
pub mod otlp;
pub mod receiver;
pub mod require;
pub mod rig;
pub mod rsyslog;
pub mod sinks;
pub mod spec;
pub mod splunk_hec;
pub mod tansu;
pub mod toml_doc;
pub mod wait;

use std::collections::HashMap;
use std::path::Path;

use clickhouse_audit_exporter::config::Config;
use clickhouse_audit_exporter::emulator::EmulatorHandle;
pub use toml_doc::TomlDoc;

/// The parts of a test config that do not depend on the emulator or the state directory.
const BASE_CONFIG: &str = r#"
[api]
max_backoff = "2s"

[activities]
interval = "1s"
overlap = "15m"
initial_lookback = "2d"

[inventory]
enabled = false

[server]
listen = ""
"#;

/// A config for `emu` with state in `dir`, plus `extra` (sinks, overriding tables), as a table.
pub fn config_doc(emu: &EmulatorHandle, dir: &Path, extra: &str) -> TomlDoc {
    let orgs: Vec<toml::Value> = emu
        .emulator
        .org_ids()
        .into_iter()
        .map(toml::Value::from)
        .collect();
    TomlDoc::parse(BASE_CONFIG)
        .set("api.base_url", emu.base_url.as_str())
        .set("api.key_id", emu.emulator.key_id().as_str())
        .set("api.key_secret", emu.emulator.key_secret().as_str())
        .set("api.organizations", orgs)
        .set("state.path", dir.join("state.db").display().to_string())
        .merge(extra)
}

/// [`config_doc`] as TOML text.
pub fn config_toml(emu: &EmulatorHandle, dir: &Path, extra: &str) -> String {
    config_doc(emu, dir, extra).to_string()
}

pub fn config(emu: &EmulatorHandle, dir: &Path, extra: &str) -> Config {
    Config::from_toml(&config_toml(emu, dir, extra), Some(HashMap::new()))
        .expect("test config is valid")
}

/// A file sink block.
pub fn file_sink(name: &str, path: &Path, batch: usize) -> String {
    format!(
        "[[sinks]]\nname = \"{name}\"\ntype = \"file\"\npath = \"{}\"\nbatch_max_events = {batch}\n",
        path.display()
    )
}

/// Parses every complete line of an NDJSON file (a last line without its newline is still
/// being written by the sink: it is left for the next read).
pub fn read_ndjson(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// Activity ids of envelope lines, in file order.
pub fn activity_ids(lines: &[serde_json::Value]) -> Vec<String> {
    lines
        .iter()
        .map(|v| {
            v["activity"]["id"]
                .as_str()
                .expect("activity id")
                .to_string()
        })
        .collect()
}

/// Counts per id.
pub fn counts(ids: &[String]) -> HashMap<&str, usize> {
    let mut m = HashMap::new();
    for id in ids {
        *m.entry(id.as_str()).or_default() += 1;
    }
    m
}
