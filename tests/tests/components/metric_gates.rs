//! progressive-controller's metric gates against a real Prometheus (Debian's, started by
//! `eddy_tests::prometheus`) scraping tiny exporters that serve `http_requests_total` and
//! `http_request_duration_seconds` at rates the test sets: the built-in checks read back those
//! rates, and every answer that is not one number fails the check with its reason.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use eddy_api::progressive::{CanaryMetric, CheckResult, MetricProvider, MetricProviderType, MetricTemplateSpec};
use eddy_tests::eventually;
use eddy_tests::prometheus::{Prometheus, ScrapeTarget};
use eddy_tests::webhook::{Reply, WebhookServer};
use progressive_controller::metrics::{self, Credentials, MetricScope, ResolvedTemplate};

/// Upper bounds of the duration histogram's buckets, in seconds (`+Inf` last).
const BUCKETS: [f64; 6] = [0.05, 0.1, 0.25, 0.5, 1.0, f64::INFINITY];

/// What an exporter's workload serves, per second.
#[derive(Clone, Copy, Debug)]
struct Traffic {
    /// Requests answered 200.
    ok: f64,
    /// Requests answered 404 (not failures).
    not_found: f64,
    /// Requests answered 500.
    errors: f64,
    /// Share of requests in each bucket (not cumulative); sums to 1.
    durations: [f64; 6],
}

impl Traffic {
    /// 85 × 200, 5 × 404 and 10 × 500 a second: a success rate of 90%. Durations: 90% under
    /// 50 ms, 8% in (50 ms, 100 ms], 2% in (100 ms, 250 ms], so the P99 interpolates to 175 ms.
    fn podinfo() -> Self {
        Self {
            ok: 85.0,
            not_found: 5.0,
            errors: 10.0,
            durations: [0.90, 0.08, 0.02, 0.0, 0.0, 0.0],
        }
    }

    /// Series that exist but never grow: a workload without requests.
    fn idle() -> Self {
        Self {
            ok: 0.0,
            not_found: 0.0,
            errors: 0.0,
            durations: [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        }
    }
}

/// Counters as a workload's `/metrics` would have them.
struct Counters {
    traffic: Traffic,
    since: Instant,
    by_code: [(u16, f64); 3],
    buckets: [f64; 6],
    sum: f64,
}

impl Counters {
    /// Adds the requests served since the last scrape.
    fn advance(&mut self) {
        let elapsed = self.since.elapsed().as_secs_f64();
        self.since = Instant::now();
        let traffic = self.traffic;
        for (code, count) in &mut self.by_code {
            *count += elapsed
                * match code {
                    200 => traffic.ok,
                    404 => traffic.not_found,
                    _ => traffic.errors,
                };
        }
        let requests = elapsed * (traffic.ok + traffic.not_found + traffic.errors);
        for (bucket, share) in self.buckets.iter_mut().zip(traffic.durations) {
            *bucket += requests * share;
        }
        self.sum += requests * 0.03;
    }

    /// The Prometheus text exposition of the counters.
    fn exposition(&self) -> String {
        let mut text = String::from("# TYPE http_requests_total counter\n");
        for (code, count) in self.by_code {
            text.push_str(&format!("http_requests_total{{code=\"{code}\"}} {count}\n"));
        }
        text.push_str("# TYPE http_request_duration_seconds histogram\n");
        let mut cumulative = 0.0;
        for (le, count) in BUCKETS.iter().zip(self.buckets) {
            cumulative += count;
            let le = if le.is_infinite() {
                "+Inf".to_owned()
            } else {
                le.to_string()
            };
            text.push_str(&format!(
                "http_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}\n"
            ));
        }
        text.push_str(&format!("http_request_duration_seconds_sum {}\n", self.sum));
        text.push_str(&format!("http_request_duration_seconds_count {cumulative}\n"));
        text
    }
}

/// A workload's metrics endpoint on 127.0.0.1. Dropping it stops the server.
struct Exporter {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Exporter {
    async fn start(traffic: Traffic) -> Self {
        let counters = Arc::new(Mutex::new(Counters {
            traffic,
            since: Instant::now(),
            by_code: [(200, 0.0), (404, 0.0), (500, 0.0)],
            buckets: [0.0; 6],
            sum: 0.0,
        }));
        let app = Router::new()
            .route(
                "/metrics",
                get(|State(counters): State<Arc<Mutex<Counters>>>| async move {
                    let mut counters = counters.lock().unwrap();
                    counters.advance();
                    counters.exposition()
                }),
            )
            .with_state(counters);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, task }
    }

    fn target(&self, workload: &str) -> ScrapeTarget {
        ScrapeTarget::new(self.addr, &[("namespace", "shop"), ("workload", workload)])
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `podinfo` serving [`Traffic::podinfo`] and `idle` serving nothing, scraped by a Prometheus.
struct Fixture {
    prometheus: Prometheus,
    /// The Prometheus's URL, the metrics server of every check.
    url: String,
    _exporters: [Exporter; 2],
}

impl Fixture {
    async fn start() -> Self {
        eddy_runtime::install_crypto_provider();
        let podinfo = Exporter::start(Traffic::podinfo()).await;
        let idle = Exporter::start(Traffic::idle()).await;
        let prometheus = Prometheus::start(&[podinfo.target("podinfo"), idle.target("idle")])
            .await
            .expect("starting Prometheus");
        // Two scrapes of each target: enough for rate() over any window.
        prometheus
            .wait_for_samples(
                r#"count_over_time(http_requests_total{code="200"}[1m]) >= 2"#,
                2,
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        Self {
            url: prometheus.url(),
            prometheus,
            _exporters: [podinfo, idle],
        }
    }

    fn scope<'a>(&'a self, target: &'a str) -> MetricScope<'a> {
        MetricScope {
            namespace: "shop",
            name: target,
            target,
            service: target,
            ingress: None,
            metrics_server: &self.url,
            timeout: Duration::from_secs(5),
        }
    }
}

fn metric(json: serde_json::Value) -> CanaryMetric {
    serde_json::from_value(json).expect("a CanaryMetric")
}

fn failed_with(check: &CheckResult, needle: &str) {
    assert!(!check.passed, "{check:?}");
    assert_eq!(check.value, None, "{check:?}");
    let message = check.message.as_deref().unwrap_or_default();
    assert!(message.contains(needle), "expected {needle:?} in {message:?}");
}

fn near(check: &CheckResult, expected: f64, tolerance: f64) -> bool {
    check.value.is_some_and(|value| (value - expected).abs() <= tolerance)
}

#[tokio::test]
async fn builtin_checks_read_back_the_rates_the_workload_served() {
    let fixture = Fixture::start().await;
    let scope = fixture.scope("podinfo");

    let success =
        metric(serde_json::json!({"name": "request-success-rate", "interval": "10s", "thresholdRange": {"min": 85}}));
    let check = eventually(Duration::from_secs(30), "a success rate near 90%", || async {
        let check = metrics::evaluate(&scope, &success, None).await;
        near(&check, 90.0, 0.5).then_some(check)
    })
    .await;
    assert!(check.passed, "{check:?}");

    let strict =
        metric(serde_json::json!({"name": "request-success-rate", "interval": "10s", "thresholdRange": {"min": 99}}));
    let check = metrics::evaluate(&scope, &strict, None).await;
    assert!(!check.passed, "{check:?}");
    assert!(near(&check, 90.0, 0.5), "{check:?}");
    assert!(
        check.message.as_deref().unwrap().contains("is below the minimum 99"),
        "{check:?}"
    );

    let duration =
        metric(serde_json::json!({"name": "request-duration", "interval": "10s", "thresholdRange": {"max": 500}}));
    let check = metrics::evaluate(&scope, &duration, None).await;
    assert!(check.passed, "{check:?}");
    assert!(near(&check, 175.0, 2.0), "P99 should be 175 ms: {check:?}");

    // 10% errors against a 99% objective: the budget burns 10 times too fast, on both windows.
    let burn = |max: f64| {
        metric(serde_json::json!({
            "name": "slo-burn-rate", "interval": "10s", "thresholdRange": {"max": max},
            "templateVariables": {"objective": "99", "longWindow": "1m"}
        }))
    };
    let check = metrics::evaluate(&scope, &burn(14.4), None).await;
    assert!(check.passed, "{check:?}");
    assert!(near(&check, 10.0, 0.1), "{check:?}");
    let check = metrics::evaluate(&scope, &burn(5.0), None).await;
    assert!(!check.passed, "{check:?}");
    let message = check.message.unwrap();
    assert!(
        message.starts_with("slo-burn-rate 10 is above the maximum 5"),
        "{message}"
    );
    assert!(
        message.contains("over 10s and") && message.contains("over 1m"),
        "{message}"
    );
}

#[tokio::test]
async fn answers_that_are_not_one_number_fail_the_check_with_their_reason() {
    let fixture = Fixture::start().await;
    let success =
        metric(serde_json::json!({"name": "request-success-rate", "interval": "10s", "thresholdRange": {"min": 99}}));

    // No series for the workload at all.
    let check = metrics::evaluate(&fixture.scope("absent"), &success, None).await;
    failed_with(&check, "no values found for query");
    failed_with(&check, "no traffic to the canary yet, or labels that match nothing");

    // Series that exist, with no request in the interval: 0 / 0.
    let check = eventually(Duration::from_secs(30), "the idle workload to read NaN", || async {
        let check = metrics::evaluate(&fixture.scope("idle"), &success, None).await;
        check
            .message
            .as_deref()
            .is_some_and(|m| m.contains("NaN"))
            .then_some(check)
    })
    .await;
    failed_with(&check, "returned NaN (no requests in the interval");

    // One series per status code.
    let by_code = metric(serde_json::json!({
        "name": "requests", "query": r#"http_requests_total{namespace="{{ namespace }}",workload="{{ target }}"}"#,
        "thresholdRange": {"min": 0}
    }));
    let check = metrics::evaluate(&fixture.scope("podinfo"), &by_code, None).await;
    failed_with(&check, "returned 3 series instead of one");
    failed_with(&check, "aggregate them");

    let broken = metric(serde_json::json!({"name": "broken", "query": "sum(rate(http_requests_total[1m])"}));
    let check = metrics::evaluate(&fixture.scope("podinfo"), &broken, None).await;
    failed_with(
        &check,
        &format!("Prometheus at {} refused query", fixture.prometheus.url()),
    );
    failed_with(&check, "bad_data");
    failed_with(&check, "parse error");

    let unknown = metric(serde_json::json!({"name": "requests", "query": "sum(up{job=\"{{ job }}\"})"}));
    let check = metrics::evaluate(&fixture.scope("podinfo"), &unknown, None).await;
    failed_with(&check, "unknown variable job");

    let nothing = metric(serde_json::json!({"name": "error-rate", "thresholdRange": {"max": 1}}));
    let check = metrics::evaluate(&fixture.scope("podinfo"), &nothing, None).await;
    failed_with(&check, "metric error-rate has nothing to query");
}

#[tokio::test]
async fn a_killed_prometheus_fails_the_check_until_it_is_back() {
    let mut fixture = Fixture::start().await;
    let success =
        metric(serde_json::json!({"name": "request-success-rate", "interval": "10s", "thresholdRange": {"min": 85}}));
    eventually(Duration::from_secs(30), "the check to pass", || async {
        metrics::evaluate(&fixture.scope("podinfo"), &success, None)
            .await
            .passed
            .then_some(())
    })
    .await;

    fixture.prometheus.kill();
    let check = metrics::evaluate(&fixture.scope("podinfo"), &success, None).await;
    failed_with(
        &check,
        &format!("cannot reach Prometheus at {}", fixture.prometheus.url()),
    );

    fixture.prometheus.restart().await.expect("restarting Prometheus");
    let check = eventually(Duration::from_secs(30), "the check to pass again", || async {
        let check = metrics::evaluate(&fixture.scope("podinfo"), &success, None).await;
        check.passed.then_some(check)
    })
    .await;
    assert!(near(&check, 90.0, 0.5), "{check:?}");
}

#[tokio::test]
async fn a_prometheus_that_does_not_answer_fails_the_check_at_the_timeout() {
    eddy_runtime::install_crypto_provider();
    let server = WebhookServer::start().await.unwrap();
    server.always(Reply::Hang);
    let address = server.url("");
    let mut scope = MetricScope {
        namespace: "shop",
        name: "podinfo",
        target: "podinfo",
        service: "podinfo",
        ingress: None,
        metrics_server: &address,
        timeout: Duration::from_millis(500),
    };
    let success = metric(serde_json::json!({"name": "request-success-rate", "thresholdRange": {"min": 99}}));
    let started = Instant::now();
    let check = metrics::evaluate(&scope, &success, None).await;
    let took = started.elapsed();
    failed_with(&check, &format!("Prometheus at {address} did not answer within 500ms"));
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "took {took:?}"
    );

    // A non-Prometheus error answer is quoted, a Prometheus one is not mistaken for data.
    server.always(Reply::Answer(502, vec![], "upstream down".into()));
    scope.timeout = Duration::from_secs(5);
    let check = metrics::evaluate(&scope, &success, None).await;
    failed_with(&check, "answered HTTP 502: upstream down");
}

#[tokio::test]
async fn a_template_query_is_rendered_and_sent_with_the_secret_credentials() {
    eddy_runtime::install_crypto_provider();
    let server = WebhookServer::start().await.unwrap();
    server.then(Reply::ok(
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.42"]}]}}"#,
    ));
    let spec = MetricTemplateSpec {
        provider: MetricProvider {
            provider_type: MetricProviderType::Prometheus,
            address: server.url("/prometheus/"),
            secret_ref: None,
            insecure_skip_verify: false,
            headers: Default::default(),
            region: None,
        },
        query: r#"sum(rate(errors_total{namespace="{{ namespace }}",service="{{ service }}",route="{{ variables.route }}"}[{{ interval }}]))"#.into(),
    };
    let secret = BTreeMap::from([("bearerToken".to_owned(), k8s_openapi::ByteString(b"t0ken\n".to_vec()))]);
    let template = ResolvedTemplate {
        namespace: "monitoring",
        name: "errors",
        spec: &spec,
        credentials: Some(Credentials::from_secret("prometheus-auth", &secret).unwrap()),
    };
    let errors = metric(serde_json::json!({
        "name": "errors", "interval": "2m", "thresholdRange": {"max": 1},
        "templateRef": {"name": "errors", "namespace": "monitoring"},
        "templateVariables": {"route": "/api"}
    }));
    let address = server.url("");
    let scope = MetricScope {
        namespace: "shop",
        name: "podinfo",
        target: "podinfo",
        service: "podinfo-apex",
        ingress: None,
        metrics_server: &address,
        timeout: Duration::from_secs(5),
    };
    let check = metrics::evaluate(&scope, &errors, Some(&template)).await;
    assert!(check.passed, "{check:?}");
    assert_eq!(check.value, Some(0.42));

    let request = &server.requests()[0];
    assert_eq!(request.method, "GET");
    assert_eq!(request.header("authorization"), Some("Bearer t0ken"));
    let url = reqwest::Url::parse(&format!("http://x{}", request.path)).unwrap();
    assert_eq!(url.path(), "/prometheus/api/v1/query");
    let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(
        query["query"],
        r#"sum(rate(errors_total{namespace="shop",service="podinfo-apex",route="/api"}[2m]))"#
    );

    // A refusal that quotes the token keeps it out of the message.
    server.then(Reply::Answer(401, vec![], "bad token t0ken".into()));
    let check = metrics::evaluate(&scope, &errors, Some(&template)).await;
    failed_with(&check, "answered HTTP 401: bad token ***");

    // A templateRef whose template is missing fails instead of passing.
    let check = metrics::evaluate(&scope, &errors, None).await;
    failed_with(&check, "MetricTemplate monitoring/errors not found");
}
