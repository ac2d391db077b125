//! `Inner`, the shared state behind every `Emulator` clone: options, the inventory (one mutex),
//! one activity log per org (one `RwLock` each), fault switches, the activity window semantics,
//! the rate limiter, the request log and the seeded RNG; plus building it all from a seed and recording activities.
//! Lock order: `state` → `rng` → an org's log.

use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, RwLock};

use super::activity_log::{ActivityLog, Row};
use super::faults::Faults;
use super::generator::{self, Pools};
use super::handlers::Ctx;
use super::jsonfmt::{ActivityJson, TsCache, token, uuid};
use super::model::{Credential, Key, State};
use super::ratelimit::SlidingWindow;
use super::window::WindowSemantics;
use super::{EmulatorOptions, RequestRecord, seed};

pub(crate) struct Inner {
    pub(crate) opts: EmulatorOptions,
    pub(crate) admin_key: (String, String),
    pub(crate) org_ids: Vec<String>,
    state: Mutex<State>,
    logs: HashMap<String, RwLock<ActivityLog>>,
    pub(crate) faults: Faults,
    window: Mutex<WindowSemantics>,
    pub(crate) limiter: Option<Mutex<SlidingWindow>>,
    requests: Mutex<Vec<RequestRecord>>,
    rng: Mutex<fastrand::Rng>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Unix ms of `t`, cut to whole seconds (what `createdAt` can show).
fn whole_second_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp().saturating_mul(1000)
}

impl Inner {
    /// Seeds inventory and history; same seed → same ids, names and activity sequence.
    pub(crate) fn new(opts: EmulatorOptions) -> Inner {
        let mut rng = fastrand::Rng::with_seed(opts.seed);
        let now = Utc::now()
            .duration_trunc(ChronoDuration::seconds(1))
            .unwrap_or_else(|_| Utc::now());
        let admin_key = opts
            .key
            .clone()
            .unwrap_or_else(|| (uuid(&mut rng), token(&mut rng, 40)));
        let mut state = State::default();
        let mut admin_roles = Vec::new();
        for i in 0..opts.orgs.max(1) {
            let mut org_rng = fastrand::Rng::with_seed(
                opts.seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(i as u64 + 1),
            );
            let (org, keys) = seed::seed_org(&mut org_rng, i, now);
            admin_roles.extend(org.role_named("Admin").map(|r| r.id.clone()));
            state.orgs.push(org);
            state.keys.extend(keys);
        }
        let org_ids: Vec<String> = state.orgs.iter().map(|o| o.id.clone()).collect();
        state.keys.insert(
            0,
            Key {
                id: admin_key.0.clone(),
                credential: Credential::Secret(admin_key.1.clone()),
                name: "emulator-admin".into(),
                enabled: true,
                roles: vec!["admin".into()],
                role_ids: admin_roles,
                permissions: None,
                created_at: now - ChronoDuration::days(30),
                expire_at: None,
                used_at: None,
                ip_access_list: Vec::new(),
                orgs: org_ids.clone(),
                credentials_valid: true,
            },
        );
        let inner = Inner {
            faults: Faults::new(opts.seed),
            window: Mutex::new(opts.window),
            limiter: opts
                .rate_limit
                .map(|(n, w)| Mutex::new(SlidingWindow::new(n, w))),
            logs: org_ids
                .iter()
                .map(|id| (id.clone(), RwLock::default()))
                .collect(),
            requests: Mutex::default(),
            rng: Mutex::new(rng),
            admin_key,
            org_ids,
            state: Mutex::new(state),
            opts,
        };
        inner.seed_history(now);
        inner
    }

    fn seed_history(&self, now: DateTime<Utc>) {
        let days = self.opts.history.as_secs_f64() / 86_400.0;
        let n = (days * f64::from(self.opts.history_events_per_day)).round() as usize;
        let from =
            now - ChronoDuration::from_std(self.opts.history).unwrap_or(ChronoDuration::zero());
        for (i, org) in self.org_ids.iter().enumerate() {
            let pools = Pools::of(&self.state(), org);
            let mut rng = fastrand::Rng::with_seed(self.opts.seed ^ (0xA11C_E000 + i as u64));
            let max = self.max_delay_ms();
            let rows = generator::rows(
                &mut rng,
                &pools,
                n,
                (from.timestamp_millis(), now.timestamp_millis()),
                true,
                |rng, c| c + if max > 0 { rng.i64(0..=max) } else { 0 },
            );
            self.with_log(org, |log| log.extend_sorted(rows));
        }
    }

    fn max_delay_ms(&self) -> i64 {
        i64::try_from(self.opts.max_visibility_delay.as_millis()).unwrap_or(i64::MAX)
    }

    /// A visibility delay in `[0, max_visibility_delay]`.
    fn delay_ms(&self, rng: &mut fastrand::Rng) -> i64 {
        match self.max_delay_ms() {
            0 => 0,
            max => rng.i64(0..=max),
        }
    }

    /// The emulator's clock: real time plus the configured skew.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        Utc::now() + ChronoDuration::milliseconds(self.faults.skew_ms())
    }

    /// The window semantics in force now (a copy).
    pub(crate) fn window(&self) -> WindowSemantics {
        *lock(&self.window)
    }

    /// Changes the window semantics for every following request.
    pub(crate) fn update_window(&self, f: impl FnOnce(&mut WindowSemantics)) {
        f(&mut lock(&self.window));
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub(crate) fn rng(&self) -> MutexGuard<'_, fastrand::Rng> {
        lock(&self.rng)
    }

    pub(crate) fn log(&self, org: &str) -> Option<&RwLock<ActivityLog>> {
        self.logs.get(org)
    }

    /// Runs `f` on the org's log under its write lock (no-op for an unknown org).
    pub(crate) fn with_log<R>(
        &self,
        org: &str,
        f: impl FnOnce(&mut ActivityLog) -> R,
    ) -> Option<R> {
        let log = self.logs.get(org)?;
        Some(f(&mut log.write().unwrap_or_else(|p| p.into_inner())))
    }

    pub(crate) fn log_request(&self, r: RequestRecord) {
        lock(&self.requests).push(r);
    }

    pub(crate) fn requests(&self) -> MutexGuard<'_, Vec<RequestRecord>> {
        lock(&self.requests)
    }

    /// The activity an API write leaves: actor = the calling key, from the peer's IP.
    pub(crate) fn record_api(
        &self,
        ctx: &Ctx<'_>,
        kind: &str,
        fill: impl FnOnce(&mut ActivityJson),
    ) {
        let (id, delay) = {
            let mut rng = self.rng();
            (uuid(&mut rng), self.delay_ms(&mut rng))
        };
        let mut a = ActivityJson::new(&id);
        a.ts("createdAt", ctx.now)
            .str("type", kind)
            .str("actorType", "api")
            .str("actorId", &ctx.caller.key_id)
            .str("actorDetails", &ctx.caller.name)
            .str("actorIpAddress", &ctx.peer_ip)
            .str("organizationId", ctx.org_id());
        if let Some(ua) = &ctx.user_agent {
            a.str("userAgent", ua);
        }
        fill(&mut a);
        let (json, id_end) = a.finish();
        let created = whole_second_ms(ctx.now);
        self.with_log(ctx.org_id(), |log| {
            log.insert(Row::new(created, created + delay, json, id_end))
        });
    }

    /// One generated activity created now (live generation).
    pub(crate) fn add_live_activity(&self, org: &str, rng: &mut fastrand::Rng) {
        let pools = Pools::of(&self.state(), org);
        let now = self.now();
        let (json, id_end) =
            generator::activity(rng, &pools, now.timestamp(), &mut TsCache::default());
        let created = whole_second_ms(now);
        let row = Row::new(created, created + self.delay_ms(rng), json, id_end);
        self.with_log(org, |log| log.insert(row));
    }
}
