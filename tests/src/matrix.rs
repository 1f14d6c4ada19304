//! A real Matrix homeserver for tests: Synapse (matrix-synapse from PyPI, installed into
//! `.cache/synapse` by `tests/matrix/install.sh`) on 127.0.0.1 with its SQLite database, media
//! store, signing key and logs in a temporary directory. It serves only the client-server API
//! (no federation), registers users only through the shared-secret admin API, and has its rate
//! limits raised so that tests are never throttled. Dropping it stops the server.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hmac::{Hmac, KeyInit as _, Mac as _};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::{Value, json};
use sha1::Sha1;

use crate::{free_port, repo_root};

/// How long the first start may take: Synapse creates its database schema then.
const START_LIMIT: Duration = Duration::from_secs(60);

/// Every character but RFC 3986's unreserved ones is percent-encoded in a path segment, so room
/// ids (`!opaque:localhost`), user ids and transaction ids are always one segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A user logged in to the homeserver.
#[derive(Clone, Debug)]
pub struct Session {
    /// The full user id, `@<user>:localhost`.
    pub user_id: String,
    /// The bearer token of the user's device for the client-server API.
    pub access_token: String,
}

/// A running Synapse.
pub struct Homeserver {
    /// The client-server API's address, `127.0.0.1:<port>`.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Child,
    http: reqwest::Client,
    shared_secret: String,
}

/// The Python interpreter of the Synapse virtualenv, or an error saying how to install it.
fn python() -> anyhow::Result<PathBuf> {
    let python = repo_root().join(".cache/synapse/bin/python");
    if !python.exists() {
        bail!(
            "matrix-synapse is not installed ({} is missing): run tests/matrix/install.sh (.ci/run does)",
            python.display()
        );
    }
    Ok(python)
}

/// A random hex string of `bytes` bytes from the kernel.
fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(hex(&buf))
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Rate limit settings that no test reaches.
fn unlimited() -> Value {
    json!({"per_second": 10000, "burst_count": 10000})
}

/// Synapse's configuration (JSON, which is YAML too) for a server on `addr` keeping its state in
/// `dir`.
fn config(dir: &Path, addr: SocketAddr, shared_secret: &str, macaroon_secret: &str) -> Value {
    let path = |name: &str| dir.join(name).display().to_string();
    json!({
        "server_name": "localhost",
        "listeners": [{
            "port": addr.port(),
            "bind_addresses": [addr.ip().to_string()],
            "type": "http",
            "tls": false,
            "x_forwarded": false,
            "resources": [{"names": ["client"], "compress": false}],
        }],
        "database": {"name": "sqlite3", "args": {"database": path("homeserver.db")}},
        "log_config": path("log.yaml"),
        "media_store_path": path("media"),
        "signing_key_path": path("signing.key"),
        "registration_shared_secret": shared_secret,
        "macaroon_secret_key": macaroon_secret,
        "report_stats": false,
        "enable_registration": false,
        "suppress_key_server_warning": true,
        "trusted_key_servers": [],
        "presence": {"enabled": false},
        "rc_message": unlimited(),
        "rc_registration": unlimited(),
        "rc_login": {
            "address": unlimited(),
            "account": unlimited(),
            "failed_attempts": unlimited(),
        },
        "rc_joins": {"local": unlimited(), "remote": unlimited()},
        "rc_joins_per_room": unlimited(),
        "rc_invites": {
            "per_room": unlimited(),
            "per_user": unlimited(),
            "per_issuer": unlimited(),
        },
        "rc_room_creation": unlimited(),
        "rc_admin_redaction": unlimited(),
        "rc_3pid_validation": unlimited(),
        "rc_presence": {"per_user": unlimited()},
    })
}

/// Python logging configuration: warnings and worse, to `log` only.
fn log_config(log: &Path) -> Value {
    json!({
        "version": 1,
        "formatters": {"precise": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"file": {
            "class": "logging.FileHandler",
            "filename": log.display().to_string(),
            "formatter": "precise",
        }},
        "root": {"level": "WARNING", "handlers": ["file"]},
        "disable_existing_loggers": false,
    })
}

impl Homeserver {
    /// Writes a configuration into a temporary directory, generates the signing key, starts
    /// Synapse with `server_name` `localhost` on a free port of 127.0.0.1, and waits until its
    /// client-server API answers.
    pub async fn start() -> anyhow::Result<Self> {
        eddy_runtime::install_crypto_provider();
        let python = python()?;
        let dir = tempfile::tempdir()?;
        let addr = free_port();
        let shared_secret = random_hex(32)?;
        let config_path = dir.path().join("homeserver.yaml");
        std::fs::write(
            &config_path,
            serde_json::to_string_pretty(&config(dir.path(), addr, &shared_secret, &random_hex(32)?))?,
        )?;
        std::fs::write(
            dir.path().join("log.yaml"),
            serde_json::to_string_pretty(&log_config(&dir.path().join("homeserver.log")))?,
        )?;

        let output = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "--generate-keys", "-c"])
            .arg(&config_path)
            .current_dir(dir.path())
            .output()
            .context("running synapse.app.homeserver --generate-keys")?;
        if !output.status.success() {
            bail!(
                "synapse --generate-keys failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }

        let stderr = std::fs::File::create(dir.path().join("stderr.log"))?;
        let child = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&config_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stderr.try_clone()?)
            .stderr(stderr)
            .spawn()
            .context("starting synapse.app.homeserver")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        let mut server = Self {
            addr,
            dir,
            child,
            http,
            shared_secret,
        };

        let deadline = Instant::now() + START_LIMIT;
        let versions = format!("{}/_matrix/client/versions", server.base_url());
        loop {
            if let Ok(response) = server.http.get(&versions).send().await
                && response.status().is_success()
            {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("synapse exited ({status}) before it answered; logs:\n{}", server.logs());
            }
            if Instant::now() > deadline {
                bail!(
                    "synapse did not answer on {} within {START_LIMIT:?}; logs:\n{}",
                    server.addr,
                    server.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:<port>`, the base URL of the client-server API.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What Synapse logged so far: its output and its warnings.
    pub fn logs(&self) -> String {
        ["stderr.log", "homeserver.log"]
            .iter()
            .map(|name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("")
    }

    /// The URL of the path made of `segments`, each percent-encoded, and `query` (already
    /// encoded, without `?`) when not empty.
    fn url(&self, segments: &[&str], query: &str) -> String {
        let mut url = self.base_url();
        for segment in segments {
            url.push('/');
            url.extend(utf8_percent_encode(segment, SEGMENT));
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    /// Sends a request, as `session` when given, and returns the JSON answer; an answer other
    /// than 2xx is an error carrying Matrix's `errcode` and `error`.
    async fn call(
        &self,
        method: Method,
        url: String,
        session: Option<&Session>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.request(method.clone(), &url);
        if let Some(session) = session {
            request = request.bearer_auth(&session.access_token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("reading the answer to {method} {url}"))?;
        if !status.is_success() {
            bail!("{method} {url}: {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {url} answered no JSON: {text}"))
    }

    /// Registers `user` (not an admin) with `password` through the shared-secret registration
    /// admin API (`/_synapse/admin/v1/register`: a nonce, then the HMAC-SHA1 of
    /// nonce, user, password and `notadmin` keyed with the shared secret) and returns its session.
    pub async fn register(&self, user: &str, password: &str) -> anyhow::Result<Session> {
        let url = self.url(&["_synapse", "admin", "v1", "register"], "");
        let nonce = self.call(Method::GET, url.clone(), None, None).await?;
        let nonce = nonce["nonce"].as_str().context("no nonce in the registration answer")?;
        let mut mac =
            Hmac::<Sha1>::new_from_slice(self.shared_secret.as_bytes()).expect("HMAC takes keys of any length");
        for part in [nonce, user, password] {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        mac.update(b"notadmin");
        let body = json!({
            "nonce": nonce,
            "username": user,
            "password": password,
            "admin": false,
            "mac": hex(&mac.finalize().into_bytes()),
        });
        let registered = self
            .call(Method::POST, url, None, Some(body))
            .await
            .with_context(|| format!("registering {user}"))?;
        let field = |name: &str| -> anyhow::Result<String> {
            Ok(registered[name]
                .as_str()
                .with_context(|| format!("no {name} in the registration answer: {registered}"))?
                .to_owned())
        };
        Ok(Session {
            user_id: field("user_id")?,
            access_token: field("access_token")?,
        })
    }

    /// Creates a room named `name` as `session`, with preset `public_chat` so that any user of
    /// the server can join it without an invite, and returns its room id.
    pub async fn create_room(&self, session: &Session, name: &str) -> anyhow::Result<String> {
        let url = self.url(&["_matrix", "client", "v3", "createRoom"], "");
        let body = json!({"name": name, "preset": "public_chat"});
        let created = self
            .call(Method::POST, url, Some(session), Some(body))
            .await
            .with_context(|| format!("creating room {name}"))?;
        Ok(created["room_id"]
            .as_str()
            .with_context(|| format!("no room_id in the createRoom answer: {created}"))?
            .to_owned())
    }

    /// Joins `session`'s user to `room_id`.
    pub async fn join(&self, session: &Session, room_id: &str) -> anyhow::Result<()> {
        let url = self.url(&["_matrix", "client", "v3", "rooms", room_id, "join"], "");
        self.call(Method::POST, url, Some(session), Some(json!({})))
            .await
            .with_context(|| format!("{} joining {room_id}", session.user_id))?;
        Ok(())
    }

    /// Sends an `m.text` `m.room.message` with `body` to `room_id` as `session`, with
    /// transaction id `txn_id`, and returns the event id. Sending again with the same session
    /// and transaction id returns the first event's id and adds no event.
    pub async fn send_text(
        &self,
        session: &Session,
        room_id: &str,
        txn_id: &str,
        body: &str,
    ) -> anyhow::Result<String> {
        let url = self.url(
            &[
                "_matrix",
                "client",
                "v3",
                "rooms",
                room_id,
                "send",
                "m.room.message",
                txn_id,
            ],
            "",
        );
        let content = json!({"msgtype": "m.text", "body": body});
        let sent = self
            .call(Method::PUT, url, Some(session), Some(content))
            .await
            .with_context(|| format!("sending to {room_id} with transaction {txn_id}"))?;
        Ok(sent["event_id"]
            .as_str()
            .with_context(|| format!("no event_id in the send answer: {sent}"))?
            .to_owned())
    }

    /// The `m.room.message` events of `room_id` that `session` can see, oldest first, at most the
    /// newest 100: each event's JSON as the client-server API returns it (`event_id`, `sender`,
    /// `content`, with `m.relates_to` inside `content` for replies and edits, and `unsigned`).
    pub async fn messages(&self, session: &Session, room_id: &str) -> anyhow::Result<Vec<Value>> {
        let url = self.url(
            &["_matrix", "client", "v3", "rooms", room_id, "messages"],
            "dir=b&limit=100",
        );
        let page = self
            .call(Method::GET, url, Some(session), None)
            .await
            .with_context(|| format!("reading the messages of {room_id}"))?;
        let chunk = page["chunk"]
            .as_array()
            .with_context(|| format!("no chunk in the messages answer: {page}"))?;
        // dir=b pages backwards from the newest event.
        Ok(chunk
            .iter()
            .rev()
            .filter(|event| event["type"] == "m.room.message")
            .cloned()
            .collect())
    }
}

impl Drop for Homeserver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
