//! A real Matrix homeserver (Synapse) as the notification target: a message sent to a room
//! through the client-server API reaches another member, and a send repeated with the same
//! transaction id adds no second message.

use eddy_tests::matrix::Homeserver;

#[tokio::test]
async fn homeserver_delivers_a_room_message_to_another_member() {
    let server = Homeserver::start().await.unwrap();
    let bot = server.register("eddy-bot", "bot-password").await.unwrap();
    let reader = server.register("reader", "reader-password").await.unwrap();
    assert_eq!(bot.user_id, "@eddy-bot:localhost");

    let room = server.create_room(&bot, "deployments").await.unwrap();
    server.join(&reader, &room).await.unwrap();

    let body = "Kustomization apps/frontend: applied revision main@sha1:0123abcd";
    let first = server.send_text(&bot, &room, "eddy-txn-1", body).await.unwrap();
    // A retry with the same transaction id is the same send: Synapse answers with the first
    // event and adds none.
    let retry = server.send_text(&bot, &room, "eddy-txn-1", body).await.unwrap();
    assert_eq!(retry, first);

    let messages = server.messages(&reader, &room).await.unwrap();
    assert_eq!(messages.len(), 1, "exactly one message: {messages:#?}");
    let message = &messages[0];
    assert_eq!(message["event_id"], first.as_str());
    assert_eq!(message["sender"], bot.user_id.as_str());
    assert_eq!(message["content"]["msgtype"], "m.text");
    assert_eq!(message["content"]["body"], body);
}
