//! `state show | rewind | verify | reset`: human-readable inspection and repair of the state
//! database (`show` names the API key each organization was last polled through).

use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;
use crate::poller::activities::{self, facts, facts::WindowFacts};
use crate::store::Store;
use crate::values::ConfigError;

/// `state`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Cursors, per-sink positions and backlog, database size.
    Show {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Re-export an organization's activities from a time on.
    Rewind {
        #[arg(long)]
        org: String,
        /// RFC 3339 time, e.g. 2026-11-01T00:00:00Z.
        #[arg(long)]
        to: String,
        /// Also send already-delivered events again (every sink).
        #[arg(long)]
        redeliver: bool,
    },
    /// PRAGMA integrity_check plus the outbox's invariants.
    Verify,
    /// Forget everything: delete the state database and its marker. The next run exports
    /// again from `activities.initial_lookback` and re-sends that to every sink.
    Reset {
        /// Required: say you mean it.
        #[arg(long)]
        yes: bool,
    },
}

/// What the poller learned about the API, as kept in the state (issue 12).
struct Learned {
    date_format: Option<String>,
    orgs: std::collections::BTreeMap<String, WindowFacts>,
}

impl Learned {
    async fn read(store: &Store) -> anyhow::Result<Learned> {
        let date_format = store.meta_get(activities::DATE_FORMAT_KEY).await?;
        let mut orgs = std::collections::BTreeMap::new();
        let prefix = facts::meta_key("");
        for (key, text) in store.meta_prefixed(&prefix).await? {
            if let Ok(f) = serde_json::from_str::<WindowFacts>(&text) {
                orgs.insert(key[prefix.len()..].to_string(), f);
            }
        }
        Ok(Learned { date_format, orgs })
    }
}

/// One org's sweep and learned window facts, on one line.
fn learned_line(org: &str, f: &WindowFacts) -> String {
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    let sweep = f.last_sweep_ms.map_or("never".to_string(), |t| {
        format!("{} (recovered {})", at(t), f.last_sweep_recovered)
    });
    let mut learned = Vec::new();
    if f.whole_days {
        learned.push("whole days (day mode)".to_string());
    }
    if f.pad_ms > 0 {
        learned.push(format!("windows widened by {} h", f.pad_ms / 3_600_000));
    }
    if let Some(cap) = f.cap {
        learned.push(format!("answers capped at {cap}"));
    }
    if f.overlap_ms > 0 {
        learned.push(format!("overlap grown to {} s", f.overlap_ms / 1000));
    }
    if f.violations > 0 {
        learned.push(format!(
            "{} activities outside the bounds asked",
            f.violations
        ));
    }
    let learned = if learned.is_empty() {
        "the API filters as asked so far".to_string()
    } else {
        learned.join(", ")
    };
    format!(
        "sweep      org {org}: last {sweep}, recovered {} in all; {learned}",
        f.recovered_total
    )
}

/// Runs one `state` action against `cfg.state.path`.
pub async fn run(cfg: &Config, action: &StateAction) -> anyhow::Result<ExitCode> {
    // Not opened for `reset`, which must work when the database is missing or corrupt.
    let open = || Store::open_existing(&cfg.state.path);
    let sinks: Vec<String> = cfg.sink_configs.iter().map(|s| s.name.clone()).collect();
    match action {
        StateAction::Show { json } => {
            let store = open()?;
            let r = store.report(sinks).await?;
            let learned = Learned::read(&store).await?;
            // Organization → the API key (its name) it was last polled through (issue 16).
            let org_keys: serde_json::Map<String, serde_json::Value> = store
                .meta_get(crate::daemon::ORG_KEYS_KEY)
                .await?
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            if *json {
                let mut v = serde_json::to_value(&r)?;
                v["org_keys"] = org_keys.into();
                v["api_date_format"] = learned.date_format.clone().into();
                v["window_facts"] = serde_json::to_value(&learned.orgs)?;
                println!("{}", serde_json::to_string_pretty(&v)?);
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
                let key = org_keys
                    .get(&c.org_id)
                    .and_then(|k| k.as_str())
                    .map(|k| format!(", key {k}"))
                    .unwrap_or_default();
                println!(
                    "cursor     org {} {}: {}{window} (updated {}{key})",
                    c.org_id, c.stream, c.cursor, c.updated_at
                );
            }
            if let Some(f) = &learned.date_format {
                println!("api        activities date format accepted: {f}");
            }
            for (org, f) in &learned.orgs {
                println!("{}", learned_line(org, f));
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
