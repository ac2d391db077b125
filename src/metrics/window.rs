//! `WindowMetrics`: what activities answers revealed about the API's window semantics (answer
//! checks, sweeps, caps, day mode; issue 12): the handles and their definitions.

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec};

use super::registry::{Def, Registrar};

/// What activities answers revealed about the API's window semantics, and what the poller
/// did about it (answer checks, sweeps, caps, day mode; issue 12).
pub struct WindowMetrics {
    pub violations: IntCounterVec,
    pub recovered: IntCounterVec,
    pub requests: IntCounterVec,
    pub cycle_requests: IntGaugeVec,
    pub cap: IntGaugeVec,
    pub capped: IntCounterVec,
    pub day_mode: IntGaugeVec,
    pub pad_seconds: GaugeVec,
    pub effective_overlap: GaugeVec,
    pub sweep_last_success: GaugeVec,
}

impl WindowMetrics {
    pub(super) fn new(r: &Registrar<'_>) -> WindowMetrics {
        WindowMetrics {
            violations: r.add(&VIOLATIONS),
            recovered: r.add(&RECOVERED),
            requests: r.add(&REQUESTS),
            cycle_requests: r.add(&CYCLE_REQUESTS),
            cap: r.add(&CAP),
            capped: r.add(&CAPPED),
            day_mode: r.add(&DAY_MODE),
            pad_seconds: r.add(&PAD_SECONDS),
            effective_overlap: r.add(&EFFECTIVE_OVERLAP),
            sweep_last_success: r.add(&SWEEP_LAST_SUCCESS),
        }
    }
}

const VIOLATIONS: Def = Def::new(
    "api_window_violations_total",
    "Activities answered outside the bounds asked (side = before | after): the API does not filter the way the cursor rule assumes.",
    &["org", "side"],
);

const RECOVERED: Def = Def::new(
    "activities_recovered_total",
    "Activities the regular polls missed and a reconcile sweep (or a cap check) had to recover.",
    &["org"],
);

const REQUESTS: Def = Def::new(
    "activity_requests_total",
    "Activities requests by organization and purpose (poll, sweep, cap_check).",
    &["org", "purpose"],
);

const CYCLE_REQUESTS: Def = Def::new(
    "activity_cycle_requests",
    "Activities requests the organization's last poll cycle made.",
    &["org"],
);

const CAP: Def = Def::new(
    "api_answer_cap",
    "The silent per-answer cap learned for the organization (0: none seen).",
    &["org"],
);

const CAPPED: Def = Def::new(
    "api_capped_answers_total",
    "Answers that hit the API's silent cap (splittable = false: the window could not be split, activities may be missing).",
    &["org", "splittable"],
);

const DAY_MODE: Def = Def::new(
    "activities_day_mode",
    "1 while the organization's windows are whole UTC days (date-only bounds, or the API ignores the time part).",
    &["org"],
);

const PAD_SECONDS: Def = Def::new(
    "activities_window_pad_seconds",
    "How far every window is widened on each side after the API answered shifted windows.",
    &["org"],
);

const EFFECTIVE_OVERLAP: Def = Def::new(
    "activities_effective_overlap_seconds",
    "The organization's overlap in use: activities.overlap, grown by visibility delays sweeps observed.",
    &["org"],
);

const SWEEP_LAST_SUCCESS: Def = Def::new(
    "reconcile_last_success_timestamp_seconds",
    "Unix time the organization's last reconcile sweep completed.",
    &["org"],
);
