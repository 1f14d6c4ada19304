//! slack: an incoming webhook (the address is the webhook URL), or `chat.postMessage` with a
//! bot token (Bearer), whose answer carries `ok` and the message's `ts`: later messages about
//! the same object and revision are posted as replies under it (`thread_ts`).

use super::{Delivery, Message, SendError, execute};
use crate::target::Target;

/// Token mode: a bot token is set (the address is then the Web API's `chat.postMessage`).
pub(super) fn is_token_mode(target: &Target) -> bool {
    target.token.is_some()
}

/// The attachment payload Slack (and Discord's Slack-compatible endpoint) take.
pub(super) fn payload(target: &Target, message: &Message, with_fallback: bool) -> serde_json::Value {
    let event = &message.event;
    let color = if message.is_error() { "danger" } else { "good" };
    let fields: Vec<serde_json::Value> = message
        .fields()
        .into_iter()
        .map(|(title, value)| serde_json::json!({"title": title, "value": value, "short": false}))
        .collect();
    let mut attachment = serde_json::json!({
        "color": color,
        "author_name": message.headline(),
        "text": event.message,
        "mrkdwn_in": ["text"],
        "fields": fields,
    });
    if with_fallback {
        let first_line = event.message.lines().next().unwrap_or_default();
        attachment["fallback"] = format!("{}: {first_line}", message.headline()).into();
    }
    let mut payload = serde_json::json!({
        "username": target.username.clone().unwrap_or_else(|| event.reporting_controller.clone()),
        "attachments": [attachment],
    });
    if let Some(channel) = &target.channel {
        payload["channel"] = channel.clone().into();
    }
    if let Some(thread) = &message.thread {
        payload["thread_ts"] = thread.clone().into();
    }
    payload
}

pub(super) async fn send(target: &Target, message: &Message) -> Result<Delivery, SendError> {
    let mut request = target
        .client
        .post(target.address.clone())
        .json(&payload(target, message, true));
    if let Some(token) = &target.token {
        request = request.bearer_auth(token);
    }
    let body = execute(target, request).await?;
    if !is_token_mode(target) {
        return Ok(Delivery::Sent { thread: None });
    }
    // The Web API answers 200 with `ok: false` on failure.
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if answer["ok"].as_bool() != Some(true) {
        let reason = answer["error"].as_str().unwrap_or("no ok in the answer");
        return Err(SendError::Refused {
            address: target.shown_address(),
            reason: target.redactor.redact(reason),
        });
    }
    let thread = message
        .thread
        .clone()
        .or_else(|| answer["ts"].as_str().map(str::to_owned));
    Ok(Delivery::Sent { thread })
}
