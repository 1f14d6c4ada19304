//! notify-controller as a process against the local control plane, with local endpoints that
//! check each service's documented request: Alerts select events (severity, lists, duplicate
//! window, change of state), Providers deliver them (Slack threads, Retry-After, a hanging
//! service delays no other), failures show on the Alert, secrets never leak, and Receivers
//! refuse what they should and annotate what they select.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use eddy_api::conditions::{self, READY};
use eddy_api::notify::{Alert, Receiver};
use eddy_api::source::GitRepository;
use eddy_tests::webhook::{Reply, WebhookServer};
use eddy_tests::{ControllerProcess, cluster_namespace, create, delete_namespace, eventually};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// A notify-controller in its own namespace.
pub(crate) struct Notify {
    pub(crate) client: Client,
    pub(crate) ns: String,
    pub(crate) process: ControllerProcess,
    http: reqwest::Client,
}

impl Notify {
    pub(crate) async fn start(prefix: &str, args: &[&str]) -> Self {
        let (client, ns) = cluster_namespace(prefix).await;
        let mut all = vec![
            format!("--leader-election-namespace={ns}"),
            format!("--watch-namespace={ns}"),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let process = ControllerProcess::start("notify-controller", &all).unwrap();
        // Ready once it leads and its listeners are bound: events posted before would be refused.
        eventually(Duration::from_secs(60), "notify-controller ready", || async {
            let (code, _) = process.get(process.health, "/readyz").await?;
            (code == 200).then_some(())
        })
        .await;
        Self {
            client,
            ns,
            process,
            http: reqwest::Client::new(),
        }
    }

    pub(crate) fn events_url(&self) -> String {
        format!("http://{}/", self.process.events.unwrap())
    }

    pub(crate) async fn secret(&self, name: &str, data: Value) {
        let secret: Secret = serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data})).unwrap();
        Api::<Secret>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }

    pub(crate) async fn object(&self, kind: &str, name: &str, spec: Value) {
        let group = if kind == "GitRepository" { "source" } else { "notify" };
        create(
            &self.client,
            &self.ns,
            json!({"apiVersion": format!("{group}.eddy.dev/v1alpha1"), "kind": kind, "metadata": {"name": name}, "spec": spec}),
        )
        .await
        .unwrap_or_else(|err| panic!("creating {kind} {name}: {err}"));
    }

    /// A generic Provider sending to `server`, and an Alert `name` through it with `spec`
    /// merged over "every Kustomization in the namespace"; returns once the Alert is Ready.
    pub(crate) async fn generic_alert(&self, name: &str, server: &WebhookServer, spec: Value) {
        self.object(
            "Provider",
            name,
            json!({"type": "generic", "address": server.url(&format!("/{name}")), "timeout": "2s"}),
        )
        .await;
        self.alert(name, name, spec).await;
    }

    pub(crate) async fn alert(&self, name: &str, provider: &str, spec: Value) {
        let mut full =
            json!({"providerRef": {"name": provider}, "eventSources": [{"kind": "Kustomization", "name": "*"}]});
        for (key, value) in spec.as_object().unwrap() {
            full[key] = value.clone();
        }
        self.object("Alert", name, full).await;
        self.alert_ready(name, "True").await;
    }

    /// Waits until Alert `name`'s Ready is `status`; returns the condition's reason and message.
    pub(crate) async fn alert_ready(&self, name: &str, status: &str) -> (String, String) {
        let alerts: Api<Alert> = Api::namespaced(self.client.clone(), &self.ns);
        self.within(
            Duration::from_secs(60),
            &format!("Alert {name} Ready={status}"),
            || async {
                let alert = alerts.get(name).await.ok()?;
                let ready = conditions::get(&alert.status?.conditions, READY)?.clone();
                (ready.status == status).then_some((ready.reason, ready.message))
            },
        )
        .await
    }

    /// POSTs an event about Kustomization `name` in the namespace; returns the status code.
    pub(crate) async fn post(&self, name: &str, severity: &str, reason: &str, message: &str, revision: &str) -> u16 {
        let event = json!({
            "involvedObject": {"kind": "Kustomization", "namespace": self.ns, "name": name,
                "apiVersion": "apply.eddy.dev/v1alpha1", "uid": "1", "resourceVersion": "1"},
            "severity": severity,
            "timestamp": "2026-12-03T10:00:00Z",
            "message": message,
            "reason": reason,
            "metadata": {"apply.eddy.dev/revision": revision},
            "reportingController": "apply-controller",
        });
        self.post_raw(serde_json::to_vec(&event).unwrap()).await.0
    }

    pub(crate) async fn post_raw(&self, body: Vec<u8>) -> (u16, String) {
        let response = self.http.post(self.events_url()).body(body).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    pub(crate) async fn within<T, F, Fut>(&self, limit: Duration, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        match tokio::time::timeout(limit, eventually(limit, what, check)).await {
            Ok(found) => found,
            Err(_) => panic!(
                "timed out waiting for {what}\n--- notify-controller:\n{}",
                self.process.logs()
            ),
        }
    }
}

/// Waits until `server` received `expected` requests, then a little longer, so that a request
/// that should not come has had time to.
async fn settle(server: &WebhookServer, expected: usize) {
    server.wait_for(expected, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn alerts_select_by_severity_and_lists_and_send_a_repeated_event_once() {
    let notify = Notify::start("notify-select", &["--dedup-window=5m"]).await;
    let (errors, filtered) = (
        WebhookServer::start().await.unwrap(),
        WebhookServer::start().await.unwrap(),
    );
    notify
        .generic_alert("errors", &errors, json!({"eventSeverity": "error"}))
        .await;
    notify
        .generic_alert(
            "filtered",
            &filtered,
            json!({"inclusionList": ["applied"], "exclusionList": ["^ConfigMap/"], "eventMetadata": {"env": "prod"}}),
        )
        .await;

    assert_eq!(
        notify
            .post(
                "web",
                "info",
                "ReconciliationSucceeded",
                "Deployment/shop/web applied",
                "main@sha1:aaa"
            )
            .await,
        202
    );
    assert_eq!(
        notify
            .post(
                "web",
                "info",
                "ReconciliationSucceeded",
                "ConfigMap/shop/web applied",
                "main@sha1:aaa"
            )
            .await,
        202
    );
    assert_eq!(
        notify
            .post("web", "info", "Progressing", "applying", "main@sha1:aaa")
            .await,
        202
    );
    for timing in ["2.1s", "2.5s", "3m1s"] {
        let message = format!("health check failed after {timing}");
        assert_eq!(
            notify
                .post("web", "error", "HealthCheckFailed", &message, "main@sha1:aaa")
                .await,
            202
        );
    }
    // A new revision is a new event even with the same message.
    notify
        .post(
            "web",
            "error",
            "HealthCheckFailed",
            "health check failed after 1s",
            "main@sha1:bbb",
        )
        .await;

    settle(&errors, 2).await;
    let sent = errors.requests();
    assert_eq!(sent.len(), 2, "one error per revision: {sent:#?}");
    let first = sent[0].json();
    assert_eq!(sent[0].method, "POST");
    assert_eq!(sent[0].path, "/errors");
    assert_eq!(sent[0].header("content-type"), Some("application/json"));
    assert_eq!(sent[0].header("gotk-component"), Some("apply-controller"));
    assert_eq!(first["involvedObject"]["name"], "web");
    assert_eq!(first["severity"], "error");
    assert_eq!(first["reason"], "HealthCheckFailed");
    assert_eq!(first["metadata"]["revision"], "main@sha1:aaa");
    assert_eq!(sent[1].json()["metadata"]["revision"], "main@sha1:bbb");

    settle(&filtered, 1).await;
    let sent = filtered.requests();
    assert_eq!(sent.len(), 1, "only the included, not excluded, message: {sent:#?}");
    assert_eq!(sent[0].json()["message"], "Deployment/shop/web applied");
    assert_eq!(
        sent[0].json()["metadata"]["env"],
        "prod",
        "the Alert's metadata is added"
    );

    // Malformed events are refused with the reason.
    let (status, text) = notify.post_raw(b"{\"severity\":".to_vec()).await;
    assert_eq!(status, 400);
    assert!(text.contains("not an event"), "{text}");
    let (status, _) = notify.post_raw(vec![b'x'; 512 * 1024]).await;
    assert_eq!(status, 413);
    delete_namespace(&notify.client, &notify.ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn alert_on_change_sends_an_error_once_and_then_the_recovery() {
    let notify = Notify::start("notify-change", &["--dedup-window=0s"]).await;
    let server = WebhookServer::start().await.unwrap();
    notify
        .generic_alert("changes", &server, json!({"alertOn": "change"}))
        .await;
    // Several objects at once, so that their messages go out in parallel, and the first
    // message refused once (so it is retried after a backoff): each object's recovery must
    // still arrive after its failure.
    server.then(Reply::Answer(503, vec![], "busy".into()));
    let objects: Vec<String> = (0..12).map(|i| format!("web-{i}")).collect();
    for _ in 0..4 {
        for name in &objects {
            notify
                .post(name, "error", "HealthCheckFailed", "web not ready", "main@sha1:aaa")
                .await;
        }
    }
    for _ in 0..2 {
        for name in &objects {
            notify
                .post(name, "info", "ReconciliationSucceeded", "applied", "main@sha1:aaa")
                .await;
        }
    }
    settle(&server, 2 * objects.len() + 1).await;
    let sent = server.requests();
    assert_eq!(
        sent.len(),
        2 * objects.len() + 1,
        "one error and one recovery each, and the retry: {sent:#?}"
    );
    for name in &objects {
        let about: Vec<_> = sent
            .iter()
            .map(|r| r.json())
            .filter(|body| body["involvedObject"]["name"] == name.as_str())
            .collect();
        let (recovery, failures) = about.split_last().expect("messages about each object");
        assert!(
            !failures.is_empty() && failures.iter().all(|body| body["severity"] == "error"),
            "{name}: the failure comes first: {about:#?}"
        );
        assert_eq!(
            recovery["reason"], "ReconciliationSucceeded",
            "{name}: then the recovery"
        );
    }
    delete_namespace(&notify.client, &notify.ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn retry_after_is_honoured_and_a_hanging_provider_delays_no_other() {
    let notify = Notify::start("notify-slow", &["--dedup-window=0s"]).await;
    let (limited, hanging, fast) = (
        WebhookServer::start().await.unwrap(),
        WebhookServer::start().await.unwrap(),
        WebhookServer::start().await.unwrap(),
    );
    limited.then(Reply::Answer(
        429,
        vec![("Retry-After".into(), "2".into())],
        "slow down".into(),
    ));
    hanging.always(Reply::Hang);
    notify.generic_alert("limited", &limited, json!({})).await;
    notify.generic_alert("hanging", &hanging, json!({})).await;
    notify.generic_alert("fast", &fast, json!({})).await;

    let started = Instant::now();
    for i in 0..5 {
        notify
            .post(
                "web",
                "info",
                "ReconciliationSucceeded",
                &format!("applied {i}"),
                &format!("main@sha1:{i}"),
            )
            .await;
    }
    fast.wait_for(5, Duration::from_secs(3)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the fast provider got all 5 while the other hangs, in {:?}",
        started.elapsed()
    );
    let sent = limited.wait_for(6, Duration::from_secs(15)).await;
    let retry = sent[1..]
        .iter()
        .find(|r| r.body == sent[0].body)
        .expect("the refused message is sent again");
    let waited = retry.at.duration_since(sent[0].at);
    assert!(
        waited >= Duration::from_millis(1900),
        "the retry waited for Retry-After: {waited:?}"
    );

    // The hanging provider times out (2 s per attempt), retries, then fails on its Alert.
    let (reason, message) = notify.alert_ready("hanging", "False").await;
    assert_eq!(reason, "NotificationDispatchFailed");
    assert!(message.contains("timed out"), "{message}");
    assert!(
        message.contains(&format!("http://{}/***", hanging.addr)),
        "masked address: {message}"
    );
    let (_, metrics) = notify.process.get(notify.process.metrics, "/metrics").await.unwrap();
    assert!(
        metrics.contains(r#"eddy_notify_failed_total{controller="notify-controller",provider_type="generic"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("eddy_notify_dispatch_latency_seconds_bucket"),
        "{metrics}"
    );
    delete_namespace(&notify.client, &notify.ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn slack_threads_one_revision_and_secrets_never_leak() {
    const MARKER: &str = "MaRkEr7731";
    let notify = Notify::start("notify-secret", &["--dedup-window=0s", "--log-level=debug"]).await;
    let slack = WebhookServer::start().await.unwrap();
    let broken = WebhookServer::start().await.unwrap();
    // A service that echoes the token in its error, as some do.
    broken.always(Reply::Answer(401, vec![], format!("invalid token xoxb-{MARKER}-token")));
    notify
        .secret(
            "slack-bot",
            json!({"address": slack.url(&format!("/api/chat.postMessage?{MARKER}=1")), "token": format!("xoxb-{MARKER}-token")}),
        )
        .await;
    notify
        .secret(
            "broken-hook",
            json!({"address": broken.url(&format!("/services/T0/{MARKER}")), "token": format!("xoxb-{MARKER}-token"),
                   "headers": format!("X-Api-Key: key-{MARKER}\n")}),
        )
        .await;
    notify
        .object(
            "Provider",
            "slack",
            json!({"type": "slack", "channel": "deploys", "secretRef": {"name": "slack-bot"}}),
        )
        .await;
    notify
        .object(
            "Provider",
            "broken",
            json!({"type": "slack", "secretRef": {"name": "broken-hook"}}),
        )
        .await;
    notify.alert("slack", "slack", json!({})).await;
    notify.alert("broken", "broken", json!({})).await;

    notify
        .post("web", "info", "Progressing", "applying main@sha1:aaa", "main@sha1:aaa")
        .await;
    notify
        .post(
            "web",
            "info",
            "ReconciliationSucceeded",
            "Deployment/shop/web configured",
            "main@sha1:aaa",
        )
        .await;
    notify
        .post(
            "web",
            "info",
            "ReconciliationSucceeded",
            "Deployment/shop/web configured",
            "main@sha1:bbb",
        )
        .await;
    let sent = slack.wait_for(3, Duration::from_secs(10)).await;
    for request in &sent {
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer xoxb-{MARKER}-token").as_str())
        );
        let body = request.json();
        assert_eq!(body["channel"], "deploys");
        assert_eq!(body["attachments"][0]["color"], "good");
        assert_eq!(
            body["attachments"][0]["author_name"],
            format!("kustomization/web.{}", notify.ns)
        );
    }
    assert!(
        sent[0].json().get("thread_ts").is_none(),
        "the first message starts the thread"
    );
    assert_eq!(
        sent[1].json()["thread_ts"],
        "1700000000.000000",
        "same object and revision: a reply"
    );
    assert!(
        sent[2].json().get("thread_ts").is_none(),
        "a new revision starts a new thread"
    );

    let (reason, message) = notify.alert_ready("broken", "False").await;
    assert_eq!(reason, "NotificationDispatchFailed");
    assert!(message.contains("401"), "{message}");
    // One request per event, each refused once: wait for the three, then see no retry follow.
    settle(&broken, 3).await;
    assert_eq!(broken.requests().len(), 3, "a 401 is not retried");
    assert_eq!(
        broken.requests()[0].header("x-api-key"),
        Some(format!("key-{MARKER}").as_str())
    );

    let (_, metrics) = notify.process.get(notify.process.metrics, "/metrics").await.unwrap();
    let events = kubectl_json(&["-n", &notify.ns, "get", "events", "-o", "json"]);
    let objects = kubectl_json(&["-n", &notify.ns, "get", "providers,alerts", "-o", "json"]);
    for (place, text) in [
        ("logs", notify.process.logs()),
        ("metrics", metrics),
        ("events", events.clone()),
        ("status", objects),
    ] {
        assert!(!text.contains(MARKER), "{place} contain the marker:\n{text}");
    }
    assert!(
        events.contains("NotificationDispatchFailed"),
        "the failure is an event: {events}"
    );
    delete_namespace(&notify.client, &notify.ns).await;
}

fn kubectl_json(args: &[&str]) -> String {
    let kubeconfig = eddy_tests::kubeconfig_path();
    let output = std::process::Command::new(kubeconfig.parent().unwrap().join("bin/kubectl"))
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// `sha256=<hex>` of `body` keyed with `token`, as GitHub signs deliveries.
pub(crate) fn github_signature(token: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Waits for Receiver `name`'s webhook URL.
pub(crate) async fn webhook_url(notify: &Notify, name: &str) -> String {
    let receivers: Api<Receiver> = Api::namespaced(notify.client.clone(), &notify.ns);
    let path = notify
        .within(Duration::from_secs(30), "the Receiver's webhookPath", || async {
            receivers.get(name).await.ok()?.status?.webhook_path
        })
        .await;
    format!("http://{}{path}", notify.process.hooks.unwrap())
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn receivers_refuse_what_they_should_and_annotate_on_a_genuine_push() {
    let notify = Notify::start("notify-hook", &[]).await;
    notify.secret("hook-token", json!({"token": "s3cret-token"})).await;
    notify
        .object(
            "GitRepository",
            "app",
            json!({"url": "http://127.0.0.1:9/app.git", "interval": "1h", "ref": {"branch": "main"}}),
        )
        .await;
    notify
        .object(
            "Receiver",
            "github",
            json!({"type": "github", "events": ["push"], "secretRef": {"name": "hook-token"},
                   "resources": [{"kind": "GitRepository", "name": "app"}]}),
        )
        .await;
    notify
        .object(
            "Receiver",
            "gitlab",
            json!({"type": "gitlab", "secretRef": {"name": "hook-token"}, "suspend": true,
                   "resources": [{"kind": "GitRepository", "name": "app"}]}),
        )
        .await;
    let url = webhook_url(&notify, "github").await;
    // No connection reuse: the server closes the one an oversize body arrived on.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let body = br#"{"ref":"refs/heads/main","after":"0123"}"#.to_vec();
    let call = |headers: Vec<(&'static str, String)>, body: Vec<u8>, url: String| {
        let http = http.clone();
        async move {
            let mut request = http.post(url).body(body);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            match request.send().await {
                Ok(response) => (response.status().as_u16(), response.text().await.unwrap_or_default()),
                // The server may close the connection while an oversize body is still being sent.
                Err(err) => (0, err.to_string()),
            }
        }
    };
    let signed = |event: &str, body: &[u8]| {
        vec![
            ("X-GitHub-Event", event.to_owned()),
            ("X-Hub-Signature-256", github_signature("s3cret-token", body)),
        ]
    };
    let repos: Api<GitRepository> = Api::namespaced(notify.client.clone(), &notify.ns);
    let requested = || async {
        repos
            .get("app")
            .await
            .unwrap()
            .metadata
            .annotations
            .unwrap_or_default()
            .get("reconcile.eddy.dev/requestedAt")
            .cloned()
    };

    let unknown = format!("http://{}/hook/{}", notify.process.hooks.unwrap(), "0".repeat(64));
    assert_eq!(call(signed("push", &body), body.clone(), unknown).await.0, 404);
    let (status, text) = call(vec![("X-GitHub-Event", "push".into())], body.clone(), url.clone()).await;
    assert_eq!((status, text.trim()), (401, "missing X-Hub-Signature-256"));
    let forged = vec![
        ("X-GitHub-Event", "push".to_owned()),
        ("X-Hub-Signature-256", github_signature("guess", &body)),
    ];
    assert_eq!(call(forged, body.clone(), url.clone()).await.0, 403);
    let malformed = b"{not json".to_vec();
    assert_eq!(
        call(signed("push", &malformed), malformed.clone(), url.clone()).await.0,
        400
    );
    let huge = vec![b' '; 5 * 1024 * 1024];
    let (status, text) = call(signed("push", &huge), huge.clone(), url.clone()).await;
    assert!(
        status == 413 || (status == 0 && text.contains("error")),
        "{status} {text}"
    );
    let (status, text) = call(signed("release", &body), body.clone(), url.clone()).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("nothing done"), "{text}");
    assert_eq!(call(signed("ping", &body), body.clone(), url.clone()).await.0, 200);
    assert_eq!(requested().await, None, "nothing was annotated so far");

    // A body that never finishes arriving is cut off.
    let hooks = notify.process.hooks.unwrap();
    let path = url.trim_start_matches(&format!("http://{hooks}")).to_owned();
    let slow = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(hooks).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nX-GitHub-Event: push\r\n\r\n{{"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    });
    let answer = slow.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // Genuine pushes, a burst of them: each answered, the object annotated.
    let burst: Vec<_> = (0..10)
        .map(|_| call(signed("push", &body), body.clone(), url.clone()))
        .collect();
    for (status, text) in futures::future::join_all(burst).await {
        assert_eq!(status, 200, "{text}");
    }
    assert!(requested().await.is_some(), "the GitRepository was asked to reconcile");

    let suspended = webhook_url(&notify, "gitlab").await;
    let gitlab = vec![
        ("X-Gitlab-Token", "s3cret-token".to_owned()),
        ("X-Gitlab-Event", "Push Hook".to_owned()),
    ];
    assert_eq!(call(gitlab.clone(), body.clone(), suspended.clone()).await.0, 503);
    let receivers: Api<Receiver> = Api::namespaced(notify.client.clone(), &notify.ns);
    receivers
        .patch(
            "gitlab",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await
        .unwrap();
    let (status, _) = notify
        .within(Duration::from_secs(10), "the resumed Receiver to answer", || {
            let call = call(gitlab.clone(), body.clone(), suspended.clone());
            async move { Some(call.await).filter(|(s, _)| *s != 503) }
        })
        .await;
    assert_eq!(status, 200);
    let wrong_token = vec![
        ("X-Gitlab-Token", "s3cret-tokeN".to_owned()),
        ("X-Gitlab-Event", "Push Hook".to_owned()),
    ];
    assert_eq!(call(wrong_token, body.clone(), suspended).await.0, 403);
    delete_namespace(&notify.client, &notify.ns).await;
}

/// The whole loop with nothing waiting for an interval (every interval is an hour): a commit is
/// pushed, GitHub's push webhook reaches the Receiver, source-controller fetches and
/// apply-controller applies the new revision, the message arrives in a Matrix room (a real
/// Synapse, read back as another member) and a success commit status is recorded for the
/// commit; then a broken commit gives an error message and a failure status.
#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_push_webhook_applies_at_once_and_reports_to_matrix_and_the_commit() {
    use eddy_api::apply::Kustomization;
    use eddy_tests::git::GitHttpServer;
    use eddy_tests::matrix::Homeserver;

    let homeserver = Homeserver::start().await.unwrap();
    let bot = homeserver.register("eddy-bot", "bot-password-1").await.unwrap();
    let reader = homeserver.register("reader", "reader-password-1").await.unwrap();
    let room = homeserver.create_room(&bot, "deploys").await.unwrap();
    homeserver.join(&reader, &room).await.unwrap();
    let github = WebhookServer::start().await.unwrap();
    let git = GitHttpServer::start(None).await.unwrap();
    let repo = git.create_repo("app").unwrap();
    let web = |replicas: u32| crate::kustomization::deployment("web", replicas, "nginx:1.27");
    let first = repo.commit(&[("deploy/web.yaml", &web(1))], "first").unwrap();

    let notify = Notify::start("notify-e2e", &[]).await;
    let ns = notify.ns.clone();
    let scope = [
        format!("--leader-election-namespace={ns}"),
        format!("--watch-namespace={ns}"),
        format!("--events-addr={}", notify.events_url()),
    ];
    let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
    let source = ControllerProcess::start("source-controller", &scope).unwrap();
    let own_namespace = format!("--controller-namespace={ns}-controller");
    let mut apply_args = scope.clone();
    apply_args.push(&own_namespace);
    let apply = ControllerProcess::start("apply-controller", &apply_args).unwrap();

    notify.secret("matrix-bot", json!({"token": bot.access_token})).await;
    notify.secret("github-token", json!({"token": "ghp_statuses"})).await;
    notify.secret("hook-token", json!({"token": "push-secret"})).await;
    notify
        .object(
            "Provider",
            "matrix",
            json!({"type": "matrix", "address": homeserver.base_url(), "channel": room, "secretRef": {"name": "matrix-bot"}}),
        )
        .await;
    notify
        .object(
            "Provider",
            "github",
            json!({"type": "github", "address": github.url("/org/app"), "secretRef": {"name": "github-token"}}),
        )
        .await;
    notify.alert("chat", "matrix", json!({})).await;
    notify.alert("status", "github", json!({})).await;
    notify
        .object(
            "Receiver",
            "push",
            json!({"type": "github", "events": ["push"], "secretRef": {"name": "hook-token"},
                   "resources": [{"kind": "GitRepository", "name": "app"}]}),
        )
        .await;
    notify
        .object(
            "GitRepository",
            "app",
            json!({"url": git.url("app"), "interval": "1h", "ref": {"branch": "main"}}),
        )
        .await;
    create(
        &notify.client,
        &ns,
        json!({"apiVersion": "apply.eddy.dev/v1alpha1", "kind": "Kustomization", "metadata": {"name": "app"},
               "spec": {"sourceRef": {"kind": "GitRepository", "name": "app"}, "path": "./deploy", "targetNamespace": ns,
                        "interval": "1h", "retryInterval": "1h", "timeout": "30s", "prune": true}}),
    )
    .await
    .unwrap();
    let kustomizations: Api<Kustomization> = Api::namespaced(notify.client.clone(), &ns);
    let logs = || {
        format!(
            "\n--- notify:\n{}\n--- apply:\n{}\n--- source:\n{}",
            notify.process.logs(),
            apply.logs(),
            source.logs()
        )
    };
    let applied = |revision: String| {
        let kustomizations = kustomizations.clone();
        async move {
            let ks = kustomizations.get("app").await.ok()?;
            let status = ks.status?;
            (conditions::is_ready(&status.conditions, ks.metadata.generation)
                && status.last_applied_revision.as_deref() == Some(revision.as_str()))
            .then_some(())
        }
    };
    let what = "the first revision applied";
    tokio::time::timeout(
        Duration::from_secs(60),
        eventually(Duration::from_secs(60), what, || applied(format!("main@sha1:{first}"))),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}{}", logs()));

    let hook = webhook_url(&notify, "push").await;
    let push = |sha: String| {
        let hook = hook.clone();
        async move {
            let body = serde_json::to_vec(&json!({"ref": "refs/heads/main", "after": sha})).unwrap();
            let response = reqwest::Client::new()
                .post(hook)
                .header("X-GitHub-Event", "push")
                .header("X-GitHub-Delivery", "1")
                .header("Content-Type", "application/json")
                .header("X-Hub-Signature-256", github_signature("push-secret", &body))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
        }
    };

    // A good commit.
    let second = repo.commit(&[("deploy/web.yaml", &web(2))], "scale to 2").unwrap();
    let pushed = Instant::now();
    push(second.clone()).await;
    let what = "the pushed revision applied";
    tokio::time::timeout(
        Duration::from_secs(30),
        eventually(Duration::from_secs(30), what, || applied(format!("main@sha1:{second}"))),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}{}", logs()));
    eprintln!("push to applied: {:?}", pushed.elapsed());
    let said = |needle: String| {
        let (homeserver, reader, room) = (&homeserver, &reader, &room);
        async move {
            let messages = homeserver.messages(reader, room).await.ok()?;
            messages
                .into_iter()
                .filter_map(|m| m["content"]["body"].as_str().map(str::to_owned))
                .find(|body| body.contains(&needle))
        }
    };
    let message = tokio::time::timeout(
        Duration::from_secs(20),
        eventually(
            Duration::from_secs(20),
            "the applied revision in the Matrix room",
            || said(format!("revision: main@sha1:{second}")),
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("no message{}", logs()));
    assert!(message.starts_with(&format!("💫 kustomization/app.{ns}")), "{message}");
    let statuses = |sha: String, state: &'static str| {
        let github = &github;
        async move {
            github
                .requests()
                .into_iter()
                .find(|r| r.path == format!("/api/v3/repos/org/app/statuses/{sha}") && r.json()["state"] == state)
        }
    };
    let status = eventually(Duration::from_secs(20), "a success commit status", || {
        statuses(second.clone(), "success")
    })
    .await;
    assert_eq!(status.method, "POST");
    assert_eq!(status.header("authorization"), Some("Bearer ghp_statuses"));
    let body = status.json();
    assert!(
        body["context"].as_str().unwrap().starts_with("kustomization/app/"),
        "one context per object: {body}"
    );
    assert_eq!(body["description"], "reconciliation succeeded");

    // A broken commit.
    let third = repo
        .commit(&[("deploy/broken.yaml", "kind: [unclosed")], "break it")
        .unwrap();
    push(third.clone()).await;
    let message = tokio::time::timeout(
        Duration::from_secs(30),
        eventually(Duration::from_secs(30), "the failure in the Matrix room", || {
            said(format!("revision: main@sha1:{third}"))
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("no error message{}", logs()));
    assert!(message.starts_with("🚨"), "{message}");
    let status = eventually(Duration::from_secs(20), "a failure commit status", || {
        statuses(third.clone(), "failure")
    })
    .await;
    assert!(
        status.json()["context"]
            .as_str()
            .unwrap()
            .starts_with("kustomization/app/")
    );
    delete_namespace(&notify.client, &ns).await;
}

/// Each service gets the request its documentation describes: method, path, headers, JSON shape.
#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn every_provider_type_sends_its_documented_request() {
    let notify = Notify::start("notify-types", &["--dedup-window=0s"]).await;
    let server = WebhookServer::start().await.unwrap();
    let sha = "0123456789abcdef0123456789abcdef01234567";
    notify
        .secret("creds", json!({"token": "t0ken-value", "headers": "X-Team: shop\n"}))
        .await;
    let providers = [
        (
            "discord",
            json!({"type": "discord", "address": server.url("/api/webhooks/1/abc")}),
        ),
        ("teams", json!({"type": "msteams", "address": server.url("/teams")})),
        (
            "grafana",
            json!({"type": "grafana", "address": server.url("/api/annotations"), "secretRef": {"name": "creds"}}),
        ),
        (
            "gitlab",
            json!({"type": "gitlab", "address": server.url("/group/sub/app"), "secretRef": {"name": "creds"}}),
        ),
        (
            "hmac",
            json!({"type": "generic-hmac", "address": server.url("/hmac"), "secretRef": {"name": "creds"}}),
        ),
        (
            "slackhook",
            json!({"type": "slack", "address": server.url("/services/T0/B0/x"), "username": "eddy"}),
        ),
        // Through an HTTP proxy (the endpoint plays it): the target itself is unreachable.
        (
            "proxied",
            json!({"type": "generic", "address": "http://127.0.0.1:9/behind-proxy", "proxy": server.url("")}),
        ),
    ];
    for (name, spec) in &providers {
        notify.object("Provider", name, spec.clone()).await;
        notify.alert(name, name, json!({"summary": "production"})).await;
    }
    notify
        .post(
            "web",
            "error",
            "HealthCheckFailed",
            "Deployment/shop/web not ready",
            &format!("main@sha1:{sha}"),
        )
        .await;
    let sent = server.wait_for(providers.len(), Duration::from_secs(15)).await;
    let find = |prefix: &str| {
        sent.iter().find(|r| r.path.starts_with(prefix)).unwrap_or_else(|| {
            let seen: Vec<_> = sent.iter().map(|r| (&r.method, &r.path, r.header("host"))).collect();
            panic!(
                "nothing sent to {prefix}: {seen:?}\n--- notify-controller:\n{}",
                notify.process.logs()
            )
        })
    };
    let title = format!("kustomization/web.{}", notify.ns);

    let discord = find("/api/webhooks/1/abc");
    assert_eq!(
        discord.path, "/api/webhooks/1/abc/slack",
        "Discord's Slack-compatible endpoint"
    );
    let attachment = &discord.json()["attachments"][0];
    assert_eq!(attachment["color"], "danger");
    assert_eq!(attachment["author_name"], title);
    assert_eq!(
        attachment["fields"][0],
        json!({"title": "summary", "value": "production", "short": false})
    );

    let teams = find("/teams").json();
    assert_eq!(teams["type"], "message");
    let card = &teams["attachments"][0];
    assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert_eq!(card["content"]["version"], "1.4");
    let items = &card["content"]["body"][0]["items"];
    assert_eq!(items[0]["text"], title);
    assert_eq!(items[1]["text"], "Deployment/shop/web not ready");
    assert_eq!(items[1]["color"], "attention");
    assert_eq!(items[2]["facts"][0], json!({"title": "summary", "value": "production"}));

    let grafana = find("/api/annotations");
    assert_eq!(grafana.method, "POST");
    assert_eq!(grafana.header("authorization"), Some("Bearer t0ken-value"));
    assert_eq!(grafana.header("x-team"), Some("shop"), "the Secret's headers are sent");
    let annotation = grafana.json();
    assert!(annotation["time"].as_u64().unwrap() > 1_700_000_000_000, "{annotation}");
    assert_eq!(annotation["text"], format!("{title}: Deployment/shop/web not ready"));
    let tags: Vec<&str> = annotation["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&"name:web") && tags.contains(&"kind:Kustomization"),
        "{tags:?}"
    );

    let gitlab = find("/api/v4/projects/");
    assert_eq!(
        gitlab.path,
        format!("/api/v4/projects/group%2Fsub%2Fapp/statuses/{sha}")
    );
    assert_eq!(gitlab.header("private-token"), Some("t0ken-value"));
    let status = gitlab.json();
    assert_eq!(status["state"], "failed");
    assert_eq!(status["description"], "health check failed");
    assert!(
        status["name"].as_str().unwrap().starts_with("kustomization/web/"),
        "{status}"
    );

    let hmac = find("/hmac");
    assert_eq!(
        hmac.header("x-signature").unwrap(),
        github_signature("t0ken-value", &hmac.body)
    );
    assert_eq!(hmac.json()["metadata"]["summary"], "production");

    let proxied = find("/behind-proxy");
    assert_eq!(
        proxied.header("host"),
        Some("127.0.0.1:9"),
        "sent through the proxy to the target"
    );

    let slack = find("/services/T0/B0/x");
    assert_eq!(slack.header("authorization"), None, "a webhook carries no token");
    let body = slack.json();
    assert_eq!(body["username"], "eddy");
    assert_eq!(
        body["attachments"][0]["fallback"],
        format!("{title}: Deployment/shop/web not ready")
    );
    delete_namespace(&notify.client, &notify.ns).await;
}

/// `matchLabels` selects by the labels of the object the event is about, read from the cluster.
#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn match_labels_select_by_the_labels_of_the_object() {
    let notify = Notify::start("notify-labels", &["--dedup-window=0s"]).await;
    let server = WebhookServer::start().await.unwrap();
    for (name, labels) in [("shop", json!({"team": "shop"})), ("ops", json!({"team": "ops"}))] {
        create(
            &notify.client,
            &notify.ns,
            json!({"apiVersion": "apply.eddy.dev/v1alpha1", "kind": "Kustomization",
                   "metadata": {"name": name, "labels": labels},
                   "spec": {"sourceRef": {"kind": "GitRepository", "name": "none"}, "interval": "1h", "prune": false, "suspend": true}}),
        )
        .await
        .unwrap();
    }
    notify
        .generic_alert(
            "team",
            &server,
            json!({"eventSources": [{"kind": "Kustomization", "name": "*", "matchLabels": {"team": "shop"}}]}),
        )
        .await;
    notify
        .post("ops", "info", "ReconciliationSucceeded", "applied ops", "main@sha1:aaa")
        .await;
    notify
        .post(
            "shop",
            "info",
            "ReconciliationSucceeded",
            "applied shop",
            "main@sha1:aaa",
        )
        .await;
    notify
        .post(
            "absent",
            "info",
            "ReconciliationSucceeded",
            "applied absent",
            "main@sha1:aaa",
        )
        .await;
    settle(&server, 1).await;
    let sent = server.requests();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].json()["involvedObject"]["name"], "shop");

    // A name with matchLabels cannot work: the Alert stalls and says why.
    notify
        .object(
            "Alert",
            "wrong",
            json!({"providerRef": {"name": "team"},
                   "eventSources": [{"kind": "Kustomization", "name": "web", "matchLabels": {"team": "shop"}}]}),
        )
        .await;
    let (reason, message) = notify.alert_ready("wrong", "False").await;
    assert_eq!(reason, "InvalidSelector");
    assert!(message.contains("needs name '*'"), "{message}");
    delete_namespace(&notify.client, &notify.ns).await;
}

/// An HTTPS endpoint with a certificate of a private CA, served by Python's `http.server` and
/// `ssl` (the standard library's TLS server). Dropping it stops the process.
struct PrivateTlsServer {
    port: u16,
    ca_pem: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl PrivateTlsServer {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let output = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=eddy test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(dir.path().join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ]);
        let script = r#"
import http.server, ssl, sys
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("server.crt", "server.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        let ca_pem = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
        Self {
            port: line.trim().parse().expect("the server's port"),
            ca_pem,
            child,
            _dir: dir,
        }
    }
}

impl Drop for PrivateTlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server whose certificate comes from a private CA is reached when the Provider names the CA
/// (`certSecretRef`), and refused, with the reason on the Alert, when it does not.
#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_private_ca_from_a_secret_is_trusted_and_only_then() {
    let tls = PrivateTlsServer::start();
    let notify = Notify::start("notify-ca", &["--dedup-window=0s"]).await;
    notify.secret("private-ca", json!({"ca.crt": tls.ca_pem})).await;
    let address = format!("https://127.0.0.1:{}/hook", tls.port);
    notify
        .object(
            "Provider",
            "trusted",
            json!({"type": "generic", "address": address, "certSecretRef": {"name": "private-ca"}}),
        )
        .await;
    notify
        .object(
            "Provider",
            "untrusted",
            json!({"type": "generic", "address": address, "timeout": "2s"}),
        )
        .await;
    notify.alert("trusted", "trusted", json!({})).await;
    notify.alert("untrusted", "untrusted", json!({})).await;
    notify
        .post("web", "info", "ReconciliationSucceeded", "applied", "main@sha1:aaa")
        .await;
    let (reason, message) = notify.alert_ready("untrusted", "False").await;
    assert_eq!(reason, "NotificationDispatchFailed");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    let (_, metrics) = notify.process.get(notify.process.metrics, "/metrics").await.unwrap();
    let alerts: Api<Alert> = Api::namespaced(notify.client.clone(), &notify.ns);
    let trusted = alerts.get("trusted").await.unwrap();
    assert!(
        metrics.contains(r#"eddy_notify_sent_total{controller="notify-controller",provider_type="generic"} 1"#),
        "the trusted Provider delivered: {:?}\n{metrics}",
        trusted.status
    );
    delete_namespace(&notify.client, &notify.ns).await;
}

/// On Matrix, the messages about one object and revision form one thread, and a retried send
/// (same transaction id) never posts twice.
#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn matrix_messages_about_one_revision_form_a_thread() {
    use eddy_tests::matrix::Homeserver;

    let homeserver = Homeserver::start().await.unwrap();
    let bot = homeserver.register("eddy-bot", "bot-password-1").await.unwrap();
    let reader = homeserver.register("reader", "reader-password-1").await.unwrap();
    let room = homeserver.create_room(&bot, "deploys").await.unwrap();
    homeserver.join(&reader, &room).await.unwrap();
    let notify = Notify::start("notify-matrix", &["--dedup-window=0s"]).await;
    notify.secret("matrix-bot", json!({"token": bot.access_token})).await;
    notify
        .object(
            "Provider",
            "matrix",
            json!({"type": "matrix", "address": homeserver.base_url(), "channel": room, "secretRef": {"name": "matrix-bot"}}),
        )
        .await;
    notify.alert("chat", "matrix", json!({})).await;
    notify
        .post("web", "info", "Progressing", "applying r1", "main@sha1:aaa")
        .await;
    notify
        .post("web", "error", "HealthCheckFailed", "web not ready", "main@sha1:aaa")
        .await;
    notify
        .post("web", "info", "ReconciliationSucceeded", "applied r2", "main@sha1:bbb")
        .await;
    let messages = notify
        .within(Duration::from_secs(20), "three messages in the room", || async {
            let messages = homeserver.messages(&reader, &room).await.ok()?;
            let texts: Vec<Value> = messages
                .into_iter()
                .filter(|m| m["type"] == "m.room.message" && m["sender"] == bot.user_id.as_str())
                .collect();
            (texts.len() >= 3).then_some(texts)
        })
        .await;
    assert_eq!(messages.len(), 3, "{messages:#?}");
    let root = &messages[0];
    assert!(
        root["content"]["body"].as_str().unwrap().contains("applying r1"),
        "{root}"
    );
    assert!(
        root["content"].get("m.relates_to").is_none(),
        "the first message starts the thread"
    );
    let reply = &messages[1];
    assert!(reply["content"]["body"].as_str().unwrap().starts_with("🚨"), "{reply}");
    assert_eq!(reply["content"]["m.relates_to"]["rel_type"], "m.thread");
    assert_eq!(reply["content"]["m.relates_to"]["event_id"], root["event_id"]);
    assert!(
        messages[2]["content"].get("m.relates_to").is_none(),
        "a new revision starts a new thread: {:#}",
        messages[2]
    );
    delete_namespace(&notify.client, &notify.ns).await;
}

/// A GitHub commit status the commit already has is not posted again (the latest status of the
/// context in the commit's combined status decides), so a repeated event or a restart does not
/// pile up identical statuses; a change of state is posted.
#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn github_commit_statuses_are_posted_once_per_state() {
    let notify = Notify::start("notify-status-once", &["--dedup-window=0s"]).await;
    let github = WebhookServer::start().await.unwrap();
    let sha = "89abcdef0123456789abcdef0123456789abcdef";
    notify.secret("github-token", json!({"token": "ghp_once"})).await;
    notify
        .object(
            "Provider",
            "commits",
            json!({"type": "github", "address": github.url("/org/app"), "secretRef": {"name": "github-token"}}),
        )
        .await;
    notify.alert("commits", "commits", json!({})).await;
    let revision = format!("main@sha1:{sha}");
    let posted = || -> Vec<(String, String)> {
        github
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .map(|r| {
                assert_eq!(r.path, format!("/api/v3/repos/org/app/statuses/{sha}"));
                let body = r.json();
                (
                    body["state"].as_str().unwrap().to_owned(),
                    body["description"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let send = |severity: &'static str, reason: &'static str, message: &'static str, requests: usize| {
        let (notify, github, revision) = (&notify, &github, revision.clone());
        async move {
            assert_eq!(notify.post("web", severity, reason, message, &revision).await, 202);
            settle(github, requests).await;
        }
    };
    send("error", "HealthCheckFailed", "web not ready", 2).await;
    assert_eq!(posted(), [("failure".to_owned(), "health check failed".to_owned())]);
    // Told again in other words (a timing, a counter): GitHub already shows it.
    send("error", "HealthCheckFailed", "web not ready after 31s", 3).await;
    let listing = &github.requests()[2];
    assert_eq!(
        (listing.method.as_str(), listing.path.as_str()),
        (
            "GET",
            format!("/api/v3/repos/org/app/commits/{sha}/status?per_page=100").as_str()
        )
    );
    assert_eq!(posted().len(), 1, "the same status is not posted twice");
    send("info", "ReconciliationSucceeded", "applied", 5).await;
    send("error", "HealthCheckFailed", "web not ready", 7).await;
    assert_eq!(
        posted(),
        [
            ("failure".to_owned(), "health check failed".to_owned()),
            ("success".to_owned(), "reconciliation succeeded".to_owned()),
            ("failure".to_owned(), "health check failed".to_owned()),
        ],
        "each change of state is posted"
    );
    delete_namespace(&notify.client, &notify.ns).await;
}

/// A Receiver selecting `*` with matchLabels asks only the objects with those labels to
/// reconcile.
#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_receiver_with_match_labels_asks_only_the_labelled_objects() {
    let notify = Notify::start("notify-hook-labels", &[]).await;
    notify.secret("hook-token", json!({"token": "labels-token"})).await;
    for (name, team) in [("shop-web", "shop"), ("shop-api", "shop"), ("ops-db", "ops")] {
        create(
            &notify.client,
            &notify.ns,
            json!({"apiVersion": "source.eddy.dev/v1alpha1", "kind": "GitRepository",
                   "metadata": {"name": name, "labels": {"team": team}},
                   "spec": {"url": "http://127.0.0.1:9/app.git", "interval": "1h", "ref": {"branch": "main"}}}),
        )
        .await
        .unwrap();
    }
    notify
        .object(
            "Receiver",
            "shop",
            json!({"type": "generic", "secretRef": {"name": "hook-token"},
                   "resources": [{"kind": "GitRepository", "name": "*", "matchLabels": {"team": "shop"}}]}),
        )
        .await;
    let url = webhook_url(&notify, "shop").await;
    let response = reqwest::Client::new().post(&url).body("{}").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "{}", response.text().await.unwrap());
    let repos: Api<GitRepository> = Api::namespaced(notify.client.clone(), &notify.ns);
    let requested = |name: &'static str| {
        let repos = repos.clone();
        async move {
            repos
                .get(name)
                .await
                .unwrap()
                .metadata
                .annotations
                .unwrap_or_default()
                .contains_key("reconcile.eddy.dev/requestedAt")
        }
    };
    notify
        .within(Duration::from_secs(10), "both shop repositories asked", || async {
            (requested("shop-web").await && requested("shop-api").await).then_some(())
        })
        .await;
    assert!(!requested("ops-db").await, "an object without the labels is left alone");
    delete_namespace(&notify.client, &notify.ns).await;
}

/// A client that never finishes its request's headers (or sends none on a kept connection) is
/// cut off after the header read timeout, so slow clients cannot hold the listeners' connections.
#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn listeners_cut_off_clients_that_never_finish_their_headers() {
    let notify = Notify::start("notify-slow-headers", &[]).await;
    for addr in [notify.process.events.unwrap(), notify.process.hooks.unwrap()] {
        notify
            .within(Duration::from_secs(30), &format!("{addr} listening"), || async move {
                tokio::net::TcpStream::connect(addr).await.ok().map(drop)
            })
            .await;
    }
    for addr in [notify.process.events.unwrap(), notify.process.hooks.unwrap()] {
        let cut_off = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            write!(stream, "POST / HTTP/1.1\r\nHost: x\r\nContent-Le").unwrap();
            let mut answer = Vec::new();
            let read = stream.read_to_end(&mut answer);
            (started.elapsed(), read.map_err(|e| e.to_string()), answer)
        });
        let (took, read, _) = cut_off.await.unwrap();
        assert!(read.is_ok(), "{addr}: the server closed the connection: {read:?}");
        assert!(
            took >= Duration::from_secs(8) && took < Duration::from_secs(20),
            "{addr}: cut off after {took:?}, not about 10 s"
        );
    }
    // The listeners still answer.
    assert_eq!(
        notify
            .post("web", "info", "ReconciliationSucceeded", "applied", "main@sha1:1")
            .await,
        202
    );
    delete_namespace(&notify.client, &notify.ns).await;
}

/// What notify-controller keeps for a Provider (its sender, resolved address, threads) goes
/// with the Provider: a long-lived controller's memory follows the objects that exist.
#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_deleted_provider_leaves_no_sender_behind() {
    let notify = Notify::start("notify-sweep", &["--sweep-interval=1s"]).await;
    let server = WebhookServer::start().await.unwrap();
    let workers = || async {
        let (_, metrics) = notify.process.get(notify.process.metrics, "/metrics").await.unwrap();
        metrics
            .lines()
            .find(|line| line.starts_with("eddy_notify_provider_workers{"))
            .and_then(|line| line.rsplit(' ').next()?.parse::<u32>().ok())
    };
    for name in ["first", "second"] {
        notify.generic_alert(name, &server, json!({})).await;
    }
    assert_eq!(
        notify
            .post("web", "info", "ReconciliationSucceeded", "applied", "main@sha1:1")
            .await,
        202
    );
    server.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(workers().await, Some(2), "a sender per Provider");
    Api::<Alert>::namespaced(notify.client.clone(), &notify.ns)
        .delete("first", &Default::default())
        .await
        .unwrap();
    Api::<eddy_api::notify::Provider>::namespaced(notify.client.clone(), &notify.ns)
        .delete("first", &Default::default())
        .await
        .unwrap();
    notify
        .within(
            Duration::from_secs(10),
            "the deleted Provider's sender to go",
            || async { (workers().await == Some(1)).then_some(()) },
        )
        .await;
    // The remaining Provider still delivers.
    assert_eq!(
        notify
            .post("web", "info", "ReconciliationSucceeded", "applied again", "main@sha1:2")
            .await,
        202
    );
    let sent = server.wait_for(3, Duration::from_secs(10)).await;
    assert!(sent[2].path.starts_with("/second"), "{:?}", sent[2].path);
    delete_namespace(&notify.client, &notify.ns).await;
}
