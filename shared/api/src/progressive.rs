//! `progressive.eddy.dev/v1alpha1`: Canary and MetricTemplate, progressive-controller's objects.
//! Shaped after Flagger's `flagger.app/v1beta1`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
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
    /// How traffic is split between primary and canary. `istio` when unset, the default of
    /// Flagger's `-mesh-provider` flag, which Eddy does not have: a Canary says its router.
    #[serde(default)]
    pub provider: RouterKind,
    /// Prometheus address for the built-in metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_server: Option<String>,
    /// The Ingress to clone for the `nginx` router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_ref: Option<IngressReference>,
    /// Flagger's APISIX route, for its `apisix` provider. Eddy has no such router: accepted and
    /// unused (reported as ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_ref: Option<PeerObjectReference>,
    /// Flagger's Gloo Upstream template, for its `gloo` provider. Eddy has no such router:
    /// accepted and unused (reported as ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ref: Option<PeerObjectReference>,
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

/// The percentage of a workload's replicas that must be available for it to count as ready,
/// when the Canary does not say (Flagger's).
pub const DEFAULT_READY_THRESHOLD: i32 = 100;

impl CanarySpec {
    /// `analysis.primaryReadyThreshold`, or [`DEFAULT_READY_THRESHOLD`].
    pub fn primary_ready_threshold(&self) -> i32 {
        self.analysis
            .as_ref()
            .and_then(|analysis| analysis.primary_ready_threshold)
            .unwrap_or(DEFAULT_READY_THRESHOLD)
    }

    /// `analysis.canaryReadyThreshold`, or [`DEFAULT_READY_THRESHOLD`].
    pub fn canary_ready_threshold(&self) -> i32 {
        self.analysis
            .as_ref()
            .and_then(|analysis| analysis.canary_ready_threshold)
            .unwrap_or(DEFAULT_READY_THRESHOLD)
    }
}

/// The Ingress the `nginx` router copies, in the Canary's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressReference {
    /// API version; only `networking.k8s.io/v1` is read, whatever is written here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind: `Ingress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<IngressKind>,
    /// Name of the Ingress.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Kinds an `ingressRef` can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum IngressKind {
    /// `networking.k8s.io/v1` Ingress.
    Ingress,
}

/// A reference to another project's object (Flagger's `routeRef` and `upstreamRef`), kept so
/// that Flagger Canaries apply unchanged; Eddy reads nothing it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerObjectReference {
    /// API version of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the object.
    pub name: String,
    /// Namespace of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
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
    /// Flagger's queries for the primary's KEDA ScaledObject, by trigger name. A
    /// HorizontalPodAutoscaler has no queries (its metrics are copied as written): accepted and
    /// unused (reported as ignored).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub primary_scaler_queries: BTreeMap<String, String>,
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
/// versioned names are Flagger's, so that its Canaries keep their `provider`. A Canary without
/// one gets `istio`, written into the object by the API server (the schema's default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    #[default]
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

impl RouterKind {
    /// Every `provider` value a Canary may give, Flagger's aliases included: the schema's enum.
    pub const ACCEPTED: [&'static str; 10] = [
        "gatewayapi",
        "gatewayapi:v1",
        "gatewayapi:v1beta1",
        "nginx",
        "istio",
        "smi",
        "smi:v1alpha3",
        "smi:v1alpha2",
        "linkerd",
        "kubernetes",
    ];
}

/// Written by hand because the derived schema would list the variants' names only, and the
/// API server would then refuse the aliases (`gatewayapi:v1`, `linkerd`) that serde accepts.
impl JsonSchema for RouterKind {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RouterKind".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "enum": RouterKind::ACCEPTED,
        })
    }
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
    /// Container port, by number or name; `port` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    /// `appProtocol` of the Services' port (e.g. `http`, `kubernetes.io/h2c`). With the `istio`
    /// router, `TCP` makes the VirtualService route TCP instead of HTTP, as in Flagger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    /// Add the other ports of the target's first container to the generated Services (named as
    /// the container names them, `tcp-<container>-<index>` otherwise).
    #[serde(default)]
    pub port_discovery: bool,
    /// Generate headless Services (`clusterIP: None`). The API server refuses to change the
    /// `clusterIP` of an existing Service: switching an existing Canary means deleting its
    /// Services first.
    #[serde(default)]
    pub headless: bool,
    /// `trafficDistribution` of the generated Services: prefer endpoints close to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_distribution: Option<TrafficDistribution>,
    /// Gateways the HTTPRoute attaches to (router `gatewayapi`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_refs: Vec<GatewayReference>,
    /// Host names routed to the Service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Istio gateways the VirtualService is bound to (`mesh` when unset).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Flagger's Istio delegation (a VirtualService without hosts and gateways, included by
    /// another). Eddy's VirtualService always has both: accepted and unused (reported as ignored).
    #[serde(default)]
    pub delegation: bool,
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
    /// Timeout of each request to a backend, retries included (`gatewayapi`: the rules'
    /// `timeouts.backendRequest`, which may not exceed `timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_timeout: Option<String>,
    /// Requests the routes serve (`istio`: each route's `match`; `gatewayapi`: each rule's
    /// `matches`, for what Gateway API can match on). A/B conditions are added to each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(rename = "match")]
    pub match_requests: Vec<HttpMatchRequest>,
    /// Rewrite of the path and host of requests (`istio`: `rewrite`; `gatewayapi`: a
    /// `URLRewrite` filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    /// Retries of failed requests (`istio` only: Gateway API's standard channel has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Headers added, set and removed on requests and answers (`istio`: `headers`;
    /// `gatewayapi`: header modifier filters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<HeaderOperations>,
    /// Cross-origin resource sharing (`istio`: `corsPolicy`; `gatewayapi`: a `CORS` filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,
    /// Further Services every request is copied to (`gatewayapi`: `RequestMirror` filters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirror: Vec<RequestMirror>,
    /// Flagger's App Mesh mesh name. Eddy has no App Mesh router: accepted and unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_name: Option<String>,
    /// Flagger's App Mesh backends. Eddy has no App Mesh router: accepted and unused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<String>,
    /// Label and annotation keys of the generated objects that Flagger must leave alone. Eddy
    /// applies server-side and never removes what other field managers wrote, so nothing needs
    /// naming: accepted and unused (reported as ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmanaged_metadata: Option<UnmanagedMetadata>,
}

/// Where a Service prefers to send traffic (`spec.trafficDistribution`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TrafficDistribution {
    /// Endpoints topologically close to the client.
    PreferClose,
    /// Endpoints in the client's zone.
    PreferSameZone,
    /// Endpoints on the client's node.
    PreferSameNode,
}

/// A request condition on the routes (Istio's `HTTPMatchRequest`): every field set must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatchRequest {
    /// Name of the condition, for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// The scheme (`http`, `https`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,
    /// The method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// The authority (host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    /// Headers, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// Headers that must not match, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Query parameters, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_params: BTreeMap<String, StringMatch>,
    /// The port the request was addressed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Labels of the calling workload (Istio, `mesh` gateway only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Namespace of the calling workload (Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
    /// Istio gateways the condition applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Match the path without regard to case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_uri_case: Option<bool>,
}

/// A rewrite of the path and host of requests before they reach the Services.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRewrite {
    /// The new path, or prefix (see `type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The new host (`Host`/`:authority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// How `uri` replaces the path (Gateway API); Istio replaces the matched prefix.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub rewrite_type: Option<RewriteType>,
}

/// How a rewrite replaces the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RewriteType {
    /// The whole path becomes `uri` (the default).
    ReplaceFullPath,
    /// The matched prefix of the path becomes `uri`.
    ReplacePrefixMatch,
}

/// Retries of failed requests (Istio's `HTTPRetry`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRetry {
    /// Number of retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// Timeout of each attempt, e.g. `2s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<String>,
    /// The failures retried, e.g. `gateway-error,connect-failure,refused-stream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
}

/// Header changes on requests (before they reach the Services) and on answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HeaderOperations {
    /// Changes to requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperation>,
    /// Changes to answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderOperation>,
}

/// Headers to add, overwrite and remove.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HeaderOperation {
    /// Headers appended to any value already there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Headers set, replacing any value already there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Headers removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A cross-origin resource sharing policy (Istio's `CorsPolicy`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CorsPolicy {
    /// Origins allowed, exactly as written (Istio's older form of `allowOrigins`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origin: Vec<String>,
    /// Origins allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<StringMatch>,
    /// Methods allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Request headers allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Answer headers the browser may read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// How long a preflight answer may be cached, e.g. `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// Whether requests may carry credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
}

/// A copy of every request sent to another backend (Gateway API's `RequestMirror` filter).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestMirror {
    /// The backend the copies go to.
    pub backend_ref: MirrorBackend,
}

/// A Gateway API backend reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorBackend {
    /// API group of the backend; the core group (a Service) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the backend; `Service` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the backend.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the backend; the Canary's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Port of the backend (required for a Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// Metadata keys of generated objects that Flagger leaves to others.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UnmanagedMetadata {
    /// Annotation keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<String>,
    /// Label keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
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

/// A Gateway API parent reference: a Gateway, or a Service for mesh routing (GAMMA).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayReference {
    /// API group of the parent; `gateway.networking.k8s.io` when unset, `core` or empty for a
    /// Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the parent; `Gateway` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the parent.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the parent; the Canary's namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Listener name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// Port of the parent (a listener's port, or a Service's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
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
    /// Percentage of the primary's replicas that must be available for it to count as ready
    /// (100 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub primary_ready_threshold: Option<i32>,
    /// Percentage of the canary's replicas that must be available for it to count as ready
    /// (100 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub canary_ready_threshold: Option<i32>,
    /// Flagger's per-Canary alerts to AlertProviders. Eddy sends a Canary's events through
    /// notify-controller Alerts (`notify.eddy.dev`) that select them: accepted and unused
    /// (reported as ignored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<CanaryAlert>,
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
///
/// Eddy's cookie is `<cookieName>=canary; Max-Age=<maxAge>; Path=/`, set by the canary's
/// answers only. Flagger's other cookie settings (a primary cookie, the cookie's attributes) are
/// accepted and unused (reported as ignored).
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
    /// Flagger's cookie that keeps users on the primary. Unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_cookie_name: Option<String>,
    /// The cookie's `Domain`. Unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The cookie's `Path`. Unused: Eddy's is `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The cookie's `HttpOnly`. Unused.
    #[serde(default)]
    pub http_only: bool,
    /// The cookie's `Secure`. Unused.
    #[serde(default)]
    pub secure: bool,
    /// The cookie's `SameSite`. Unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<SameSite>,
    /// The cookie's `Partitioned`. Unused.
    #[serde(default)]
    pub partitioned: bool,
}

/// A session affinity with an empty cookie name (which validation refuses: set one), a day's
/// lifetime and none of the unused settings.
impl Default for SessionAffinity {
    fn default() -> Self {
        Self {
            cookie_name: String::new(),
            max_age: default_cookie_max_age(),
            primary_cookie_name: None,
            domain: None,
            path: None,
            http_only: false,
            secure: false,
            same_site: None,
            partitioned: false,
        }
    }
}

fn default_cookie_max_age() -> i64 {
    86_400
}

/// A cookie's `SameSite` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SameSite {
    /// Sent with same-site requests only.
    Strict,
    /// Also sent when following a link to the site.
    Lax,
    /// Sent with cross-site requests too.
    #[serde(rename = "None")]
    Unrestricted,
}

/// One of Flagger's per-Canary alerts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryAlert {
    /// Name of the alert.
    pub name: String,
    /// The least severe events sent.
    #[serde(default)]
    pub severity: AlertSeverity,
    /// The Flagger AlertProvider.
    pub provider_ref: AlertProviderReference,
}

/// Severities of Flagger's alerts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertSeverity {
    /// Every event.
    #[default]
    Info,
    /// Waits for a gate and failures.
    Warn,
    /// Failures.
    Error,
}

/// A Flagger AlertProvider, optionally in another namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AlertProviderReference {
    /// Name of the AlertProvider.
    pub name: String,
    /// Its namespace; the Canary's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
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

/// A request condition for A/B testing: every header, cookie and query parameter listed must
/// match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestMatch {
    /// Header name to condition.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// Cookie name to condition (Flagger writes these as a regex on the `cookie` header, which
    /// is accepted too).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cookies: BTreeMap<String, StringMatch>,
    /// Query parameter name to condition (`istio` and `gatewayapi` routers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_params: BTreeMap<String, StringMatch>,
    /// Labels of the calling workload (`istio` router, `mesh` gateway only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
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
    /// Flagger's extra HTTP headers for the queries. Not sent: accepted and unused (reported as
    /// ignored); put tenant or auth headers in front of Prometheus, or use `secretRef`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    /// Flagger's cloud region, for its CloudWatch and Stackdriver providers. Prometheus has
    /// none: accepted and unused (reported as ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_the_schema_accepts_reads_as_a_router() {
        for name in RouterKind::ACCEPTED {
            let read: Result<RouterKind, _> = serde_json::from_value(serde_json::json!(name));
            assert!(read.is_ok(), "{name}: {read:?}");
        }
        let read = |name: &str| serde_json::from_value::<RouterKind>(serde_json::json!(name)).unwrap();
        assert_eq!(read("gatewayapi:v1"), RouterKind::Gatewayapi);
        assert_eq!(read("linkerd"), RouterKind::SmiV1alpha2);
        assert!(serde_json::from_value::<RouterKind>(serde_json::json!("appmesh")).is_err());
    }

    #[test]
    fn a_canary_without_provider_routes_with_istio_and_ready_thresholds_default_to_all() {
        let spec: CanarySpec = serde_json::from_value(serde_json::json!({
            "targetRef": {"kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
        }))
        .unwrap();
        assert_eq!(spec.provider, RouterKind::Istio);
        assert_eq!(
            (spec.primary_ready_threshold(), spec.canary_ready_threshold()),
            (100, 100)
        );

        let spec: CanarySpec = serde_json::from_value(serde_json::json!({
            "targetRef": {"kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898, "targetPort": "http"},
            "analysis": {"primaryReadyThreshold": 50, "canaryReadyThreshold": 80},
        }))
        .unwrap();
        assert_eq!(
            (spec.primary_ready_threshold(), spec.canary_ready_threshold()),
            (50, 80)
        );
        assert_eq!(spec.service.target_port, Some(IntOrString::String("http".into())));
    }

    #[test]
    fn the_canary_schema_lists_the_provider_aliases_and_defaults_to_istio() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(Canary::crd()).unwrap();
        let provider =
            &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["provider"];
        assert_eq!(provider["default"], "istio");
        assert_eq!(provider["enum"], serde_json::json!(RouterKind::ACCEPTED));
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let required = spec["required"].as_array().unwrap();
        assert!(!required.contains(&serde_json::json!("provider")), "{required:?}");
    }
}
