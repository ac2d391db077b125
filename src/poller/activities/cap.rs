//! The silent-cap check: an answer whose size looks like a cap is read again in parts, a cap
//! found is learned, and a capped window that cannot be split is an ERROR that degrades `/readyz`.

use super::facts::WindowFacts;
use super::window::{Against, AnswerIds, Fetch, Purpose, ReadMode, WindowRead, at};
use super::{ActivityPoller, PollError};
use crate::poller::WindowQuery;

impl ActivityPoller {
    /// The answer looks capped: read the window again in parts — before its oldest
    /// activity, after its newest, and the two halves between — and look for an activity the
    /// answer did not hold. A complete answer has none (the parts outside its span are empty);
    /// one cut to the newest (or oldest) N shows more at once, so the middle halves (which
    /// catch any other selection) are read only when the edges found nothing. Each part is
    /// stored like any answer.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site; the window, its answer and the mode"
    )]
    pub(super) async fn check_for_cap(
        &self,
        from: i64,
        to: i64,
        (oldest, newest): (i64, i64),
        mode: ReadMode,
        facts: &WindowFacts,
        read: &mut WindowRead,
        answer: AnswerIds,
    ) -> Result<(), PollError> {
        // Only an activity the answer should have held counts as evidence: one created more
        // than the overlap before now was visible when the answer was taken (the cursor
        // rule's own assumption); a newer one may simply have become visible since.
        let visible_before = self.clock.now().timestamp_millis() - self.overlap_ms(facts);
        let mid = oldest + (newest - oldest) / 2;
        let part = ReadMode {
            purpose: Purpose::CapCheck,
            ..mode
        };
        let mut more = 0usize;
        let rounds: [&[(i64, i64)]; 2] = [
            &[(from, oldest), (newest, to)],
            &[(oldest, mid), (mid, newest)],
        ];
        for parts in rounds {
            for &(lo, hi) in parts {
                let Fetch {
                    read: r,
                    check,
                    missing,
                    ..
                } = self
                    .fetch_and_store(
                        WindowQuery {
                            from: at(lo - facts.pad_ms),
                            to: at(hi + facts.pad_ms),
                            max_bytes: None,
                            background: mode.purpose != Purpose::Poll,
                            stream: None,
                        },
                        part,
                        facts,
                        Some(Against {
                            answer: &answer,
                            visible_before,
                        }),
                    )
                    .await?;
                self.learn_from(&check, Purpose::CapCheck);
                more += missing;
                read.requests += 1;
                read.fetched += r.fetched;
                read.new += r.new;
                read.duplicates += r.duplicates;
                read.quarantined += r.quarantined;
                read.fresh.extend(r.fresh);
            }
            if more > 0 {
                break;
            }
        }
        let count = read.count;
        if more > 0 {
            let f = self.learned.facts.update(|f| {
                f.cap = Some(f.cap.map_or(count, |c| c.min(count)));
            });
            tracing::warn!(
                org = %self.org,
                cap = count,
                more,
                "the API silently caps an activities answer at {count}: reading the window in parts found {more} activities the answer left out; windows are kept well below the cap from now on and sweeps recover what earlier answers lost"
            );
            read.capped = true;
            self.capped(count, true, from, to);
            self.learned.request_sweep();
            self.publish_facts(&f);
        } else {
            let f = self
                .learned
                .facts
                .update(|f| f.verified_uncapped = f.verified_uncapped.max(count));
            tracing::debug!(org = %self.org, count, "an answer of a suspicious size was complete");
            self.publish_facts(&f);
        }
        Ok(())
    }

    pub(super) fn capped(&self, cap: usize, splittable: bool, from: i64, to: i64) {
        self.metrics
            .window
            .capped
            .with_label_values(&[self.org.as_str(), if splittable { "true" } else { "false" }])
            .inc();
        if !splittable {
            let why = format!(
                "the API answered {cap} activities (its silent cap) for the window {} .. {}, which cannot be split further: activities of that window may be missing",
                at(from).to_rfc3339(),
                at(to).to_rfc3339()
            );
            tracing::error!(org = %self.org, cap, from = %at(from), to = %at(to), "{why}");
            self.learned.alert(&self.health, &self.org, why);
        }
    }

    pub(super) fn unsplittable_suspicion(&self, count: usize, from: i64, to: i64) {
        let why = format!(
            "the API answered exactly {count} activities for the window from {} to {} (as asked; whole days in day mode), the same round number as its largest answer for other activities, and the window cannot be split to check for a silent cap: activities of that window may be missing",
            at(from).to_rfc3339(),
            at(to).to_rfc3339()
        );
        tracing::error!(org = %self.org, count, from = %at(from), to = %at(to), "{why}");
        self.metrics
            .window
            .capped
            .with_label_values(&[&self.org, "false"])
            .inc();
        self.learned.alert(&self.health, &self.org, why);
    }
}
