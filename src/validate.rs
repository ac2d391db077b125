//! `validate`: the config, then (unless `--offline`) each sink's own online check (e.g. the
//! object store's bucket is writable) and the API: credentials and each permission
//! the enabled streams need, one ✓/✗ line per check with the fix, and the activity window date
//! format the API accepts (probed live). Exit 0 only if all pass.

use std::process::ExitCode;

use crate::api::dates::format_name;
use crate::api::{ApiError, Client, DateProbe, WhoAmI};
use crate::config::{Config, Resource};

struct Report {
    failed: usize,
}

impl Report {
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
    let Some(creds) = r.check(
        "credentials configured",
        cfg.credentials().map_err(|e| e.to_string()),
    ) else {
        return Ok(ExitCode::FAILURE);
    };
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let client = Client::new(&cfg.api, creds, metrics)?;
    let who = client.whoami().await;
    let orgs: Vec<String> = match who {
        Ok(Some(WhoAmI::ApiKey {
            key_id,
            name,
            organization_id,
        })) => {
            r.check(
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
            match r.check("credentials accepted (organizations listed)", list) {
                Some(list) => list.into_iter().filter_map(|o| o.id).collect(),
                None => return Ok(ExitCode::FAILURE),
            }
        }
        Err(e) => {
            r.check("credentials accepted", Err::<(), _>(api_err(e)));
            return Ok(ExitCode::FAILURE);
        }
    };
    let orgs = if cfg.api.organizations.is_empty() {
        orgs
    } else {
        cfg.api.organizations.clone()
    };
    for org in &orgs {
        if cfg.activities.enabled {
            // One-second window: proves the permission and finds the date format the API takes.
            let res = client.probe_date_format(org).await;
            let probe = r.check(
                &format!(
                    "org {org}: activities readable (control-plane:organization:view-activities)"
                ),
                res.map_err(api_err),
            );
            if let Some(p) = probe {
                r.check(
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
                r.check(&format!("org {org}: {label}"), out);
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
                        r.check(
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
    if r.failed == 0 {
        println!("all checks passed");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} check(s) failed", r.failed);
        Ok(ExitCode::FAILURE)
    }
}
