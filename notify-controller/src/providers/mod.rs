//! The services a Provider sends to: one module per type, each a `send` that turns a
//! [`Message`] into that service's documented request. [`send`] is the registry; adding a
//! service is one module and one line there (and one variant of `ProviderType`).

mod discord;
mod generic;
mod github;
mod gitlab;
mod grafana;
mod matrix;
mod msteams;
mod slack;

use std::time::Duration;

use reqwest::{RequestBuilder, StatusCode};

use eddy_api::notify::ProviderType;

use crate::event::{Event, EventSeverity};
use crate::target::Target;

/// One notification: the event (metadata merged with the Alert's), how to present it, and the
/// thread it belongs to.
#[derive(Clone, Debug)]
pub struct Message {
    /// The event, its metadata merged with the Alert's.
    pub event: Event,
    /// The object is healthy again after an error sent before (`alertOn: change`).
    pub recovered: bool,
    /// The service's id of the first message about this object and revision, to reply under.
    pub thread: Option<String>,
    /// Stable id of this message, the same on every retry (Matrix's transaction id).
    pub id: String,
}

impl Message {
    /// The first line: what happened to which object.
    pub fn headline(&self) -> String {
        if self.recovered {
            format!("{} recovered", self.event.title())
        } else {
            self.event.title()
        }
    }

    /// Whether the message reports a failure.
    pub fn is_error(&self) -> bool {
        self.event.severity == EventSeverity::Error
    }

    /// Metadata shown as fields: `summary` first, then the rest sorted.
    pub fn fields(&self) -> Vec<(&str, &str)> {
        let metadata = &self.event.metadata;
        let summary = metadata.get_key_value("summary");
        summary
            .into_iter()
            .chain(metadata.iter().filter(|(k, _)| k.as_str() != "summary"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// Plain text: headline, message, fields as `- key: value` lines.
    pub fn plain_text(&self) -> String {
        let mut text = format!("{}\n{}", self.headline(), self.event.message);
        for (key, value) in self.fields() {
            text.push_str(&format!("\n- {key}: {value}"));
        }
        text
    }
}

/// What a send achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Delivered; `thread` is the id later messages of the same thread reply under.
    Sent {
        /// Thread root id, where the service has threads.
        thread: Option<String>,
    },
    /// Nothing to send for this service (a commit status without a commit, or a progress
    /// event a service does not show).
    Skipped(&'static str),
}

/// Why a send failed. Every text is already redacted.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum SendError {
    /// The service answered with an error status.
    #[error("{address} answered {status}{detail}")]
    Status {
        /// The masked address.
        address: String,
        /// HTTP status.
        status: u16,
        /// `: <body excerpt>`, or empty.
        detail: String,
        /// The service's Retry-After.
        retry_after: Option<Duration>,
        /// A 403 that is a rate limit (GitHub's `x-ratelimit-remaining: 0`).
        rate_limited: bool,
    },
    /// The request did not complete (connect, TLS, timeout, redirect refused).
    #[error("sending to {address}: {reason}")]
    Transport {
        /// The masked address.
        address: String,
        /// What failed.
        reason: String,
        /// A timeout, as opposed to a refusal.
        timed_out: bool,
        /// The request could not even be built (a header value the event made invalid):
        /// retrying cannot help.
        malformed: bool,
    },
    /// The service accepted the request but reported failure in its body (Slack's `ok: false`).
    #[error("{address} refused the message: {reason}")]
    Refused {
        /// The masked address.
        address: String,
        /// What it said.
        reason: String,
    },
}

impl SendError {
    /// Whether trying again may succeed: 429, 5xx, and transport failures.
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Status {
                status, rate_limited, ..
            } => *status == 429 || *status >= 500 || *rate_limited,
            SendError::Transport { malformed, .. } => !malformed,
            SendError::Refused { .. } => false,
        }
    }

    /// How long the service asked to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Sends `message` through `target`.
pub async fn send(target: &Target, message: &Message) -> Result<Delivery, SendError> {
    match target.provider_type {
        ProviderType::Slack => slack::send(target, message).await,
        ProviderType::Discord => discord::send(target, message).await,
        ProviderType::Msteams => msteams::send(target, message).await,
        ProviderType::Matrix => matrix::send(target, message).await,
        ProviderType::Generic | ProviderType::GenericHmac => generic::send(target, message).await,
        ProviderType::Github => github::send(target, message).await,
        ProviderType::Gitlab => gitlab::send(target, message).await,
        ProviderType::Grafana => grafana::send(target, message).await,
    }
}

/// Whether a service of `provider_type` threads messages (and so returns a thread id).
pub fn threads(target: &Target) -> bool {
    match target.provider_type {
        ProviderType::Matrix => true,
        ProviderType::Slack => slack::is_token_mode(target),
        _ => false,
    }
}

/// Most bytes of an error body quoted in a failure.
const MAX_QUOTED_BODY: usize = 300;

/// Adds the Secret's headers, sends, and turns a non-2xx answer into a [`SendError`]. Returns
/// the response body of a success.
pub(crate) async fn execute(target: &Target, request: RequestBuilder) -> Result<Vec<u8>, SendError> {
    let address = target.shown_address();
    let request = request.headers(target.headers.clone());
    let response = request.send().await.map_err(|err| transport(target, &err))?;
    let status = response.status();
    let retry_after = retry_after(&response);
    let rate_limited = status == StatusCode::FORBIDDEN
        && response
            .headers()
            .get("x-ratelimit-remaining")
            .is_some_and(|remaining| remaining.as_bytes() == b"0");
    let body = read_bounded(target, response).await?;
    if status.is_success() {
        return Ok(body);
    }
    // Redact the whole answer first: a secret cut in two by the excerpt would not be found.
    let answer = target.redactor.redact(&String::from_utf8_lossy(&body));
    let excerpt: String = answer.trim().chars().take(MAX_QUOTED_BODY).collect();
    Err(SendError::Status {
        address,
        status: status.as_u16(),
        detail: if excerpt.is_empty() {
            String::new()
        } else {
            format!(": {excerpt}")
        },
        retry_after: (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() || rate_limited)
            .then_some(retry_after)
            .flatten(),
        rate_limited,
    })
}

/// Most bytes of a service's answer read; the rest is not needed (ids, `ok`, an error text).
const MAX_ANSWER: usize = 64 * 1024;

async fn read_bounded(target: &Target, mut response: reqwest::Response) -> Result<Vec<u8>, SendError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|err| transport(target, &err))? {
        let room = MAX_ANSWER - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER {
            break;
        }
    }
    Ok(body)
}

fn transport(target: &Target, err: &reqwest::Error) -> SendError {
    // reqwest's text names the URL; the URL-less error and its causes do not.
    let mut reason = err_chain(err);
    reason = target.redactor.redact(&reason);
    SendError::Transport {
        address: target.shown_address(),
        reason,
        timed_out: err.is_timeout(),
        malformed: err.is_builder(),
    }
}

fn err_chain(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "cannot connect".to_owned()
    } else if err.is_redirect() {
        "redirect refused".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The Retry-After header in seconds (the HTTP-date form is rare for these services and is
/// treated as absent, falling back to backoff).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A reason as words: `ReconciliationSucceeded` -> `reconciliation succeeded`.
pub(crate) fn reason_words(reason: &str) -> String {
    let mut words = String::with_capacity(reason.len() + 4);
    for (i, c) in reason.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            words.push(' ');
        }
        words.extend(c.to_lowercase());
    }
    words
}

/// The commit-status context of an event: `<kind>/<name>/<first part of the Provider's UID>`,
/// lower-case, as Flux names it, so one object has one status line per commit.
pub(crate) fn commit_status_context(target: &Target, event: &Event) -> String {
    let uid = target.uid.split('-').next().unwrap_or_default();
    format!("{}/{}/{}", event.object.kind, event.object.name, uid).to_lowercase()
}

/// The repository path (`owner/repo`, `group/sub/project`) of a Git host URL, without `.git`.
pub(crate) fn repository_path(target: &Target) -> Option<String> {
    let path = target
        .address
        .path()
        .trim_matches('/')
        .trim_end_matches(".git")
        .to_owned();
    (path.split('/').filter(|s| !s.is_empty()).count() >= 2).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_words() {
        assert_eq!(reason_words("ReconciliationSucceeded"), "reconciliation succeeded");
        assert_eq!(reason_words("HealthCheckFailed"), "health check failed");
    }
}
