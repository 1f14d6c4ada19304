//! Prometheus metrics every controller exports: reconciles by kind and result, their duration,
//! errors by kind and reason, leadership, and events dropped by the forwarding queue.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a reconcile ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReconcileResult {
    /// It returned an Action.
    Success,
    /// It returned an error.
    Error,
}

impl ReconcileResult {
    fn as_str(self) -> &'static str {
        match self {
            ReconcileResult::Success => "success",
            ReconcileResult::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    kind: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: String,
    reason: String,
}

/// The metrics registry of one controller process.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<std::sync::RwLock<Registry>>,
    reconciles: Family<ResultLabels, Counter>,
    durations: Family<ResultLabels, Histogram>,
    errors: Family<ErrorLabels, Counter>,
    leader: Gauge,
    events_dropped: Counter,
}

impl Metrics {
    /// A registry with every Eddy metric under the `eddy_` prefix, labelled with `controller`.
    pub fn new(controller: &str) -> Self {
        let mut registry = Registry::with_prefix_and_labels(
            "eddy",
            [("controller".into(), controller.to_owned().into())].into_iter(),
        );
        let reconciles = Family::<ResultLabels, Counter>::default();
        let durations = Family::<ResultLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        let errors = Family::<ErrorLabels, Counter>::default();
        let leader = Gauge::default();
        let events_dropped = Counter::default();
        registry.register("reconcile", "Reconciles by kind and result", reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration by kind and result",
            durations.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconcile errors by kind and reason",
            errors.clone(),
        );
        registry.register("leader", "1 while this instance holds the leader Lease", leader.clone());
        registry.register(
            "events_dropped",
            "Events not forwarded because the queue was full",
            events_dropped.clone(),
        );
        Self {
            registry: Arc::new(std::sync::RwLock::new(registry)),
            reconciles,
            durations,
            errors,
            leader,
            events_dropped,
        }
    }

    /// Counts one reconcile of `kind` and its duration; an error also counts under `reason`.
    pub fn observe_reconcile(&self, kind: &str, result: ReconcileResult, reason: Option<&str>, took: Duration) {
        let labels = ResultLabels {
            kind: kind.to_owned(),
            result: result.as_str().to_owned(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.durations.get_or_create(&labels).observe(took.as_secs_f64());
        if let Some(reason) = reason {
            self.errors
                .get_or_create(&ErrorLabels {
                    kind: kind.to_owned(),
                    reason: reason.to_owned(),
                })
                .inc();
        }
    }

    /// Records whether this instance leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The counter of events dropped by a full forwarding queue.
    pub fn events_dropped(&self) -> Counter {
        self.events_dropped.clone()
    }

    /// Registers a controller's own metric (under the same prefix and labels), so that it is
    /// served on the same `/metrics` endpoint.
    pub fn register(&self, name: &str, help: &str, metric: impl prometheus_client::registry::Metric) {
        let mut registry = self.registry.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        registry.register(name, help, metric);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_are_counted_per_kind_and_result() {
        let metrics = Metrics::new("source-controller");
        metrics.observe_reconcile(
            "GitRepository",
            ReconcileResult::Success,
            None,
            Duration::from_millis(20),
        );
        metrics.observe_reconcile(
            "GitRepository",
            ReconcileResult::Error,
            Some("FetchFailed"),
            Duration::from_millis(5),
        );
        metrics.set_leader(true);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"eddy_reconcile_total{controller="source-controller",kind="GitRepository",result="success"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"eddy_reconcile_errors_total{controller="source-controller",kind="GitRepository",reason="FetchFailed"} 1"#
        ));
        assert!(text.contains(r#"eddy_reconcile_duration_seconds_count{controller="source-controller",kind="GitRepository",result="error"} 1"#));
        assert!(text.contains(r#"eddy_leader{controller="source-controller"} 1"#));
    }
}
