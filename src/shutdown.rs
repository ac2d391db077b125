//! Process signals: SIGTERM/SIGINT end the daemon (graceful shutdown); SIGHUP bumps a counter
//! the daemon answers by reopening output files (external logrotate) and reloading the config.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGTERM or SIGINT; bumps `reopen` on every SIGHUP.
pub async fn handle_signals(
    token: CancellationToken,
    reopen: watch::Sender<u64>,
) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            _ = term.recv() => { tracing::info!("SIGTERM: stopping pollers, finishing batches in hand"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping pollers, finishing batches in hand"); break; }
            _ = hup.recv() => {
                tracing::info!("SIGHUP received");
                reopen.send_modify(|n| *n += 1);
            }
        }
    }
    token.cancel();
    Ok(())
}
