//! How a metric is defined and registered: `Def` (name, help text, label set, buckets: what
//! dashboards and the alert rules in config/ depend on), and `Registrar`, which builds the typed
//! handle a `Def` names and registers it in the instance's `Registry`.

use prometheus::core::Collector;
use prometheus::{
    CounterVec, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// The prefix of every metric name.
const NS: &str = "clickhouse_audit";

/// The buckets of the request, delivery and inventory call durations.
pub(super) const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// One metric's definition; the handle's type (counter, gauge, histogram) is the field's.
pub(super) struct Def {
    /// Without the `clickhouse_audit_` prefix.
    name: &'static str,
    help: &'static str,
    /// Empty for a metric without labels.
    labels: &'static [&'static str],
    /// Histograms only.
    buckets: &'static [f64],
}

impl Def {
    /// A metric with one series per combination of `labels` values.
    pub(super) const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Def {
        Def {
            name,
            help,
            labels,
            buckets: &[],
        }
    }

    /// A metric without labels.
    pub(super) const fn scalar(name: &'static str, help: &'static str) -> Def {
        Def::new(name, help, &[])
    }

    /// The same histogram with these buckets.
    pub(super) const fn buckets(self, buckets: &'static [f64]) -> Def {
        Def { buckets, ..self }
    }

    fn opts(&self) -> Opts {
        Opts::new(self.name, self.help).namespace(NS)
    }
}

/// A handle type a `Def` can build.
pub(super) trait Build: Collector + Clone + Sized + 'static {
    fn build(def: &Def) -> prometheus::Result<Self>;
}

macro_rules! labelled {
    ($($t:ty),*) => {$(
        impl Build for $t {
            fn build(def: &Def) -> prometheus::Result<Self> {
                <$t>::new(def.opts(), def.labels)
            }
        }
    )*};
}
labelled!(IntCounterVec, CounterVec, IntGaugeVec, GaugeVec);

macro_rules! scalar {
    ($($t:ty),*) => {$(
        impl Build for $t {
            fn build(def: &Def) -> prometheus::Result<Self> {
                debug_assert!(def.labels.is_empty(), "{} takes no labels", def.name);
                <$t>::with_opts(def.opts())
            }
        }
    )*};
}
scalar!(IntCounter, IntGauge, Gauge);

impl Build for HistogramVec {
    fn build(def: &Def) -> prometheus::Result<Self> {
        let opts = HistogramOpts::from(def.opts()).buckets(def.buckets.to_vec());
        HistogramVec::new(opts, def.labels)
    }
}

/// Builds handles and registers them in one `Registry`.
pub(super) struct Registrar<'a>(pub(super) &'a Registry);

impl Registrar<'_> {
    /// The handle `def` defines, registered.
    pub(super) fn add<M: Build>(&self, def: &Def) -> M {
        let m = M::build(def).expect("metric definitions are static and valid");
        self.0
            .register(Box::new(m.clone()))
            .expect("metric names are unique");
        m
    }
}
