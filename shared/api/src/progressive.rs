//! `progressive.eddy.dev/v1alpha1`: Canary and MetricTemplate, progressive-controller's objects.
//! Shaped after Flagger's `flagger.app/v1beta1`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
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
    /// On deletion of the Canary, give the target its replicas back and route the apex Service
    /// to it before the generated objects go.
    #[serde(default)]
    pub revert_on_deletion: bool,
    /// A HorizontalPodAutoscaler of the target, copied for the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler_ref: Option<AutoscalerReference>,
}

/// The autoscaler of the target; `<name>-primary` gets a copy that scales the primary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerReference {
    /// API version, `autoscaling/v2` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind: `HorizontalPodAutoscaler`.
    pub kind: AutoscalerKind,
    /// Name of the autoscaler, in the Canary's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Replica bounds of the primary's copy; the target's autoscaler's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_scaler_replicas: Option<ScalerReplicas>,
}

/// Autoscaler kinds a Canary can copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AutoscalerKind {
    /// `autoscaling/v2` HorizontalPodAutoscaler.
    HorizontalPodAutoscaler,
}

/// Replica bounds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalerReplicas {
    /// Lowest replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_replicas: Option<i32>,
    /// Highest replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_replicas: Option<i32>,
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

/// Traffic routers. Closed: an unknown router fails validation instead of falling back. The
/// versioned names are Flagger's, so that its Canaries keep their `provider`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum RouterKind {
    /// Gateway API HTTPRoute (`gateway.networking.k8s.io/v1`) weights, matches and mirrors.
    #[serde(rename = "gatewayapi", alias = "gatewayapi:v1")]
    Gatewayapi,
    /// Gateway API HTTPRoute at `gateway.networking.k8s.io/v1beta1`.
    #[serde(rename = "gatewayapi:v1beta1")]
    GatewayapiV1beta1,
    /// NGINX ingress canary annotations on a copy of `ingressRef`.
    #[serde(rename = "nginx")]
    Nginx,
    /// Istio VirtualService and DestinationRules.
    #[serde(rename = "istio")]
    Istio,
    /// SMI TrafficSplit `split.smi-spec.io/v1alpha3` (Flagger's `smi` is v1alpha1: see the docs).
    #[serde(rename = "smi", alias = "smi:v1alpha3")]
    Smi,
    /// SMI TrafficSplit `split.smi-spec.io/v1alpha2`, as Linkerd serves it.
    #[serde(rename = "smi:v1alpha2", alias = "linkerd")]
    SmiV1alpha2,
    /// Plain Kubernetes Services: blue/green by switching the apex Service's selector.
    #[serde(rename = "kubernetes")]
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
    /// Istio gateways the VirtualService is bound to (`mesh` when unset).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Labels and annotations of the apex Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apex: Option<ServiceMetadata>,
    /// Labels and annotations of `<name>-primary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<ServiceMetadata>,
    /// Labels and annotations of `<name>-canary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<ServiceMetadata>,
    /// Istio DestinationRule traffic policy, copied as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::meta::free_form_object")]
    pub traffic_policy: Option<serde_json::Value>,
    /// Request timeout of the route, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// Labels and annotations put on a generated Service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceMetadata {
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
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
    /// Copy requests to the canary (answers discarded) during blue/green iterations, or during
    /// the first canary step.
    #[serde(default)]
    pub mirror: bool,
    /// Percentage of requests mirrored; all when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub mirror_weight: Option<i32>,
    /// Keep a user who reached the canary on the canary, with a cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
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

/// Sticky canary sessions: a user routed to the canary gets a cookie that keeps them there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionAffinity {
    /// Name of the cookie set on answers from the canary.
    #[schemars(length(min = 1))]
    pub cookie_name: String,
    /// Lifetime of the cookie, in seconds.
    #[serde(default = "default_cookie_max_age")]
    #[schemars(range(min = 1))]
    pub max_age: i64,
}

fn default_cookie_max_age() -> i64 {
    86_400
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

/// A request condition for A/B testing: every header and cookie listed must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequestMatch {
    /// Header name to condition.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// Cookie name to condition (Flagger writes these as a regex on the `cookie` header, which
    /// is accepted too).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cookies: BTreeMap<String, StringMatch>,
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
    /// A PromQL query written in place, against `metricsServer` (Flagger's deprecated form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Highest accepted value (Flagger's deprecated form of `thresholdRange.max`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
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
    /// Accept any certificate from an `https` URL. Only for test setups.
    #[serde(default, rename = "disableTLS")]
    pub disable_tls: bool,
    /// Send no alert for this hook's events (Flagger field; Eddy's events go to Alerts anyway).
    #[serde(default)]
    pub mute_alert: bool,
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
    /// The last value of each metric and webhook check, with its verdict and time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_checks: Vec<CheckResult>,
    /// The steps of the current or last release, newest last (bounded), for `eddy canary status`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<StepRecord>,
    /// One-time hooks already run for the revision under analysis (`pre-rollout`,
    /// `post-rollout`, `rollback`), so that a restart never repeats them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks_done: Vec<String>,
    /// When the last analysis step ran; the next is due an interval later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step_time: Option<MicroTime>,
    /// Since when the canary or primary has been waited for to be ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<Time>,
    /// The last `progressive.eddy.dev/promote` value handled (a manual gate answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_promote_at: Option<String>,
    /// The last `progressive.eddy.dev/abort` value handled (a manual rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_abort_at: Option<String>,
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
    /// When it was observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

/// One analysis step: where traffic was and what the checks said.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// When the step ran.
    pub time: Time,
    /// The phase after the step.
    pub phase: CanaryPhase,
    /// The canary's weight after the step.
    pub canary_weight: i32,
    /// Metric values of the step, by check name (absent: no value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, f64>,
    /// Names of the checks that failed in the step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

/// Annotation that answers a waiting confirm gate once (`eddy canary promote`); its value is a
/// token such as a timestamp, handled once.
pub const PROMOTE_REQUESTED_AT: &str = "progressive.eddy.dev/promote";
/// Annotation that rolls the current release back (`eddy canary abort`), handled once per value.
pub const ABORT_REQUESTED_AT: &str = "progressive.eddy.dev/abort";
/// Annotation that holds the release where it is while `"true"` (`eddy canary pause|resume`).
pub const PAUSED: &str = "progressive.eddy.dev/paused";

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
