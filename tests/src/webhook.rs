//! A local HTTP endpoint on 127.0.0.1 standing in for a chat service, dashboard or commit-status
//! API (Slack, Discord, Teams, Grafana, GitHub, GitLab, a generic webhook): it records every
//! request (method, path, headers, body, arrival time) for the test to check against what the
//! service documents, and answers from a script: a status with headers, or a hang. Unscripted,
//! it answers what Slack's Web API would, and, like GitHub, gives the combined status of the
//! commit statuses POSTed to it (`GET .../repos/<owner>/<repo>/commits/<sha>/status`: the latest
//! one per context). Dropping it stops the server.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `POST`, `PUT`, ...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lower-case.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

impl Recorded {
    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("{} {} sent no JSON ({err}): {:?}", self.method, self.path, self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_lowercase()).map(String::as_str)
    }
}

/// How the endpoint answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A status, headers and body.
    Answer(u16, Vec<(String, String)>, String),
    /// Never answer (until the client gives up).
    Hang,
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: &str) -> Self {
        Reply::Answer(200, vec![], body.to_owned())
    }
}

#[derive(Default)]
struct Script {
    requests: Vec<Recorded>,
    next: VecDeque<Reply>,
    default: Option<Reply>,
}

/// A running endpoint.
pub struct WebhookServer {
    /// Where it listens.
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookServer {
    /// Starts an endpoint that answers 200 `{"ok":true,"ts":"<n>"}` (what Slack's Web API
    /// returns; harmless to the others) unless scripted otherwise.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let script = Arc::new(Mutex::new(Script::default()));
        let app = Router::new().fallback(record).with_state(script.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, script, task })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next request with `reply` (queued replies go first, in order).
    pub fn then(&self, reply: Reply) {
        self.script.lock().unwrap().next.push_back(reply);
    }

    /// Answers every unscripted request with `reply`.
    pub fn always(&self, reply: Reply) {
        self.script.lock().unwrap().default = Some(reply);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.script.lock().unwrap().requests.clone()
    }

    /// Waits until `count` requests arrived, and returns them; panics after `limit`.
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + limit;
        loop {
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} received {} request(s) within {limit:?}, expected {count}: {:#?}",
                    self.addr,
                    requests.len(),
                    requests
                        .iter()
                        .map(|r| format!("{} {}", r.method, r.path))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut script = script.lock().unwrap();
        let count = script.requests.len();
        script.requests.push(Recorded {
            method: method.to_string(),
            path: uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                .collect(),
            body: body.to_vec(),
            at: Instant::now(),
        });
        let listing = (method == Method::GET)
            .then(|| commit_statuses(&script.requests, uri.path()))
            .flatten();
        script
            .next
            .pop_front()
            .or_else(|| script.default.clone())
            .unwrap_or_else(|| match listing {
                Some(statuses) => Reply::ok(&statuses),
                None => Reply::ok(&format!(
                    r#"{{"ok":true,"ts":"1700000000.{count:06}","event_id":"$event{count}"}}"#
                )),
            })
    };
    match reply {
        Reply::Answer(status, headers, body) => {
            let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(
                    axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value.parse().unwrap(),
                );
            }
            response
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

/// For GitHub's `GET <prefix>/repos/<owner>/<repo>/commits/<sha>/status`: the combined status of
/// the statuses POSTed to `<prefix>/repos/<owner>/<repo>/statuses/<sha>` so far, the latest one
/// per context, newest first.
fn commit_statuses(requests: &[Recorded], path: &str) -> Option<String> {
    let (repository, rest) = path.split_once("/commits/")?;
    let sha = rest.strip_suffix("/status")?;
    let posted = format!("{repository}/statuses/{sha}");
    let mut latest: Vec<serde_json::Value> = Vec::new();
    for status in requests
        .iter()
        .rev()
        .filter(|r| r.method == "POST" && r.path == posted)
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
    {
        if !latest.iter().any(|seen| seen["context"] == status["context"]) {
            latest.push(status);
        }
    }
    let state = latest.first().map_or("pending".into(), |s| s["state"].clone());
    Some(serde_json::json!({"state": state, "total_count": latest.len(), "statuses": latest}).to_string())
}
