//! The vendor OpenAPI spec (`$CH_AUDIT_OPENAPI_SPEC`, else `docs/api/…` in the crate, a copy kept
//! in the repository so a fresh clone tests alone)
//! as JSON-Schema validators for response bodies. Each validator is the operation's response
//! schema with the spec's `components` copied beside it, so `#/components/...` refs resolve.
//!
//! Strict mode also closes every object schema (`additionalProperties: false`), so a misspelt
//! or invented field fails; only `Activity` stays open (unknown fields are part of the test
//! data) and its `type` enum is dropped (unknown future types are deliberate; tests check the
//! known ones against the enum separately).

use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

pub struct Spec {
    pub doc: Value,
    strict_components: Value,
    cache: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

pub fn path() -> PathBuf {
    match std::env::var_os("CH_AUDIT_OPENAPI_SPEC") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(clickhouse_audit_exporter::emulator::SPEC_PATH),
    }
}

/// The spec, loaded once per test process.
pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let p = path();
        let text = std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("reading the spec at {}: {e}", p.display()));
        let doc: Value = serde_json::from_str(&text).expect("spec is JSON");
        let mut strict_components = doc["components"].clone();
        close_objects(&mut strict_components);
        let activity = &mut strict_components["schemas"]["Activity"];
        activity
            .as_object_mut()
            .expect("Activity schema")
            .remove("additionalProperties");
        activity["properties"]["type"]
            .as_object_mut()
            .expect("Activity.type")
            .remove("enum");
        Spec {
            doc,
            strict_components,
            cache: Mutex::default(),
        }
    })
}

/// Adds `additionalProperties: false` to every schema object that lists `properties`.
fn close_objects(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.contains_key("properties") && !m.contains_key("additionalProperties") {
                m.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (k, child) in m.iter_mut() {
                // `properties` maps names to schemas; a property *named* "properties" is no schema.
                if k == "example" || k == "examples" || k == "enum" || k == "const" {
                    continue;
                }
                close_objects(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(close_objects),
        _ => {}
    }
}

impl Spec {
    /// The operation object at `paths[path][method]`.
    pub fn operation(&self, method: &str, path: &str) -> &Value {
        let op = &self.doc["paths"][path][method.to_lowercase()];
        assert!(op.is_object(), "spec has no {method} {path}");
        op
    }

    /// The response schema for `status`: its own entry, else the spec's generic 400 / 500 error.
    fn response_schema(&self, method: &str, path: &str, status: u16) -> Value {
        let responses = &self.operation(method, path)["responses"];
        let code = status.to_string();
        let key = if responses.get(&code).is_some() {
            code
        } else if status >= 500 {
            "500".into()
        } else {
            "400".into()
        };
        responses[&key]["content"]["application/json"]["schema"].clone()
    }

    fn build(&self, mut schema: Value, strict: bool) -> jsonschema::Validator {
        let components = if strict {
            close_objects(&mut schema);
            self.strict_components.clone()
        } else {
            self.doc["components"].clone()
        };
        let root = schema.as_object_mut().expect("schema is an object");
        root.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        root.insert("components".into(), components);
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("building a validator: {e}"))
    }

    fn cached(
        &self,
        key: String,
        make: impl FnOnce() -> jsonschema::Validator,
    ) -> Arc<jsonschema::Validator> {
        if let Some(v) = self.cache.lock().unwrap().get(&key) {
            return Arc::clone(v);
        }
        let v = Arc::new(make());
        self.cache.lock().unwrap().insert(key, Arc::clone(&v));
        v
    }

    /// Panics unless `body` matches the strict response schema of `method path` for `status`.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &Value) {
        let errors = self.errors(method, path, status, body);
        report(&format!("{method} {path} {status}"), &errors, body);
    }

    /// What is wrong with `body` against the strict response schema (empty: it conforms).
    pub fn errors(&self, method: &str, path: &str, status: u16, body: &Value) -> Vec<String> {
        let key = format!("{method} {path} {status}");
        let v = self.cached(key, || {
            self.build(self.response_schema(method, path, status), true)
        });
        errors(&v, body)
    }

    /// Panics unless `value` matches `components.schemas[name]` exactly as the spec has it
    /// (enums included, objects open).
    pub fn check_schema(&self, name: &str, value: &Value) {
        let key = format!("schema {name}");
        let schema = json!({ "$ref": format!("#/components/schemas/{name}") });
        let v = self.cached(key.clone(), || self.build(schema, false));
        report(&key, &errors(&v, value), value);
    }
}

fn errors(v: &jsonschema::Validator, body: &Value) -> Vec<String> {
    v.iter_errors(body)
        .take(10)
        .map(|e| format!("  at {}: {e}", e.instance_path()))
        .collect()
}

fn report(what: &str, errors: &[String], body: &Value) {
    if !errors.is_empty() {
        let text = body.to_string();
        let shown: String = text.chars().take(1500).collect();
        panic!(
            "{what}: body does not match the spec:\n{}\nbody: {shown}",
            errors.join("\n")
        );
    }
}
