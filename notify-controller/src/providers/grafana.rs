//! grafana: one annotation per event (`POST /api/annotations`), the deployment markers people
//! put on dashboards: the text names the object and says what happened, the tags let a
//! dashboard filter by controller, kind, namespace and name.

use super::{Delivery, Message, SendError, execute};
use crate::target::Target;

/// The annotation.
pub fn payload(message: &Message) -> serde_json::Value {
    let event = &message.event;
    let mut tags = vec![
        "eddy".to_owned(),
        event.reporting_controller.clone(),
        format!("kind:{}", event.object.kind),
        format!("namespace:{}", event.object.namespace),
        format!("name:{}", event.object.name),
    ];
    for (key, value) in message.fields() {
        tags.push(format!("{key}:{value}"));
    }
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    serde_json::json!({
        "time": time,
        "text": format!("{}: {}", message.headline(), event.message),
        "tags": tags,
    })
}

pub(super) async fn send(target: &Target, message: &Message) -> Result<Delivery, SendError> {
    let mut request = target.client.post(target.address.clone()).json(&payload(message));
    if let Some(token) = &target.token {
        request = request.bearer_auth(token);
    } else if let Some((user, password)) = &target.basic {
        request = request.basic_auth(user, Some(password));
    }
    execute(target, request).await?;
    Ok(Delivery::Sent { thread: None })
}
