//! Unit tests of the posture rules: the key and backup rules on hand-built views, and the
//! per-rule `enabled` / `severity` overrides.

use super::*;

fn at(t: &str) -> DateTime<Utc> {
    parse_created_at(t).unwrap()
}

fn hits(view: &View, now: &str, cfg: &FindingsConfig) -> Vec<(&'static str, String)> {
    evaluate(view, at(now), cfg)
        .into_iter()
        .filter(|e| e.hit.is_some())
        .map(|e| (e.rule, e.resource_id))
        .collect()
}

fn obj(id: &str, v: Value) -> Obj {
    Obj { id: id.into(), v }
}

#[test]
fn key_rules_follow_expiry_use_roles_and_state() {
    let view = View {
        keys: vec![
            obj(
                "never",
                json!({"name":"a","state":"enabled","expireAt":null,"usedAt":"2025-01-01T00:00:00Z"}),
            ),
            obj(
                "soon",
                json!({"name":"b","state":"enabled","expireAt":"2025-01-10T00:00:00Z","usedAt":"2025-01-01T00:00:00Z"}),
            ),
            obj(
                "idle",
                json!({"name":"c","state":"enabled","expireAt":"2026-01-01T00:00:00Z","createdAt":"2024-01-01T00:00:00Z"}),
            ),
            obj(
                "root",
                json!({"name":"d","state":"enabled","expireAt":"2026-01-01T00:00:00Z","usedAt":"2025-01-01T00:00:00Z","assignedRoles":[{"roleName":"Admin"}]}),
            ),
            obj(
                "off",
                json!({"name":"e","state":"disabled","roles":["admin"]}),
            ),
        ],
        ..View::default()
    };
    let got = hits(&view, "2025-01-02T00:00:00Z", &FindingsConfig::default());
    let want: Vec<(&str, String)> = vec![
        ("key_never_expires", "never".into()),
        ("key_expiring", "soon".into()),
        ("key_unused", "idle".into()),
        ("key_admin", "root".into()),
        ("key_disabled", "off".into()),
    ];
    assert_eq!(got, want);
}

#[test]
fn backup_rules_need_a_listed_service() {
    let mut view = View {
        services: vec![
            obj("s1", json!({"name":"p","state":"running"})),
            obj("s2", json!({"name":"q","state":"running"})),
        ],
        ..View::default()
    };
    view.backups.insert(
        "s1".into(),
        vec![
            json!({"status":"in_progress","startedAt":"2025-01-05T00:00:00Z"}),
            json!({"status":"error","startedAt":"2025-01-04T00:00:00Z"}),
            json!({"status":"done","startedAt":"2025-01-01T00:00:00Z","finishedAt":"2025-01-01T00:10:00Z"}),
        ],
    );
    view.backups_known.insert("s1".into());
    let got = hits(&view, "2025-01-05T01:00:00Z", &FindingsConfig::default());
    assert_eq!(
        got,
        vec![
            ("backup_failed", "s1".into()),
            ("backup_stale", "s1".into())
        ]
    );
    let evals = evaluate(
        &view,
        at("2025-01-05T01:00:00Z"),
        &FindingsConfig::default(),
    );
    assert!(
        evals
            .iter()
            .all(|e| !(e.rule.starts_with("backup_") && e.resource_id == "s2")),
        "s2's backups were never listed: not judged"
    );
}

#[test]
fn disabled_rules_and_severity_overrides_apply() {
    let mut cfg = FindingsConfig::default();
    cfg.service_open_to_internet.severity = Some(Severity::Critical);
    cfg.service_unhealthy.enabled = false;
    let view = View {
        services: vec![obj(
            "s",
            json!({"state":"failed","ipAccessList":[{"source":"::/0"}]}),
        )],
        ..View::default()
    };
    let evals = evaluate(&view, at("2025-01-01T00:00:00Z"), &cfg);
    assert_eq!(evals.len(), 1);
    assert_eq!(evals[0].rule, "service_open_to_internet");
    assert_eq!(evals[0].severity, Severity::Critical);
}
