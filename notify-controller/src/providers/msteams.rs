//! msteams: a Microsoft Teams (Workflows) webhook taking an Adaptive Card 1.4: the object as a
//! large heading, the message (in the attention colour for errors), and the metadata as facts.

use super::{Delivery, Message, SendError, execute};
use crate::target::Target;

/// The Adaptive Card message.
pub fn payload(message: &Message) -> serde_json::Value {
    let facts: Vec<serde_json::Value> = message
        .fields()
        .into_iter()
        .map(|(title, value)| serde_json::json!({"title": title, "value": value}))
        .collect();
    let mut text = serde_json::json!({"type": "TextBlock", "text": message.event.message, "wrap": true});
    if message.is_error() {
        text["color"] = "attention".into();
    }
    serde_json::json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "msteams": {"width": "Full"},
                "body": [{
                    "type": "Container",
                    "items": [
                        {"type": "TextBlock", "text": message.headline(), "size": "large", "weight": "bolder", "wrap": true},
                        text,
                        {"type": "FactSet", "facts": facts},
                    ],
                }],
            },
        }],
    })
}

pub(super) async fn send(target: &Target, message: &Message) -> Result<Delivery, SendError> {
    let request = target.client.post(target.address.clone()).json(&payload(message));
    execute(target, request).await?;
    Ok(Delivery::Sent { thread: None })
}
