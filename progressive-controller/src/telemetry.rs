//! progressive-controller's own metrics, served with the runtime's on `/metrics`: each Canary's
//! weight, outcome and failed checks, the last value of each of its checks, and how late
//! analysis steps run (the benchmark's "no tick late by more than 1 s"). Labels are the Canary's
//! namespace and name and the check's name; never addresses or secrets.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use eddy_api::progressive::{CanaryPhase, CanaryStatus};
use eddy_runtime::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CanaryLabels {
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    namespace: String,
    name: String,
    check: String,
}

/// The gauges and histograms of progressive-controller.
#[derive(Clone)]
pub struct CanaryMetrics {
    weight: Family<CanaryLabels, Gauge>,
    status: Family<CanaryLabels, Gauge>,
    failed_checks: Family<CanaryLabels, Gauge>,
    check_value: Family<CheckLabels, Gauge<f64, AtomicU64>>,
    lateness: Histogram,
}

impl Default for CanaryMetrics {
    fn default() -> Self {
        Self {
            weight: Family::default(),
            status: Family::default(),
            failed_checks: Family::default(),
            check_value: Family::default(),
            // 1 ms to about 16 s.
            lateness: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
        }
    }
}

impl CanaryMetrics {
    /// Creates the metrics and registers them with the runtime's registry.
    pub fn register(metrics: &Metrics) -> Self {
        let this = Self::default();
        metrics.register(
            "canary_weight",
            "Percentage of traffic routed to the canary",
            this.weight.clone(),
        );
        metrics.register(
            "canary_status",
            "Outcome of the current or last release: 0 running, 1 succeeded (or initialized), 2 failed (Flagger's values)",
            this.status.clone(),
        );
        metrics.register(
            "canary_failed_checks",
            "Failed checks in the current release",
            this.failed_checks.clone(),
        );
        metrics.register(
            "canary_check_value",
            "Last value of each metric check",
            this.check_value.clone(),
        );
        metrics.register(
            "canary_step_lateness_seconds",
            "How long after it was due an analysis step ran",
            this.lateness.clone(),
        );
        this
    }

    /// Records what `status` says of Canary `namespace/name`.
    pub fn observe(&self, namespace: &str, name: &str, status: &CanaryStatus) {
        let labels = CanaryLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        self.weight.get_or_create(&labels).set(i64::from(status.canary_weight));
        let outcome = match status.phase {
            Some(CanaryPhase::Initialized | CanaryPhase::Succeeded) => 1,
            Some(CanaryPhase::Failed) => 2,
            _ => 0,
        };
        self.status.get_or_create(&labels).set(outcome);
        self.failed_checks
            .get_or_create(&labels)
            .set(i64::from(status.failed_checks));
        for check in &status.last_checks {
            if let Some(value) = check.value.filter(|v| v.is_finite()) {
                let labels = CheckLabels {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    check: check.name.clone(),
                };
                self.check_value.get_or_create(&labels).set(value);
            }
        }
    }

    /// Records a step that ran `late` after it was due.
    pub fn step_ran(&self, late: Duration) {
        self.lateness.observe(late.as_secs_f64());
    }

    /// Forgets a deleted Canary.
    pub fn forget(&self, namespace: &str, name: &str, checks: &[String]) {
        let labels = CanaryLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        self.weight.remove(&labels);
        self.status.remove(&labels);
        self.failed_checks.remove(&labels);
        for check in checks {
            self.check_value.remove(&CheckLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                check: check.clone(),
            });
        }
    }
}
