//! `state show | rewind | verify | reset`: human-readable inspection and repair of the state database.

use std::process::ExitCode;

use crate::cli::StateAction;
use crate::config::{Config, ConfigError};
use crate::store::Store;

/// Runs one `state` action against `cfg.state.path`.
pub async fn run(cfg: &Config, action: &StateAction) -> anyhow::Result<ExitCode> {
    // Not opened for `reset`, which must work when the database is missing or corrupt.
    let open = || Store::open_existing(&cfg.state.path);
    let sinks: Vec<String> = cfg.sink_configs.iter().map(|s| s.name.clone()).collect();
    match action {
        StateAction::Show { json } => {
            let r = open()?.report(sinks).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "state      {} (schema {}, {} bytes)",
                r.path, r.schema_version, r.db_bytes
            );
            println!(
                "events     {} stored, highest seq {}, {} quarantined",
                r.events, r.max_seq, r.quarantined
            );
            for c in &r.cursors {
                let window = c
                    .window_seconds
                    .map(|w| format!(", window {w}s (split)"))
                    .unwrap_or_default();
                println!(
                    "cursor     org {} {}: {}{window} (updated {})",
                    c.org_id, c.stream, c.cursor, c.updated_at
                );
            }
            for s in &r.sinks {
                let oldest = s
                    .oldest_undelivered
                    .as_deref()
                    .map(|o| format!(", oldest stored {o}"))
                    .unwrap_or_default();
                println!(
                    "sink       {}: position {}, backlog {}{oldest}",
                    s.sink, s.position, s.backlog
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        StateAction::Rewind { org, to, redeliver } => {
            let t = chrono::DateTime::parse_from_rfc3339(to).map_err(|e| {
                ConfigError(format!(
                    "--to {to:?}: not an RFC 3339 time ({e}); e.g. 2026-11-01T00:00:00Z"
                ))
            })?;
            let moved = open()?
                .rewind(org, t.timestamp_millis(), *redeliver)
                .await?;
            println!(
                "org {org}: the next poll re-reads from {}; {}",
                t.to_rfc3339(),
                if *redeliver {
                    format!("{moved} sink position(s) moved back: stored events are sent again")
                } else {
                    "events already stored are not sent again (use --redeliver for that)"
                        .to_string()
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        StateAction::Reset { yes } => reset(cfg, *yes),
        StateAction::Verify => {
            let report = open()?.verify().await?;
            for (ok, line) in &report.checks {
                println!("{} {line}", if *ok { "✓" } else { "✗" });
            }
            if report.ok() {
                println!("state {} is consistent", cfg.state.path.display());
                Ok(ExitCode::SUCCESS)
            } else {
                println!(
                    "state {} has problems: keep a copy, then move it aside to start fresh or `state rewind` to re-export",
                    cfg.state.path.display()
                );
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

fn reset(cfg: &Config, yes: bool) -> anyhow::Result<ExitCode> {
    let lookback = humantime::format_duration(cfg.activities.initial_lookback);
    if !yes {
        return Err(ConfigError(format!(
            "state reset deletes {} and its marker: cursors and sink positions are lost and the next run exports activities from the last {lookback} again, to every sink. Stop the exporter, keep a copy if unsure, then run `state reset --yes`",
            cfg.state.path.display()
        ))
        .into());
    }
    let removed = crate::store::reset(&cfg.state.path)?;
    if removed.is_empty() {
        println!("nothing to remove at {}", cfg.state.path.display());
    }
    for p in removed {
        println!("removed {}", p.display());
    }
    println!("the next run starts fresh, from the last {lookback}");
    Ok(ExitCode::SUCCESS)
}
