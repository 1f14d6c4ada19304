//! Reporting: one call records a Kubernetes Event on an object and forwards the same event as
//! JSON (Flux's event shape) to notify-controller. Forwarding goes through a bounded queue drained
//! by a background task, so a slow or absent notify-controller never blocks a reconcile: when the
//! queue is full the event is dropped, counted and logged.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as KubeEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use eddy_api::notify::EventSeverity;

/// How many events may wait for forwarding before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 1024;
/// Longest message forwarded, as Flux caps it.
pub const MAX_MESSAGE_LEN: usize = 39_000;
/// Longest note the events.k8s.io API accepts.
const MAX_KUBE_NOTE_LEN: usize = 1024;
const POST_TIMEOUT: Duration = Duration::from_secs(5);
const POST_ATTEMPTS: u32 = 3;

/// The object an event is about, as notify-controller receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvolvedObject {
    /// Kind, e.g. `GitRepository`.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    #[serde(default)]
    pub uid: String,
    /// API version, e.g. `source.eddy.dev/v1alpha1`.
    pub api_version: String,
    /// Resource version the event was recorded at.
    #[serde(default)]
    pub resource_version: String,
}

/// The JSON body POSTed to notify-controller; the same shape as Flux's `event/v1beta1` Event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardedEvent {
    /// The object the event is about.
    pub involved_object: InvolvedObject,
    /// `info` or `error`.
    pub severity: EventSeverity,
    /// RFC 3339 time of the event.
    pub timestamp: String,
    /// What happened, for people.
    pub message: String,
    /// Why, as a CamelCase reason.
    pub reason: String,
    /// Extra facts such as `<group>/revision`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// The controller that emitted it.
    pub reporting_controller: String,
    /// The controller instance (pod) that emitted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_instance: Option<String>,
}

/// One event to report.
#[derive(Clone, Debug)]
pub struct Report {
    /// info or error.
    pub severity: EventSeverity,
    /// CamelCase reason, e.g. `NewArtifact`.
    pub reason: String,
    /// What happened.
    pub message: String,
    /// Facts such as `revision`; keys are prefixed with the object's API group when forwarded.
    pub metadata: BTreeMap<String, String>,
}

impl Report {
    /// An info event.
    pub fn info(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(EventSeverity::Info, reason, message)
    }

    /// An error event.
    pub fn error(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(EventSeverity::Error, reason, message)
    }

    fn new(severity: EventSeverity, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity,
            reason: reason.into(),
            message: message.into(),
            metadata: BTreeMap::new(),
        }
    }

    /// Adds a metadata entry.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// Records Kubernetes Events and forwards them to notify-controller.
#[derive(Clone)]
pub struct EventRecorder {
    recorder: Publisher,
    controller: String,
    instance: Option<String>,
    queue: Option<mpsc::Sender<ForwardedEvent>>,
    dropped: Counter,
}

/// The background task that POSTs queued events; [`Forwarder::shutdown`] flushes it.
pub struct Forwarder {
    task: JoinHandle<()>,
}

impl EventRecorder {
    /// A recorder for `controller`. With `events_addr`, events are also POSTed there by a
    /// background task; `dropped` counts events lost to a full queue.
    pub fn new(
        client: Client,
        controller: &str,
        instance: Option<String>,
        events_addr: Option<reqwest::Url>,
        dropped: Counter,
    ) -> (Self, Option<Forwarder>) {
        let (queue, forwarder) = match events_addr {
            Some(url) => {
                let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
                let task = tokio::spawn(forward_events(receiver, url));
                (Some(sender), Some(Forwarder { task }))
            }
            None => (None, None),
        };
        let recorder = Self {
            recorder: Publisher::new(client, controller, instance.clone()),
            controller: controller.to_owned(),
            instance,
            queue,
            dropped,
        };
        (recorder, forwarder)
    }

    /// Records `report` as a Kubernetes Event on `obj` and queues it for notify-controller.
    /// Failures are logged, never returned: reporting must not fail a reconcile.
    pub async fn record<K>(&self, obj: &K, report: Report)
    where
        K: Resource<DynamicType = ()>,
    {
        let event = self.forwarded_event(obj, &report);
        let type_ = match report.severity {
            EventSeverity::Info => "Normal",
            EventSeverity::Error => "Warning",
        };
        let note = truncate(&report.message, MAX_KUBE_NOTE_LEN);
        if let Err(err) = self
            .recorder
            .publish(type_, &report.reason, note, obj.object_ref(&()))
            .await
        {
            tracing::warn!(
                object = %describe(&event.involved_object),
                reason = %report.reason,
                error = %err,
                "recording Kubernetes event failed"
            );
        }
        self.forward(event);
    }

    fn forward(&self, event: ForwardedEvent) {
        let Some(queue) = &self.queue else { return };
        if let Err(err) = queue.try_send(event) {
            self.dropped.inc();
            let event = match err {
                mpsc::error::TrySendError::Full(event) | mpsc::error::TrySendError::Closed(event) => event,
            };
            tracing::warn!(
                object = %describe(&event.involved_object),
                reason = %event.reason,
                "event forwarding queue is full; event dropped"
            );
        }
    }

    fn forwarded_event<K>(&self, obj: &K, report: &Report) -> ForwardedEvent
    where
        K: Resource<DynamicType = ()>,
    {
        let group = K::group(&());
        let metadata = report
            .metadata
            .iter()
            .map(|(key, value)| {
                let key = if group.is_empty() {
                    key.clone()
                } else {
                    format!("{group}/{key}")
                };
                (key, value.clone())
            })
            .collect();
        ForwardedEvent {
            involved_object: InvolvedObject {
                kind: K::kind(&()).into_owned(),
                namespace: obj.namespace().unwrap_or_default(),
                name: obj.name_any(),
                uid: obj.uid().unwrap_or_default(),
                api_version: K::api_version(&()).into_owned(),
                resource_version: obj.resource_version().unwrap_or_default(),
            },
            severity: report.severity,
            timestamp: Timestamp::now().to_string(),
            message: truncate(&report.message, MAX_MESSAGE_LEN).to_owned(),
            reason: report.reason.clone(),
            metadata,
            reporting_controller: self.controller.clone(),
            reporting_instance: self.instance.clone(),
        }
    }
}

/// How long an event stays a series that a repetition counts into.
const SERIES_TTL: Duration = Duration::from_secs(6 * 60);

/// The series of recent events, by a hash of what they say. The lock is held only to read or
/// change the map, never across an API call, so reconciles reporting at once against a slow
/// apiserver wait for nothing but their own request.
type Series = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u64, (SeriesEntry, std::time::Instant)>>>;

/// A recorded Event that repetitions count into.
#[derive(Clone)]
struct SeriesEntry {
    /// The Event's name.
    name: String,
    /// How often it was seen (1 for the first).
    count: i32,
}

/// Writes events.k8s.io Events. A repetition of the same event (object, type, reason and note)
/// within [`SERIES_TTL`] increments the series of the first; any other event is a new Event, so
/// a later message with the same reason is never folded into an earlier one.
#[derive(Clone)]
struct Publisher {
    client: Client,
    controller: String,
    instance: Option<String>,
    series: Series,
}

impl Publisher {
    fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        Self {
            client,
            controller: controller.to_owned(),
            instance,
            series: Default::default(),
        }
    }

    async fn publish(
        &self,
        type_: &str,
        reason: &str,
        note: &str,
        regarding: ObjectReference,
    ) -> Result<(), kube::Error> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        (
            &regarding.uid,
            &regarding.namespace,
            &regarding.name,
            &regarding.kind,
            type_,
            reason,
            note,
        )
            .hash(&mut hasher);
        let key = hasher.finish();
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".to_owned());
        let api: Api<KubeEvent> = Api::namespaced(self.client.clone(), &namespace);
        let now = Timestamp::now();
        let repeated = {
            let mut series = self.series.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            series.retain(|_, (_, at)| at.elapsed() < SERIES_TTL);
            series.get_mut(&key).map(|(entry, at)| {
                entry.count += 1;
                *at = std::time::Instant::now();
                entry.clone()
            })
        };
        if let Some(entry) = repeated {
            let series = EventSeries {
                count: entry.count,
                last_observed_time: MicroTime(now),
            };
            let patch = serde_json::json!({ "series": series });
            let patched = api
                .patch(&entry.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
            if patched.is_err() {
                // The Event is gone (expired, deleted): the next repetition starts a new one.
                self.series
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&key);
            }
            return patched.map(|_| ());
        }
        let event = KubeEvent {
            metadata: kube::api::ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&self.controller),
                    now.as_nanosecond()
                )),
                namespace: Some(namespace),
                ..Default::default()
            },
            action: Some("Reconcile".to_owned()),
            event_time: Some(MicroTime(now)),
            note: Some(note.to_owned()),
            reason: Some(reason.to_owned()),
            regarding: Some(regarding),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone().unwrap_or_else(|| self.controller.clone())),
            type_: Some(type_.to_owned()),
            ..Default::default()
        };
        let created = api.create(&PostParams::default(), &event).await?;
        let entry = SeriesEntry {
            name: created.metadata.name.unwrap_or_default(),
            count: 1,
        };
        self.series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, (entry, std::time::Instant::now()));
        Ok(())
    }
}

impl Forwarder {
    /// Stops taking events and waits up to `bound` for the queued ones to be sent.
    pub async fn shutdown(self, recorder: EventRecorder, bound: Duration) {
        drop(recorder);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(bound, self.task).await.is_err() {
            abort.abort();
            tracing::warn!("events still queued at shutdown were not forwarded");
        }
    }
}

async fn forward_events(mut receiver: mpsc::Receiver<ForwardedEvent>, url: reqwest::Url) {
    let client = match reqwest::Client::builder().timeout(POST_TIMEOUT).build() {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "cannot build the event forwarding HTTP client; events are only recorded in Kubernetes");
            return;
        }
    };
    while let Some(event) = receiver.recv().await {
        post_event(&client, &url, &event).await;
    }
}

/// POSTs one event, retrying connection errors and server errors. 429 means notify-controller
/// already has it (rate-limited duplicate) and is not retried.
async fn post_event(client: &reqwest::Client, url: &reqwest::Url, event: &ForwardedEvent) {
    let object = describe(&event.involved_object);
    for attempt in 1..=POST_ATTEMPTS {
        let outcome = client.post(url.clone()).json(event).send().await;
        let retry = match outcome {
            Ok(response)
                if response.status().is_success() || response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS =>
            {
                return;
            }
            Ok(response) if response.status().is_server_error() => {
                format!("notify-controller answered {}", response.status())
            }
            Ok(response) => {
                tracing::warn!(object = %object, status = %response.status(), "notify-controller refused an event");
                return;
            }
            // The error text without its URL, which may carry credentials.
            Err(err) => err.without_url().to_string(),
        };
        if attempt == POST_ATTEMPTS {
            tracing::warn!(object = %object, reason = %event.reason, error = %retry, "forwarding event failed; giving up");
        } else {
            tokio::time::sleep(Duration::from_millis(250 * 2u64.pow(attempt))).await;
        }
    }
}

fn describe(obj: &InvolvedObject) -> String {
    format!("{}/{}/{}", obj.kind, obj.namespace, obj.name)
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        let text = "é".repeat(600);
        let cut = truncate(&text, MAX_KUBE_NOTE_LEN);
        assert!(cut.len() <= MAX_KUBE_NOTE_LEN);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(truncate("short", 10), "short");
    }

    #[test]
    fn forwarded_event_has_fluxs_field_names() {
        let event = ForwardedEvent {
            involved_object: InvolvedObject {
                kind: "GitRepository".into(),
                namespace: "apps".into(),
                name: "web".into(),
                uid: "u".into(),
                api_version: "source.eddy.dev/v1alpha1".into(),
                resource_version: "7".into(),
            },
            severity: EventSeverity::Error,
            timestamp: "2026-01-01T00:00:00Z".into(),
            message: "fetch failed".into(),
            reason: "FetchFailed".into(),
            metadata: BTreeMap::from([("source.eddy.dev/revision".into(), "main@sha1:abc".into())]),
            reporting_controller: "source-controller".into(),
            reporting_instance: None,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["involvedObject"]["apiVersion"], "source.eddy.dev/v1alpha1");
        assert_eq!(json["involvedObject"]["resourceVersion"], "7");
        assert_eq!(json["severity"], "error");
        assert_eq!(json["reportingController"], "source-controller");
        assert_eq!(json["metadata"]["source.eddy.dev/revision"], "main@sha1:abc");
    }
}
