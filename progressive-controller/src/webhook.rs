//! Canary webhooks: POSTs Flagger's payload to a hook's URL and turns the answer into a
//! [`HookOutcome`] ([`deliver`]) or the [`CheckResult`] made of it ([`call`]), which the
//! controller acts on (a gate opens, a rollback starts, a failed check counts) and stores in
//! `status.lastChecks`. The payload comes from the Canary and its status ([`Payload`]); the hook
//! adds its `type` and `metadata`.
//!
//! A 2xx answer passes (from a `rollback` hook: asks for the rollback); anything else fails,
//! quoting the status and the first 512 bytes of the body. Each attempt has the hook's timeout;
//! `retries` extra attempts follow a short backoff when the failure may pass (no answer, 429, a
//! 5xx other than 501). Redirects are not followed. Neither the URL's userinfo nor its query
//! string (where tokens tend to live) is ever logged or returned: messages show
//! `scheme://host:port/path`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use reqwest::{StatusCode, Url};
use serde::Serialize;

use eddy_api::progressive::{CanaryPhase, CanaryWebhook, CheckResult, WebhookType};

use crate::metrics::prometheus::error_chain;

/// Most bytes of an answer's body quoted in a failure.
pub const MAX_QUOTED_BODY: usize = 512;

/// The most extra attempts a hook gets, whatever it asks (the API's bound too).
const MAX_RETRIES: u32 = 10;

/// Wait before the first retry; doubled for each next one, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The release a hook is called for; [`call`] adds the hook's own `type` and `metadata`.
#[derive(Clone, Debug, PartialEq)]
pub struct Payload {
    /// The Canary's name.
    pub name: String,
    /// The Canary's namespace.
    pub namespace: String,
    /// The phase of the release.
    pub phase: Option<CanaryPhase>,
    /// The revision under analysis (the controller's `decide::checksum`).
    pub checksum: String,
    /// The event forwarded, for `event` hooks.
    pub event: Option<EventDetails>,
}

/// An event of the release forwarded to `event` hooks.
#[derive(Clone, Debug, PartialEq)]
pub struct EventDetails {
    /// The event's message.
    pub message: String,
    /// The event's reason, e.g. `Promoted`.
    pub reason: String,
    /// The Kubernetes event type: `Normal` or `Warning`.
    pub event_type: &'static str,
}

/// The JSON body of a hook call: Flagger's `CanaryWebhookPayload`.
#[derive(Serialize)]
struct Body<'a> {
    name: &'a str,
    namespace: &'a str,
    phase: Option<CanaryPhase>,
    checksum: &'a str,
    #[serde(rename = "type")]
    hook_type: WebhookType,
    metadata: BTreeMap<String, String>,
}

/// The body of a call of `hook` with `payload`, `timestamp` being the time of the call.
///
/// `metadata` is the hook's; for an event it also has `eventMessage`, `eventType` and
/// `timestamp` (milliseconds since the epoch), where Flagger puts them, and `eventReason`. The event's keys
/// win over hook metadata keys of the same name, as in Flagger.
fn request_body<'a>(hook: &CanaryWebhook, payload: &'a Payload, timestamp: Timestamp) -> Body<'a> {
    let mut metadata = hook.metadata.clone();
    if let Some(event) = &payload.event {
        metadata.extend([
            ("eventMessage".to_owned(), event.message.clone()),
            ("eventReason".to_owned(), event.reason.clone()),
            ("eventType".to_owned(), event.event_type.to_owned()),
            ("timestamp".to_owned(), timestamp.as_millisecond().to_string()),
        ]);
    }
    Body {
        name: &payload.name,
        namespace: &payload.namespace,
        phase: payload.phase,
        checksum: &payload.checksum,
        hook_type: hook.hook_type,
        metadata,
    }
}

/// What calling a hook gave: the report of [`deliver`].
#[derive(Clone, Debug, PartialEq)]
pub struct HookOutcome {
    /// The hook's name.
    pub name: String,
    /// The hook's type.
    pub hook_type: WebhookType,
    /// The HTTP status of the last answer; `None` when there was none.
    pub status: Option<u16>,
    /// Attempts made: 1 plus the retries used; 0 when the hook could not be called at all.
    pub attempts: u32,
    /// Whether the last answer was a 2xx.
    pub passed: bool,
    /// Why it did not pass: the status and the start of the body, or the transport error.
    pub message: Option<String>,
    /// When the call finished.
    pub time: Time,
}

impl HookOutcome {
    /// Whether a `rollback` hook asks to roll the release back now: it answered 2xx (Flagger's
    /// loadtester answers 200 once its rollback gate is open). Any other answer, and no answer,
    /// is not a request.
    pub fn rollback_requested(&self) -> bool {
        self.hook_type == WebhookType::Rollback && self.passed
    }
}

impl From<HookOutcome> for CheckResult {
    /// The check the controller stores: `passed` is the hook's "yes" (a 2xx answer), so for a
    /// `rollback` hook it means that a rollback was asked for.
    fn from(outcome: HookOutcome) -> Self {
        let message = if outcome.rollback_requested() {
            let status = outcome.status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
            Some(format!("the rollback hook asked for a rollback{status}"))
        } else {
            outcome.message
        };
        CheckResult {
            name: outcome.name,
            value: None,
            passed: outcome.passed,
            message,
            time: Some(outcome.time),
        }
    }
}

/// Calls `hook` with `payload` ([`deliver`]) and returns the check the controller stores.
pub async fn call(hook: &CanaryWebhook, payload: &Payload) -> CheckResult {
    deliver(hook, payload).await.into()
}

/// Why one attempt did not pass.
enum AttemptFailure {
    /// A non-2xx answer, with the start of its body.
    Status(StatusCode, String),
    /// No answer: connect, TLS, timeout.
    Transport { reason: String, retryable: bool },
}

impl AttemptFailure {
    fn retryable(&self) -> bool {
        match self {
            AttemptFailure::Status(status, _) => {
                *status == StatusCode::TOO_MANY_REQUESTS
                    || (status.is_server_error() && *status != StatusCode::NOT_IMPLEMENTED)
            }
            AttemptFailure::Transport { retryable, .. } => *retryable,
        }
    }
}

/// POSTs `payload` to `hook.url`, retrying as the module says, and reports the outcome.
pub async fn deliver(hook: &CanaryWebhook, payload: &Payload) -> HookOutcome {
    let mut outcome = HookOutcome {
        name: hook.name.clone(),
        hook_type: hook.hook_type,
        status: None,
        attempts: 0,
        passed: false,
        message: None,
        time: Time(Timestamp::now()),
    };
    let Ok(url) = Url::parse(hook.url.trim())
        .map_err(drop)
        .and_then(|url| matches!(url.scheme(), "http" | "https").then_some(url).ok_or(()))
    else {
        // Not echoed: an unparsable URL cannot be shown without what may be secret in it.
        outcome.message = Some(format!("webhook {}: the URL is not an http(s) URL", hook.name));
        return outcome;
    };
    let shown = shown_url(&url);
    let timeout = match hook.timeout.to_std() {
        Ok(timeout) if !timeout.is_zero() => timeout,
        _ => {
            outcome.message = Some(format!(
                "webhook {}: invalid timeout {:?}",
                hook.name,
                hook.timeout.as_str()
            ));
            return outcome;
        }
    };
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_danger_accept_invalid_certs(hook.disable_tls)
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            outcome.message = Some(format!(
                "webhook {}: cannot build an HTTP client: {}",
                hook.name,
                err.without_url()
            ));
            return outcome;
        }
    };
    let retries = hook.retries.unwrap_or(0).clamp(0, MAX_RETRIES as i32) as u32;
    let mut backoff = FIRST_BACKOFF;
    loop {
        outcome.attempts += 1;
        let result = attempt(&client, &url, &request_body(hook, payload, Timestamp::now()), timeout).await;
        outcome.time = Time(Timestamp::now());
        let failure = match result {
            Ok(status) => {
                outcome.status = Some(status.as_u16());
                outcome.passed = true;
                outcome.message = None;
                tracing::debug!(
                    hook = %hook.name,
                    url = %shown,
                    status = status.as_u16(),
                    attempts = outcome.attempts,
                    "webhook passed"
                );
                return outcome;
            }
            Err(failure) => failure,
        };
        let retry = failure.retryable() && outcome.attempts <= retries;
        let mut message = match &failure {
            AttemptFailure::Status(status, body) => {
                outcome.status = Some(status.as_u16());
                let redirect = if status.is_redirection() {
                    " (redirects are not followed)"
                } else {
                    ""
                };
                let body = if body.is_empty() {
                    String::new()
                } else {
                    format!(": {body}")
                };
                format!("POST {shown} answered HTTP {}{redirect}{body}", status.as_u16())
            }
            AttemptFailure::Transport { reason, .. } => {
                outcome.status = None;
                format!("POST {shown} failed: {reason}")
            }
        };
        if outcome.attempts > 1 {
            message.push_str(&format!(" (attempt {} of {})", outcome.attempts, retries + 1));
        }
        tracing::debug!(hook = %hook.name, attempts = outcome.attempts, retry, "webhook failed: {message}");
        outcome.message = Some(message);
        if !retry {
            return outcome;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One POST; `Ok` with a 2xx status.
async fn attempt(
    client: &reqwest::Client,
    url: &Url,
    body: &Body<'_>,
    timeout: Duration,
) -> Result<StatusCode, AttemptFailure> {
    let transport = |err: reqwest::Error| {
        let err = err.without_url();
        AttemptFailure::Transport {
            reason: if err.is_timeout() {
                format!("no answer within {}", crate::metrics::builtin::promql_duration(timeout))
            } else {
                error_chain(&err)
            },
            retryable: !err.is_builder(),
        }
    };
    let mut response = client
        .post(url.clone())
        .timeout(timeout)
        .json(body)
        .send()
        .await
        .map_err(transport)?;
    let status = response.status();
    if status.is_success() {
        return Ok(status);
    }
    // Only the start of the body is quoted, so only that much is read; a read error keeps what
    // arrived before it.
    let mut excerpt = Vec::new();
    while excerpt.len() < MAX_QUOTED_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    excerpt.truncate(MAX_QUOTED_BODY);
    Err(AttemptFailure::Status(
        status,
        String::from_utf8_lossy(&excerpt).trim().to_owned(),
    ))
}

/// `url` as messages show it: scheme, host, port and path; no userinfo, query or fragment.
fn shown_url(url: &Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: serde_json::Value) -> CanaryWebhook {
        serde_json::from_value(json).unwrap()
    }

    fn payload() -> Payload {
        Payload {
            name: "podinfo".into(),
            namespace: "shop".into(),
            phase: Some(CanaryPhase::Progressing),
            checksum: "0123abcd".into(),
            event: None,
        }
    }

    fn at() -> Timestamp {
        Timestamp::from_millisecond(1_700_000_000_123).unwrap()
    }

    #[test]
    fn the_body_is_flaggers_payload() {
        let h = hook(serde_json::json!({
            "name": "load-test", "type": "pre-rollout", "url": "http://tester/", "metadata": {"cmd": "hey"}
        }));
        let payload = payload();
        let body = serde_json::to_value(request_body(&h, &payload, at())).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "name": "podinfo", "namespace": "shop", "phase": "Progressing", "checksum": "0123abcd",
                "type": "pre-rollout", "metadata": {"cmd": "hey"}
            })
        );
    }

    #[test]
    fn event_bodies_carry_the_event_in_metadata() {
        let h = hook(serde_json::json!({
            "name": "events", "type": "event", "url": "http://sink/", "metadata": {"team": "shop", "eventMessage": "mine"}
        }));
        let mut payload = payload();
        payload.event = Some(EventDetails {
            message: "Advance podinfo.shop canary weight 10".into(),
            reason: "Progressing".into(),
            event_type: "Normal",
        });
        let body = request_body(&h, &payload, at());
        assert_eq!(body.hook_type, WebhookType::Event);
        assert_eq!(
            body.metadata,
            BTreeMap::from([
                ("eventMessage".into(), "Advance podinfo.shop canary weight 10".into()),
                ("eventReason".into(), "Progressing".into()),
                ("eventType".into(), "Normal".into()),
                ("team".into(), "shop".into()),
                ("timestamp".into(), "1700000000123".into()),
            ])
        );
    }

    #[test]
    fn urls_are_shown_without_userinfo_query_or_fragment() {
        let url = Url::parse("https://user:pa55@hooks.example:8443/gate/check?token=abc#top").unwrap();
        assert_eq!(shown_url(&url), "https://hooks.example:8443/gate/check");
    }

    fn outcome(hook_type: WebhookType, status: Option<u16>, passed: bool, message: Option<&str>) -> HookOutcome {
        HookOutcome {
            name: "gate".into(),
            hook_type,
            status,
            attempts: 1,
            passed,
            message: message.map(str::to_owned),
            time: Time(Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn a_rollback_hook_answering_2xx_requests_a_rollback() {
        let requested = outcome(WebhookType::Rollback, Some(200), true, None);
        assert!(requested.rollback_requested());
        let check = CheckResult::from(requested);
        assert!(check.passed);
        assert_eq!(
            check.message.as_deref(),
            Some("the rollback hook asked for a rollback (HTTP 200)")
        );

        let closed = outcome(
            WebhookType::Rollback,
            Some(403),
            false,
            Some("POST x answered HTTP 403"),
        );
        assert!(!closed.rollback_requested());
        assert!(!CheckResult::from(closed).passed);

        let unreachable = outcome(
            WebhookType::Rollback,
            None,
            false,
            Some("POST x failed: cannot connect"),
        );
        assert!(!unreachable.rollback_requested());
    }

    #[test]
    fn other_hooks_pass_on_2xx_only() {
        let passed = outcome(WebhookType::Rollout, Some(202), true, None);
        assert!(!passed.rollback_requested());
        assert!(CheckResult::from(passed).passed);
        let failed = CheckResult::from(outcome(WebhookType::ConfirmPromotion, Some(403), false, Some("closed")));
        assert!(!failed.passed);
        assert_eq!(failed.message.as_deref(), Some("closed"));
    }

    #[tokio::test]
    async fn a_url_that_does_not_parse_is_not_echoed() {
        let h = hook(serde_json::json!({"name": "bad", "url": "http://user:secret@[::1/x?token=t"}));
        let out = deliver(&h, &payload()).await;
        assert!(!out.passed);
        assert_eq!(out.attempts, 0);
        let message = out.message.unwrap();
        assert!(!message.contains("secret") && !message.contains("token"), "{message}");
    }

    #[test]
    fn retries_are_for_failures_that_may_pass() {
        let status = |code: u16| AttemptFailure::Status(StatusCode::from_u16(code).unwrap(), String::new());
        assert!(status(500).retryable());
        assert!(status(503).retryable());
        assert!(status(429).retryable());
        assert!(!status(501).retryable());
        assert!(!status(403).retryable());
        assert!(!status(302).retryable());
    }
}
