//! generic and generic-hmac: the event JSON (Flux's shape, metadata merged with the Alert's)
//! POSTed to the address; generic-hmac adds `X-Signature: sha256=<hex HMAC-SHA256(body, token)>`
//! so the receiver can check it came from here.

use eddy_api::notify::ProviderType;

use super::{Delivery, Message, SendError, execute};
use crate::target::Target;

/// The JSON body: the event as Flux's notification-controller forwards it.
pub fn body(message: &Message) -> serde_json::Value {
    let event = &message.event;
    serde_json::json!({
        "involvedObject": event.object,
        "severity": event.severity,
        "timestamp": event.timestamp,
        "message": event.message,
        "reason": event.reason,
        "metadata": event.metadata,
        "reportingController": event.reporting_controller,
    })
}

pub(super) async fn send(target: &Target, message: &Message) -> Result<Delivery, SendError> {
    let body = serde_json::to_vec(&body(message)).expect("JSON values serialize");
    let mut request = target
        .client
        .post(target.address.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("gotk-component", &message.event.reporting_controller);
    if target.provider_type == ProviderType::GenericHmac
        && let Some(token) = &target.token
    {
        request = request.header("X-Signature", crate::signature::sha256(token, &body));
    }
    if let Some((user, password)) = &target.basic {
        request = request.basic_auth(user, Some(password));
    } else if target.provider_type == ProviderType::Generic
        && let Some(token) = &target.token
    {
        request = request.bearer_auth(token);
    }
    execute(target, request.body(body)).await?;
    Ok(Delivery::Sent { thread: None })
}
