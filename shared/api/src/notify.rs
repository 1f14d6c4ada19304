//! `notify.eddy.dev/v1alpha1`: Provider, Alert and Receiver, notify-controller's objects. Shaped after
//! Flux's `notification.toolkit.fluxcd.io` (Provider and Alert v1beta3, Receiver v1).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{Duration, LocalObjectReference};

/// Where and how notifications are sent.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "notify.eddy.dev",
    version = "v1alpha1",
    kind = "Provider",
    namespaced,
    status = "NotifyStatus",
    category = "eddy",
    doc = "Provider describes a chat service, webhook or commit-status API that Alerts send to.",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSpec {
    /// The kind of service.
    #[serde(rename = "type")]
    pub provider_type: ProviderType,
    /// Channel, room id or similar destination inside the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub channel: Option<String>,
    /// Name the messages are sent as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Webhook URL, API base URL, or repository URL for commit statuses. A Secret's `address`
    /// key takes precedence, for URLs that carry credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub address: Option<String>,
    /// Timeout of one send.
    #[serde(default = "default_send_timeout")]
    pub timeout: Duration,
    /// Secret with `address`, `token`, `username`, `password`, `headers` (a YAML map of HTTP
    /// headers) or `proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// HTTP(S) proxy for the sends; a Secret's `proxy` key takes precedence, for proxies that
    /// carry credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub proxy: Option<String>,
    /// Secret with `ca.crt` (and `tls.crt`/`tls.key` for mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalObjectReference>,
    /// Stop sending through this provider.
    #[serde(default)]
    pub suspend: bool,
}

fn default_send_timeout() -> Duration {
    Duration::parse("15s").expect("constant duration")
}

/// The services a Provider can send to. Closed: an unknown type fails validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderType {
    /// Slack incoming webhook or chat.postMessage.
    Slack,
    /// Discord (Slack-compatible webhook).
    Discord,
    /// Microsoft Teams (Adaptive Card).
    Msteams,
    /// A Matrix homeserver room.
    Matrix,
    /// The event JSON posted to a URL.
    Generic,
    /// The event JSON posted to a URL, signed with HMAC-SHA256.
    #[serde(rename = "generic-hmac")]
    GenericHmac,
    /// GitHub commit status.
    Github,
    /// GitLab commit status.
    Gitlab,
    /// Grafana annotation: a deployment marker on dashboards.
    Grafana,
}

impl ProviderType {
    /// Whether the provider reports commit statuses, which need the event's commit.
    pub fn is_commit_status(self) -> bool {
        matches!(self, ProviderType::Github | ProviderType::Gitlab)
    }
}

/// Status shared by Provider and Alert.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifyStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The last `reconcile.eddy.dev/requestedAt` value handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// Which events go to which Provider.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "notify.eddy.dev",
    version = "v1alpha1",
    kind = "Alert",
    namespaced,
    status = "NotifyStatus",
    category = "eddy",
    doc = "Alert selects events from Eddy objects and sends them through a Provider.",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AlertSpec {
    /// The Provider to send through, in the Alert's namespace.
    pub provider_ref: LocalObjectReference,
    /// `info` sends every event, `error` only errors.
    #[serde(default)]
    pub event_severity: EventSeverity,
    /// The objects whose events are selected.
    #[schemars(length(min = 1))]
    pub event_sources: Vec<EventSource>,
    /// Regular expressions; when set, only events whose message matches one are sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inclusion_list: Vec<String>,
    /// Regular expressions; events whose message matches one are dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusion_list: Vec<String>,
    /// Metadata added to every event sent; it never overrides the emitter's keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub event_metadata: BTreeMap<String, String>,
    /// A short summary added to the event metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub summary: Option<String>,
    /// `all` sends every selected event (as Flux does); `change` sends an object's error when
    /// it first appears, again only after `repeatInterval`, and a recovery when the object is
    /// healthy again.
    #[serde(default)]
    pub alert_on: AlertOn,
    /// With `alertOn: change`, how often a lasting error is sent again; never when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_interval: Option<Duration>,
    /// Stop sending for this Alert.
    #[serde(default)]
    pub suspend: bool,
}

/// When an Alert sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertOn {
    /// Every selected event, after the duplicate window.
    #[default]
    All,
    /// Changes of an object's state: a new error, a new revision, a recovery.
    Change,
}

/// Event severities, from the least severe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventSeverity {
    /// Normal progress.
    #[default]
    Info,
    /// A failure.
    Error,
}

/// The objects an Alert listens to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventSource {
    /// API version of the objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the objects.
    pub kind: EventSourceKind,
    /// Name of the object, or `*` for all (then `matchLabels` may narrow it).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace; the Alert's namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels the objects must carry; only with name `*`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

/// The kinds that emit events: Eddy's, and Flux's so that one notify-controller serves both
/// during a migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum EventSourceKind {
    /// `source.eddy.dev` GitRepository (or Flux's).
    GitRepository,
    /// `source.eddy.dev` OCIRepository (or Flux's).
    OCIRepository,
    /// `apply.eddy.dev` Kustomization (or Flux's).
    Kustomization,
    /// `progressive.eddy.dev` Canary (or Flagger's).
    Canary,
    /// Flux's Bucket.
    Bucket,
    /// Flux's HelmRepository.
    HelmRepository,
    /// Flux's HelmChart.
    HelmChart,
    /// Flux's HelmRelease.
    HelmRelease,
    /// Flux's ImageRepository.
    ImageRepository,
    /// Flux's ImagePolicy.
    ImagePolicy,
    /// Flux's ImageUpdateAutomation.
    ImageUpdateAutomation,
}

impl EventSourceKind {
    /// The kind's name as objects carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventSourceKind::GitRepository => "GitRepository",
            EventSourceKind::OCIRepository => "OCIRepository",
            EventSourceKind::Kustomization => "Kustomization",
            EventSourceKind::Canary => "Canary",
            EventSourceKind::Bucket => "Bucket",
            EventSourceKind::HelmRepository => "HelmRepository",
            EventSourceKind::HelmChart => "HelmChart",
            EventSourceKind::HelmRelease => "HelmRelease",
            EventSourceKind::ImageRepository => "ImageRepository",
            EventSourceKind::ImagePolicy => "ImagePolicy",
            EventSourceKind::ImageUpdateAutomation => "ImageUpdateAutomation",
        }
    }

    /// The apiVersion a Receiver annotates when its resource names none: Eddy's group for
    /// Eddy's kinds, Flux's current version for the others.
    pub fn default_api_version(self) -> &'static str {
        match self {
            EventSourceKind::GitRepository | EventSourceKind::OCIRepository => "source.eddy.dev/v1alpha1",
            EventSourceKind::Kustomization => "apply.eddy.dev/v1alpha1",
            EventSourceKind::Canary => "progressive.eddy.dev/v1alpha1",
            EventSourceKind::Bucket | EventSourceKind::HelmRepository | EventSourceKind::HelmChart => {
                "source.toolkit.fluxcd.io/v1"
            }
            EventSourceKind::HelmRelease => "helm.toolkit.fluxcd.io/v2",
            EventSourceKind::ImageRepository | EventSourceKind::ImagePolicy => "image.toolkit.fluxcd.io/v1beta2",
            EventSourceKind::ImageUpdateAutomation => "image.toolkit.fluxcd.io/v1beta2",
        }
    }
}

/// A webhook endpoint that makes Eddy reconcile objects when a Git host or registry calls it.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "notify.eddy.dev",
    version = "v1alpha1",
    kind = "Receiver",
    namespaced,
    status = "ReceiverStatus",
    category = "eddy",
    doc = "Receiver exposes a webhook that triggers the reconciliation of selected objects.",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message"
    ),
    printcolumn(name = "Path", type_ = "string", json_path = ".status.webhookPath", priority = 1)
)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverSpec {
    /// The sender, which decides how requests are verified.
    #[serde(rename = "type")]
    pub receiver_type: ReceiverType,
    /// Event types to act on (e.g. `push`); all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// The objects to reconcile when a verified request arrives.
    #[schemars(length(min = 1))]
    pub resources: Vec<ReceiverResource>,
    /// Secret with the `token` that secures the path and signatures.
    pub secret_ref: LocalObjectReference,
    /// How often the Secret is re-read.
    #[serde(default = "default_receiver_interval")]
    pub interval: Duration,
    /// Refuse requests for this Receiver.
    #[serde(default)]
    pub suspend: bool,
}

fn default_receiver_interval() -> Duration {
    Duration::parse("10m").expect("constant duration")
}

/// Webhook senders a Receiver understands. Closed: an unknown type fails validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverType {
    /// GitHub (`X-Hub-Signature-256`).
    Github,
    /// GitLab (`X-Gitlab-Token`).
    Gitlab,
    /// Bitbucket Server / Data Center (`X-Hub-Signature`).
    Bitbucket,
    /// Any sender; the secret path is the credential.
    Generic,
    /// Any sender signing the body with HMAC (`X-Signature`).
    #[serde(rename = "generic-hmac")]
    GenericHmac,
}

/// An object, or a labelled set of objects, a Receiver reconciles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverResource {
    /// API version of the objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the objects.
    pub kind: EventSourceKind,
    /// Name, or `*` with `matchLabels`.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace; the Receiver's namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels the objects must carry; only with name `*`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

/// What notify-controller observed of a Receiver.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// `/hook/<sha256 of token, name and namespace>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
    /// The last `reconcile.eddy.dev/requestedAt` value handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}
