//! `shared::events` against the real apiserver and a real HTTP receiver: one call records the
//! Kubernetes Event and forwards the same event, Flux-shaped, to notify-controller's address; a
//! receiver that never answers cannot block reconciles.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use eddy_api::source::GitRepository;
use eddy_runtime::events::{EventRecorder, ForwardedEvent, QUEUE_CAPACITY, Report};
use eddy_tests::{cluster_namespace, delete_namespace, eventually};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, Config};
use prometheus_client::metrics::counter::Counter;

type Received = Arc<Mutex<Vec<ForwardedEvent>>>;

/// A stand-in for notify-controller's event endpoint on 127.0.0.1 that keeps what it receives.
async fn event_receiver() -> (reqwest::Url, Received, tokio::task::JoinHandle<()>) {
    async fn receive(State(received): State<Received>, axum::Json(event): axum::Json<ForwardedEvent>) -> StatusCode {
        received.lock().unwrap().push(event);
        StatusCode::ACCEPTED
    }
    let received = Received::default();
    let app = Router::new().route("/", post(receive)).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap()).parse().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, received, server)
}

/// A namespace named after `prefix` holding GitRepository `web`, the object events are about.
async fn repository_web(prefix: &str) -> (Client, String, GitRepository) {
    let (client, ns) = cluster_namespace(prefix).await;
    let repos: Api<GitRepository> = Api::namespaced(client.clone(), &ns);
    let repo: GitRepository = serde_json::from_value(serde_json::json!({
        "apiVersion": "source.eddy.dev/v1alpha1", "kind": "GitRepository",
        "metadata": {"name": "web"},
        "spec": {"url": "https://example.test/web.git", "interval": "1m"},
    }))
    .unwrap();
    let repo = repos.create(&PostParams::default(), &repo).await.unwrap();
    (client, ns, repo)
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn one_call_records_the_kubernetes_event_and_forwards_it() {
    let (client, ns, repo) = repository_web("events").await;

    let (url, received, server) = event_receiver().await;
    let (recorder, forwarder) = EventRecorder::new(
        client.clone(),
        "source-controller",
        Some("test-instance".into()),
        Some(url),
        Counter::default(),
    );
    let report = Report::error(
        "FetchFailed",
        "cannot reach https://example.test/web.git: connection refused",
    )
    .with("revision", "main@sha1:0123abcd");
    recorder.record(&repo, report).await;

    let forwarded = eventually(Duration::from_secs(10), "the forwarded event", || async {
        received.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(forwarded.involved_object.kind, "GitRepository");
    assert_eq!(forwarded.involved_object.namespace, ns);
    assert_eq!(forwarded.involved_object.name, "web");
    assert_eq!(forwarded.involved_object.api_version, "source.eddy.dev/v1alpha1");
    assert_eq!(forwarded.reason, "FetchFailed");
    assert_eq!(forwarded.reporting_controller, "source-controller");
    assert_eq!(
        forwarded.metadata.get("source.eddy.dev/revision").map(String::as_str),
        Some("main@sha1:0123abcd")
    );
    let json = serde_json::to_value(&forwarded).unwrap();
    assert_eq!(json["severity"], "error");

    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let recorded = eventually(Duration::from_secs(10), "the Kubernetes Event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("FetchFailed"))
    })
    .await;
    assert_eq!(recorded.type_.as_deref(), Some("Warning"));
    assert_eq!(recorded.regarding.as_ref().and_then(|r| r.name.as_deref()), Some("web"));
    assert_eq!(recorded.reporting_controller.as_deref(), Some("source-controller"));
    assert!(recorded.note.unwrap().contains("connection refused"));

    forwarder.unwrap().shutdown(recorder, Duration::from_secs(5)).await;
    server.abort();
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_receiver_that_never_answers_cannot_block_recording() {
    eddy_runtime::install_crypto_provider();
    // A listener that accepts connections and never answers: every POST hangs until its timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url: reqwest::Url = format!("http://{}/", silent.local_addr().unwrap()).parse().unwrap();
    // Kubernetes Events go to a closed port, so this test measures only the forwarding queue.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = Client::try_from(Config::new(format!("http://{closed}").parse().unwrap())).unwrap();
    let dropped = Counter::default();
    let (recorder, forwarder) = EventRecorder::new(client, "source-controller", None, Some(url), dropped.clone());
    let repo: GitRepository = serde_json::from_value(serde_json::json!({
        "apiVersion": "source.eddy.dev/v1alpha1", "kind": "GitRepository",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"url": "https://example.test/web.git", "interval": "1m"},
    }))
    .unwrap();

    let total = QUEUE_CAPACITY + 200;
    let started = Instant::now();
    let all_recorded = tokio::time::timeout(Duration::from_secs(60), async {
        for i in 0..total {
            recorder
                .record(&repo, Report::info("Progressing", format!("event {i}")))
                .await;
        }
    })
    .await;
    assert!(all_recorded.is_ok(), "recording blocked on a silent receiver");
    let lost = dropped.get() as usize;
    assert!(
        lost >= 199,
        "events beyond the queue's capacity are dropped and counted, got {lost} of {total}"
    );
    assert!(lost < total, "the queue held what it could");
    eprintln!(
        "{total} events recorded in {:?} with a silent receiver; {lost} dropped",
        started.elapsed()
    );
    forwarder.unwrap().shutdown(recorder, Duration::from_millis(200)).await;
    drop(silent);
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn reporting_never_serialises_reconciles_on_a_slow_apiserver() {
    let (client, ns, repo) = repository_web("events-parallel").await;
    // Every request and response takes 200 ms more each way: one event at a time, 200 events
    // would take at least 80 s.
    let latency = Duration::from_millis(200);
    let relay = eddy_tests::latency::LatencyRelay::to_apiserver(&eddy_tests::kubeconfig_path(), latency)
        .await
        .unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(relay.kubeconfig()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let slow = Client::try_from(config).unwrap();
    let (recorder, _) = EventRecorder::new(slow, "apply-controller", None, None, Counter::default());

    let started = Instant::now();
    let reports = (0..200).map(|i| {
        let (recorder, repo) = (&recorder, &repo);
        async move {
            recorder
                .record(
                    repo,
                    Report::info("ReconciliationSucceeded", format!("reconcile {i} done")),
                )
                .await;
        }
    });
    futures::future::join_all(reports).await;
    let took = started.elapsed();
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let recorded = events
        .list(&ListParams::default().fields("regarding.name=web"))
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(recorded, 200, "every report is an Event");
    assert!(
        took < Duration::from_secs(20),
        "200 reports took {took:?} through a 400 ms round trip: they waited for each other"
    );
    delete_namespace(&client, &ns).await;
}
