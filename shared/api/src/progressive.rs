//! `progressive.eddy.dev/v1alpha1`: Canary and MetricTemplate, progressive-controller's objects.
//! Shaped after Flagger's `flagger.app/v1beta1`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{Duration, LocalObjectReference};

/// A progressive release of a Deployment: canary weights, blue/green or A/B, gated by metrics.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "progressive.eddy.dev",
    version = "v1alpha1",
    kind = "Canary",
    namespaced,
    status = "CanaryStatus",
    category = "eddy",
    doc = "Canary releases new versions of a Deployment step by step, gated by metrics and webhooks.",
    printcolumn(name = "Status", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Weight", type_ = "integer", json_path = ".status.canaryWeight"),
    printcolumn(
        name = "FailedChecks",
        type_ = "integer",
        json_path = ".status.failedChecks",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct CanarySpec {
    /// The workload to release.
    pub target_ref: TargetReference,
    /// How traffic is split between primary and canary.
    pub provider: RouterKind,
    /// Prometheus address for the built-in metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_server: Option<String>,
    /// The Ingress to clone for the `nginx` router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_ref: Option<LocalObjectReference>,
    /// The Services the controller generates and how they route.
    pub service: CanaryService,
    /// The analysis that gates each step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<CanaryAnalysis>,
    /// Seconds a primary or canary may take to make progress before the release is rolled back.
    #[serde(default = "default_progress_deadline")]
    #[schemars(range(min = 1))]
    pub progress_deadline_seconds: i32,
    /// Promote without running the analysis.
    #[serde(default)]
    pub skip_analysis: bool,
    /// Stop advancing; traffic stays as it is.
    #[serde(default)]
    pub suspend: bool,
}

fn default_progress_deadline() -> i32 {
    600
}

/// The released workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetReference {
    /// API version, `apps/v1` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the workload.
    pub kind: TargetKind,
    /// Name of the workload, in the Canary's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Workload kinds a Canary can release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TargetKind {
    /// `apps/v1` Deployment.
    Deployment,
}

/// Traffic routers. Closed: an unknown router fails validation instead of falling back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RouterKind {
    /// Gateway API HTTPRoute weights.
    Gatewayapi,
    /// NGINX ingress canary annotations.
    Nginx,
    /// Istio VirtualService weights.
    Istio,
    /// SMI TrafficSplit.
    Smi,
    /// Plain Kubernetes Services: blue/green only.
    Kubernetes,
}

/// The Services generated for the release: `<name>`, `<name>-primary` and `<name>-canary`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryService {
    /// Name of the apex Service; the target's name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Service port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Name of the port.
    #[serde(default = "default_port_name")]
    pub port_name: String,
    /// Container port; `port` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub target_port: Option<i32>,
    /// Gateways the HTTPRoute attaches to (router `gatewayapi`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_refs: Vec<GatewayReference>,
    /// Host names routed to the Service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

fn default_port_name() -> String {
    "http".into()
}

/// A Gateway API parent reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayReference {
    /// Name of the Gateway.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the Gateway; the Canary's namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Listener name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// The steps of a release and the checks between them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryAnalysis {
    /// Time between two steps.
    #[serde(default = "default_analysis_interval")]
    pub interval: Duration,
    /// Failed checks tolerated before rollback.
    #[serde(default = "default_threshold")]
    #[schemars(range(min = 1))]
    pub threshold: i32,
    /// The strategy; derived as Flagger does when unset: `match` with `iterations` is A/B
    /// testing, `iterations` alone is blue/green, otherwise canary weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// Highest canary weight before promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_weight: Option<i32>,
    /// Weight added per step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub step_weight: Option<i32>,
    /// An explicit ladder of weights; overrides stepWeight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(range(min = 1, max = 100)))]
    pub step_weights: Vec<i32>,
    /// Weight moved back to the primary per step after promotion; all at once when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub step_weight_promotion: Option<i32>,
    /// Number of checks for blue/green and A/B testing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub iterations: Option<i32>,
    /// Requests routed to the canary during A/B testing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(rename = "match")]
    pub match_requests: Vec<RequestMatch>,
    /// Metric checks run at each step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<CanaryMetric>,
    /// Webhooks called at the points of the release named by their type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<CanaryWebhook>,
}

fn default_analysis_interval() -> Duration {
    Duration::parse("60s").expect("constant duration")
}

fn default_threshold() -> i32 {
    1
}

/// Release strategies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Strategy {
    /// Shift traffic to the canary by weight steps.
    Canary,
    /// Test the canary without traffic, then switch all traffic at once.
    BlueGreen,
    /// Route matching requests (header or cookie) to the canary.
    ABTesting,
}

/// A request condition for A/B testing: every header listed must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequestMatch {
    /// Header name to condition.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
}

/// How a header value is matched. Exactly one field should be set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StringMatch {
    /// The value equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The value starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The value matches this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// A metric check: a query whose single number must fall in a range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryMetric {
    /// `request-success-rate`, `request-duration`, or a name for a templated query.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The range window of the query.
    #[serde(default = "default_metric_interval")]
    pub interval: Duration,
    /// Accepted range of the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_range: Option<ThresholdRange>,
    /// The MetricTemplate holding the query (not for the built-in metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<TemplateReference>,
    /// Variables available to the template's query.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub template_variables: BTreeMap<String, String>,
}

fn default_metric_interval() -> Duration {
    Duration::parse("1m").expect("constant duration")
}

/// Inclusive bounds; a missing bound is open.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThresholdRange {
    /// Lowest accepted value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest accepted value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// A MetricTemplate, optionally in another namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TemplateReference {
    /// Name of the MetricTemplate.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Its namespace; the Canary's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A webhook called during the release.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryWebhook {
    /// When it is called and what its answer means.
    #[serde(rename = "type", default)]
    pub hook_type: WebhookType,
    /// Name, for status and events.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The URL to POST to.
    #[schemars(pattern(r"^https?://"))]
    pub url: String,
    /// Time allowed for an answer.
    #[serde(default = "default_webhook_timeout")]
    pub timeout: Duration,
    /// Extra values sent in the payload.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Retries on failure before the call counts as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub retries: Option<i32>,
}

fn default_webhook_timeout() -> Duration {
    Duration::parse("10s").expect("constant duration")
}

/// The points of a release at which a webhook is called.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookType {
    /// Gate before a release starts.
    ConfirmRollout,
    /// Before traffic reaches the canary; a failure counts as a failed check.
    PreRollout,
    /// At every step; a failure counts as a failed check.
    #[default]
    Rollout,
    /// Gate before each weight increase.
    ConfirmTrafficIncrease,
    /// Gate before promotion.
    ConfirmPromotion,
    /// After the release succeeded or failed.
    PostRollout,
    /// A 200 answer aborts the release.
    Rollback,
    /// Receives every event of the release.
    Event,
}

/// The state of a release, kept in status so that a restart resumes where it stopped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled, Promoted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Where the release is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<CanaryPhase>,
    /// Failed checks in the current release.
    #[serde(default)]
    pub failed_checks: i32,
    /// Traffic percentage on the canary.
    #[serde(default)]
    pub canary_weight: i32,
    /// Checks passed in a blue/green or A/B release.
    #[serde(default)]
    pub iterations: i32,
    /// Hash of the target's spec last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_spec: Option<String>,
    /// Hash of the target's spec last promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promoted_spec: Option<String>,
    /// Checksums of the ConfigMaps and Secrets the target uses.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tracked_configs: BTreeMap<String, String>,
    /// The last value of each metric check, with its verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_checks: Vec<CheckResult>,
    /// When the phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// The last `reconcile.eddy.dev/requestedAt` value handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// Phases of a release, Flagger's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CanaryPhase {
    /// Creating the primary and the Services.
    Initializing,
    /// Ready for a release.
    Initialized,
    /// Waiting for the confirm-rollout gate.
    Waiting,
    /// Shifting traffic and checking.
    Progressing,
    /// Waiting for the confirm-promotion gate.
    WaitingPromotion,
    /// Copying the canary to the primary.
    Promoting,
    /// Moving traffic back to the primary and scaling the canary down.
    Finalising,
    /// The release completed.
    Succeeded,
    /// The release was rolled back.
    Failed,
    /// The Canary is being deleted.
    Terminating,
    /// The Canary was deleted and its objects restored.
    Terminated,
}

/// One metric or webhook observation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// Metric or webhook name.
    pub name: String,
    /// The value read, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Whether the check passed.
    pub passed: bool,
    /// Why it failed: out of range, no data, unreachable ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A reusable metric query.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "progressive.eddy.dev",
    version = "v1alpha1",
    kind = "MetricTemplate",
    namespaced,
    status = "MetricTemplateStatus",
    shortname = "mt",
    category = "eddy",
    doc = "MetricTemplate holds a metric query that Canaries use as a gate.",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider.type"),
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
pub struct MetricTemplateSpec {
    /// Where the query runs.
    pub provider: MetricProvider,
    /// The query, a template over `name`, `namespace`, `target`, `service`, `interval` and
    /// `variables`; it must return one number.
    #[schemars(length(min = 1))]
    pub query: String,
}

/// A metrics backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricProvider {
    /// The kind of backend.
    #[serde(rename = "type")]
    pub provider_type: MetricProviderType,
    /// Its address, e.g. `http://prometheus:9090`.
    #[schemars(pattern(r"^https?://"))]
    pub address: String,
    /// Secret with `username`/`password` or `bearerToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Skip TLS verification. Only for test setups.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Metric backends. Closed: an unknown type fails validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricProviderType {
    /// Prometheus HTTP API.
    Prometheus,
}

/// What progressive-controller observed of a MetricTemplate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricTemplateStatus {
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
