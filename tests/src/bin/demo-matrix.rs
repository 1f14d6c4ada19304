//! The demo's Matrix homeserver: starts Synapse on loopback (see `eddy_tests::matrix`),
//! registers a bot and a reader, creates a room both are in, writes what the demo needs to
//! `<dir>/matrix.env` (base URL, room id, the bot's and the reader's tokens) and keeps Synapse
//! running until it gets SIGTERM or SIGINT.
//!
//!   demo-matrix <dir>

use eddy_tests::matrix::Homeserver;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: demo-matrix <dir>"))?;
    let homeserver = Homeserver::start().await?;
    let bot = homeserver.register("eddy", "eddy-demo-bot").await?;
    let reader = homeserver.register("you", "eddy-demo-reader").await?;
    let room = homeserver.create_room(&bot, "deploys").await?;
    homeserver.join(&reader, &room).await?;
    std::fs::write(
        std::path::Path::new(&dir).join("matrix.env"),
        format!(
            "MATRIX_URL={}\nMATRIX_ROOM='{room}'\nMATRIX_BOT_TOKEN={}\nMATRIX_READER_TOKEN={}\n",
            homeserver.base_url(),
            bot.access_token,
            reader.access_token
        ),
    )?;
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int) = (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    drop(homeserver);
    Ok(())
}
