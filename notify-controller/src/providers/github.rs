//! github: a commit status on the event's commit (`POST /repos/{owner}/{repo}/statuses/{sha}`),
//! one context per object, pending while it progresses, success or failure when it ends. The
//! address is the repository URL; github.com uses api.github.com, any other host its GitHub
//! Enterprise API under `/api/v3`.

use super::{Delivery, Message, SendError, commit_status_context, execute, reason_words, repository_path};
use crate::target::Target;

/// GitHub's limit on a status description.
const MAX_DESCRIPTION: usize = 140;

/// The status's state: pending while the object progresses, else from the severity.
pub fn state(message: &Message) -> &'static str {
    if message.is_error() {
        "failure"
    } else if message.event.reason.starts_with("Progressing") {
        "pending"
    } else {
        "success"
    }
}

pub(super) async fn send(target: &Target, message: &Message) -> Result<Delivery, SendError> {
    let Some(sha) = message.event.commit() else {
        return Ok(Delivery::Skipped("the event names no commit"));
    };
    let Some(repository) = repository_path(target) else {
        return Err(SendError::Refused {
            address: target.shown_address(),
            reason: "the address is not a repository URL (https://<host>/<owner>/<repo>)".into(),
        });
    };
    let mut url = target.address.clone();
    let path = format!("/repos/{repository}/statuses/{sha}");
    if url.host_str() == Some("github.com") {
        let _ = url.set_host(Some("api.github.com"));
        url.set_path(&path);
    } else {
        url.set_path(&format!("/api/v3{path}"));
    }
    let description: String = reason_words(&message.event.reason)
        .chars()
        .take(MAX_DESCRIPTION)
        .collect();
    let body = serde_json::json!({
        "state": state(message),
        "context": commit_status_context(target, &message.event),
        "description": description,
    });
    let mut request = target
        .client
        .post(url)
        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .json(&body);
    if let Some(token) = &target.token {
        request = request.bearer_auth(token);
    }
    execute(target, request).await?;
    Ok(Delivery::Sent { thread: None })
}
