//! discord: Discord's Slack-compatible webhook endpoint (the address gets `/slack` appended
//! when it lacks it), with Slack's attachment payload minus the fallback text.

use super::{Delivery, Message, SendError, execute, slack};
use crate::target::Target;

pub(super) async fn send(target: &Target, message: &Message) -> Result<Delivery, SendError> {
    let mut address = target.address.clone();
    if !address.path().trim_end_matches('/').ends_with("/slack") {
        let path = format!("{}/slack", address.path().trim_end_matches('/'));
        address.set_path(&path);
    }
    let request = target
        .client
        .post(address)
        .json(&slack::payload(target, message, false));
    execute(target, request).await?;
    Ok(Delivery::Sent { thread: None })
}
