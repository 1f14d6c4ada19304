//! matrix: an `m.room.message` sent to the room in `spec.channel` with the bot's access token,
//! under a transaction id derived from the message, so that a retry of a send whose answer was
//! lost is recognised by the homeserver and never posts twice. Messages about the same object
//! and revision go into one thread (`m.thread` relation to the first).

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::{Delivery, Message, SendError, execute};
use crate::target::Target;

/// The room message's content.
pub fn content(message: &Message) -> serde_json::Value {
    let icon = if message.recovered {
        "✅"
    } else if message.is_error() {
        "🚨"
    } else {
        "💫"
    };
    let mut content = serde_json::json!({
        "msgtype": "m.text",
        "body": format!("{icon} {}", message.plain_text()),
    });
    if let Some(root) = &message.thread {
        content["m.relates_to"] = serde_json::json!({
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": true,
            "m.in_reply_to": {"event_id": root},
        });
    }
    content
}

pub(super) async fn send(target: &Target, message: &Message) -> Result<Delivery, SendError> {
    let room = target.channel.as_deref().unwrap_or_default();
    let mut url = target.address.clone();
    let base = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!(
        "{base}/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
        utf8_percent_encode(room, NON_ALPHANUMERIC),
        utf8_percent_encode(&message.id, NON_ALPHANUMERIC),
    ));
    let mut request = target.client.put(url).json(&content(message));
    if let Some(token) = &target.token {
        request = request.bearer_auth(token);
    }
    let body = execute(target, request).await?;
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let thread = message
        .thread
        .clone()
        .or_else(|| answer["event_id"].as_str().map(str::to_owned));
    Ok(Delivery::Sent { thread })
}
