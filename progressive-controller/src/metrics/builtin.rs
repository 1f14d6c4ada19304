//! The built-in metric checks: PromQL written by Eddy for the metrics every workload is expected
//! to expose, so that a Canary can name `request-success-rate`, `request-duration` or
//! `slo-burn-rate` without a MetricTemplate.
//!
//! # The convention the queries rely on
//!
//! - The workload's HTTP server exposes `http_requests_total{code="<status>"}`, a counter of
//!   answered requests by status code, and `http_request_duration_seconds_bucket{le="..."}`, a
//!   histogram of request durations in seconds (the names most HTTP instrumentation libraries use).
//! - The Prometheus scrape configuration adds two labels to every series of a pod: `namespace`,
//!   the pod's namespace, and `workload`, the name of the Deployment the pod belongs to. With
//!   Kubernetes service discovery that is a relabeling of `__meta_kubernetes_namespace` and of
//!   the pod's owner (or of a pod label carrying the Deployment's name); the tests' Prometheus
//!   sets both in its static configuration.
//! - The canary's workload is the Canary's target (`podinfo`), the primary's is
//!   `<target>-primary` (`podinfo-primary`). The checks read the canary's workload.
//!
//! A workload without these series has no data, which fails the check: it never passes.

use std::collections::BTreeMap;
use std::time::Duration;

/// `request-success-rate`: percentage (0–100) of requests answered with anything but 5xx.
pub const REQUEST_SUCCESS_RATE: &str = "request-success-rate";
/// `request-duration`: the 99th percentile of request durations, in milliseconds.
pub const REQUEST_DURATION: &str = "request-duration";
/// `slo-burn-rate`: how fast the canary spends the error budget of an availability SLO.
pub const SLO_BURN_RATE: &str = "slo-burn-rate";

/// The built-in checks, by the metric name a Canary gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// [`REQUEST_SUCCESS_RATE`].
    RequestSuccessRate,
    /// [`REQUEST_DURATION`].
    RequestDuration,
    /// [`SLO_BURN_RATE`].
    SloBurnRate,
}

impl Builtin {
    /// Every built-in check.
    pub const ALL: [Builtin; 3] = [
        Builtin::RequestSuccessRate,
        Builtin::RequestDuration,
        Builtin::SloBurnRate,
    ];

    /// The check a metric named `name` refers to, if it is a built-in one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|builtin| builtin.name() == name)
    }

    /// The metric name that selects the check.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::RequestSuccessRate => REQUEST_SUCCESS_RATE,
            Builtin::RequestDuration => REQUEST_DURATION,
            Builtin::SloBurnRate => SLO_BURN_RATE,
        }
    }
}

/// The label selector of one workload's series: `{namespace="...",workload="..."}` plus `extra`.
fn selector(namespace: &str, workload: &str, extra: &str) -> String {
    format!(
        "namespace={},workload={}{extra}",
        promql_string(namespace),
        promql_string(workload)
    )
}

/// Percentage of the requests `workload` answered over `window` with a status other than 5xx.
///
/// Flagger's query, except that the non-5xx rate falls back to 0 when no such series exists, so
/// that a workload answering only 5xx reads 0% instead of "no data".
pub fn request_success_rate(namespace: &str, workload: &str, window: &str) -> String {
    let all = selector(namespace, workload, "");
    let ok = selector(namespace, workload, r#",code!~"5..""#);
    format!(
        "(sum(rate(http_requests_total{{{ok}}}[{window}])) or vector(0)) / sum(rate(http_requests_total{{{all}}}[{window}])) * 100"
    )
}

/// The 99th percentile of the durations of `workload`'s requests over `window`, in milliseconds
/// (Flagger reports milliseconds too).
pub fn request_duration(namespace: &str, workload: &str, window: &str) -> String {
    let all = selector(namespace, workload, "");
    format!(
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{{all}}}[{window}]))) * 1000"
    )
}

/// The error-budget burn rate of `workload` over `window` for an availability objective of
/// `objective` percent: the 5xx ratio divided by the ratio the objective allows (`1 - objective /
/// 100`). 1 spends the budget exactly over the SLO period; 14.4 spends a 30-day budget's 2% in an
/// hour.
pub fn burn_rate(namespace: &str, workload: &str, objective: f64, window: &str) -> String {
    let all = selector(namespace, workload, "");
    let errors = selector(namespace, workload, r#",code=~"5..""#);
    format!(
        "(sum(rate(http_requests_total{{{errors}}}[{window}])) or vector(0)) / sum(rate(http_requests_total{{{all}}}[{window}])) / (1 - {objective} / 100)"
    )
}

/// What `slo-burn-rate` reads from the metric's `templateVariables`.
///
/// The check follows the multi-window burn-rate alerts of Google's SRE workbook ("Alerting on
/// SLOs"): the burn rate is computed over a short and a long window, and the check fails only
/// when **both** exceed `thresholdRange.max`. The long window keeps a brief spike from failing
/// the release; the short one makes the check pass again soon after the errors stop. The check's
/// value is therefore `min(short burn rate, long burn rate)`: it is above the maximum exactly
/// when both are. A `thresholdRange.min` has no use with this check.
///
/// - `objective`: the availability SLO in percent, e.g. `99.9` (required; strictly between 0 and
///   100).
/// - `shortWindow`: a duration such as `5m`; the metric's `interval` when unset.
/// - `longWindow`: a duration at least as long as the short window; 12 times the short window
///   when unset (the workbook's 5m/1h pair).
#[derive(Clone, Debug, PartialEq)]
pub struct BurnRateSettings {
    /// The SLO, in percent.
    pub objective: f64,
    /// The short window.
    pub short_window: Duration,
    /// The long window.
    pub long_window: Duration,
}

impl BurnRateSettings {
    /// Reads the settings from `variables`, with `interval` (the metric's) as the default short
    /// window. The error says which variable is wrong and why.
    pub fn from_variables(variables: &BTreeMap<String, String>, interval: Duration) -> Result<Self, String> {
        let objective = variables
            .get("objective")
            .ok_or("templateVariables.objective is required: the availability SLO in percent, e.g. \"99.9\"")?;
        let objective = objective
            .trim()
            .trim_end_matches('%')
            .parse::<f64>()
            .ok()
            .filter(|value| *value > 0.0 && *value < 100.0)
            .ok_or_else(|| {
                format!("templateVariables.objective {objective:?} is not a percentage strictly between 0 and 100")
            })?;
        let window = |key: &str| -> Result<Option<Duration>, String> {
            let Some(text) = variables.get(key) else {
                return Ok(None);
            };
            let duration = eddy_api::meta::Duration::parse(text.trim())
                .and_then(|duration| duration.to_std())
                .map_err(|err| format!("templateVariables.{key}: {err}"))?;
            if duration.as_millis() == 0 {
                return Err(format!("templateVariables.{key} must be longer than 0"));
            }
            Ok(Some(duration))
        };
        let short_window = window("shortWindow")?.unwrap_or(interval);
        let long_window = window("longWindow")?.unwrap_or(short_window * 12);
        if long_window < short_window {
            return Err(format!(
                "templateVariables.longWindow ({}) is shorter than the short window ({})",
                promql_duration(long_window),
                promql_duration(short_window)
            ));
        }
        Ok(Self {
            objective,
            short_window,
            long_window,
        })
    }
}

/// `duration` as a PromQL duration: `1h30m`, `5m`, `90s` is `1m30s`, sub-second parts in `ms`.
/// Go durations (the API's) allow forms PromQL does not, such as `1.5m` or `µs`, so queries
/// never carry the duration as written.
pub fn promql_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    let mut text = String::new();
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if millis >= size {
            text.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    text
}

/// `value` as a PromQL string literal: double-quoted, with backslashes and quotes escaped.
pub fn promql_string(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variables(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn builtin_names_are_flaggers_plus_the_burn_rate() {
        assert_eq!(
            Builtin::from_name("request-success-rate"),
            Some(Builtin::RequestSuccessRate)
        );
        assert_eq!(Builtin::from_name("request-duration"), Some(Builtin::RequestDuration));
        assert_eq!(Builtin::from_name("slo-burn-rate"), Some(Builtin::SloBurnRate));
        assert_eq!(Builtin::from_name("error-rate"), None);
    }

    #[test]
    fn success_rate_query_counts_non_5xx_over_all_requests_of_the_workload() {
        assert_eq!(
            request_success_rate("shop", "podinfo", "1m"),
            r#"(sum(rate(http_requests_total{namespace="shop",workload="podinfo",code!~"5.."}[1m])) or vector(0)) / sum(rate(http_requests_total{namespace="shop",workload="podinfo"}[1m])) * 100"#
        );
    }

    #[test]
    fn duration_query_is_the_p99_in_milliseconds() {
        assert_eq!(
            request_duration("shop", "podinfo-primary", "30s"),
            r#"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="shop",workload="podinfo-primary"}[30s]))) * 1000"#
        );
    }

    #[test]
    fn burn_rate_query_divides_the_error_ratio_by_the_budget() {
        assert_eq!(
            burn_rate("shop", "podinfo", 99.9, "5m"),
            r#"(sum(rate(http_requests_total{namespace="shop",workload="podinfo",code=~"5.."}[5m])) or vector(0)) / sum(rate(http_requests_total{namespace="shop",workload="podinfo"}[5m])) / (1 - 99.9 / 100)"#
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(promql_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn durations_are_written_the_way_promql_reads_them() {
        assert_eq!(promql_duration(Duration::from_secs(60)), "1m");
        assert_eq!(promql_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(promql_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(promql_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(promql_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn burn_rate_windows_default_to_the_interval_and_twelve_times_it() {
        let settings =
            BurnRateSettings::from_variables(&variables(&[("objective", "99.9")]), Duration::from_secs(300)).unwrap();
        assert_eq!(
            settings,
            BurnRateSettings {
                objective: 99.9,
                short_window: Duration::from_secs(300),
                long_window: Duration::from_secs(3600),
            }
        );
        let settings = BurnRateSettings::from_variables(
            &variables(&[("objective", "99.5%"), ("shortWindow", "2m"), ("longWindow", "6h")]),
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(settings.objective, 99.5);
        assert_eq!(settings.short_window, Duration::from_secs(120));
        assert_eq!(settings.long_window, Duration::from_secs(6 * 3600));
    }

    #[test]
    fn burn_rate_settings_name_the_wrong_variable() {
        let interval = Duration::from_secs(60);
        let err = BurnRateSettings::from_variables(&variables(&[]), interval).unwrap_err();
        assert!(err.contains("objective is required"), "{err}");
        for objective in ["100", "0", "high", "-1"] {
            let err = BurnRateSettings::from_variables(&variables(&[("objective", objective)]), interval).unwrap_err();
            assert!(err.contains("strictly between 0 and 100"), "{objective}: {err}");
        }
        let err =
            BurnRateSettings::from_variables(&variables(&[("objective", "99"), ("shortWindow", "soon")]), interval)
                .unwrap_err();
        assert!(err.contains("templateVariables.shortWindow"), "{err}");
        let err = BurnRateSettings::from_variables(
            &variables(&[("objective", "99"), ("shortWindow", "1h"), ("longWindow", "5m")]),
            interval,
        )
        .unwrap_err();
        assert!(err.contains("shorter than the short window"), "{err}");
    }
}
