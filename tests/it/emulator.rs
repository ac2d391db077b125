//! The built-in emulator against the vendor spec and the API notes: conformance of every
//! response, auth / permissions / rate limit, activity windows and visibility, fault switches,
//! inventory writes and the activities they leave. One submodule per concern.

mod activities;
mod auth_limits;
mod conformance;
mod faults;
mod inventory;

use clickhouse_audit_exporter::emulator::{
    DateValidation, Emulator, EmulatorHandle, EmulatorOptions, WindowSemantics,
};
use serde_json::Value;

use crate::support::api::{Api, Resp};
use crate::support::spec::spec;

/// Test defaults without the rate limit, so only the rate-limit tests meet 429s.
fn unlimited() -> EmulatorOptions {
    EmulatorOptions {
        rate_limit: None,
        ..EmulatorOptions::default()
    }
}

/// Every activity window mode worth proving a behaviour under: the strict default, then each
/// switch on its own (names for assertion messages).
fn window_modes() -> Vec<(&'static str, WindowSemantics)> {
    let d = WindowSemantics::default();
    vec![
        ("strict", d),
        (
            "lenient",
            WindowSemantics {
                dates: DateValidation::Lenient,
                ..d
            },
        ),
        (
            "date-only",
            WindowSemantics {
                dates: DateValidation::DateOnly,
                ..d
            },
        ),
        (
            "whole-days",
            WindowSemantics {
                whole_days: true,
                ..d
            },
        ),
        (
            "zone-offset",
            WindowSemantics {
                dates: DateValidation::Lenient,
                zone_offset: chrono::FixedOffset::west_opt(8 * 3600),
                ..d
            },
        ),
        (
            "cap",
            WindowSemantics {
                cap: Some(100),
                ..d
            },
        ),
        (
            "visibility-delay",
            WindowSemantics {
                visibility_delay: std::time::Duration::from_secs(40 * 60),
                ..d
            },
        ),
    ]
}

async fn start(opts: EmulatorOptions) -> (EmulatorHandle, Api) {
    let h = Emulator::start(opts).await.expect("emulator starts");
    let api = Api::new(&h);
    (h, api)
}

/// `/v1/organizations/{first org}`.
fn org_path(h: &EmulatorHandle) -> String {
    format!("/v1/organizations/{}", h.emulator.org_ids()[0])
}

/// Asserts a 200 that matches the spec's schema for `template`; returns the JSON.
async fn ok(api: &Api, method: &str, path: &str, template: &str, body: Option<Value>) -> Value {
    let r = api.send(method.parse().unwrap(), path, body).await;
    assert_eq!(
        r.status,
        200,
        "{method} {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let json = r.json();
    spec().check(method, template, 200, &json);
    assert_eq!(json["status"], 200);
    json
}

/// Asserts an error envelope with `status` whose `error` starts with its code; checks the
/// spec's error schema for `template`.
async fn err(
    api: &Api,
    method: &str,
    path: &str,
    template: &str,
    body: Option<Value>,
    status: u16,
) -> Resp {
    let r = api.send(method.parse().unwrap(), path, body).await;
    assert_eq!(
        r.status,
        status,
        "{method} {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let json = r.json();
    spec().check(method, template, status, &json);
    assert_eq!(json["status"], status);
    r
}

/// The `result` array of an activity list.
async fn activities(api: &Api, h: &EmulatorHandle, query: &str) -> Vec<Value> {
    let path = format!("{}/activities{query}", org_path(h));
    let json = ok(
        api,
        "GET",
        &path,
        "/v1/organizations/{organizationId}/activities",
        None,
    )
    .await;
    json["result"].as_array().expect("result array").clone()
}

fn ids(list: &[Value]) -> Vec<&str> {
    list.iter().map(|a| a["id"].as_str().unwrap()).collect()
}
