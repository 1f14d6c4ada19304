//! A client of the Prometheus HTTP API (`GET /api/v1/query`) that turns an instant query into
//! exactly one number, or into the [`MetricError`] saying why there is none.
//!
//! Credentials come from a MetricTemplate's Secret, read by the caller ([`Credentials`]); they
//! never appear in an error, and neither does the address's userinfo or query string.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::ByteString;
use reqwest::Url;
use serde::Deserialize;

use super::MetricError;
use super::builtin::promql_duration;

/// Most bytes of an answer read. One number is a few hundred bytes; an answer this large holds
/// many series, which fails the check anyway.
pub const MAX_ANSWER: usize = 1024 * 1024;

/// Most bytes of a non-Prometheus error body quoted in an error.
const MAX_QUOTED_BODY: usize = 512;

/// Time allowed for one query when the caller gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the client authenticates, from a Secret's keys.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// HTTP basic authentication: the Secret's `username` and `password`.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// `Authorization: Bearer`: the Secret's `bearerToken` (or `token`).
    Bearer(String),
}

impl Credentials {
    /// The credentials in the data of the Secret named `secret`: `bearerToken` or `token` for a
    /// bearer token, else `username` and `password`. A value's surrounding whitespace (a
    /// trailing newline from `kubectl create secret --from-file`) is dropped.
    pub fn from_secret(secret: &str, data: &BTreeMap<String, ByteString>) -> Result<Self, MetricError> {
        let value = |key: &str| -> Result<Option<String>, MetricError> {
            data.get(key)
                .map(|bytes| {
                    String::from_utf8(bytes.0.clone())
                        .map(|text| text.trim().to_owned())
                        .map_err(|_| MetricError::Credentials {
                            secret: secret.to_owned(),
                            reason: format!("the value of {key} is not UTF-8"),
                        })
                })
                .transpose()
        };
        if let Some(token) = value("bearerToken")?.or(value("token")?) {
            return Ok(Credentials::Bearer(token));
        }
        match (value("username")?, value("password")?) {
            (Some(username), Some(password)) => Ok(Credentials::Basic { username, password }),
            (Some(_), None) => Err(MetricError::Credentials {
                secret: secret.to_owned(),
                reason: "it has a username but no password".into(),
            }),
            (None, Some(_)) => Err(MetricError::Credentials {
                secret: secret.to_owned(),
                reason: "it has a password but no username".into(),
            }),
            (None, None) => Err(MetricError::Credentials {
                secret: secret.to_owned(),
                reason: "it has none of the keys bearerToken, token, or username and password".into(),
            }),
        }
    }

    /// The secret strings, to blank them out of any text quoted in an error.
    fn secrets(&self) -> Vec<&str> {
        match self {
            Credentials::Basic { password, .. } => vec![password.as_str()],
            Credentials::Bearer(token) => vec![token.as_str()],
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}:***)"),
            Credentials::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// A Prometheus server to query.
#[derive(Clone, Debug)]
pub struct PrometheusClient {
    http: reqwest::Client,
    endpoint: Url,
    address: String,
    credentials: Option<Credentials>,
    timeout: Duration,
}

impl PrometheusClient {
    /// A client of the Prometheus at `address` (`http(s)://host:port`, with a path prefix when
    /// Prometheus serves under one). Each query may take `timeout`, connecting included.
    /// `insecure_skip_verify` accepts any TLS certificate. Redirects are not followed, so that
    /// credentials never go elsewhere.
    pub fn new(
        address: &str,
        credentials: Option<Credentials>,
        insecure_skip_verify: bool,
        timeout: Duration,
    ) -> Result<Self, MetricError> {
        let invalid = |reason: &str| MetricError::InvalidAddress {
            address: shown_address_text(address),
            reason: reason.to_owned(),
        };
        let mut endpoint = Url::parse(address.trim()).map_err(|err| invalid(&err.to_string()))?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if endpoint.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it has no host"));
        }
        let address = shown_address(&endpoint);
        let path = format!("{}/api/v1/query", endpoint.path().trim_end_matches('/'));
        endpoint.set_path(&path);
        endpoint.set_query(None);
        endpoint.set_fragment(None);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .tls_danger_accept_invalid_certs(insecure_skip_verify)
            .build()
            .map_err(|err| MetricError::InvalidAddress {
                address: address.clone(),
                reason: format!("cannot build an HTTP client: {}", error_chain(&err.without_url())),
            })?;
        Ok(Self {
            http,
            endpoint,
            address,
            credentials,
            timeout,
        })
    }

    /// The address as shown in messages: without userinfo, query or fragment.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Runs the instant query `query` and returns its one number. See [`parse_answer`] for what
    /// counts as one number.
    pub async fn query(&self, query: &str) -> Result<f64, MetricError> {
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("query", query)
            // Prometheus stops evaluating when the client gives up.
            .append_pair("timeout", &promql_duration(self.timeout));
        let mut request = self.http.get(url).header(reqwest::header::ACCEPT, "application/json");
        request = match &self.credentials {
            Some(Credentials::Basic { username, password }) => request.basic_auth(username, Some(password)),
            Some(Credentials::Bearer(token)) => request.bearer_auth(token),
            None => request,
        };
        let mut response = request.send().await.map_err(|err| self.transport(err))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| self.transport(err))? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(MetricError::AnswerTooLarge {
                    address: self.address.clone(),
                    limit: MAX_ANSWER,
                });
            }
            body.extend_from_slice(&chunk);
        }
        parse_answer(&self.address, query, status, &body).map_err(|err| self.blank_secrets(err))
    }

    fn transport(&self, err: reqwest::Error) -> MetricError {
        let err = err.without_url();
        if err.is_timeout() {
            MetricError::Timeout {
                address: self.address.clone(),
                after: self.timeout,
            }
        } else {
            self.blank_secrets(MetricError::Unreachable {
                address: self.address.clone(),
                reason: error_chain(&err),
            })
        }
    }

    /// Removes the credentials from the texts of `err` quoted from elsewhere (an answer's body,
    /// a transport error), should a proxy echo them.
    fn blank_secrets(&self, mut err: MetricError) -> MetricError {
        let Some(credentials) = &self.credentials else {
            return err;
        };
        let blank = |text: &mut String| {
            for secret in credentials.secrets() {
                if !secret.is_empty() {
                    *text = text.replace(secret, "***");
                }
            }
        };
        match &mut err {
            MetricError::HttpStatus { detail, .. } => blank(detail),
            MetricError::Unreachable { reason, .. } | MetricError::MalformedAnswer { reason, .. } => blank(reason),
            MetricError::QueryRejected { error, .. } => blank(error),
            _ => {}
        }
        err
    }
}

/// The answer of `/api/v1/query`.
#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<AnswerData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct AnswerData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

/// One sample of a vector result.
#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    value: Option<(serde_json::Value, String)>,
    #[serde(default)]
    histogram: Option<serde_json::Value>,
}

/// The one number in the answer (`status`, `body`) of the Prometheus at `address` to `query`.
///
/// One number is a scalar, or a vector with exactly one sample, that is neither NaN nor
/// infinite. Every other answer is an error: an empty vector ([`MetricError::NoValues`]), more
/// than one sample, a matrix or string, NaN, ±Inf, an error from Prometheus (with its text), a
/// non-2xx status without Prometheus's error JSON, or a body that is not the API's JSON.
pub fn parse_answer(address: &str, query: &str, status: u16, body: &[u8]) -> Result<f64, MetricError> {
    let answer = match serde_json::from_slice::<Answer>(body) {
        Ok(answer) => answer,
        Err(err) if (200..300).contains(&status) => {
            return Err(MetricError::MalformedAnswer {
                address: address.to_owned(),
                reason: format!("{err}; the body starts with {:?}", excerpt(body)),
            });
        }
        Err(_) => {
            return Err(MetricError::HttpStatus {
                address: address.to_owned(),
                status,
                detail: excerpt(body),
            });
        }
    };
    if answer.status != "success" {
        return Err(MetricError::QueryRejected {
            address: address.to_owned(),
            query: query.to_owned(),
            error_type: answer.error_type.unwrap_or_else(|| "error".into()),
            error: answer.error.unwrap_or_else(|| "no error text".into()),
        });
    }
    if !(200..300).contains(&status) {
        // A success body with an error status comes from no Prometheus.
        return Err(MetricError::HttpStatus {
            address: address.to_owned(),
            status,
            detail: excerpt(body),
        });
    }
    let malformed = |reason: String| MetricError::MalformedAnswer {
        address: address.to_owned(),
        reason,
    };
    let data = answer.data.ok_or_else(|| malformed("a success without data".into()))?;
    let text = match data.result_type.as_str() {
        "scalar" => {
            let (_, value): (serde_json::Value, String) = serde_json::from_value(data.result)
                .map_err(|err| malformed(format!("a scalar that is not [time, \"value\"]: {err}")))?;
            value
        }
        "vector" => {
            let samples: Vec<VectorSample> = serde_json::from_value(data.result)
                .map_err(|err| malformed(format!("a vector that is not a list of samples: {err}")))?;
            match samples.len() {
                0 => {
                    return Err(MetricError::NoValues {
                        query: query.to_owned(),
                    });
                }
                1 => {}
                count => {
                    return Err(MetricError::SeveralSeries {
                        query: query.to_owned(),
                        count,
                        first: series_name(&samples[0].metric),
                    });
                }
            }
            let sample = samples.into_iter().next().expect("one sample");
            match (sample.value, sample.histogram) {
                (Some((_, value)), _) => value,
                (None, Some(_)) => {
                    return Err(MetricError::WrongResultType {
                        query: query.to_owned(),
                        result_type: "native histogram".into(),
                    });
                }
                (None, None) => return Err(malformed("a vector sample without a value".into())),
            }
        }
        other => {
            return Err(MetricError::WrongResultType {
                query: query.to_owned(),
                result_type: other.to_owned(),
            });
        }
    };
    // Prometheus writes NaN, +Inf and -Inf as such; Rust's parser reads all three.
    let value: f64 = text
        .parse()
        .map_err(|_| malformed(format!("the value {text:?} is not a number")))?;
    if value.is_nan() {
        return Err(MetricError::NotANumber {
            query: query.to_owned(),
        });
    }
    if value.is_infinite() {
        return Err(MetricError::Infinite {
            query: query.to_owned(),
            value,
        });
    }
    Ok(value)
}

/// A series as PromQL writes it: `name{label="value",...}`.
fn series_name(labels: &BTreeMap<String, String>) -> String {
    let name = labels.get("__name__").map(String::as_str).unwrap_or_default();
    let labels: Vec<String> = labels
        .iter()
        .filter(|(key, _)| *key != "__name__")
        .map(|(key, value)| format!("{key}={value:?}"))
        .collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// The first [`MAX_QUOTED_BODY`] bytes of `body` as text, whitespace runs made single spaces.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_QUOTED_BODY)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `url` without userinfo, query and fragment, and without a trailing slash.
fn shown_address(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.as_str().trim_end_matches('/').to_owned()
}

/// An address that did not parse, with anything that may be userinfo or a query cut off.
fn shown_address_text(address: &str) -> String {
    let address = address.trim();
    let address = address.split(['?', '#']).next().unwrap_or_default();
    match address.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://{host}"),
            None => address.to_owned(),
        },
        None => address.rsplit_once('@').map_or(address, |(_, host)| host).to_owned(),
    }
}

/// `err` and its causes, `: `-separated; reqwest's own text names the URL, so callers pass an
/// error stripped of it.
pub(crate) fn error_chain(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if err.is_connect() {
        "cannot connect".to_owned()
    } else {
        err.to_string()
    };
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRESS: &str = "http://prometheus:9090";
    const QUERY: &str = "sum(rate(http_requests_total[1m]))";

    fn parse(status: u16, body: &str) -> Result<f64, MetricError> {
        parse_answer(ADDRESS, QUERY, status, body.as_bytes())
    }

    #[test]
    fn a_scalar_is_one_number() {
        let value = parse(
            200,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.5,"99.5"]}}"#,
        );
        assert_eq!(value.unwrap(), 99.5);
    }

    #[test]
    fn a_vector_of_one_sample_is_one_number() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.123,"175.25"]}]}}"#;
        assert_eq!(parse(200, body).unwrap(), 175.25);
    }

    #[test]
    fn an_empty_vector_is_no_values_with_a_hint() {
        let err = parse(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        )
        .unwrap_err();
        assert!(matches!(err, MetricError::NoValues { .. }));
        let text = err.to_string();
        assert!(
            text.contains("no values found for query sum(rate(http_requests_total[1m]))"),
            "{text}"
        );
        assert!(text.contains("no traffic to the canary yet"), "{text}");
    }

    #[test]
    fn two_series_are_refused_and_the_first_is_named() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"http_requests_total","code":"200","workload":"podinfo"},"value":[1,"10"]},
            {"metric":{"__name__":"http_requests_total","code":"500","workload":"podinfo"},"value":[1,"1"]}]}}"#;
        let err = parse(200, body).unwrap_err();
        assert!(matches!(err, MetricError::SeveralSeries { count: 2, .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains(r#"http_requests_total{code="200",workload="podinfo"}"#),
            "{err}"
        );
    }

    #[test]
    fn nan_and_infinities_are_not_numbers_to_judge() {
        for (text, infinite) in [
            ("NaN", None),
            ("+Inf", Some(f64::INFINITY)),
            ("-Inf", Some(f64::NEG_INFINITY)),
        ] {
            let body = format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1,"{text}"]}}]}}}}"#
            );
            let err = parse(200, &body).unwrap_err();
            match infinite {
                None => assert!(matches!(err, MetricError::NotANumber { .. }), "{err:?}"),
                Some(expected) => {
                    assert!(
                        matches!(err, MetricError::Infinite { value, .. } if value == expected),
                        "{err:?}"
                    )
                }
            }
        }
        let err = parse(
            200,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}"#,
        )
        .unwrap_err();
        assert!(matches!(err, MetricError::NotANumber { .. }), "{err:?}");
    }

    #[test]
    fn matrix_and_string_results_are_the_wrong_type() {
        for (result_type, result) in [
            ("matrix", r#"[{"metric":{},"values":[[1,"1"],[2,"2"]]}]"#),
            ("string", r#"[1,"hello"]"#),
        ] {
            let body = format!(r#"{{"status":"success","data":{{"resultType":"{result_type}","result":{result}}}}}"#);
            let err = parse(200, &body).unwrap_err();
            assert!(
                matches!(&err, MetricError::WrongResultType { result_type: t, .. } if t == result_type),
                "{err:?}"
            );
        }
    }

    #[test]
    fn a_native_histogram_sample_is_the_wrong_type() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{"count":"3","sum":"1","buckets":[]}]}]}}"#;
        let err = parse(200, body).unwrap_err();
        assert!(matches!(err, MetricError::WrongResultType { .. }), "{err:?}");
    }

    #[test]
    fn a_prometheus_error_carries_its_text() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:10: parse error: unclosed left parenthesis"}"#;
        let err = parse(400, body).unwrap_err();
        assert!(matches!(&err, MetricError::QueryRejected { error_type, .. } if error_type == "bad_data"));
        assert!(err.to_string().contains("unclosed left parenthesis"), "{err}");
        assert!(err.to_string().contains(ADDRESS), "{err}");
    }

    #[test]
    fn an_error_status_without_prometheus_json_quotes_the_body() {
        let err = parse(502, "<html>\n  Bad   Gateway\n</html>").unwrap_err();
        assert!(matches!(err, MetricError::HttpStatus { status: 502, .. }), "{err:?}");
        assert!(err.to_string().contains("<html> Bad Gateway </html>"), "{err}");
        let long = "x".repeat(2000);
        let MetricError::HttpStatus { detail, .. } = parse(500, &long).unwrap_err() else {
            panic!("an HTTP error");
        };
        assert_eq!(detail.len(), 512);
    }

    #[test]
    fn a_body_that_is_not_the_api_json_is_malformed() {
        let err = parse(200, "<html>prometheus</html>").unwrap_err();
        assert!(matches!(err, MetricError::MalformedAnswer { .. }), "{err:?}");
        let err = parse(200, r#"{"status":"success"}"#).unwrap_err();
        assert!(matches!(err, MetricError::MalformedAnswer { .. }), "{err:?}");
        let err = parse(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"many"]}]}}"#,
        )
        .unwrap_err();
        assert!(matches!(err, MetricError::MalformedAnswer { .. }), "{err:?}");
    }

    #[test]
    fn credentials_come_from_the_secret_keys() {
        let secret = |pairs: &[(&str, &str)]| -> BTreeMap<String, ByteString> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect()
        };
        assert_eq!(
            Credentials::from_secret("prom", &secret(&[("username", "eddy"), ("password", "s3cret\n")])).unwrap(),
            Credentials::Basic {
                username: "eddy".into(),
                password: "s3cret".into()
            }
        );
        assert_eq!(
            Credentials::from_secret("prom", &secret(&[("bearerToken", "t0ken")])).unwrap(),
            Credentials::Bearer("t0ken".into())
        );
        assert_eq!(
            Credentials::from_secret("prom", &secret(&[("token", "t0ken")])).unwrap(),
            Credentials::Bearer("t0ken".into())
        );
        let err = Credentials::from_secret("prom", &secret(&[("username", "eddy")])).unwrap_err();
        assert_eq!(err.to_string(), "Secret prom: it has a username but no password");
        let err = Credentials::from_secret("prom", &secret(&[("address", "x")])).unwrap_err();
        assert!(err.to_string().contains("none of the keys"), "{err}");
    }

    #[test]
    fn credentials_never_print() {
        let basic = Credentials::Basic {
            username: "eddy".into(),
            password: "s3cret".into(),
        };
        assert_eq!(format!("{basic:?}"), "Basic(eddy:***)");
        assert_eq!(format!("{:?}", Credentials::Bearer("t0ken".into())), "Bearer(***)");
    }

    #[test]
    fn addresses_are_shown_without_userinfo_or_query() {
        eddy_runtime::install_crypto_provider();
        let client = PrometheusClient::new(
            "https://admin:hunter2@prom.example:9443/prometheus/?token=abc#x",
            None,
            false,
            DEFAULT_TIMEOUT,
        )
        .unwrap();
        assert_eq!(client.address(), "https://prom.example:9443/prometheus");
        assert_eq!(client.endpoint.path(), "/prometheus/api/v1/query");
        let err = PrometheusClient::new("ftp://admin:hunter2@prom?x=1", None, false, DEFAULT_TIMEOUT).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("http or https"), "{err}");
        let err = PrometheusClient::new("http//admin:hunter2@prom:9090?x=1", None, false, DEFAULT_TIMEOUT).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!err.to_string().contains("x=1"), "{err}");
    }

    #[test]
    fn quoted_bodies_lose_the_secret() {
        eddy_runtime::install_crypto_provider();
        let client = PrometheusClient::new(
            ADDRESS,
            Some(Credentials::Bearer("t0ken".into())),
            false,
            DEFAULT_TIMEOUT,
        )
        .unwrap();
        let err = client.blank_secrets(parse(401, "invalid bearer t0ken").unwrap_err());
        assert!(err.to_string().contains("invalid bearer ***"), "{err}");
    }
}
