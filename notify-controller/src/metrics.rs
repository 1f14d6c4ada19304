//! notify-controller's own metrics, served with the runtime's on `/metrics`: events received
//! (and refused), notifications sent and failed per provider type, and the delay from an
//! event's arrival to its delivery. Labels are types, never addresses or names of secrets.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use eddy_runtime::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// The counters and histograms of notify-controller.
#[derive(Clone)]
pub struct NotifyMetrics {
    received: Family<OutcomeLabels, Counter>,
    sent: Family<ProviderLabels, Counter>,
    failed: Family<ProviderLabels, Counter>,
    latency: Family<ProviderLabels, Histogram>,
    receiver_calls: Family<OutcomeLabels, Counter>,
    workers: Gauge,
}

impl NotifyMetrics {
    /// Creates the metrics and registers them with the runtime's registry.
    pub fn register(metrics: &Metrics) -> Self {
        let this = Self::default();
        metrics.register(
            "notify_events_received",
            "Events received on the event endpoint, by outcome (accepted, invalid, queue_full)",
            this.received.clone(),
        );
        metrics.register(
            "notify_sent",
            "Notifications delivered, by provider type",
            this.sent.clone(),
        );
        metrics.register(
            "notify_failed",
            "Notifications that failed after their retries or were dropped, by provider type",
            this.failed.clone(),
        );
        metrics.register(
            "notify_dispatch_latency_seconds",
            "Time from an event's arrival to its delivery, by provider type",
            this.latency.clone(),
        );
        metrics.register(
            "notify_receiver_requests",
            "Webhook requests to Receivers, by outcome",
            this.receiver_calls.clone(),
        );
        metrics.register(
            "notify_provider_workers",
            "Providers with a running sender (one per Provider that has had a message since it last changed)",
            this.workers.clone(),
        );
        this
    }

    /// Counts an event at the endpoint.
    pub fn received(&self, outcome: &str) {
        self.received
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts a delivery and its delay.
    pub fn sent(&self, provider_type: &str, delay: Duration) {
        let labels = ProviderLabels {
            provider_type: provider_type.to_owned(),
        };
        self.sent.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(delay.as_secs_f64());
    }

    /// Counts a failure.
    pub fn failed(&self, provider_type: &str) {
        self.failed
            .get_or_create(&ProviderLabels {
                provider_type: provider_type.to_owned(),
            })
            .inc();
    }

    /// Sets how many Providers have a running sender.
    pub fn workers(&self, count: usize) {
        self.workers.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Counts a Receiver request.
    pub fn receiver_call(&self, outcome: &str) {
        self.receiver_calls
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

impl Default for NotifyMetrics {
    fn default() -> Self {
        Self {
            received: Family::default(),
            sent: Family::default(),
            failed: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16))),
            receiver_calls: Family::default(),
            workers: Gauge::default(),
        }
    }
}
