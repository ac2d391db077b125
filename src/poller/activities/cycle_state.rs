//! What a cycle loads before its windows (the learned facts, the sweeps' baseline, an old
//! alert expired) and persists after them (the facts and the date format the API accepted).

use super::facts::WindowFacts;
use super::{ActivityPoller, DATE_FORMAT_KEY};

impl ActivityPoller {
    /// Loads what was learned, exports it, remembers the first poll as the sweeps' baseline
    /// and expires an old alert.
    pub(super) async fn begin_cycle(&self) -> anyhow::Result<WindowFacts> {
        let mut facts = self.learned.facts.get(&self.store, &self.org).await?;
        if facts.last_sweep_ms.is_none() {
            // The first poll reads everything itself: the first sweep is one interval later.
            let now = self.clock.now().timestamp_millis();
            facts = self.learned.facts.update(|f| f.last_sweep_ms = Some(now));
            self.learned.facts.save(&self.store, &self.org).await?;
        }
        self.publish_facts(&facts);
        self.learned.expire_alert(&self.health, &self.org);
        Ok(facts)
    }

    /// Persists what the cycle learned: the facts, and the date format the API accepted.
    pub(super) async fn end_cycle(&self) -> anyhow::Result<()> {
        self.learned.facts.save(&self.store, &self.org).await?;
        if let Some(format) = self.source.date_format() {
            let mut saved = self
                .learned
                .saved_format
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if saved.is_none() {
                saved = self
                    .store
                    .meta_get(DATE_FORMAT_KEY)
                    .await?
                    .and_then(|t| crate::api::dates::format_from_name(&t));
            }
            if saved != Some(format) {
                self.store
                    .meta_set(
                        DATE_FORMAT_KEY,
                        crate::api::dates::format_name(format).into(),
                    )
                    .await?;
            }
            *self
                .learned
                .saved_format
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(format);
        }
        Ok(())
    }
}
