//! Fuzz target `config`: arbitrary TOML text, plus `CH_AUDIT__…` environment variables, through
//! `Config::from_toml` (deserialization, sink parsing and `validate`).
//!
//! Input: UTF-8; the TOML text up to the first NUL byte, then one `KEY=VALUE` per line for the
//! environment map (`CH_AUDIT__` is prefixed when missing), so plain `.toml` files are seeds.
//! Asserts: never a panic, only `Ok` or a worded `Err`; a loaded config passes `validate()`
//! again and renders its `summary()` and `Debug` form.

#![no_main]

use std::collections::HashMap;

use clickhouse_audit_exporter::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (toml, env_text) = text.split_once('\0').unwrap_or((text, ""));
    let env: HashMap<String, String> = env_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let k = if k.starts_with("CH_AUDIT__") {
                k.to_string()
            } else {
                format!("CH_AUDIT__{k}")
            };
            (k, v.to_string())
        })
        .collect();
    match Config::from_toml(toml, Some(env)) {
        Ok(cfg) => {
            if let Err(e) = cfg.validate() {
                panic!("a loaded config fails validate() again: {}", e.0);
            }
            let _ = cfg.summary();
            let _ = format!("{cfg:?}");
        }
        Err(e) => assert!(!e.0.is_empty(), "a config error is worded"),
    }
});
