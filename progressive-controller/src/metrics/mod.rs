//! Metric gates: each of a Canary's `analysis.metrics` becomes a PromQL query (a built-in check,
//! a MetricTemplate's query, or the Canary's inline `query`) that runs against Prometheus and
//! must return one number; [`evaluate`] judges that number against the metric's range into the
//! [`CheckResult`] the controller stores in `status.lastChecks`.
//!
//! A check passes only with a number within range. Anything else fails it with a message saying
//! why: no data, NaN, several series, an unreachable or slow Prometheus, a missing template, a
//! metric with nothing to query (Flagger passed some of these silently, fluxcd/flagger#892).

pub mod builtin;
pub mod prometheus;
pub mod template;

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use eddy_api::progressive::{CanaryMetric, CheckResult, MetricProviderType, MetricTemplateSpec};

use builtin::{Builtin, BurnRateSettings, promql_duration};
pub use prometheus::{Credentials, PrometheusClient};
use template::TemplateValues;

/// Why a metric has no value to judge. Every text is safe to store in status: no credentials,
/// no URL userinfo or query string.
#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    /// The query returned an empty vector.
    #[error(
        "no values found for query {} (no traffic to the canary yet, or labels that match nothing)",
        shown_query(.query)
    )]
    NoValues { query: String },
    /// The query returned NaN.
    #[error(
        "query {} returned NaN (no requests in the interval, so a ratio divided 0 by 0)",
        shown_query(.query)
    )]
    NotANumber { query: String },
    /// The query returned +Inf or -Inf.
    #[error("query {} returned {value} (a division by 0)", shown_query(.query))]
    Infinite { query: String, value: f64 },
    /// The query returned more than one series.
    #[error(
        "query {} returned {count} series instead of one, the first {first}; aggregate them (e.g. with sum) into one value",
        shown_query(.query)
    )]
    SeveralSeries { query: String, count: usize, first: String },
    /// The query returned a matrix, a string or a native histogram.
    #[error(
        "query {} returned a {result_type}, not a scalar or a vector with one sample",
        shown_query(.query)
    )]
    WrongResultType { query: String, result_type: String },
    /// Prometheus answered with an error (a syntax error, an execution error, its own timeout).
    #[error("Prometheus at {address} refused query {}: {error_type}: {error}", shown_query(.query))]
    QueryRejected {
        address: String,
        query: String,
        error_type: String,
        error: String,
    },
    /// A non-2xx answer that is not Prometheus's error JSON (a proxy, a wrong path, 401).
    #[error("Prometheus at {address} answered HTTP {status}: {detail}")]
    HttpStatus {
        address: String,
        status: u16,
        detail: String,
    },
    /// No answer within the query timeout.
    #[error("Prometheus at {address} did not answer within {}", promql_duration(*.after))]
    Timeout { address: String, after: Duration },
    /// The connection failed (refused, DNS, TLS).
    #[error("cannot reach Prometheus at {address}: {reason}")]
    Unreachable { address: String, reason: String },
    /// A 2xx answer that is not the query API's JSON.
    #[error("Prometheus at {address} sent an answer that is not its query API's JSON: {reason}")]
    MalformedAnswer { address: String, reason: String },
    /// The answer exceeded [`prometheus::MAX_ANSWER`].
    #[error("the answer of Prometheus at {address} exceeds {limit} bytes; a query for one number is far smaller")]
    AnswerTooLarge { address: String, limit: usize },
    /// The metrics server address is not an http(s) URL.
    #[error("invalid Prometheus address {address:?}: {reason}")]
    InvalidAddress { address: String, reason: String },
    /// The MetricTemplate's Secret holds no usable credentials.
    #[error("Secret {secret}: {reason}")]
    Credentials { secret: String, reason: String },
    /// The metric's templateRef names a MetricTemplate that does not exist.
    #[error("MetricTemplate {namespace}/{name} not found")]
    TemplateNotFound { namespace: String, name: String },
    /// The query template names a variable that does not exist.
    #[error("the query uses the unknown variable {variable} (known: {known})")]
    UnknownTemplateVariable { variable: String, known: &'static str },
    /// The query template names a `variables.<key>` the metric's templateVariables lack.
    #[error("templateVariables has no key {key:?} (defined: {defined})")]
    MissingTemplateVariable { key: String, defined: String },
    /// The query template is not `{{ variable }}` substitutions over text.
    #[error("the query template is invalid: {reason}")]
    TemplateSyntax { reason: String },
    /// The metric is not a built-in check and has neither a templateRef nor a query.
    #[error(
        "metric {metric} has nothing to query: it is not a built-in check (request-success-rate, request-duration, slo-burn-rate) and has neither templateRef nor query"
    )]
    NoQuery { metric: String },
    /// A built-in check or inline query, and no Prometheus to send it to.
    #[error(
        "metric {metric} needs a Prometheus: set the Canary's metricsServer or progressive-controller's --metrics-server"
    )]
    NoMetricsServer { metric: String },
    /// The metric's settings are unusable (an interval the API should have refused, the
    /// burn-rate variables).
    #[error("metric {metric}: {reason}")]
    InvalidSettings { metric: String, reason: String },
}

impl MetricError {
    /// A CamelCase reason for conditions, events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            MetricError::NoValues { .. } => "NoValues",
            MetricError::NotANumber { .. } => "NotANumber",
            MetricError::Infinite { .. } => "Infinite",
            MetricError::SeveralSeries { .. } => "SeveralSeries",
            MetricError::WrongResultType { .. } => "WrongResultType",
            MetricError::QueryRejected { .. } => "QueryRejected",
            MetricError::HttpStatus { .. } => "HttpError",
            MetricError::Timeout { .. } => "Timeout",
            MetricError::Unreachable { .. } => "Unreachable",
            MetricError::MalformedAnswer { .. } => "MalformedAnswer",
            MetricError::AnswerTooLarge { .. } => "AnswerTooLarge",
            MetricError::InvalidAddress { .. } => "InvalidAddress",
            MetricError::Credentials { .. } => "InvalidCredentials",
            MetricError::TemplateNotFound { .. } => "TemplateNotFound",
            MetricError::UnknownTemplateVariable { .. } => "UnknownTemplateVariable",
            MetricError::MissingTemplateVariable { .. } => "MissingTemplateVariable",
            MetricError::TemplateSyntax { .. } => "TemplateSyntax",
            MetricError::NoQuery { .. } => "NoQuery",
            MetricError::NoMetricsServer { .. } => "NoMetricsServer",
            MetricError::InvalidSettings { .. } => "InvalidSettings",
        }
    }
}

/// Most characters of a query quoted in a message; templates can be long.
const MAX_SHOWN_QUERY: usize = 400;

/// `query` on one line, cut at [`MAX_SHOWN_QUERY`] characters.
fn shown_query(query: &str) -> String {
    let one_line = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= MAX_SHOWN_QUERY {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(MAX_SHOWN_QUERY).collect();
    cut.push('…');
    cut
}

/// The Canary a metric is evaluated for, and where its queries go when no template says.
#[derive(Clone, Copy, Debug)]
pub struct MetricScope<'a> {
    /// The Canary's namespace, also the workloads'.
    pub namespace: &'a str,
    /// The Canary's name.
    pub name: &'a str,
    /// The target Deployment's name: the canary workload.
    pub target: &'a str,
    /// The apex Service's name.
    pub service: &'a str,
    /// The Ingress of the `nginx` router, when the Canary has one.
    pub ingress: Option<&'a str>,
    /// The Prometheus of the built-in checks and inline queries: the Canary's `metricsServer`,
    /// else the controller's default.
    pub metrics_server: &'a str,
    /// Time allowed for each query.
    pub timeout: Duration,
}

/// A MetricTemplate as read, with its Secret's credentials read by the caller.
#[derive(Clone, Debug)]
pub struct ResolvedTemplate<'a> {
    /// Namespace of the MetricTemplate.
    pub namespace: &'a str,
    /// Name of the MetricTemplate.
    pub name: &'a str,
    /// Its spec.
    pub spec: &'a MetricTemplateSpec,
    /// The credentials of `spec.provider.secretRef`, if it has one.
    pub credentials: Option<Credentials>,
}

/// Where a query goes.
#[derive(Clone, Debug, PartialEq)]
struct Server {
    address: String,
    credentials: Option<Credentials>,
    insecure_skip_verify: bool,
}

/// The queries a metric runs, decided before anything is sent.
#[derive(Clone, Debug, PartialEq)]
enum Plan {
    /// One query whose number is the value.
    Single { server: Server, query: String },
    /// `slo-burn-rate`: the value is the smaller of the two burn rates.
    BurnRate {
        server: Server,
        objective: f64,
        short: (String, String),
        long: (String, String),
    },
}

/// A value read, with what to add to a message about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The number judged.
    pub value: f64,
    /// How it was made, when the number alone does not say (the burn rate's two windows).
    pub detail: Option<String>,
}

/// Runs `metric` for the canary of `scope` and judges its value. `template` is the MetricTemplate
/// the metric's `templateRef` names, `None` when it has none or it was not found.
///
/// The query is, in order of precedence: the template's (a `templateRef` whose template is
/// missing fails), the inline `query`, the built-in check the name selects. The template's
/// provider is always Prometheus: the API's provider type is a closed enum.
pub async fn evaluate(
    scope: &MetricScope<'_>,
    metric: &CanaryMetric,
    template: Option<&ResolvedTemplate<'_>>,
) -> CheckResult {
    let reading = match plan(scope, metric, template) {
        Ok(plan) => read(&plan, scope.timeout).await,
        Err(err) => Err(err),
    };
    judge(metric, reading, Time(Timestamp::now()))
}

/// Decides the queries of `metric` (see [`evaluate`]).
fn plan(
    scope: &MetricScope<'_>,
    metric: &CanaryMetric,
    template: Option<&ResolvedTemplate<'_>>,
) -> Result<Plan, MetricError> {
    let invalid = |reason: String| MetricError::InvalidSettings {
        metric: metric.name.clone(),
        reason,
    };
    let interval = metric
        .interval
        .to_std()
        .map_err(|err| invalid(format!("interval: {err}")))?;
    if interval.as_millis() == 0 {
        return Err(invalid("interval must be longer than 0".into()));
    }
    let window = promql_duration(interval);
    let values = TemplateValues {
        name: scope.name,
        namespace: scope.namespace,
        target: scope.target,
        service: scope.service,
        ingress: scope.ingress.unwrap_or(scope.target),
        interval: &window,
        variables: &metric.template_variables,
    };
    let default_server = || {
        if scope.metrics_server.trim().is_empty() {
            return Err(MetricError::NoMetricsServer {
                metric: metric.name.clone(),
            });
        }
        Ok(Server {
            address: scope.metrics_server.to_owned(),
            credentials: None,
            insecure_skip_verify: false,
        })
    };

    if let Some(reference) = &metric.template_ref {
        let namespace = reference.namespace.as_deref().unwrap_or(scope.namespace);
        let template = template.ok_or_else(|| MetricError::TemplateNotFound {
            namespace: namespace.to_owned(),
            name: reference.name.clone(),
        })?;
        let MetricProviderType::Prometheus = template.spec.provider.provider_type;
        return Ok(Plan::Single {
            server: Server {
                address: template.spec.provider.address.clone(),
                credentials: template.credentials.clone(),
                insecure_skip_verify: template.spec.provider.insecure_skip_verify,
            },
            query: template::render(&template.spec.query, &values)?,
        });
    }
    if let Some(query) = &metric.query {
        return Ok(Plan::Single {
            server: default_server()?,
            query: template::render(query, &values)?,
        });
    }
    let Some(builtin) = Builtin::from_name(&metric.name) else {
        return Err(MetricError::NoQuery {
            metric: metric.name.clone(),
        });
    };
    let (namespace, workload) = (scope.namespace, scope.target);
    Ok(match builtin {
        Builtin::RequestSuccessRate => Plan::Single {
            server: default_server()?,
            query: builtin::request_success_rate(namespace, workload, &window),
        },
        Builtin::RequestDuration => Plan::Single {
            server: default_server()?,
            query: builtin::request_duration(namespace, workload, &window),
        },
        Builtin::SloBurnRate => {
            let settings = BurnRateSettings::from_variables(&metric.template_variables, interval).map_err(invalid)?;
            let short = promql_duration(settings.short_window);
            let long = promql_duration(settings.long_window);
            Plan::BurnRate {
                server: default_server()?,
                objective: settings.objective,
                short: (
                    builtin::burn_rate(namespace, workload, settings.objective, &short),
                    short,
                ),
                long: (builtin::burn_rate(namespace, workload, settings.objective, &long), long),
            }
        }
    })
}

/// Runs the queries of `plan`.
async fn read(plan: &Plan, timeout: Duration) -> Result<Reading, MetricError> {
    let client = |server: &Server| {
        PrometheusClient::new(
            &server.address,
            server.credentials.clone(),
            server.insecure_skip_verify,
            timeout,
        )
    };
    match plan {
        Plan::Single { server, query } => Ok(Reading {
            value: client(server)?.query(query).await?,
            detail: None,
        }),
        Plan::BurnRate {
            server,
            objective,
            short,
            long,
        } => {
            let client = client(server)?;
            let (short_burn, long_burn) = futures::try_join!(client.query(&short.0), client.query(&long.0))?;
            Ok(Reading {
                value: short_burn.min(long_burn),
                detail: Some(format!(
                    "error budget of {objective}% burning {}x over {} and {}x over {}",
                    shown_value(short_burn),
                    short.1,
                    shown_value(long_burn),
                    long.1
                )),
            })
        }
    }
}

/// The accepted range of `metric`: `thresholdRange`, with the deprecated `threshold` filling in
/// the bound it stood for. Both ends inclusive; a missing end is open.
///
/// `threshold` is a maximum, except for `request-success-rate`, where Flagger has always read it
/// as a minimum (`threshold: 99` meant "at least 99%"); reading it as a maximum there would fail
/// every healthy release of a Canary written for Flagger.
pub fn bounds(metric: &CanaryMetric) -> (Option<f64>, Option<f64>) {
    let range = metric.threshold_range.clone().unwrap_or_default();
    if metric.name == builtin::REQUEST_SUCCESS_RATE {
        (range.min.or(metric.threshold), range.max)
    } else {
        (range.min, range.max.or(metric.threshold))
    }
}

/// The check of `metric` given what reading it gave, observed at `time`.
///
/// A reading passes when its value lies within [`bounds`]; a metric without bounds passes with
/// any number (it checks only that the query returns one). An error never passes.
pub fn judge(metric: &CanaryMetric, reading: Result<Reading, MetricError>, time: Time) -> CheckResult {
    let name = metric.name.clone();
    let reading = match reading {
        Ok(reading) => reading,
        Err(err) => {
            return CheckResult {
                name,
                value: None,
                passed: false,
                message: Some(err.to_string()),
                time: Some(time),
            };
        }
    };
    let (min, max) = bounds(metric);
    let value = reading.value;
    let failure = match (min, max) {
        (Some(min), _) if value < min => Some(format!("{name} {} is below the minimum {min}", shown_value(value))),
        (_, Some(max)) if value > max => Some(format!("{name} {} is above the maximum {max}", shown_value(value))),
        _ => None,
    };
    let message = failure.map(|failure| match &reading.detail {
        Some(detail) => format!("{failure} ({detail})"),
        None => failure,
    });
    CheckResult {
        name,
        value: Some(value),
        passed: message.is_none(),
        message,
        time: Some(time),
    }
}

/// `value` for a message: three decimals at most, scientific notation for tiny values.
fn shown_value(value: f64) -> String {
    if value != 0.0 && value.abs() < 0.001 {
        return format!("{value:.3e}");
    }
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use eddy_api::progressive::{MetricProvider, TemplateReference};

    use super::*;

    fn metric(yaml: serde_json::Value) -> CanaryMetric {
        serde_json::from_value(yaml).unwrap()
    }

    fn scope() -> MetricScope<'static> {
        MetricScope {
            namespace: "shop",
            name: "podinfo",
            target: "podinfo",
            service: "podinfo",
            ingress: None,
            metrics_server: "http://prometheus.monitoring:9090",
            timeout: Duration::from_secs(5),
        }
    }

    fn at() -> Time {
        Time(Timestamp::UNIX_EPOCH)
    }

    fn value(value: f64) -> Result<Reading, MetricError> {
        Ok(Reading { value, detail: None })
    }

    #[test]
    fn a_value_within_an_inclusive_range_passes() {
        let m = metric(serde_json::json!({"name": "latency", "query": "x", "thresholdRange": {"min": 1, "max": 500}}));
        for v in [1.0, 250.0, 500.0] {
            let check = judge(&m, value(v), at());
            assert!(check.passed, "{v}: {check:?}");
            assert_eq!(check.value, Some(v));
            assert_eq!(check.message, None);
        }
        let check = judge(&m, value(500.5), at());
        assert!(!check.passed);
        assert_eq!(check.message.as_deref(), Some("latency 500.5 is above the maximum 500"));
        let check = judge(&m, value(0.25), at());
        assert_eq!(check.message.as_deref(), Some("latency 0.25 is below the minimum 1"));
    }

    #[test]
    fn the_deprecated_threshold_is_a_maximum() {
        let m = metric(serde_json::json!({"name": "request-duration", "threshold": 500}));
        assert_eq!(bounds(&m), (None, Some(500.0)));
        assert!(judge(&m, value(499.0), at()).passed);
        assert!(!judge(&m, value(501.0), at()).passed);
        let m =
            metric(serde_json::json!({"name": "errors", "query": "x", "threshold": 5, "thresholdRange": {"min": 1}}));
        assert_eq!(bounds(&m), (Some(1.0), Some(5.0)));
    }

    #[test]
    fn the_deprecated_threshold_of_the_success_rate_is_a_minimum_as_in_flagger() {
        let m = metric(serde_json::json!({"name": "request-success-rate", "threshold": 99}));
        assert_eq!(bounds(&m), (Some(99.0), None));
        assert!(judge(&m, value(99.9), at()).passed);
        assert!(!judge(&m, value(98.0), at()).passed);
    }

    #[test]
    fn an_error_never_passes_and_says_why() {
        let m = metric(serde_json::json!({"name": "request-success-rate"}));
        let check = judge(&m, Err(MetricError::NoValues { query: "q".into() }), at());
        assert!(!check.passed);
        assert_eq!(check.value, None);
        assert!(check.message.unwrap().starts_with("no values found for query q"));
    }

    #[test]
    fn the_burn_rate_detail_names_both_windows() {
        let m = metric(serde_json::json!({"name": "slo-burn-rate", "thresholdRange": {"max": 14.4}}));
        let reading = Ok(Reading {
            value: 15.0,
            detail: Some("both windows".into()),
        });
        let check = judge(&m, reading, at());
        assert_eq!(
            check.message.as_deref(),
            Some("slo-burn-rate 15 is above the maximum 14.4 (both windows)")
        );
    }

    #[test]
    fn builtin_checks_query_the_canary_workload_at_the_metrics_server() {
        let m = metric(serde_json::json!({"name": "request-success-rate", "interval": "90s"}));
        let Plan::Single { server, query } = plan(&scope(), &m, None).unwrap() else {
            panic!("one query");
        };
        assert_eq!(server.address, "http://prometheus.monitoring:9090");
        assert_eq!(query, builtin::request_success_rate("shop", "podinfo", "1m30s"));
        let m = metric(serde_json::json!({"name": "request-duration", "interval": "1m"}));
        let Plan::Single { query, .. } = plan(&scope(), &m, None).unwrap() else {
            panic!("one query");
        };
        assert_eq!(query, builtin::request_duration("shop", "podinfo", "1m"));
    }

    #[test]
    fn the_burn_rate_plans_a_short_and_a_long_window() {
        let m = metric(serde_json::json!({
            "name": "slo-burn-rate", "interval": "5m", "templateVariables": {"objective": "99.9"}
        }));
        let Plan::BurnRate {
            objective, short, long, ..
        } = plan(&scope(), &m, None).unwrap()
        else {
            panic!("two queries");
        };
        assert_eq!(objective, 99.9);
        assert_eq!(short, (builtin::burn_rate("shop", "podinfo", 99.9, "5m"), "5m".into()));
        assert_eq!(long, (builtin::burn_rate("shop", "podinfo", 99.9, "1h"), "1h".into()));
        let m = metric(serde_json::json!({"name": "slo-burn-rate"}));
        let err = plan(&scope(), &m, None).unwrap_err();
        assert!(matches!(err, MetricError::InvalidSettings { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("metric slo-burn-rate: templateVariables.objective is required")
        );
    }

    #[test]
    fn a_template_wins_and_renders_with_the_canary_values() {
        let spec = MetricTemplateSpec {
            provider: MetricProvider {
                provider_type: MetricProviderType::Prometheus,
                address: "https://thanos.example".into(),
                secret_ref: None,
                insecure_skip_verify: true,
                headers: Default::default(),
                region: None,
            },
            query: r#"sum(rate(errors{ns="{{ namespace }}",svc="{{ service }}",ing="{{ ingress }}",x="{{ variables.x }}"}[{{ interval }}]))"#.into(),
        };
        let template = ResolvedTemplate {
            namespace: "monitoring",
            name: "errors",
            spec: &spec,
            credentials: Some(Credentials::Bearer("t".into())),
        };
        let mut m = metric(serde_json::json!({"name": "request-success-rate", "query": "ignored", "interval": "2m"}));
        m.template_ref = Some(TemplateReference {
            name: "errors".into(),
            namespace: Some("monitoring".into()),
        });
        m.template_variables = BTreeMap::from([("x".into(), "1".into())]);
        let Plan::Single { server, query } = plan(&scope(), &m, Some(&template)).unwrap() else {
            panic!("one query");
        };
        assert_eq!(
            server,
            Server {
                address: "https://thanos.example".into(),
                credentials: Some(Credentials::Bearer("t".into())),
                insecure_skip_verify: true,
            }
        );
        assert_eq!(
            query,
            r#"sum(rate(errors{ns="shop",svc="podinfo",ing="podinfo",x="1"}[2m]))"#
        );
    }

    #[test]
    fn a_missing_template_fails_instead_of_passing() {
        let mut m = metric(serde_json::json!({"name": "not-found-percentage"}));
        m.template_ref = Some(TemplateReference {
            name: "not-found".into(),
            namespace: None,
        });
        let err = plan(&scope(), &m, None).unwrap_err();
        assert_eq!(err.to_string(), "MetricTemplate shop/not-found not found");
    }

    #[test]
    fn a_metric_with_nothing_to_query_fails_instead_of_passing() {
        let m = metric(serde_json::json!({"name": "error-rate", "thresholdRange": {"max": 1}}));
        let err = plan(&scope(), &m, None).unwrap_err();
        assert!(matches!(err, MetricError::NoQuery { .. }));
        assert!(
            err.to_string().contains("metric error-rate has nothing to query"),
            "{err}"
        );
    }

    #[test]
    fn a_builtin_check_without_a_metrics_server_says_where_to_set_one() {
        let mut scope = scope();
        scope.metrics_server = "";
        let m = metric(serde_json::json!({"name": "request-duration"}));
        let err = plan(&scope, &m, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "metric request-duration needs a Prometheus: set the Canary's metricsServer or progressive-controller's --metrics-server"
        );
    }

    #[test]
    fn an_inline_query_renders_and_goes_to_the_metrics_server() {
        let m = metric(serde_json::json!({"name": "up", "query": "min(up{namespace=\"{{ namespace }}\"})"}));
        assert_eq!(
            plan(&scope(), &m, None).unwrap(),
            Plan::Single {
                server: Server {
                    address: "http://prometheus.monitoring:9090".into(),
                    credentials: None,
                    insecure_skip_verify: false,
                },
                query: r#"min(up{namespace="shop"})"#.into(),
            }
        );
    }

    #[test]
    fn long_queries_are_cut_in_messages() {
        let err = MetricError::NoValues {
            query: format!("sum(\n  {}\n)", "x".repeat(1000)),
        };
        let text = err.to_string();
        assert!(text.starts_with("no values found for query sum( xxx"), "{text}");
        assert!(text.contains("…"), "{text}");
        assert!(text.len() < 600, "{}", text.len());
    }

    #[test]
    fn values_are_shown_briefly() {
        assert_eq!(shown_value(99.53846153846), "99.538");
        assert_eq!(shown_value(100.0), "100");
        assert_eq!(shown_value(0.0), "0");
        assert_eq!(shown_value(0.00012), "1.200e-4");
    }

    #[tokio::test]
    async fn an_unreachable_server_fails_the_check() {
        eddy_runtime::install_crypto_provider();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let mut scope = scope();
        scope.metrics_server = &address;
        let m = metric(serde_json::json!({"name": "request-success-rate", "thresholdRange": {"min": 99}}));
        let check = evaluate(&scope, &m, None).await;
        assert!(!check.passed);
        let message = check.message.unwrap();
        assert!(
            message.starts_with(&format!("cannot reach Prometheus at {address}")),
            "{message}"
        );
    }
}
