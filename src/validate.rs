//! `validate`: the config, then (unless `--offline`) each sink's own online check (e.g. the
//! object store's bucket is writable) and the API: credentials and each permission
//! the enabled streams need, one ✓/✗ line per check with the fix, and the activity window date
//! format the API accepts (probed live), for each API key; then each key's own record (state,
//! expiry) and its roles against the minimal permission set (least privilege: a WARN when
//! broader). Exit 0 only if all pass.

use std::process::ExitCode;

use crate::api::dates::format_name;
use crate::api::{ApiError, Client, DateProbe, WhoAmI};
use crate::api_keys::{Privilege, find_own, needed_permissions};
use crate::config::{Config, Resource};

struct Report {
    failed: usize,
}

impl Report {
    /// `check` of one key's line (`prefix` names the key when there are several).
    fn check_at<T>(&mut self, prefix: &str, what: &str, res: Result<T, String>) -> Option<T> {
        self.check(&format!("{prefix}{what}"), res)
    }

    fn check<T>(&mut self, what: &str, res: Result<T, String>) -> Option<T> {
        match res {
            Ok(v) => {
                println!("✓ {what}");
                Some(v)
            }
            Err(e) => {
                println!("✗ {what}: {e}");
                self.failed += 1;
                None
            }
        }
    }
}

fn api_err(e: ApiError) -> String {
    e.to_string()
}

/// `rfc3339 (2026-09-08T10:53:17.000Z accepted)`, plus what was refused before it.
fn describe_probe(p: &DateProbe) -> String {
    let mut line = format!("{} ({} accepted", format_name(p.accepted), p.from_date);
    if !p.refused.is_empty() {
        let refused: Vec<String> = p
            .refused
            .iter()
            .map(|(f, msg)| format!("{} refused: {msg}", format_name(*f)))
            .collect();
        line.push_str(&format!(" after {}", refused.join("; ")));
    }
    line.push(')');
    line
}

/// Runs the checks and prints the report.
pub async fn run(cfg: &Config, offline: bool) -> anyhow::Result<ExitCode> {
    let mut r = Report { failed: 0 };
    r.check(
        &format!(
            "config: {} sink(s) [{}], state {}",
            cfg.sink_configs.len(),
            cfg.sink_configs
                .iter()
                .map(|s| format!("{} ({})", s.name, s.kind.type_name()))
                .collect::<Vec<_>>()
                .join(", "),
            cfg.state.path.display()
        ),
        Ok(()),
    );
    for insecure in cfg.insecure_transports() {
        println!(
            "! {}: allow_insecure: {} (the daemon warns at every start)",
            insecure.component, insecure.detail
        );
    }
    if offline {
        return Ok(ExitCode::SUCCESS);
    }
    for sc in &cfg.sink_configs {
        if let Some(probe) = sc.kind.spec().probe() {
            let res = probe.await;
            r.check(
                &format!(
                    "sink {}: {}",
                    sc.name,
                    res.as_deref().unwrap_or("destination")
                ),
                res.map(|_| ()),
            );
        }
    }
    let Some(specs) = r.check(
        "credentials configured",
        cfg.api.key_specs().map_err(|e| e.to_string()),
    ) else {
        return Ok(ExitCode::FAILURE);
    };
    let need = needed_permissions(cfg);
    println!(
        "- permissions the enabled streams need (the minimal set): {}",
        need.iter()
            .map(|(p, why)| format!("{p} ({})", why.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let several = specs.len() > 1 || !cfg.api.keys.is_empty();
    for spec in specs {
        let prefix = if several {
            format!("key {}: ", spec.name)
        } else {
            String::new()
        };
        let configured = spec.organizations.clone();
        let client = Client::for_key(&cfg.api, spec, metrics.clone())?;
        let Some(orgs) = check_key(&mut r, cfg, &client, configured, &prefix).await else {
            continue;
        };
        if let Some(org) = orgs.first() {
            own_key(&mut r, &client, org, &need, &prefix).await;
        }
    }
    if r.failed == 0 {
        println!("all checks passed");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} check(s) failed", r.failed);
        Ok(ExitCode::FAILURE)
    }
}

/// The checks of one key: credentials, then each permission the enabled streams need in each
/// organization; the organizations checked, or `None` when the credentials were refused.
async fn check_key(
    r: &mut Report,
    cfg: &Config,
    client: &Client,
    configured: Vec<String>,
    prefix: &str,
) -> Option<Vec<String>> {
    let who = client.whoami().await;
    let orgs: Vec<String> = match who {
        Ok(Some(WhoAmI::ApiKey {
            key_id,
            name,
            organization_id,
        })) => {
            r.check_at(
                prefix,
                &format!(
                    "credentials accepted: key {key_id} ({}) of organization {organization_id}",
                    name.unwrap_or_default()
                ),
                Ok(()),
            );
            vec![organization_id]
        }
        Ok(_) => {
            let list = client.organizations().await.map_err(api_err);
            match r.check_at(prefix, "credentials accepted (organizations listed)", list) {
                Some(list) => list.into_iter().filter_map(|o| o.id).collect(),
                None => return None,
            }
        }
        Err(e) => {
            r.check_at(prefix, "credentials accepted", Err::<(), _>(api_err(e)));
            return None;
        }
    };
    let orgs = if configured.is_empty() {
        orgs
    } else {
        configured
    };
    for org in &orgs {
        if cfg.activities.enabled {
            // One-second window: proves the permission and finds the date format the API takes.
            let res = client.probe_date_format(org).await;
            let probe = r.check_at(
                prefix,
                &format!(
                    "org {org}: activities readable (control-plane:organization:view-activities)"
                ),
                res.map_err(api_err),
            );
            if let Some(p) = probe {
                r.check_at(
                    prefix,
                    &format!("org {org}: activities date format: {}", describe_probe(&p)),
                    Ok(()),
                );
            }
        }
        if cfg.inventory.enabled {
            let mut services = None;
            for res in &cfg.inventory.resources {
                let (label, out) = match res {
                    Resource::Services => {
                        let s = client.services(org).await;
                        let out = s.as_ref().map(|_| ()).map_err(|e| e.to_string());
                        services = s.ok();
                        ("services readable", out)
                    }
                    Resource::Keys => (
                        "API keys readable (control-plane:organization:view-api-keys)",
                        client.keys(org).await.map(|_| ()).map_err(api_err),
                    ),
                    Resource::Members => (
                        "members readable (control-plane:organization:view)",
                        client.members(org).await.map(|_| ()).map_err(api_err),
                    ),
                    Resource::Invitations => (
                        "invitations readable (control-plane:organization:view)",
                        client.invitations(org).await.map(|_| ()).map_err(api_err),
                    ),
                    Resource::Backups => continue,
                };
                r.check_at(prefix, &format!("org {org}: {label}"), out);
            }
            if cfg.inventory.resources.contains(&Resource::Backups) {
                let first = match &services {
                    Some(list) => list.iter().find_map(|s| s.id.clone()),
                    None => client
                        .services(org)
                        .await
                        .ok()
                        .and_then(|l| l.into_iter().find_map(|s| s.id)),
                };
                match first {
                    Some(service) => {
                        let res = client
                            .backups(org, &service)
                            .await
                            .map(|_| ())
                            .map_err(api_err);
                        r.check_at(
                            prefix,
                            &format!(
                                "org {org}: backups readable (control-plane:service:view-backups)"
                            ),
                            res,
                        );
                    }
                    None => println!("- org {org}: backups not checked (no service visible)"),
                }
            }
        }
    }
    Some(orgs)
}

/// The key's own record: state and expiry (the daemon watches them), and its roles against the
/// minimal set (least privilege: a WARN line, not a failure).
async fn own_key(
    r: &mut Report,
    client: &Client,
    org: &str,
    need: &std::collections::BTreeMap<&'static str, Vec<&'static str>>,
    prefix: &str,
) {
    let record = match client.keys(org).await {
        Ok(list) => find_own(&list, client.key_id()),
        Err(e) => {
            println!("- {prefix}own key record not readable ({e}): expiry and roles not checked");
            return;
        }
    };
    let Some(record) = record else {
        println!("- {prefix}own key not found in the key list of organization {org}");
        return;
    };
    let expiry = match record.expires() {
        Ok(None) => "never expires".to_string(),
        Ok(Some(at)) => format!("expires {}", at.to_rfc3339()),
        Err(text) => format!("expireAt {text:?} unreadable"),
    };
    let state = record
        .state
        .clone()
        .unwrap_or_else(|| "state not shown".into());
    let usable = if record.disabled() {
        Err(format!("{state}, {expiry}"))
    } else {
        Ok(())
    };
    r.check_at(
        prefix,
        &format!("own key record: {state}, {expiry}"),
        usable,
    );
    let minimal: Vec<&str> = need.keys().copied().collect();
    match Privilege::judge(&record.role_names()) {
        Privilege::Broader { roles } => {
            let line = format!(
                "least privilege: the key's role(s) {} are broader than the exporter needs (it only reads); give it a custom role with exactly: {}",
                roles.join(", "),
                minimal.join(", ")
            );
            tracing::warn!(key = %client.key_name(), "{line}");
            println!("! {prefix}{line}");
        }
        Privilege::Unclear { roles } if !roles.is_empty() => println!(
            "- {prefix}least privilege: role(s) {} (their permissions are not shown to a read-only key): they should grant no more than {}",
            roles.join(", "),
            minimal.join(", ")
        ),
        Privilege::Unclear { .. } => {}
    }
}
