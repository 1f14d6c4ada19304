//! Traffic for canary tests without Kubernetes: test apps whose error rate and latency a test
//! sets ([`TestApp`]), Debian's nginx standing in for a Gateway API implementation
//! ([`NginxGatewayStandIn`]: it renders an HTTPRoute, as the API server stores it, into nginx
//! configuration and reloads), and a load generator that counts who answered ([`LoadGenerator`]).
//! A canary's metrics then move only because the route moved traffic. Everything listens on
//! 127.0.0.1; dropping a server stops it, and dropping nginx stops and waits for its processes.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::free_port;

/// The header every test app answer carries: the app's name.
pub const SERVED_BY: &str = "x-served-by";

/// The header on nginx's answers naming the configuration generation that served them.
pub const GENERATION: &str = "x-eddy-generation";

/// The Content-Type of the apps' `/metrics`, as Eddy's controllers serve it.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

// ---------------------------------------------------------------------------------------------
// Test apps

/// How a [`TestApp`] answers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Behaviour {
    /// Fraction of answers that are 500, from 0 to 1. Errors are spread evenly over the requests
    /// in arrival order (not drawn at random), so that the fraction holds on a few hundred.
    pub error_rate: f64,
    /// How long each answer waits before it is sent.
    pub latency: Duration,
}

impl Behaviour {
    /// Every answer 200, at once.
    pub fn healthy() -> Self {
        Self {
            error_rate: 0.0,
            latency: Duration::ZERO,
        }
    }
}

impl Default for Behaviour {
    fn default() -> Self {
        Self::healthy()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

struct AppState {
    name: String,
    behaviour: Mutex<Behaviour>,
    /// Requests answered (or being answered) so far: the position that decides 200 or 500.
    arrivals: AtomicU64,
    requests: Family<CodeLabels, Counter>,
    duration: Histogram,
    registry: Registry,
}

impl AppState {
    /// The status and latency of the next request. Request `n` is an error when
    /// `floor((n + 1) * rate) > floor(n * rate)`, so any run of requests holds within one of
    /// `rate` times its length errors.
    fn next_answer(&self) -> (StatusCode, Duration) {
        let behaviour = *self.behaviour.lock().unwrap();
        let n = self.arrivals.fetch_add(1, Ordering::Relaxed) as f64;
        let rate = behaviour.error_rate;
        let error = ((n + 1.0) * rate).floor() > (n * rate).floor();
        let status = if error {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        (status, behaviour.latency)
    }
}

/// Histogram buckets from 1 ms to 10 s, about 12% apart, with short decimal bounds: fine enough
/// that a P99 read with `histogram_quantile` lands within a few percent of the latency set.
fn duration_buckets() -> Vec<f64> {
    const TENTHS: [u32; 22] = [
        10, 11, 12, 13, 14, 15, 16, 18, 20, 22, 25, 28, 32, 36, 40, 45, 50, 56, 63, 71, 80, 90,
    ];
    let mut buckets = Vec::new();
    // A bound is tenths * 10^(decade - 4) seconds: 10 * 10^-4 = 1 ms for decade 0.
    for decade in 0..4 {
        for tenths in TENTHS {
            buckets.push(f64::from(tenths) / 10f64.powi(4 - decade));
        }
    }
    buckets.push(10.0);
    buckets
}

fn check_behaviour(behaviour: &Behaviour) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&behaviour.error_rate) {
        bail!("error_rate {} is not between 0 and 1", behaviour.error_rate);
    }
    Ok(())
}

/// An HTTP server on 127.0.0.1 standing in for one version of an application. Every request
/// but `GET /metrics` is answered with 200 or 500 after the latency of its [`Behaviour`], with
/// [`SERVED_BY`] set to the app's name, and counted in `/metrics`:
/// `http_requests_total{code="200"|"500"}` (both series present from the start) and the
/// histogram `http_request_duration_seconds`. Runs on the tokio runtime that starts it; dropping
/// it stops the server.
pub struct TestApp {
    /// The app's name, sent in [`SERVED_BY`].
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<AppState>,
    task: tokio::task::JoinHandle<()>,
}

impl TestApp {
    /// Starts an app named `name` answering as `behaviour` says.
    pub async fn start(name: &str, behaviour: Behaviour) -> anyhow::Result<Self> {
        check_behaviour(&behaviour)?;
        let requests = Family::<CodeLabels, Counter>::default();
        let duration = Histogram::new(duration_buckets());
        let mut registry = Registry::default();
        // prometheus-client appends `_total` to a counter's name.
        registry.register("http_requests", "Requests answered, by status code", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its answer",
            duration.clone(),
        );
        for code in ["200", "500"] {
            let _ = requests.get_or_create(&CodeLabels { code: code.into() });
        }
        let state = Arc::new(AppState {
            name: name.to_owned(),
            behaviour: Mutex::new(behaviour),
            arrivals: AtomicU64::new(0),
            requests,
            duration,
            registry,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(answer).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            name: name.to_owned(),
            addr,
            state,
            task,
        })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How the app answers now.
    pub fn behaviour(&self) -> Behaviour {
        *self.state.behaviour.lock().unwrap()
    }

    /// Changes how the app answers from the next request on. Panics when the error rate is not
    /// between 0 and 1.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        check_behaviour(&behaviour).unwrap_or_else(|err| panic!("{}: {err}", self.name));
        *self.state.behaviour.lock().unwrap() = behaviour;
    }

    /// The app's `/metrics`, fetched over HTTP as Prometheus would.
    pub async fn scrape(&self) -> anyhow::Result<String> {
        let response = reqwest::get(self.url("/metrics"))
            .await
            .with_context(|| format!("scraping {}", self.name))?;
        anyhow::ensure!(
            response.status().is_success(),
            "{} /metrics: {}",
            self.name,
            response.status()
        );
        Ok(response.text().await?)
    }

    /// `http_requests_total` by status code, from [`scrape`](Self::scrape).
    pub async fn requests_by_code(&self) -> anyhow::Result<BTreeMap<u16, u64>> {
        let text = self.scrape().await?;
        let mut counts = BTreeMap::new();
        for code in [200u16, 500] {
            let series = format!("http_requests_total{{code=\"{code}\"}}");
            let value =
                metric_sample(&text, &series).with_context(|| format!("{} exposes no {series}:\n{text}", self.name))?;
            counts.insert(code, value as u64);
        }
        Ok(counts)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(State(app): State<Arc<AppState>>, uri: Uri) -> Response {
    if uri.path() == "/metrics" {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &app.registry).expect("writing to a String cannot fail");
        return ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response();
    }
    let arrived = Instant::now();
    let (status, latency) = app.next_answer();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    // Counted before the answer leaves, so a client that has its answer finds it counted.
    app.requests
        .get_or_create(&CodeLabels {
            code: status.as_u16().to_string(),
        })
        .inc();
    app.duration.observe(arrived.elapsed().as_secs_f64());
    let body = format!("{} {}\n", app.name, status.as_u16());
    (status, [(SERVED_BY, app.name.clone())], body).into_response()
}

/// The value of one sample line of a Prometheus or OpenMetrics text exposition, by its series
/// written as in the text (`http_requests_total{code="200"}`, labels in the exposition's order).
pub fn metric_sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

// ---------------------------------------------------------------------------------------------
// The HTTPRoute, read into what nginx must do

/// Why an HTTPRoute could not be rendered: the field, as a path into the object, and what is
/// wrong with it. Unsupported Gateway API features are refused this way, never ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    /// `<namespace>/<name>` of the HTTPRoute.
    pub route: String,
    /// Path of the offending field, e.g. `spec.rules[0].filters[1].type`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTPRoute {}: {}: {}", self.route, self.field, self.problem)
    }
}

impl std::error::Error for RouteError {}

/// What one HTTPRoute asks of the data plane, checked against what the stand-in supports.
#[derive(Clone, Debug, Default, PartialEq)]
struct RoutePlan {
    route: String,
    hostnames: Vec<String>,
    rules: Vec<RulePlan>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct RulePlan {
    /// Any of these selects the rule; a rule without matches has one that matches everything.
    matches: Vec<MatchPlan>,
    /// Backends with a weight above 0; none means the rule answers 500, as Gateway API requires.
    backends: Vec<Backend>,
    mirrors: Vec<Mirror>,
    request_set: Vec<(String, String)>,
    request_remove: Vec<String>,
    response_set: Vec<(String, String)>,
    response_add: Vec<(String, String)>,
    response_remove: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
struct Backend {
    addr: SocketAddr,
    weight: u64,
    /// `ResponseHeaderModifier.add` of the backendRef: headers on answers from this backend only.
    response_add: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq)]
struct Mirror {
    addr: SocketAddr,
    /// Share of requests copied, 0 < percent <= 100.
    percent: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct MatchPlan {
    path: PathMatch,
    method: Option<String>,
    /// (lower-case header name, PCRE the whole value must match).
    headers: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq)]
enum PathMatch {
    Exact(String),
    /// Without a trailing `/`; empty for `/`, which matches every path.
    Prefix(String),
    RegularExpression(String),
}

impl Default for PathMatch {
    fn default() -> Self {
        PathMatch::Prefix(String::new())
    }
}

impl MatchPlan {
    /// Gateway API's precedence between matches of different rules, lowest first: exact path,
    /// then regular expression (implementation-specific; Envoy Gateway's order), then the
    /// longest prefix, then a method match, then the most header matches; ties keep rule order.
    fn precedence(&self) -> (u8, std::cmp::Reverse<usize>, bool, std::cmp::Reverse<usize>) {
        let (kind, length) = match &self.path {
            PathMatch::Exact(path) => (0, path.len()),
            PathMatch::RegularExpression(_) => (1, 0),
            PathMatch::Prefix(prefix) => (2, prefix.len()),
        };
        (
            kind,
            std::cmp::Reverse(length),
            self.method.is_none(),
            std::cmp::Reverse(self.headers.len()),
        )
    }

    /// Each condition as (nginx variable, PCRE it must match), path and method first.
    fn conditions(&self) -> Vec<(String, String)> {
        let mut conditions = Vec::new();
        match &self.path {
            PathMatch::Prefix(prefix) if prefix.is_empty() => {}
            PathMatch::Prefix(prefix) => conditions.push(("$uri".into(), format!("^{}(?:/|$)", regex_literal(prefix)))),
            PathMatch::Exact(path) => conditions.push(("$uri".into(), format!("^{}$", regex_literal(path)))),
            PathMatch::RegularExpression(regex) => conditions.push(("$uri".into(), format!("^(?:{regex})$"))),
        }
        if let Some(method) = &self.method {
            conditions.push(("$request_method".into(), format!("^{}$", regex_literal(method))));
        }
        for (name, regex) in &self.headers {
            conditions.push((format!("$http_{}", name.replace('-', "_")), regex.clone()));
        }
        conditions
    }
}

/// A PCRE matching `text` literally: every ASCII character that is not a letter or digit is
/// escaped (a backslash before a non-alphanumeric character is always a literal in PCRE).
fn regex_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_alphanumeric() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `text` as an nginx double-quoted string: backslashes and quotes escaped (nginx's parser turns
/// `\\` and `\"` back into one character and keeps other backslashes).
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Reads an HTTPRoute, field by field: every field present must be one the stand-in implements.
struct RouteReader<'a> {
    route: String,
    namespace: Option<&'a str>,
    services: &'a BTreeMap<String, SocketAddr>,
}

impl<'a> RouteReader<'a> {
    fn error(&self, field: &str, problem: impl Into<String>) -> RouteError {
        RouteError {
            route: self.route.clone(),
            field: field.to_owned(),
            problem: problem.into(),
        }
    }

    /// The fields of the object at `field`, after checking that it is an object whose keys are
    /// all in `known`. `null` reads as an empty object, as the API server treats it.
    fn object(
        &self,
        value: &'a Value,
        field: &str,
        known: &[&str],
    ) -> Result<&'a serde_json::Map<String, Value>, RouteError> {
        static EMPTY: std::sync::OnceLock<serde_json::Map<String, Value>> = std::sync::OnceLock::new();
        let map = match value {
            Value::Null => EMPTY.get_or_init(serde_json::Map::new),
            Value::Object(map) => map,
            other => return Err(self.error(field, format!("expected an object, found {other}"))),
        };
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                return Err(self.error(
                    &format!("{field}.{key}"),
                    "is not supported by the nginx Gateway stand-in",
                ));
            }
        }
        Ok(map)
    }

    fn list(&self, map: &'a serde_json::Map<String, Value>, key: &str, field: &str) -> Result<&'a [Value], RouteError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(self.error(&format!("{field}.{key}"), format!("expected a list, found {other}"))),
        }
    }

    fn string(
        &self,
        map: &'a serde_json::Map<String, Value>,
        key: &str,
        field: &str,
    ) -> Result<Option<&'a str>, RouteError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.error(&format!("{field}.{key}"), format!("expected a string, found {other}"))),
        }
    }

    fn required_string(
        &self,
        map: &'a serde_json::Map<String, Value>,
        key: &str,
        field: &str,
    ) -> Result<&'a str, RouteError> {
        self.string(map, key, field)?
            .ok_or_else(|| self.error(&format!("{field}.{key}"), "is required"))
    }

    fn number(&self, map: &serde_json::Map<String, Value>, key: &str, field: &str) -> Result<Option<u64>, RouteError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or_else(|| {
                self.error(
                    &format!("{field}.{key}"),
                    format!("expected a non-negative integer, found {value}"),
                )
            }),
        }
    }

    fn read(&self, route: &'a Value) -> Result<RoutePlan, RouteError> {
        let top = self.object(route, "", &["apiVersion", "kind", "metadata", "spec", "status"])?;
        let api_version = self.string(top, "apiVersion", "")?.unwrap_or_default();
        if !api_version.starts_with("gateway.networking.k8s.io/") {
            return Err(self.error("apiVersion", format!("{api_version:?} is not a Gateway API version")));
        }
        let kind = self.string(top, "kind", "")?.unwrap_or_default();
        if kind != "HTTPRoute" {
            return Err(self.error("kind", format!("{kind:?} is not HTTPRoute")));
        }
        let spec = self.object(
            top.get("spec").unwrap_or(&Value::Null),
            "spec",
            // parentRefs name the Gateways the route attaches to; the stand-in is the only one.
            &["parentRefs", "hostnames", "rules"],
        )?;
        let mut plan = RoutePlan {
            route: self.route.clone(),
            ..RoutePlan::default()
        };
        for (i, hostname) in self.list(spec, "hostnames", "spec")?.iter().enumerate() {
            let field = format!("spec.hostnames[{i}]");
            let hostname = hostname
                .as_str()
                .ok_or_else(|| self.error(&field, "expected a string"))?;
            let valid = !hostname.is_empty()
                && hostname
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '*'));
            if !valid {
                return Err(self.error(&field, format!("{hostname:?} is not a host name")));
            }
            plan.hostnames.push(hostname.to_owned());
        }
        for (i, rule) in self.list(spec, "rules", "spec")?.iter().enumerate() {
            plan.rules.push(self.rule(rule, &format!("spec.rules[{i}]"))?);
        }
        Ok(plan)
    }

    fn rule(&self, rule: &'a Value, field: &str) -> Result<RulePlan, RouteError> {
        let map = self.object(rule, field, &["name", "matches", "filters", "backendRefs"])?;
        let mut plan = RulePlan::default();
        for (i, matched) in self.list(map, "matches", field)?.iter().enumerate() {
            plan.matches
                .push(self.request_match(matched, &format!("{field}.matches[{i}]"))?);
        }
        if plan.matches.is_empty() {
            plan.matches.push(MatchPlan::default());
        }
        for (i, filter) in self.list(map, "filters", field)?.iter().enumerate() {
            self.rule_filter(filter, &format!("{field}.filters[{i}]"), &mut plan)?;
        }
        for (i, backend) in self.list(map, "backendRefs", field)?.iter().enumerate() {
            if let Some(backend) = self.backend(backend, &format!("{field}.backendRefs[{i}]"))? {
                plan.backends.push(backend);
            }
        }
        // The answers of backends sharing an address could not be told apart by the stand-in's
        // `$upstream_addr`, which per-backend filters rely on.
        if plan.backends.iter().any(|b| !b.response_add.is_empty()) {
            for (i, backend) in plan.backends.iter().enumerate() {
                if plan.backends[..i].iter().any(|other| other.addr == backend.addr) {
                    return Err(self.error(
                        &format!("{field}.backendRefs"),
                        "backendRefs with filters must name Services of different addresses",
                    ));
                }
            }
        }
        Ok(plan)
    }

    fn request_match(&self, matched: &'a Value, field: &str) -> Result<MatchPlan, RouteError> {
        let map = self.object(matched, field, &["path", "headers", "method"])?;
        let mut plan = MatchPlan::default();
        if let Some(path) = map.get("path").filter(|p| !p.is_null()) {
            let path_field = format!("{field}.path");
            let path_map = self.object(path, &path_field, &["type", "value"])?;
            let value = self.string(path_map, "value", &path_field)?.unwrap_or("/");
            if !value.starts_with('/') && self.string(path_map, "type", &path_field)? != Some("RegularExpression") {
                return Err(self.error(&format!("{path_field}.value"), "must start with /"));
            }
            plan.path = match self.string(path_map, "type", &path_field)?.unwrap_or("PathPrefix") {
                "PathPrefix" => PathMatch::Prefix(value.trim_end_matches('/').to_owned()),
                "Exact" => PathMatch::Exact(value.to_owned()),
                "RegularExpression" => PathMatch::RegularExpression(value.to_owned()),
                other => return Err(self.error(&format!("{path_field}.type"), format!("unknown type {other}"))),
            };
        }
        plan.method = self.string(map, "method", field)?.map(str::to_owned);
        for (i, header) in self.list(map, "headers", field)?.iter().enumerate() {
            let header_field = format!("{field}.headers[{i}]");
            let header = self.object(header, &header_field, &["type", "name", "value"])?;
            let name = self.header_name(header, &header_field)?;
            let value = self.required_string(header, "value", &header_field)?;
            let regex = match self.string(header, "type", &header_field)?.unwrap_or("Exact") {
                "Exact" => format!("^{}$", regex_literal(value)),
                // The whole value must match, as in Envoy-based implementations.
                "RegularExpression" => format!("^(?:{value})$"),
                other => return Err(self.error(&format!("{header_field}.type"), format!("unknown type {other}"))),
            };
            plan.headers.push((name, regex));
        }
        Ok(plan)
    }

    /// A header name, lower-case. nginx reads request headers as `$http_<name>` with `-` as `_`,
    /// and drops names with `_` by default, so only letters, digits and `-` are accepted.
    fn header_name(&self, map: &'a serde_json::Map<String, Value>, field: &str) -> Result<String, RouteError> {
        let name = self.required_string(map, "name", field)?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(self.error(
                &format!("{field}.name"),
                format!("{name:?}: the stand-in takes header names of letters, digits and -"),
            ));
        }
        Ok(name.to_ascii_lowercase())
    }

    /// `name`/`value` pairs of a header modifier's `set` or `add`.
    fn header_values(
        &self,
        map: &'a serde_json::Map<String, Value>,
        key: &str,
        field: &str,
    ) -> Result<Vec<(String, String)>, RouteError> {
        let mut pairs = Vec::new();
        for (i, pair) in self.list(map, key, field)?.iter().enumerate() {
            let pair_field = format!("{field}.{key}[{i}]");
            let pair = self.object(pair, &pair_field, &["name", "value"])?;
            let name = self.header_name(pair, &pair_field)?;
            let value = self.required_string(pair, "value", &pair_field)?;
            // nginx would read `$` as a variable, and cannot write control characters.
            if value.contains('$') || value.chars().any(char::is_control) {
                return Err(self.error(
                    &format!("{pair_field}.value"),
                    "the stand-in cannot send `$` or control characters",
                ));
            }
            pairs.push((name, value.to_owned()));
        }
        Ok(pairs)
    }

    fn header_names(
        &self,
        map: &'a serde_json::Map<String, Value>,
        key: &str,
        field: &str,
    ) -> Result<Vec<String>, RouteError> {
        let mut names = Vec::new();
        for (i, name) in self.list(map, key, field)?.iter().enumerate() {
            let name_field = format!("{field}.{key}[{i}]");
            let name = name
                .as_str()
                .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
                .ok_or_else(|| self.error(&name_field, "expected a header name of letters, digits and -"))?;
            names.push(name.to_ascii_lowercase());
        }
        Ok(names)
    }

    fn rule_filter(&self, filter: &'a Value, field: &str, plan: &mut RulePlan) -> Result<(), RouteError> {
        let map = self.object(
            filter,
            field,
            &[
                "type",
                "requestMirror",
                "requestHeaderModifier",
                "responseHeaderModifier",
                "requestRedirect",
                "urlRewrite",
                "extensionRef",
                "cors",
                "externalAuth",
            ],
        )?;
        let kind = self.required_string(map, "type", field)?;
        let member = |name: &str| -> Result<&'a Value, RouteError> {
            map.get(name)
                .ok_or_else(|| self.error(&format!("{field}.{name}"), format!("is required by type {kind}")))
        };
        match kind {
            "RequestMirror" => {
                let mirror_field = format!("{field}.requestMirror");
                let mirror = self.object(
                    member("requestMirror")?,
                    &mirror_field,
                    &["backendRef", "percent", "fraction"],
                )?;
                let backend_field = format!("{mirror_field}.backendRef");
                let backend = self.object(
                    mirror.get("backendRef").unwrap_or(&Value::Null),
                    &backend_field,
                    &["group", "kind", "name", "namespace", "port"],
                )?;
                let addr = self.service(backend, &backend_field)?;
                let percent = match (
                    self.number(mirror, "percent", &mirror_field)?,
                    mirror.get("fraction").filter(|f| !f.is_null()),
                ) {
                    (Some(_), Some(_)) => {
                        return Err(self.error(&mirror_field, "only one of percent and fraction may be set"));
                    }
                    (Some(percent), None) if percent <= 100 => percent as f64,
                    (Some(percent), None) => {
                        return Err(self.error(&format!("{mirror_field}.percent"), format!("{percent} is above 100")));
                    }
                    (None, Some(fraction)) => {
                        let fraction_field = format!("{mirror_field}.fraction");
                        let fraction = self.object(fraction, &fraction_field, &["numerator", "denominator"])?;
                        let numerator = self.number(fraction, "numerator", &fraction_field)?.unwrap_or(0);
                        let denominator = self.number(fraction, "denominator", &fraction_field)?.unwrap_or(100);
                        if denominator == 0 || numerator > denominator {
                            return Err(self.error(&fraction_field, "must be a fraction between 0 and 1"));
                        }
                        numerator as f64 * 100.0 / denominator as f64
                    }
                    (None, None) => 100.0,
                };
                if percent > 0.0 {
                    plan.mirrors.push(Mirror { addr, percent });
                }
            }
            "RequestHeaderModifier" => {
                let modifier_field = format!("{field}.requestHeaderModifier");
                // `add` appends to a header a request already carries, which nginx's
                // proxy_set_header cannot do without garbling an absent header.
                let modifier = self.object(member("requestHeaderModifier")?, &modifier_field, &["set", "remove"])?;
                plan.request_set
                    .extend(self.header_values(modifier, "set", &modifier_field)?);
                plan.request_remove
                    .extend(self.header_names(modifier, "remove", &modifier_field)?);
            }
            "ResponseHeaderModifier" => {
                let modifier_field = format!("{field}.responseHeaderModifier");
                let modifier = self.object(
                    member("responseHeaderModifier")?,
                    &modifier_field,
                    &["set", "add", "remove"],
                )?;
                plan.response_set
                    .extend(self.header_values(modifier, "set", &modifier_field)?);
                plan.response_add
                    .extend(self.header_values(modifier, "add", &modifier_field)?);
                plan.response_remove
                    .extend(self.header_names(modifier, "remove", &modifier_field)?);
            }
            other => {
                return Err(self.error(
                    &format!("{field}.type"),
                    format!("filter {other} is not supported by the nginx Gateway stand-in"),
                ));
            }
        }
        Ok(())
    }

    /// A backendRef with a weight above 0, or `None` for weight 0 (it must receive nothing).
    fn backend(&self, backend: &'a Value, field: &str) -> Result<Option<Backend>, RouteError> {
        let map = self.object(
            backend,
            field,
            &["group", "kind", "name", "namespace", "port", "weight", "filters"],
        )?;
        let addr = self.service(map, field)?;
        let weight = self.number(map, "weight", field)?.unwrap_or(1);
        let mut response_add = Vec::new();
        for (i, filter) in self.list(map, "filters", field)?.iter().enumerate() {
            let filter_field = format!("{field}.filters[{i}]");
            let filter_map = self.object(filter, &filter_field, &["type", "responseHeaderModifier"])?;
            let kind = self.required_string(filter_map, "type", &filter_field)?;
            if kind != "ResponseHeaderModifier" {
                return Err(self.error(
                    &format!("{filter_field}.type"),
                    format!("filter {kind} on a backendRef is not supported by the nginx Gateway stand-in"),
                ));
            }
            let modifier_field = format!("{filter_field}.responseHeaderModifier");
            // Only `add`: nginx adds a header per backend through a map of `$upstream_addr`, but
            // cannot hide the upstream's own header for one backend of a group only.
            let modifier = self.object(
                filter_map.get("responseHeaderModifier").unwrap_or(&Value::Null),
                &modifier_field,
                &["add"],
            )?;
            response_add.extend(self.header_values(modifier, "add", &modifier_field)?);
        }
        Ok((weight > 0).then_some(Backend {
            addr,
            weight,
            response_add,
        }))
    }

    /// The address of the Service a reference names, from the map the stand-in was given.
    fn service(&self, map: &'a serde_json::Map<String, Value>, field: &str) -> Result<SocketAddr, RouteError> {
        let group = self.string(map, "group", field)?.unwrap_or("");
        let kind = self.string(map, "kind", field)?.unwrap_or("Service");
        if !group.is_empty() || kind != "Service" {
            return Err(self.error(
                &format!("{field}.kind"),
                format!("{kind} of group {group:?}: only core Services are backends"),
            ));
        }
        if let (Some(namespace), Some(own)) = (self.string(map, "namespace", field)?, self.namespace)
            && namespace != own
        {
            return Err(self.error(
                &format!("{field}.namespace"),
                format!("{namespace} is not the route's namespace {own}"),
            ));
        }
        let name = self.required_string(map, "name", field)?;
        self.services.get(name).copied().ok_or_else(|| {
            self.error(
                &format!("{field}.name"),
                format!(
                    "no address for Service {name} (the stand-in knows {})",
                    self.services.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }
}

/// Reads `route` (an HTTPRoute as the API server stores it) against the Services the stand-in
/// can reach.
fn plan_route(route: &Value, services: &BTreeMap<String, SocketAddr>) -> Result<RoutePlan, RouteError> {
    let metadata = &route["metadata"];
    let namespace = metadata["namespace"].as_str();
    let name = metadata["name"].as_str().unwrap_or("<unnamed>");
    let reader = RouteReader {
        route: format!("{}/{name}", namespace.unwrap_or("default")),
        namespace,
        services,
    };
    reader.read(route)
}

// ---------------------------------------------------------------------------------------------
// nginx configuration

/// The `http` block's maps, upstreams and server blocks for `plan`, or for no route (every
/// request 404) when `None`. Every request selects one rule through maps (each condition a
/// regex on one variable, each match all its conditions, the rule the first match by
/// precedence) and is rewritten to that rule's internal location, which mirrors and proxies.
/// Weighted backends share an upstream with `weight=`: with one worker, nginx's smooth weighted
/// round robin gives exact proportions over any run of requests, and weight 0 is left out.
fn render_http(plan: Option<&RoutePlan>, listen: SocketAddr, generation: u64) -> String {
    let mut http = String::new();
    let mut routes = String::new();
    let push = |out: &mut String, line: String| {
        out.push_str(&line);
        out.push('\n');
    };
    let generation_header = format!("        add_header {GENERATION} {generation} always;");
    let no_route = format!("    location / {{\n{generation_header}\n        return 404;\n    }}\n");
    match plan {
        None => routes.push_str(&no_route),
        Some(plan) => {
            let mut order = Vec::new();
            for (r, rule) in plan.rules.iter().enumerate() {
                for matched in &rule.matches {
                    order.push((matched.precedence(), r, matched));
                }
            }
            order.sort_by_key(|(precedence, r, _)| (*precedence, *r));
            let mut condition_count = 0;
            let mut match_flags = Vec::new();
            for (m, (_, _, matched)) in order.iter().enumerate() {
                let mut flags = Vec::new();
                for (variable, regex) in matched.conditions() {
                    let name = format!("eddy_c{condition_count}");
                    condition_count += 1;
                    push(
                        &mut http,
                        format!(
                            "    map {variable} ${name} {{ {} 1; default 0; }}",
                            quoted(&format!("~{regex}"))
                        ),
                    );
                    flags.push(name);
                }
                match flags.len() {
                    0 => match_flags.push("1".to_owned()),
                    1 => match_flags.push(format!("${{{}}}", flags[0])),
                    n => {
                        let name = format!("eddy_m{m}");
                        // `${name}`: the flags are written back to back, with nothing to end a name.
                        let joined: String = flags.iter().map(|flag| format!("${{{flag}}}")).collect();
                        push(
                            &mut http,
                            format!(
                                "    map {} ${name} {{ {} 1; default 0; }}",
                                quoted(&joined),
                                quoted(&"1".repeat(n))
                            ),
                        );
                        match_flags.push(format!("${{{name}}}"));
                    }
                }
            }
            // The first match (in precedence order) that holds picks its rule.
            let mut selection = format!("    map {} $eddy_rule {{\n", quoted(&match_flags.concat()));
            for (m, (_, r, _)) in order.iter().enumerate() {
                selection.push_str(&format!("        {} {r};\n", quoted(&format!("~^{}1", "0".repeat(m)))));
            }
            selection.push_str("        default none;\n    }");
            push(&mut http, selection);

            push(
                &mut routes,
                "    location / {\n        rewrite ^ /__eddy/rule/$eddy_rule last;\n    }".into(),
            );
            push(
                &mut routes,
                format!(
                    "    location = /__eddy/rule/none {{\n        internal;\n{generation_header}\n        return 404;\n    }}"
                ),
            );
            for (r, rule) in plan.rules.iter().enumerate() {
                render_rule(&mut http, &mut routes, r, rule, &generation_header);
            }
        }
    }

    let config_location = format!(
        "    location = /__eddy/config {{\n{generation_header}\n        return 200 \"generation {generation}\\n\";\n    }}\n"
    );
    let hostnames = plan.map(|p| p.hostnames.as_slice()).unwrap_or_default();
    if hostnames.is_empty() {
        let locations = indent(&format!("{config_location}{routes}"));
        push(
            &mut http,
            format!("    server {{\n        listen {listen} default_server;\n{locations}    }}"),
        );
    } else {
        let locations = indent(&format!("{config_location}{no_route}"));
        push(
            &mut http,
            format!("    server {{\n        listen {listen} default_server;\n{locations}    }}"),
        );
        push(
            &mut http,
            format!(
                "    server {{\n        listen {listen};\n        server_name {};\n{}    }}",
                hostnames.join(" "),
                indent(&routes)
            ),
        );
    }
    http
}

/// `text` one level (four spaces) further in, line by line.
fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}\n")).collect()
}

/// The upstreams, maps and locations of rule `r`.
fn render_rule(http: &mut String, routes: &mut String, r: usize, rule: &RulePlan, generation_header: &str) {
    let mut location = format!("    location = /__eddy/rule/{r} {{\n        internal;\n{generation_header}\n");
    if rule.backends.is_empty() {
        // Gateway API: a rule whose backends all have weight 0 (or that has none) answers 500.
        location.push_str("        return 500;\n    }\n");
        routes.push_str(&location);
        return;
    }
    let mut upstream = format!("    upstream eddy_rule_{r} {{\n");
    for backend in &rule.backends {
        upstream.push_str(&format!(
            "        server {} weight={} max_fails=0;\n",
            backend.addr, backend.weight
        ));
    }
    upstream.push_str("        keepalive 32;\n    }\n");
    http.push_str(&upstream);

    for (k, mirror) in rule.mirrors.iter().enumerate() {
        http.push_str(&format!(
            "    upstream eddy_mirror_{r}_{k} {{\n        server {} max_fails=0;\n        keepalive 32;\n    }}\n",
            mirror.addr
        ));
        location.push_str(&format!("        mirror /__eddy/mirror/{r}/{k};\n"));
        let mut mirror_location = format!("    location = /__eddy/mirror/{r}/{k} {{\n        internal;\n");
        if mirror.percent < 100.0 {
            // A random share of requests, by the hash of nginx's random request id.
            http.push_str(&format!(
                "    split_clients \"$request_id\" $eddy_mirror_{r}_{k} {{ {:.2}% 1; * \"\"; }}\n",
                mirror.percent
            ));
            mirror_location.push_str(&format!(
                "        if ($eddy_mirror_{r}_{k} = \"\") {{\n            return 204;\n        }}\n"
            ));
        }
        mirror_location.push_str(&proxy_headers(&[], &[]));
        mirror_location.push_str(&format!(
            "        proxy_pass http://eddy_mirror_{r}_{k}$request_uri;\n    }}\n"
        ));
        routes.push_str(&mirror_location);
    }

    location.push_str(&proxy_headers(&rule.request_set, &rule.request_remove));
    for name in rule
        .response_remove
        .iter()
        .chain(rule.response_set.iter().map(|(name, _)| name))
    {
        location.push_str(&format!("        proxy_hide_header {name};\n"));
    }
    for (name, value) in rule.response_set.iter().chain(&rule.response_add) {
        location.push_str(&format!("        add_header {name} {} always;\n", quoted(value)));
    }
    for (b, backend) in rule.backends.iter().enumerate() {
        for (h, (name, value)) in backend.response_add.iter().enumerate() {
            // An empty value adds no header: only answers from this backend carry it.
            let variable = format!("$eddy_rule_{r}_backend_{b}_header_{h}");
            http.push_str(&format!(
                "    map $upstream_addr {variable} {{ {} {}; default \"\"; }}\n",
                quoted(&backend.addr.to_string()),
                quoted(value)
            ));
            location.push_str(&format!("        add_header {name} {variable} always;\n"));
        }
    }
    location.push_str(&format!(
        "        proxy_pass http://eddy_rule_{r}$request_uri;\n    }}\n"
    ));
    routes.push_str(&location);
}

/// The request headers of a proxied location. Repeated in every location, since one
/// `proxy_set_header` in a location drops all the inherited ones.
fn proxy_headers(set: &[(String, String)], remove: &[String]) -> String {
    // Upstream keepalive needs no `Connection: close`; the apps see the Host the client sent.
    let mut lines =
        String::from("        proxy_set_header Connection \"\";\n        proxy_set_header Host $http_host;\n");
    for (name, value) in set {
        lines.push_str(&format!("        proxy_set_header {name} {};\n", quoted(value)));
    }
    for name in remove {
        lines.push_str(&format!("        proxy_set_header {name} \"\";\n"));
    }
    lines
}

/// The whole nginx configuration: one worker, every path under `dir`, nothing read from
/// /etc/nginx or written to /var/log/nginx.
fn render_config(dir: &Path, http: &str, generation: u64, route: &str) -> String {
    let path = |name: &str| dir.join(name).display().to_string();
    format!(
        "# Eddy's nginx Gateway stand-in, generation {generation}: {route}\n\
         worker_processes 1;\n\
         pid {pid};\n\
         error_log {error_log} warn;\n\
         events {{\n    worker_connections 4096;\n}}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   server_tokens off;\n\
         \x20   default_type text/plain;\n\
         \x20   keepalive_requests 100000;\n\
         \x20   client_body_temp_path {body};\n\
         \x20   proxy_temp_path {proxy};\n\
         \x20   fastcgi_temp_path {fastcgi};\n\
         \x20   uwsgi_temp_path {uwsgi};\n\
         \x20   scgi_temp_path {scgi};\n\
         \x20   proxy_http_version 1.1;\n\
         \x20   proxy_max_temp_file_size 0;\n\
         \x20   proxy_next_upstream off;\n\
         {http}}}\n",
        pid = path("nginx.pid"),
        error_log = path("error.log"),
        body = path("client_body"),
        proxy = path("proxy"),
        fastcgi = path("fastcgi"),
        uwsgi = path("uwsgi"),
        scgi = path("scgi"),
    )
}

// ---------------------------------------------------------------------------------------------
// nginx

/// How long nginx may take to start or to serve a new configuration.
const NGINX_LIMIT: Duration = Duration::from_secs(15);

/// Debian's nginx standing in for a Gateway API implementation: it listens on 127.0.0.1 and
/// routes as the last HTTPRoute given to [`configure`](Self::configure) says, to the addresses
/// the Services it names were mapped to. nginx runs as a child process (`daemon off`) with its
/// configuration, pid file, error log and temporary files in a temporary directory; dropping
/// the stand-in stops nginx and its worker and waits for them.
///
/// Supported: `hostnames`; per rule, matches on path (PathPrefix, Exact, RegularExpression),
/// method and headers (Exact, RegularExpression, which must match the whole value), ordered by
/// Gateway API precedence; weighted `backendRefs` to Services (weight 0 gets nothing; all 0
/// answers 500); filters RequestMirror (with `percent` or `fraction`), RequestHeaderModifier
/// (`set`, `remove`), ResponseHeaderModifier, and on a backendRef ResponseHeaderModifier `add`.
/// Anything else is refused with a [`RouteError`] naming the field. A request no rule matches
/// gets 404. `/__eddy/config` is reserved: it answers the configuration generation.
pub struct NginxGatewayStandIn {
    /// Where it listens.
    pub addr: SocketAddr,
    services: BTreeMap<String, SocketAddr>,
    dir: tempfile::TempDir,
    child: Child,
    generation: u64,
    probe: reqwest::Client,
}

/// The Services of a Canary named `apex` as the controller generates them: `<apex>` and
/// `<apex>-primary` reach the primary, `<apex>-canary` the canary.
pub fn canary_services(apex: &str, primary: SocketAddr, canary: SocketAddr) -> BTreeMap<String, SocketAddr> {
    BTreeMap::from([
        (apex.to_owned(), primary),
        (format!("{apex}-primary"), primary),
        (format!("{apex}-canary"), canary),
    ])
}

impl NginxGatewayStandIn {
    /// Starts nginx with no route (every request 404) on a free port of 127.0.0.1, reaching the
    /// Service names of `services` at their addresses, and waits until it answers.
    pub async fn start(services: BTreeMap<String, SocketAddr>) -> anyhow::Result<Self> {
        // The free port is found by binding and releasing it; another process may take it before
        // nginx binds. Then nginx exits at once, and a new port is tried.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_on_a_free_port(services.clone()).await {
                Err(err) if attempt < 5 && format!("{err:#}").contains("Address already in use") => continue,
                outcome => return outcome,
            }
        }
    }

    async fn start_on_a_free_port(services: BTreeMap<String, SocketAddr>) -> anyhow::Result<Self> {
        eddy_runtime::install_crypto_provider();
        let nginx = nginx_binary()?;
        let dir = tempfile::tempdir()?;
        // Run as root, nginx's worker switches to `nobody`, which must reach the temporary paths.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        }
        let addr = free_port();
        let config = render_config(dir.path(), &render_http(None, addr, 0), 0, "no route");
        std::fs::write(dir.path().join("nginx.conf"), config)?;
        let output = std::fs::File::create(dir.path().join("output.log"))?;
        let child = Command::new(&nginx)
            .args(nginx_args(dir.path()))
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .with_context(|| format!("starting {}", nginx.display()))?;
        let probe = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(2))
            .build()
            .context("building the HTTP client")?;
        let mut stand_in = Self {
            addr,
            services,
            dir,
            child,
            generation: 0,
            probe,
        };
        stand_in.wait_for_generation(0).await?;
        Ok(stand_in)
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The generation of the configuration being served: 0 at start, one more per
    /// [`configure`](Self::configure).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The configuration nginx is serving.
    pub fn config(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nginx.conf")).unwrap_or_default()
    }

    /// What nginx logged so far (its error log and its output).
    pub fn logs(&self) -> String {
        ["output.log", "error.log"]
            .iter()
            .map(|name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default())
            .collect()
    }

    /// Routes as `route` (an HTTPRoute, as the API server stores it) says: renders it, checks
    /// the configuration with `nginx -t`, reloads, and returns once the new configuration
    /// answers and the workers of the previous one have exited, so that every request sent
    /// afterwards is routed by `route`. Returns the new generation. A route using what the
    /// stand-in does not implement is refused with a [`RouteError`] (reachable by
    /// `downcast_ref`), and nginx keeps serving the previous configuration.
    pub async fn configure(&mut self, route: &Value) -> anyhow::Result<u64> {
        let plan = plan_route(route, &self.services)?;
        let generation = self.generation + 1;
        let config = render_config(
            self.dir.path(),
            &render_http(Some(&plan), self.addr, generation),
            generation,
            &format!("HTTPRoute {}", plan.route),
        );
        let next = self.dir.path().join("nginx.conf.next");
        std::fs::write(&next, &config)?;
        let nginx = nginx_binary()?;
        let test = Command::new(&nginx)
            .arg("-t")
            .args(nginx_args_with_config(self.dir.path(), &next))
            .output()
            .context("running nginx -t")?;
        if !test.status.success() {
            bail!(
                "nginx refused the configuration of HTTPRoute {}: {}\n{config}",
                plan.route,
                String::from_utf8_lossy(&test.stderr)
            );
        }
        std::fs::rename(&next, self.dir.path().join("nginx.conf"))?;
        let reload = Command::new(&nginx)
            .args(nginx_args(self.dir.path()))
            .args(["-s", "reload"])
            .output()
            .context("running nginx -s reload")?;
        if !reload.status.success() {
            bail!("nginx -s reload failed: {}", String::from_utf8_lossy(&reload.stderr));
        }
        self.generation = generation;
        self.wait_for_generation(generation).await?;
        Ok(generation)
    }

    /// Waits until `/__eddy/config` answers `generation` and nginx runs a single worker (the
    /// previous configuration's workers exit once their requests are answered).
    async fn wait_for_generation(&mut self, generation: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + NGINX_LIMIT;
        let url = self.url("/__eddy/config");
        loop {
            let serving = match self.probe.get(&url).send().await {
                Ok(response) => {
                    response.headers().get(GENERATION).and_then(|v| v.to_str().ok()) == Some(&generation.to_string())
                }
                Err(_) => false,
            };
            // Without /proc's list of children, a new generation answering has to be enough.
            if serving && children(self.child.id()).is_none_or(|workers| workers.len() <= 1) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("nginx exited ({status}); logs:\n{}", self.logs());
            }
            if Instant::now() > deadline {
                bail!(
                    "nginx did not serve configuration generation {generation} on {} within {NGINX_LIMIT:?}; logs:\n{}",
                    self.addr,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for NginxGatewayStandIn {
    fn drop(&mut self) {
        let master = self.child.id();
        let workers = children(master).unwrap_or_default();
        if let Ok(None) = self.child.try_wait() {
            // TERM: nginx's master stops its workers and waits for them before exiting; a killed
            // master would leave its worker listening.
            let _ = Command::new("kill")
                .args(["-TERM", &master.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for worker in workers {
            // Only a worker the master left behind: the pid still names an nginx process.
            let cmdline = std::fs::read(format!("/proc/{worker}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).starts_with("nginx: ") {
                let _ = Command::new("kill")
                    .args(["-KILL", &worker.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// nginx's path, or an error saying how to install it.
fn nginx_binary() -> anyhow::Result<PathBuf> {
    for dir in ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"] {
        let path = Path::new(dir).join("nginx");
        if path.exists() {
            return Ok(path);
        }
    }
    bail!("nginx is not installed: apt-get install nginx (.ci/run does)")
}

fn nginx_args(dir: &Path) -> Vec<String> {
    nginx_args_with_config(dir, &dir.join("nginx.conf"))
}

/// Prefix, configuration and the error log before the configuration is read, all under `dir`,
/// and `daemon off` so that nginx stays the child the harness started.
fn nginx_args_with_config(dir: &Path, config: &Path) -> Vec<String> {
    vec![
        "-p".into(),
        format!("{}/", dir.display()),
        "-c".into(),
        config.display().to_string(),
        "-e".into(),
        dir.join("error.log").display().to_string(),
        "-g".into(),
        "daemon off;".into(),
    ]
}

/// The child process ids of `pid`, or `None` when /proc does not list them.
fn children(pid: u32) -> Option<Vec<u32>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    Some(text.split_whitespace().filter_map(|p| p.parse().ok()).collect())
}

// ---------------------------------------------------------------------------------------------
// Load

/// What a [`LoadGenerator`] counted since it started or was last reset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Answers by ([`SERVED_BY`], status code); the app is `""` for answers nginx gave itself.
    pub answers: BTreeMap<(String, u16), u64>,
    /// Requests that got no answer (connection refused or reset, timeout).
    pub failed: u64,
    /// The last such failure.
    pub last_failure: Option<String>,
}

impl Counts {
    /// Requests answered, whatever the status.
    pub fn answered(&self) -> u64 {
        self.answers.values().sum()
    }

    /// Answers from the app named `name`.
    pub fn served_by(&self, name: &str) -> u64 {
        self.answers
            .iter()
            .filter(|((app, _), _)| app == name)
            .map(|(_, n)| n)
            .sum()
    }

    /// Answers with status `code`.
    pub fn status(&self, code: u16) -> u64 {
        self.answers
            .iter()
            .filter(|((_, c), _)| *c == code)
            .map(|(_, n)| n)
            .sum()
    }

    /// Answers with status `code` from the app named `name`.
    pub fn answer(&self, name: &str, code: u16) -> u64 {
        self.answers.get(&(name.to_owned(), code)).copied().unwrap_or(0)
    }

    /// The fraction of answers that came from `name` (0 when nothing was answered).
    pub fn share(&self, name: &str) -> f64 {
        match self.answered() {
            0 => 0.0,
            all => self.served_by(name) as f64 / all as f64,
        }
    }
}

#[derive(Default)]
struct Tally {
    /// Bumped by every reset: an answer counts only in the window its request was sent in.
    epoch: u64,
    counts: Counts,
}

/// Sends GET requests to a URL at a steady rate from a background task until stopped or
/// dropped, and counts the answers by who served them and by status. Requests go out on
/// schedule whether or not earlier ones were answered, as users' requests do.
pub struct LoadGenerator {
    tally: Arc<Mutex<Tally>>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LoadGenerator {
    /// Starts sending `rate_per_sec` requests a second to `proxy_url` with `headers`, on the
    /// current tokio runtime.
    pub fn start(proxy_url: &str, rate_per_sec: u32, headers: &[(&str, &str)]) -> anyhow::Result<Self> {
        anyhow::ensure!(rate_per_sec > 0, "a load of 0 requests a second");
        eddy_runtime::install_crypto_provider();
        let mut header_map = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            header_map.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).with_context(|| format!("header {name}"))?,
                value.parse().with_context(|| format!("header {name}: {value}"))?,
            );
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        let tally = Arc::new(Mutex::new(Tally::default()));
        let stop = CancellationToken::new();
        let url = proxy_url.to_owned();
        let task = tokio::spawn(send_load(
            client,
            url,
            header_map,
            Duration::from_secs_f64(1.0 / f64::from(rate_per_sec)),
            tally.clone(),
            stop.clone(),
        ));
        Ok(Self {
            tally,
            stop,
            task: Some(task),
        })
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.tally.lock().unwrap().counts.clone()
    }

    /// Starts counting afresh and returns the counts until now. Answers to requests sent before
    /// the reset are not counted after it.
    pub fn reset(&self) -> Counts {
        let mut tally = self.tally.lock().unwrap();
        tally.epoch += 1;
        std::mem::take(&mut tally.counts)
    }

    /// Waits until `answered` requests were answered since the start or the last reset, and
    /// returns the counts; panics after `limit`.
    pub async fn wait_for_answers(&self, answered: u64, limit: Duration) -> Counts {
        let deadline = Instant::now() + limit;
        loop {
            let counts = self.counts();
            if counts.answered() >= answered {
                return counts;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} of {answered} requests answered within {limit:?}: {counts:?}",
                    counts.answered()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops sending, waits for the answers to the requests in flight, and returns the counts.
    pub async fn stop(mut self) -> Counts {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.counts()
    }
}

impl Drop for LoadGenerator {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn send_load(
    client: reqwest::Client,
    url: String,
    headers: reqwest::header::HeaderMap,
    interval: Duration,
    tally: Arc<Mutex<Tally>>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        while in_flight.try_join_next().is_some() {}
        let request = client.get(&url).headers(headers.clone());
        let tally = tally.clone();
        let epoch = tally.lock().unwrap().epoch;
        in_flight.spawn(async move {
            let outcome = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let app = response
                        .headers()
                        .get(SERVED_BY)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    // Counted once the whole answer has arrived.
                    response
                        .bytes()
                        .await
                        .map(|_| (app, status))
                        .map_err(|err| error_chain(&err))
                }
                Err(err) => Err(error_chain(&err)),
            };
            let mut tally = tally.lock().unwrap();
            if tally.epoch != epoch {
                return;
            }
            match outcome {
                Ok(answer) => *tally.counts.answers.entry(answer).or_default() += 1,
                Err(err) => {
                    tally.counts.failed += 1;
                    tally.counts.last_failure = Some(err);
                }
            }
        });
    }
    while in_flight.join_next().await.is_some() {}
}

/// An error with its sources, `: `-separated (reqwest's own message leaves out the cause).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> BTreeMap<String, SocketAddr> {
        canary_services(
            "web",
            "127.0.0.1:1001".parse().unwrap(),
            "127.0.0.1:1002".parse().unwrap(),
        )
    }

    fn route(rules: Value) -> Value {
        serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"rules": rules},
        })
    }

    #[test]
    fn header_matches_take_precedence_over_the_catch_all_rule_listed_first() {
        let plan = plan_route(
            &route(serde_json::json!([
                {"backendRefs": [{"name": "web-primary"}]},
                {
                    "matches": [{"headers": [{"name": "X-Canary", "value": "a.b"}]}],
                    "backendRefs": [{"name": "web-canary"}],
                },
            ])),
            &services(),
        )
        .unwrap();
        let http = render_http(Some(&plan), "127.0.0.1:1000".parse().unwrap(), 1);
        assert!(
            http.contains(r#"map $http_x_canary $eddy_c0 { "~^a\\.b$" 1; default 0; }"#),
            "{http}"
        );
        // The header match is checked first, and picks rule 1.
        assert!(
            http.contains("map \"${eddy_c0}1\" $eddy_rule {\n        \"~^1\" 1;\n        \"~^01\" 0;"),
            "{http}"
        );
    }

    #[test]
    fn weight_0_backends_are_left_out_and_all_0_answers_500() {
        let plan = plan_route(
            &route(serde_json::json!([
                {"backendRefs": [{"name": "web-primary", "weight": 0}, {"name": "web-canary", "weight": 3}]},
                {"backendRefs": [{"name": "web-primary", "weight": 0}]},
            ])),
            &services(),
        )
        .unwrap();
        assert_eq!(plan.rules[0].backends.len(), 1);
        assert_eq!(plan.rules[0].backends[0].weight, 3);
        let http = render_http(Some(&plan), "127.0.0.1:1000".parse().unwrap(), 1);
        assert!(!http.contains("127.0.0.1:1001"), "{http}");
        assert!(http.contains("location = /__eddy/rule/1 {"), "{http}");
        assert!(http.contains("return 500;"), "{http}");
    }

    #[test]
    fn unknown_fields_are_refused_by_path() {
        let err = plan_route(
            &route(serde_json::json!([{"timeouts": {"request": "1s"}, "backendRefs": [{"name": "web-primary"}]}])),
            &services(),
        )
        .unwrap_err();
        assert_eq!(err.field, "spec.rules[0].timeouts");
        assert_eq!(err.route, "shop/web");
    }

    #[test]
    fn literals_survive_nginx_quoting_and_pcre() {
        assert_eq!(regex_literal("a.b*c d"), r"a\.b\*c\ d");
        assert_eq!(quoted(r#"~^a\.b"c$"#), r#""~^a\\.b\"c$""#);
    }
}
