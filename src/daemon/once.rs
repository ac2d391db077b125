//! `once`: one cycle per organization while the sinks deliver, then everything pending to
//! every sink (giving up after 60 s of transient failures); every failure is reported in the
//! one error, so cron sees a non-zero exit with a one-line reason.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Pipeline;
use crate::dispatch::Mode;

impl Pipeline {
    /// One cycle per org, delivering while it polls, then everything pending to every sink.
    pub async fn once(self) -> anyhow::Result<()> {
        let token = CancellationToken::new();
        let polled = CancellationToken::new();
        let mode = Mode::Drain {
            give_up_after: Duration::from_secs(60),
        };
        let handles: Vec<_> = self
            .sink_tasks()?
            .into_iter()
            .map(|mut t| {
                t.producers_done = Some(polled.clone());
                tokio::spawn(t.run(mode, token.clone()))
            })
            .collect();
        let mut failures = Vec::new();
        if self.cfg.activities.enabled {
            let cycles = self.orgs.iter().map(|org| {
                let poller = self.poller(org);
                let token = token.clone();
                async move { (org, poller.once(&token).await) }
            });
            for (org, result) in futures_util::future::join_all(cycles).await {
                if let Err(e) = result {
                    failures.push(format!("org {org}: {e:#}"));
                }
            }
        }
        if self.cfg.inventory.enabled {
            for org in &self.orgs {
                if let Err(e) = self.inventory_poller(org).cycle_logged(&token).await {
                    failures.push(format!("org {org} inventory: {e:#}"));
                }
            }
        }
        polled.cancel();
        self.save_recent_requests().await;
        for h in handles {
            match h.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => failures.push(e.to_string()),
                Err(e) => failures.push(format!("sink task panicked: {e}")),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{}", failures.join("; "))
        }
    }
}
