//! The Grafana dashboard of a Canary (`manifests/dashboards/canary.json`): its JSON has what
//! Grafana needs to import it, its PromQL reads only the metrics Eddy documents (the apps'
//! convention of `metrics/builtin.rs` and progressive-controller's own, `telemetry.rs`), and
//! Debian's Prometheus, scraping a canary and a primary test app and the controller's metrics,
//! accepts every query and finds data for a release in flight.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use eddy_api::progressive::CanaryStatus;
use eddy_tests::prometheus::{Prometheus, ScrapeTarget};
use eddy_tests::traffic::{Behaviour, TestApp};
use progressive_controller::metrics::builtin;
use progressive_controller::telemetry::CanaryMetrics;
use serde_json::{Value, json};

/// The dashboard, under the repository root.
const DASHBOARD: &str = "manifests/dashboards/canary.json";

/// The datasource every panel and query variable names: the dashboard's own variable, so that
/// the dashboard imports unchanged through Grafana's sidecar as well as by hand.
const DATASOURCE_UID: &str = "${datasource}";

/// The apps' series, by Eddy's convention (`progressive-controller/src/metrics/builtin.rs`).
const APP_METRICS: [&str; 2] = ["http_requests_total", "http_request_duration_seconds_bucket"];

/// progressive-controller's series (`telemetry.rs` under the runtime's `eddy_` prefix); the
/// lateness histogram by the series it is exposed as.
const CONTROLLER_METRICS: [&str; 7] = [
    "eddy_canary_weight",
    "eddy_canary_status",
    "eddy_canary_failed_checks",
    "eddy_canary_check_value",
    "eddy_canary_step_lateness_seconds_bucket",
    "eddy_canary_step_lateness_seconds_sum",
    "eddy_canary_step_lateness_seconds_count",
];

/// The series the dashboard must show: every metric of the brief gets a panel.
const SHOWN_METRICS: [&str; 7] = [
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "eddy_canary_weight",
    "eddy_canary_status",
    "eddy_canary_failed_checks",
    "eddy_canary_check_value",
    "eddy_canary_step_lateness_seconds_bucket",
];

/// The Canary of the Prometheus test: `web-release` in `shop`, releasing Deployment `web`.
const NAMESPACE: &str = "shop";
const CANARY: &str = "web-release";
const TARGET: &str = "web";

/// The variables' values in the Prometheus test, Grafana's own included. The Canary and its
/// target have different names, so that a query that mixes them up finds nothing.
fn variable_values() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("datasource", "prometheus"),
        ("namespace", NAMESPACE),
        ("canary", CANARY),
        ("target", TARGET),
        ("__rate_interval", "1m"),
        ("__interval", "15s"),
        ("__range", "1h"),
    ])
}

fn dashboard() -> Value {
    let path = eddy_tests::repo_root().join(DASHBOARD);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{DASHBOARD} is not JSON: {err}"))
}

/// Every panel, those inside collapsed rows included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels is a list") {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

fn variables(dashboard: &Value) -> &[Value] {
    dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list is a list")
}

/// A query variable's query, whether written as a string or as the Prometheus editor's object.
fn variable_query(variable: &Value) -> &str {
    variable["query"]["query"]
        .as_str()
        .or_else(|| variable["query"].as_str())
        .unwrap_or_default()
}

/// `label_values(<selector>, <label>)` split into the PromQL selector and the label.
fn label_values(query: &str) -> Option<(&str, &str)> {
    let inner = query.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim(), label.trim()))
}

/// One PromQL expression of the dashboard and where it is.
struct Query {
    place: String,
    expr: String,
}

/// The expressions of every panel target and of every query variable (`label_values`'s
/// selector).
fn queries(dashboard: &Value) -> Vec<Query> {
    let mut queries = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(Query {
                place: format!(
                    "panel {:?} target {}",
                    panel["title"].as_str().unwrap_or_default(),
                    target["refId"].as_str().unwrap_or_default()
                ),
                expr: target["expr"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    for variable in variables(dashboard) {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable_query(variable);
        let (selector, _) = label_values(query).unwrap_or_else(|| {
            panic!(
                "variable {}: {query:?} is not label_values(<selector>, <label>)",
                variable["name"]
            )
        });
        queries.push(Query {
            place: format!("variable {}", variable["name"]),
            expr: selector.to_owned(),
        });
    }
    queries
}

/// `text` with Grafana's `$name` and `${name}` replaced by `values`; an unknown variable is an
/// error naming it.
fn substitute(text: &str, values: &BTreeMap<&str, &str>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, next) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
                (&braced[..end], &braced[end + 1..])
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        let value = values
            .get(name)
            .ok_or_else(|| format!("unknown variable ${name} in {text:?}"))?;
        out.push_str(value);
        rest = next;
    }
    out.push_str(rest);
    Ok(out)
}

/// The metric names a PromQL expression reads: every identifier that is not a function or
/// aggregation (followed by `(`), a keyword, a label name (inside `{}` or a grouping list), a
/// duration or number, a string, or a Grafana variable.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 8] = ["and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"];
    const GROUPING: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];
    let chars: Vec<char> = expr.chars().collect();
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let next_visible = |from: usize| (from..chars.len()).find(|&j| !chars[j].is_whitespace());
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '{' {
            i = skip_group(&chars, i, '}');
        } else if c == '[' {
            i = skip_group(&chars, i, ']');
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                i = skip_group(&chars, i, '}');
            } else {
                while i < chars.len() && is_word(chars[i]) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() || c == '.' {
            // Numbers (`0.99`, `1e3`, `0x1f`) and durations (`5m`).
            while i < chars.len() && (is_word(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && is_word(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = next_visible(i);
            // A function's name is followed by `(`, an aggregation's also by its grouping
            // clause: `sum by (le) (...)`.
            let next_word: String = next
                .map(|j| chars[j..].iter().take_while(|c| is_word(**c)).collect())
                .unwrap_or_default();
            let opens = next.is_some_and(|j| chars[j] == '(') || next_word == "by" || next_word == "without";
            if GROUPING.contains(&word.as_str()) {
                if let Some(j) = next.filter(|_| opens) {
                    i = skip_group(&chars, j, ')');
                }
            } else if !opens && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The index after the string literal opening at `start`.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// The index after the `close` that ends the group opening at `start`, strings inside skipped.
fn skip_group(chars: &[char], start: usize, close: char) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = skip_string(chars, i),
            c if c == close => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// The sample names of a Prometheus or OpenMetrics text exposition.
fn exposed_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// A release in flight: at 20% with one failed check, as the controller would observe it.
fn release_in_flight() -> CanaryStatus {
    serde_json::from_value(json!({
        "phase": "Progressing",
        "canaryWeight": 20,
        "failedChecks": 1,
        "lastChecks": [
            {"name": "request-success-rate", "value": 75.0, "passed": false, "message": "below the minimum 99"},
            {"name": "request-duration", "value": 21.5, "passed": true},
        ],
    }))
    .expect("a CanaryStatus")
}

#[test]
fn metric_names_skip_functions_labels_keywords_and_variables() {
    let expr = r#"sum by (le) (rate(foo_bucket{a="x}y", b=~'z'}[$__rate_interval] offset 1h)) / on (job) group_left (instance) bar + vector(0) * 1e3 and Baz:recorded unless nan"#;
    assert_eq!(
        metric_names(expr),
        BTreeSet::from(["foo_bucket".to_owned(), "bar".to_owned(), "Baz:recorded".to_owned()])
    );
}

#[test]
fn the_dashboard_has_what_grafana_needs_to_import_it() {
    let dashboard = dashboard();
    assert_eq!(dashboard["title"], "Eddy canary");
    let uid = dashboard["uid"].as_str().expect("a uid");
    assert!(
        (1..=40).contains(&uid.len()) && uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "Grafana takes uids of up to 40 letters, digits, - and _: {uid:?}"
    );
    let schema = dashboard["schemaVersion"].as_u64().expect("a numeric schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    assert!(
        dashboard["id"].is_null(),
        "an imported dashboard gets its id from Grafana"
    );

    // Variables: the datasource, then namespace, Canary and target from Prometheus label values.
    let variables = variables(&dashboard);
    let names: Vec<&str> = variables
        .iter()
        .map(|v| v["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names.iter().collect::<BTreeSet<_>>().len(),
        names.len(),
        "variable names repeat: {names:?}"
    );
    let datasource = variables
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    for name in ["namespace", "canary", "target"] {
        let variable = variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no variable {name}"));
        assert_eq!(variable["type"], "query", "variable {name}");
        assert_eq!(variable["datasource"]["uid"], DATASOURCE_UID, "variable {name}");
        assert_eq!(variable["datasource"]["type"], "prometheus", "variable {name}");
        assert!(
            label_values(variable_query(variable)).is_some(),
            "variable {name}: {variable}"
        );
    }

    // Panels: unique ids, a place on the 24-column grid that no other panel takes, and for
    // every panel but a row, targets with an expression on the datasource variable.
    let panels = panels(&dashboard);
    assert!(!panels.is_empty());
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let values = variable_values();
    for panel in &panels {
        let title = panel["title"].as_str().expect("every panel has a title");
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("panel {title:?}: no numeric id"));
        assert!(id > 0 && ids.insert(id), "panel {title:?}: id {id} is 0 or taken");
        substitute(title, &values).unwrap_or_else(|err| panic!("panel {title:?}: {err}"));

        let grid = &panel["gridPos"];
        let [h, w, x, y] = ["h", "w", "x", "y"].map(|key| {
            grid[key]
                .as_u64()
                .unwrap_or_else(|| panic!("panel {title:?}: gridPos.{key} is not a number: {grid}"))
        });
        assert!(h > 0 && w > 0 && x + w <= 24, "panel {title:?}: gridPos {grid}");
        for row in y..y + h {
            for column in x..x + w {
                if let Some(other) = cells.insert((row, column), title.to_owned()) {
                    panic!("panels {other:?} and {title:?} overlap at row {row}, column {column}");
                }
            }
        }

        let kind = panel["type"].as_str().expect("every panel has a type");
        if kind == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["type"], "prometheus", "panel {title:?}");
        assert_eq!(panel["datasource"]["uid"], DATASOURCE_UID, "panel {title:?}");
        let targets = panel["targets"].as_array().expect("a list of targets");
        assert!(!targets.is_empty(), "panel {title:?} has no targets");
        let mut refs = BTreeSet::new();
        for target in targets {
            let reference = target["refId"].as_str().unwrap_or_default();
            assert!(
                !reference.is_empty() && refs.insert(reference),
                "panel {title:?}: refId {reference:?} is empty or repeated"
            );
            assert_eq!(
                target["datasource"]["uid"], DATASOURCE_UID,
                "panel {title:?} {reference}"
            );
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "panel {title:?} {reference}: no expr");
            substitute(expr, &values).unwrap_or_else(|err| panic!("panel {title:?} {reference}: {err}"));
        }
    }
    for variable in variables {
        if variable["type"] == "query" {
            substitute(variable_query(variable), &values)
                .unwrap_or_else(|err| panic!("variable {}: {err}", variable["name"]));
        }
    }
}

#[test]
fn every_query_reads_only_metrics_eddy_documents() {
    let documented: BTreeSet<&str> = APP_METRICS.into_iter().chain(CONTROLLER_METRICS).collect();
    let mut used = BTreeSet::new();
    for Query { place, expr } in queries(&dashboard()) {
        for name in metric_names(&expr) {
            assert!(
                documented.contains(name.as_str()),
                "{place} reads {name}, which is none of {documented:?}: {expr}"
            );
            used.insert(name);
        }
    }
    for name in SHOWN_METRICS {
        assert!(used.contains(name), "no panel shows {name}");
    }
}

#[test]
fn the_documented_metrics_are_those_eddy_exposes_and_queries() {
    // progressive-controller's, as its registry encodes them on /metrics.
    let registry = eddy_runtime::Metrics::new(progressive_controller::NAME);
    let metrics = CanaryMetrics::register(&registry);
    metrics.observe(NAMESPACE, CANARY, &release_in_flight());
    metrics.step_ran(Duration::from_millis(20));
    let exposition = registry.encode();
    let exposed = exposed_names(&exposition);
    for name in CONTROLLER_METRICS {
        assert!(
            exposed.contains(name),
            "progressive-controller does not expose {name}:\n{exposition}"
        );
    }

    // The apps', as the built-in checks query them.
    let queried: BTreeSet<String> = [
        builtin::request_success_rate(NAMESPACE, TARGET, "1m"),
        builtin::request_duration(NAMESPACE, TARGET, "1m"),
        builtin::burn_rate(NAMESPACE, TARGET, 99.9, "1m"),
    ]
    .iter()
    .flat_map(|query| metric_names(query))
    .collect();
    assert_eq!(
        queried,
        APP_METRICS.map(str::to_owned).into_iter().collect::<BTreeSet<_>>()
    );
}

/// progressive-controller's `/metrics` on 127.0.0.1: its registry with the Canary metrics, as
/// the runtime serves it. Dropping it stops the server.
struct ControllerMetrics {
    addr: SocketAddr,
    metrics: CanaryMetrics,
    task: tokio::task::JoinHandle<()>,
}

impl ControllerMetrics {
    async fn start() -> Self {
        let registry = eddy_runtime::Metrics::new(progressive_controller::NAME);
        let metrics = CanaryMetrics::register(&registry);
        let app = Router::new().route(
            "/metrics",
            get(move || {
                let text = registry.encode();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, metrics, task }
    }
}

impl Drop for ControllerMetrics {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The one number of an instant query's answer, if it has one sample.
fn single_value(data: &Value) -> Option<f64> {
    let sample = match data["resultType"].as_str()? {
        "scalar" => &data["result"],
        _ => &data["result"].as_array().filter(|r| r.len() == 1)?[0]["value"],
    };
    sample[1].as_str()?.parse().ok()
}

#[tokio::test]
async fn prometheus_accepts_every_query_and_finds_a_release_in_flight() {
    eddy_runtime::install_crypto_provider();
    let canary = TestApp::start(
        TARGET,
        Behaviour {
            error_rate: 0.25,
            latency: Duration::from_millis(5),
        },
    )
    .await
    .unwrap();
    let primary = TestApp::start(&format!("{TARGET}-primary"), Behaviour::healthy())
        .await
        .unwrap();
    let controller = ControllerMetrics::start().await;
    controller.metrics.observe(NAMESPACE, CANARY, &release_in_flight());
    let prometheus = Prometheus::start(&[
        ScrapeTarget::new(canary.addr, &[("namespace", NAMESPACE), ("workload", TARGET)]),
        ScrapeTarget::new(
            primary.addr,
            &[("namespace", NAMESPACE), ("workload", &format!("{TARGET}-primary"))],
        ),
        // The controller's series carry their own namespace and name labels.
        ScrapeTarget::new(controller.addr, &[]),
    ])
    .await
    .expect("starting Prometheus");
    prometheus
        .wait_for_samples("up == 1", 3, Duration::from_secs(30))
        .await
        .unwrap();

    // Traffic and analysis steps after the first scrape, so that every rate() sees them grow.
    let client = reqwest::Client::new();
    for app in [&canary, &primary] {
        for _ in 0..40 {
            client.get(app.url("/")).send().await.expect("the test app answers");
        }
    }
    controller.metrics.step_ran(Duration::from_millis(30));
    controller.metrics.step_ran(Duration::from_millis(300));
    for (query, count) in [
        (
            r#"sum by (workload) (increase(http_requests_total{code="200"}[1m])) > 0"#,
            2,
        ),
        (r#"sum(increase(http_requests_total{code="500"}[1m])) > 0"#, 1),
        ("increase(eddy_canary_step_lateness_seconds_count[1m]) > 0", 1),
    ] {
        prometheus
            .wait_for_samples(query, count, Duration::from_secs(30))
            .await
            .unwrap();
    }

    let dashboard = dashboard();
    let values = variable_values();
    let mut failures = Vec::new();
    for Query { place, expr } in queries(&dashboard) {
        let expr = substitute(&expr, &values).unwrap();
        match prometheus.query(&expr).await {
            Err(err) => failures.push(format!("{place}: {err}")),
            Ok(data) if data["result"].as_array().is_some_and(Vec::is_empty) => {
                failures.push(format!("{place}: no data for {expr}"))
            }
            Ok(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Each side reads its own workload: the canary errs, the primary does not.
    let error_rate = |title: &'static str| {
        let panel = panels(&dashboard)
            .into_iter()
            .find(|p| p["title"] == title)
            .unwrap_or_else(|| panic!("no panel {title:?}"))
            .clone();
        let expr = substitute(panel["targets"][0]["expr"].as_str().unwrap(), &values).unwrap();
        let prometheus = &prometheus;
        async move {
            let data = prometheus.query(&expr).await.unwrap();
            single_value(&data).unwrap_or_else(|| panic!("{title}: not one number: {data}"))
        }
    };
    let canary_errors = error_rate("Canary: error rate (5xx)").await;
    assert!(
        (0.1..=0.4).contains(&canary_errors),
        "the canary answers 25% 500s, read {canary_errors}"
    );
    assert_eq!(error_rate("Primary: error rate (5xx)").await, 0.0);

    // The variables offer this release: each query's label values, through the variable's
    // regex (Grafana keeps the first capture group) where it has one.
    for (name, expected) in [("namespace", NAMESPACE), ("canary", CANARY), ("target", TARGET)] {
        let variable = variables(&dashboard).iter().find(|v| v["name"] == name).unwrap();
        let query = substitute(variable_query(variable), &values).unwrap();
        let (selector, label) = label_values(&query).unwrap();
        let regex = variable["regex"].as_str().unwrap_or_default();
        let (expr, shown) = match regex.strip_prefix('/').and_then(|r| r.rsplit_once('/')) {
            // Grafana's regex is unanchored JavaScript; PromQL's label_replace anchors RE2.
            Some((pattern, _flags)) => {
                let pattern = pattern.trim_start_matches('^');
                let pattern = match pattern.strip_suffix('$') {
                    Some(anchored) => anchored.to_owned(),
                    None => format!("{pattern}.*"),
                };
                (
                    format!(r#"label_replace({selector}, "variable_value", "$1", "{label}", ".*?{pattern}")"#),
                    "variable_value",
                )
            }
            None => (selector.to_owned(), label),
        };
        let data = prometheus.query(&expr).await.unwrap();
        let offered: BTreeSet<&str> = data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|series| series["metric"][shown].as_str())
            .collect();
        assert!(
            offered.contains(expected),
            "variable {name} offers {offered:?}, not {expected:?}: {expr}"
        );
    }
}
