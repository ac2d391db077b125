//! The command line (clap): commands of the product contract and their dispatch. Each command
//! returns `anyhow::Result<ExitCode>`; `main` maps `ConfigError` anywhere in the chain to exit 2.
//! A command's flags live beside the code that runs it (`demo::DemoArgs`,
//! `state_cmd::StateAction`), so the dependency runs one way: `cli` → commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::demo::DemoArgs;
use crate::emulator::DateValidation;
use crate::state_cmd::StateAction;
use crate::values::ConfigError;

const EXAMPLES: &str = "\
Examples:
  # See the whole pipeline without an account (built-in emulator, stdout sink):
  clickhouse-audit-exporter demo

  # Check a config and the key's permissions, then run the daemon:
  CLICKHOUSE_CLOUD_API_KEY=… CLICKHOUSE_CLOUD_API_SECRET=… \\
    clickhouse-audit-exporter -c /etc/clickhouse-audit-exporter/config.toml validate
  clickhouse-audit-exporter -c config.toml run

  # One cycle from cron; exit code says whether everything was delivered:
  clickhouse-audit-exporter -c config.toml once

  # Inspect or repair the state:
  clickhouse-audit-exporter -c config.toml state show
  clickhouse-audit-exporter -c config.toml state rewind --org 10ead720-… --to 2026-11-01T00:00:00Z

  # A local fake of the ClickHouse Cloud API for offline SIEM pipeline tests:
  clickhouse-audit-exporter emulator --listen 127.0.0.1:8123

Exit codes: 0 ok, 1 runtime failure, 2 bad config or usage.";

/// Export the ClickHouse Cloud audit log (activities) and inventory to SIEM sinks.
#[derive(Debug, Parser)]
#[command(name = "clickhouse-audit-exporter", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// Config file (TOML). Every key can also come from CH_AUDIT__SECTION__KEY.
    #[arg(short, long, env = "CH_AUDIT_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default): poll, store, deliver; SIGTERM drains and exits 0; SIGHUP
    /// reopens output files and reloads the config (keeping the running one if the new is invalid).
    Run,
    /// One full cycle for every organization, deliver everything pending, exit. Non-zero with a
    /// one-line reason if the API or any sink failed: a sink gives up after 60 s of transient
    /// failures (network, 5xx, busy), and at once when the destination refuses the credentials
    /// (HTTP 401/403, Splunk HEC token errors, ClickHouse authentication, Kafka SASL) or the data.
    Once,
    /// Check the config, then each sink's online check (an object store bucket is writable) and
    /// the API: credentials and each permission the enabled streams need.
    Validate {
        /// Config only, no network (for systemd ExecStartPre).
        #[arg(long)]
        offline: bool,
    },
    /// Inspect and repair the state database.
    State {
        #[command(subcommand)]
        action: StateAction,
    },
    /// The daemon against the built-in emulator, printing events to stdout. No credentials.
    Demo(DemoArgs),
    /// The built-in fake ClickHouse Cloud API, standalone.
    Emulator(EmulatorArgs),
    /// Probe a running exporter's /readyz; exit 0 when ready (container HEALTHCHECK).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:9187/readyz")]
        url: String,
    },
}

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on, e.g. 127.0.0.1:8123.
    #[arg(long, default_value = "127.0.0.1:8123")]
    pub listen: SocketAddr,
    #[arg(long, requires = "key_secret")]
    pub key_id: Option<String>,
    #[arg(long, requires = "key_id")]
    pub key_secret: Option<String>,
    /// Organizations to generate.
    #[arg(long, default_value_t = 1)]
    pub orgs: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Generated history, e.g. 7d.
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    pub history: Duration,
    /// Live activities per minute per organization.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Stop generating live activities after this long (e.g. 30m) but keep serving, so a
    /// soak run ends with a fixed set of activities to check the sinks against.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub live_for: Option<Duration>,
    /// Generated history density (activities per day per organization).
    #[arg(long, default_value_t = 200)]
    pub history_per_day: u32,
    /// Serve without the 10 requests / 10 s per-key limit (benchmarks of the exporter itself).
    #[arg(long)]
    pub no_rate_limit: bool,
    /// Which activity from_date/to_date forms pass: strict (YYYY-MM-DD, or RFC 3339 with
    /// exactly three fractional digits and Z or an offset, as seen live), lenient (any ISO
    /// form, naive read as UTC) or date-only (400 on any date-time).
    #[arg(
        long,
        default_value = "strict",
        value_name = "strict|lenient|date-only"
    )]
    pub dates: DateValidation,
    /// Ignore the time part: activity lists hold whole days from from_date's to to_date's.
    #[arg(long)]
    pub whole_days: bool,
    /// Read zone-less dates (naive date-times, YYYY-MM-DD) as local time at this UTC offset,
    /// e.g. --zone-offset=-8h, +5h30m or -08:00.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::emulator::parse_zone_offset)]
    pub zone_offset: Option<chrono::FixedOffset>,
    /// Silently answer at most the N newest activities of a window.
    #[arg(long, value_name = "N")]
    pub cap: Option<usize>,
    /// Every activity becomes visible only this long after its createdAt, e.g. 40m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub visibility_delay: Option<Duration>,
}

const DEFAULT_CONFIG: &str = "/etc/clickhouse-audit-exporter/config.toml";

impl Cli {
    /// Loads the config, starts logging as it says, then warns when the config file is
    /// world-readable and holds secrets (a warning needs logging on).
    fn start(&self) -> Result<Config, ConfigError> {
        let cfg = self.load_config()?;
        crate::logging::init(cfg.log.level, cfg.log.format);
        let path = self
            .config
            .clone()
            .unwrap_or_else(|| std::path::PathBuf::from(DEFAULT_CONFIG));
        if let Some(why) = crate::config::world_readable_secrets(&path) {
            tracing::warn!("{why}");
        }
        Ok(cfg)
    }

    /// Loads the config: an explicit path must exist; the default path is optional (env only).
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        load_config_from(self.config.as_deref())
    }
}

fn load_config_from(path: Option<&std::path::Path>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => Config::load(p, true),
        None => Config::load(std::path::Path::new(DEFAULT_CONFIG), false),
    }
}

/// Runs the parsed command.
pub async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command.as_ref().unwrap_or(&Command::Run) {
        Command::Run => {
            let cfg = cli.start()?;
            // SIGHUP re-reads the same file and environment.
            let path = cli.config.clone();
            let reload: crate::daemon::Reloader =
                Box::new(move || load_config_from(path.as_deref()));
            crate::daemon::run(cfg, Some(reload))
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Once => {
            let cfg = cli.start()?;
            crate::daemon::once(cfg).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Validate { offline } => {
            let cfg = cli.start()?;
            crate::validate::run(&cfg, *offline).await
        }
        Command::State { action } => {
            let cfg = cli.start()?;
            crate::state_cmd::run(&cfg, action).await
        }
        Command::Demo(args) => {
            crate::logging::init(
                crate::config::LogLevel::Info,
                crate::config::LogFormat::Text,
            );
            crate::demo::run(args).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Emulator(args) => {
            crate::logging::init(
                crate::config::LogLevel::Info,
                crate::config::LogFormat::Text,
            );
            run_emulator(args).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Healthcheck { url } => Ok(healthcheck(url).await),
    }
}

async fn run_emulator(args: &EmulatorArgs) -> anyhow::Result<()> {
    let token = tokio_util::sync::CancellationToken::new();
    let (reopen, _) = tokio::sync::watch::channel(0);
    tokio::spawn(crate::shutdown::handle_signals(token.clone(), reopen));
    crate::emulator::run_cli(emulator_options(args), args.listen, token).await
}

fn emulator_options(args: &EmulatorArgs) -> crate::emulator::EmulatorOptions {
    use crate::emulator::{EmulatorOptions, WindowSemantics};
    EmulatorOptions {
        orgs: args.orgs.max(1),
        seed: args.seed,
        history: args.history,
        rate_per_min: args.rate,
        live_for: args.live_for,
        history_events_per_day: args.history_per_day,
        rate_limit: if args.no_rate_limit {
            None
        } else {
            EmulatorOptions::default().rate_limit
        },
        key: args.key_id.clone().zip(args.key_secret.clone()),
        max_visibility_delay: Duration::from_secs(120),
        window: WindowSemantics {
            dates: args.dates,
            whole_days: args.whole_days,
            zone_offset: args.zone_offset,
            cap: args.cap,
            visibility_delay: args.visibility_delay.unwrap_or_default(),
        },
    }
}

async fn healthcheck(url: &str) -> ExitCode {
    let client = match crate::http::client(Duration::from_secs(5), None, "the healthcheck client") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            let status = r.status();
            eprintln!(
                "not ready ({status}): {}",
                r.text().await.unwrap_or_default().trim()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("healthcheck: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::WindowSemantics;

    fn window(args: &[&str]) -> WindowSemantics {
        let argv = ["clickhouse-audit-exporter", "emulator"].iter().chain(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Some(Command::Emulator(a)) => emulator_options(&a).window,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn emulator_window_flags_set_the_window_semantics() {
        assert_eq!(window(&[]), WindowSemantics::default());
        let w = window(&[
            "--dates",
            "lenient",
            "--whole-days",
            "--zone-offset",
            "-8h",
            "--cap",
            "500",
            "--visibility-delay",
            "40m",
        ]);
        assert_eq!(
            w,
            WindowSemantics {
                dates: DateValidation::Lenient,
                whole_days: true,
                zone_offset: chrono::FixedOffset::west_opt(8 * 3600),
                cap: Some(500),
                visibility_delay: Duration::from_secs(40 * 60),
            }
        );
        assert_eq!(
            window(&["--dates=date-only", "--zone-offset=+05:30"]).zone_offset,
            chrono::FixedOffset::east_opt(5 * 3600 + 1800)
        );
        let argv = ["clickhouse-audit-exporter", "emulator", "--dates", "loose"];
        assert!(Cli::try_parse_from(argv).is_err());
    }
}
