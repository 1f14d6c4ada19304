//! github: a commit status on the event's commit (`POST /repos/{owner}/{repo}/statuses/{sha}`),
//! one context per object, pending while it progresses, success or failure when it ends. The
//! address is the repository URL; github.com uses api.github.com, any other host its GitHub
//! Enterprise API under `/api/v3`. A status the commit already has (the newest one of the
//! context with the same state and description, as GitHub lists them newest first) is not posted
//! again: a restart, another replica or a repeated event does not pile up identical statuses.

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
    let api = |path: String| {
        let mut url = target.address.clone();
        if url.host_str() == Some("github.com") {
            let _ = url.set_host(Some("api.github.com"));
            url.set_path(&path);
        } else {
            url.set_path(&format!("/api/v3{path}"));
        }
        url
    };
    let description: String = reason_words(&message.event.reason)
        .chars()
        .take(MAX_DESCRIPTION)
        .collect();
    let status = serde_json::json!({
        "state": state(message),
        "context": commit_status_context(target, &message.event),
        "description": description,
    });
    let request = |method: reqwest::Method, url: reqwest::Url| {
        let request = target
            .client
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        match &target.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    };
    let mut listing = api(format!("/repos/{repository}/commits/{sha}/statuses"));
    listing.set_query(Some("per_page=100"));
    let existing = execute(target, request(reqwest::Method::GET, listing)).await?;
    if already_set(&existing, &status) {
        return Ok(Delivery::Skipped("the commit already has this status"));
    }
    let post = api(format!("/repos/{repository}/statuses/{sha}"));
    execute(target, request(reqwest::Method::POST, post).json(&status)).await?;
    Ok(Delivery::Sent { thread: None })
}

/// Whether the newest status of `status`'s context in `listed` (GitHub's answer to listing a
/// commit's statuses, newest first) has its state and description. An answer that is not a list
/// says nothing is set.
fn already_set(listed: &[u8], status: &serde_json::Value) -> bool {
    let Ok(serde_json::Value::Array(listed)) = serde_json::from_slice(listed) else {
        return false;
    };
    listed
        .iter()
        .find(|existing| existing["context"] == status["context"])
        .is_some_and(|newest| newest["state"] == status["state"] && newest["description"] == status["description"])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_the_newest_status_of_the_context_counts() {
        let status = json!({"state": "success", "context": "kustomization/web/1", "description": "applied"});
        let listed = |items: serde_json::Value| serde_json::to_vec(&items).unwrap();
        assert!(already_set(
            &listed(json!([
                {"state": "success", "context": "other", "description": "x"},
                {"state": "success", "context": "kustomization/web/1", "description": "applied"},
                {"state": "failure", "context": "kustomization/web/1", "description": "health check failed"},
            ])),
            &status
        ));
        // The failure is newer: the success must be posted again.
        assert!(!already_set(
            &listed(json!([
                {"state": "failure", "context": "kustomization/web/1", "description": "health check failed"},
                {"state": "success", "context": "kustomization/web/1", "description": "applied"},
            ])),
            &status
        ));
        assert!(!already_set(
            &listed(json!([{"state": "success", "context": "kustomization/web/1", "description": "other words"}])),
            &status
        ));
        assert!(!already_set(&listed(json!([])), &status));
        assert!(!already_set(b"{\"message\": \"Not Found\"}", &status));
        assert!(!already_set(b"not json", &status));
    }
}
