//! `demo`: the real daemon against the built-in emulator (generated history plus live
//! activity), printing JSON envelopes to stdout. No account, no credentials, state in a
//! temporary directory removed on exit.

use tokio_util::sync::CancellationToken;

use crate::cli::DemoArgs;
use crate::config::Config;
use crate::daemon::Pipeline;
use crate::emulator::{Emulator, EmulatorOptions};

/// Starts the emulator and the daemon; runs until Ctrl-C/SIGTERM or `--duration`.
pub async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let emulator = Emulator::start(EmulatorOptions {
        seed: args.seed,
        history: std::time::Duration::from_secs(86400),
        rate_per_min: args.rate,
        max_visibility_delay: std::time::Duration::from_secs(20),
        ..Default::default()
    })
    .await?;
    let dir = std::env::temp_dir().join(format!(
        "clickhouse-audit-exporter-demo-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    let toml = format!(
        r#"
[api]
base_url = "{base}"
key_id = "{id}"
key_secret = "{secret}"

[activities]
interval = "5s"
overlap = "1m"
initial_lookback = "1h"

[inventory]
enabled = false

[state]
path = "{state}"

[server]
listen = ""

[[sinks]]
name = "stdout"
type = "stdout"
format = "json"
"#,
        base = emulator.base_url,
        id = emulator.emulator.key_id(),
        secret = emulator.emulator.key_secret(),
        state = dir.join("state.db").display(),
    );
    let cfg = Config::from_toml(&toml, Some(Default::default()))?;
    tracing::info!(emulator = %emulator.base_url, "demo: exporter polling the built-in emulator every 5 s; events go to stdout, logs to stderr; Ctrl-C stops");
    let pipeline = Pipeline::build(cfg).await?;
    let token = CancellationToken::new();
    tokio::spawn(crate::shutdown::handle_signals(
        token.clone(),
        pipeline.reopen.clone(),
    ));
    if let Some(d) = args.duration {
        let t = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            t.cancel();
        });
    }
    let result = pipeline.run(token).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}
