//! gitlab: a commit status on the event's commit (`POST /api/v4/projects/<path>/statuses/<sha>`
//! with `PRIVATE-TOKEN`), one `name` per object: running while it progresses, success or failed
//! when it ends. The address is the project URL.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::{Delivery, Message, SendError, commit_status_context, execute, reason_words, repository_path};
use crate::target::Target;

/// The status's state.
pub fn state(message: &Message) -> &'static str {
    if message.is_error() {
        "failed"
    } else if message.event.reason.starts_with("Progressing") {
        "running"
    } else {
        "success"
    }
}

pub(super) async fn send(target: &Target, message: &Message) -> Result<Delivery, SendError> {
    let Some(sha) = message.event.commit() else {
        return Ok(Delivery::Skipped("the event names no commit"));
    };
    let Some(project) = repository_path(target) else {
        return Err(SendError::Refused {
            address: target.shown_address(),
            reason: "the address is not a project URL (https://<host>/<group>/<project>)".into(),
        });
    };
    let mut url = target.address.clone();
    url.set_path("/");
    url.set_query(None);
    url.set_fragment(None);
    // The project path is one path segment, percent-encoded (`group%2Fproject`); set it on the
    // string so the slash encoding is kept as is.
    let url = format!(
        "{}api/v4/projects/{}/statuses/{sha}",
        url.as_str(),
        utf8_percent_encode(&project, NON_ALPHANUMERIC)
    );
    let url = reqwest::Url::parse(&url).map_err(|e| SendError::Refused {
        address: target.shown_address(),
        reason: e.to_string(),
    })?;
    let body = serde_json::json!({
        "state": state(message),
        "name": commit_status_context(target, &message.event),
        "description": reason_words(&message.event.reason),
    });
    let mut request = target.client.post(url).json(&body);
    if let Some(token) = &target.token {
        request = request.header("PRIVATE-TOKEN", token);
    }
    match execute(target, request).await {
        Ok(_) => Ok(Delivery::Sent { thread: None }),
        // GitLab refuses to set the state a status already has; the status is what we wanted.
        Err(SendError::Status {
            status: 400, detail, ..
        }) if detail.contains("Cannot transition status") => {
            Ok(Delivery::Skipped("the commit status already has this state"))
        }
        Err(err) => Err(err),
    }
}
