//! github: a commit status on the event's commit (`POST /repos/{owner}/{repo}/statuses/{sha}`),
//! one context per object, pending while it progresses, success or failure when it ends. The
//! address is the repository URL; github.com uses api.github.com, any other host its GitHub
//! Enterprise API under `/api/v3`. A status the commit already has (the latest one of the
//! context, from the commit's combined status, with the same state and description) is not
//! posted again: a restart or a repeated event does not pile up identical statuses. When that
//! check cannot be made, the status is posted.

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
    let mut combined = api(format!("/repos/{repository}/commits/{sha}/status"));
    combined.set_query(Some("per_page=100"));
    if let Ok(existing) = execute(target, request(reqwest::Method::GET, combined)).await
        && already_set(&existing, &status)
    {
        return Ok(Delivery::Skipped("the commit already has this status"));
    }
    let post = api(format!("/repos/{repository}/statuses/{sha}"));
    execute(target, request(reqwest::Method::POST, post).json(&status)).await?;
    Ok(Delivery::Sent { thread: None })
}

/// Whether the latest status of `status`'s context in `combined` (GitHub's combined status of a
/// commit: `statuses` holds the latest one per context) has its state and description. An
/// answer without that list says nothing is set.
fn already_set(combined: &[u8], status: &serde_json::Value) -> bool {
    let Ok(combined) = serde_json::from_slice::<serde_json::Value>(combined) else {
        return false;
    };
    let Some(latest) = combined["statuses"].as_array() else {
        return false;
    };
    latest
        .iter()
        .find(|existing| existing["context"] == status["context"])
        .is_some_and(|newest| newest["state"] == status["state"] && newest["description"] == status["description"])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_the_latest_status_of_the_context_counts() {
        let status = json!({"state": "success", "context": "kustomization/web/1", "description": "applied"});
        let listed = |items: serde_json::Value| {
            serde_json::to_vec(&json!({"state": "pending", "statuses": items, "total_count": 3})).unwrap()
        };
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
        assert!(!already_set(b"[]", &status));
        assert!(!already_set(b"not json", &status));
    }
}
