//! `scripts/bench-notify`: notify-controller's throughput and latency on the local control plane,
//! with release binaries.
//!
//! 1. Events: N events POSTed to the event endpoint (C at a time, keep-alive) for an Alert whose
//!    generic Provider is a local endpoint; prints events/s accepted and delivered, the dispatch
//!    delay (accepted to received by the provider) p50/p99, and notify-controller's RSS idle
//!    (before the load) and peak (VmHWM).
//! 2. Push to applied: R runs of commit, push webhook to a Receiver, until the Kustomization is
//!    Ready at the new commit (GitRepository and Kustomization intervals are an hour, so only
//!    the webhook can trigger it); prints median and p90.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_api::apply::Kustomization;
use eddy_api::conditions;
use eddy_tests::git::GitHttpServer;
use eddy_tests::{ControllerProcess, cluster_namespace, create, delete_namespace};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events = env("BENCH_EVENTS", 50_000);
    let concurrency = env("BENCH_CONCURRENCY", 16);
    let runs = env("BENCH_RUNS", 20);
    let (client, ns) = cluster_namespace("bench-notify").await;
    let outcome = bench(&client, &ns, events, concurrency, runs).await;
    delete_namespace(&client, &ns).await;
    outcome
}

async fn bench(client: &kube::Client, ns: &str, events: usize, concurrency: usize, runs: usize) -> anyhow::Result<()> {
    // The provider: records when each event arrived, by its sequence number.
    let arrivals: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::new(Mutex::new(Vec::with_capacity(events)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let provider_addr = listener.local_addr()?;
    let record = arrivals.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let record = record.clone();
        async move {
            let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if let Some(seq) = event["metadata"]["seq"].as_str().and_then(|s| s.parse().ok()) {
                record.lock().unwrap().push((seq, Instant::now()));
            }
            "ok"
        }
    });
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let scope = [
        format!("--leader-election-namespace={ns}"),
        format!("--watch-namespace={ns}"),
        "--log-level=warn".to_owned(),
    ];
    let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
    let notify = ControllerProcess::start("notify-controller", &scope)?;
    let events_url = format!("http://{}/", notify.events.expect("notify-controller's event port"));
    create(
        client,
        ns,
        json!({"apiVersion": "notify.eddy.dev/v1alpha1", "kind": "Provider", "metadata": {"name": "sink"},
               "spec": {"type": "generic", "address": format!("http://{provider_addr}/events")}}),
    )
    .await?;
    create(
        client,
        ns,
        json!({"apiVersion": "notify.eddy.dev/v1alpha1", "kind": "Alert", "metadata": {"name": "all"},
               "spec": {"providerRef": {"name": "sink"}, "eventSources": [{"kind": "Kustomization", "name": "*"}]}}),
    )
    .await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    // Warm up until an event goes through (the Alert is in the cache), then let it settle.
    let warm = |seq: usize| event_body(ns, usize::MAX - seq);
    let deadline = Instant::now() + Duration::from_secs(60);
    for attempt in 0.. {
        let _ = http.post(&events_url).body(warm(attempt)).send().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if !arrivals.lock().unwrap().is_empty() || Instant::now() > deadline {
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    arrivals.lock().unwrap().clear();
    let idle = rss_kib(notify.pid(), "VmRSS:");
    let (idle_anon, idle_file) = (rss_kib(notify.pid(), "RssAnon:"), rss_kib(notify.pid(), "RssFile:"));

    let sent_at: Arc<Vec<Mutex<Option<Instant>>>> = Arc::new((0..events).map(|_| Mutex::new(None)).collect());
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..concurrency {
        let (http, url, next, sent_at, ns) = (
            http.clone(),
            events_url.clone(),
            next.clone(),
            sent_at.clone(),
            ns.to_owned(),
        );
        senders.push(tokio::spawn(async move {
            let mut refused = 0usize;
            loop {
                let seq = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if seq >= events {
                    return refused;
                }
                let body = event_body(&ns, seq);
                let response = http.post(&url).body(body).send().await;
                *sent_at[seq].lock().unwrap() = Some(Instant::now());
                if !matches!(response, Ok(r) if r.status().as_u16() == 202) {
                    refused += 1;
                }
            }
        }));
    }
    let mut refused = 0;
    for sender in senders {
        refused += sender.await?;
    }
    let accepted_in = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrivals.lock().unwrap().len() < events - refused && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let peak = rss_kib(notify.pid(), "VmHWM:");
    let arrivals = arrivals.lock().unwrap().clone();
    // Until the last delivery, not until the wait gave up on messages that were dropped.
    let delivered_in = arrivals
        .iter()
        .map(|(_, at)| at.duration_since(started))
        .max()
        .unwrap_or_else(|| started.elapsed());
    let mut delays: Vec<Duration> = arrivals
        .iter()
        .filter_map(|(seq, at)| {
            let sent = (*sent_at.get(*seq)?.lock().unwrap())?;
            Some(at.saturating_duration_since(sent))
        })
        .collect();
    delays.sort();
    server.abort();
    println!("events: {events} posted by {concurrency} connections");
    println!(
        "  accepted   {:>8.0} events/s ({} refused)",
        (events - refused) as f64 / accepted_in.as_secs_f64(),
        refused
    );
    let dropped = (events - refused).saturating_sub(arrivals.len());
    println!(
        "  delivered  {:>8.0} events/s ({} of {} delivered{})",
        arrivals.len() as f64 / delivered_in.as_secs_f64(),
        arrivals.len(),
        events - refused,
        if dropped > 0 {
            format!("; {dropped} dropped by the full Provider queue: senders outpaced the Provider")
        } else {
            String::new()
        }
    );
    if !delays.is_empty() {
        println!(
            "  dispatch delay (accepted -> at the provider): p50 {:.2} ms, p99 {:.2} ms",
            percentile(&delays, 0.5).as_secs_f64() * 1e3,
            percentile(&delays, 0.99).as_secs_f64() * 1e3
        );
    }
    println!(
        "  notify-controller RSS: idle {:.1} MiB (heap and stacks {:.1}, mapped program {:.1}), peak {:.1} MiB",
        idle as f64 / 1024.0,
        idle_anon as f64 / 1024.0,
        idle_file as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    drop(notify);

    if runs > 0 {
        push_to_applied(client, ns, runs).await?;
    }
    Ok(())
}

fn event_body(ns: &str, seq: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "involvedObject": {"kind": "Kustomization", "namespace": ns, "name": format!("app-{}", seq % 1000),
            "apiVersion": "apply.eddy.dev/v1alpha1", "uid": "u", "resourceVersion": "1"},
        "severity": "info",
        "timestamp": "2026-12-03T10:00:00Z",
        "message": format!("Deployment/{ns}/web configured (event {seq})"),
        "reason": "ReconciliationSucceeded",
        "metadata": {"apply.eddy.dev/revision": format!("main@sha1:{seq:040x}"), "apply.eddy.dev/seq": seq.to_string()},
        "reportingController": "apply-controller",
    }))
    .expect("JSON")
}

async fn push_to_applied(client: &kube::Client, ns: &str, runs: usize) -> anyhow::Result<()> {
    let git = GitHttpServer::start(None).await?;
    let repo = git.create_repo("app")?;
    let config = |n: usize| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  run: \"{n}\"\n");
    repo.commit(&[("deploy/app.yaml", &config(0))], "first")?;
    let notify = ControllerProcess::start(
        "notify-controller",
        &[
            &format!("--leader-election-namespace={ns}"),
            &format!("--watch-namespace={ns}"),
            "--log-level=warn",
        ],
    )?;
    let scope = [
        format!("--leader-election-namespace={ns}"),
        format!("--watch-namespace={ns}"),
        format!("--events-addr=http://{}/", notify.events.unwrap()),
        "--log-level=warn".to_owned(),
    ];
    let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
    let _source = ControllerProcess::start("source-controller", &scope)?;
    let own = format!("--controller-namespace={ns}-controller");
    let mut apply_args = scope.clone();
    apply_args.push(&own);
    let _apply = ControllerProcess::start("apply-controller", &apply_args)?;
    // The Kustomization and GitRepository carry the controllers' finalizers: they are deleted
    // while the controllers still run, whatever the runs' outcome, so the namespace can go.
    let outcome = async {
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": "hook"}, "stringData": {"token": "bench-token"}}))?;
        Api::<Secret>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &secret)
            .await?;
        for object in [
            json!({"apiVersion": "notify.eddy.dev/v1alpha1", "kind": "Receiver", "metadata": {"name": "push"},
                   "spec": {"type": "github", "secretRef": {"name": "hook"}, "resources": [{"kind": "GitRepository", "name": "app"}]}}),
            json!({"apiVersion": "source.eddy.dev/v1alpha1", "kind": "GitRepository", "metadata": {"name": "app"},
                   "spec": {"url": git.url("app"), "interval": "1h", "ref": {"branch": "main"}}}),
            json!({"apiVersion": "apply.eddy.dev/v1alpha1", "kind": "Kustomization", "metadata": {"name": "app"},
                   "spec": {"sourceRef": {"kind": "GitRepository", "name": "app"}, "path": "./deploy", "targetNamespace": ns,
                            "interval": "1h", "timeout": "30s", "prune": true}}),
        ] {
            create(client, ns, object).await?;
        }
        let kustomizations: Api<Kustomization> = Api::namespaced(client.clone(), ns);
        let receivers: Api<eddy_api::notify::Receiver> = Api::namespaced(client.clone(), ns);
        let ready_at = |revision: Option<String>| {
            let kustomizations = kustomizations.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    if let Ok(ks) = kustomizations.get("app").await
                        && let Some(status) = &ks.status
                        && conditions::is_ready(&status.conditions, ks.metadata.generation)
                        && revision
                            .as_deref()
                            .is_none_or(|r| status.last_applied_revision.as_deref() == Some(r))
                    {
                        return Ok(());
                    }
                    if Instant::now() > deadline {
                        anyhow::bail!("the Kustomization did not become Ready at {revision:?}");
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        ready_at(None).await?;
        let path = loop {
            if let Some(path) = receivers.get("push").await?.status.and_then(|s| s.webhook_path) {
                break path;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let hook = format!("http://{}{path}", notify.hooks.unwrap());
        let http = reqwest::Client::new();
        let mut took = Vec::new();
        for run in 1..=runs {
            let sha = repo.commit(&[("deploy/app.yaml", &config(run))], &format!("run {run}"))?;
            let body = serde_json::to_vec(&json!({"ref": "refs/heads/main", "after": sha}))?;
            let started = Instant::now();
            let response = http
                .post(&hook)
                .header("X-GitHub-Event", "push")
                .header("X-Hub-Signature-256", notify_controller_signature("bench-token", &body))
                .body(body)
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "the webhook answered {}",
                response.status()
            );
            ready_at(Some(format!("main@sha1:{sha}"))).await?;
            took.push(started.elapsed());
        }
        took.sort();
        println!("push to applied: {runs} runs (commit, GitHub push webhook, until Ready at the commit)");
        println!(
            "  median {:.0} ms, p90 {:.0} ms, min {:.0} ms, max {:.0} ms",
            percentile(&took, 0.5).as_secs_f64() * 1e3,
            percentile(&took, 0.9).as_secs_f64() * 1e3,
            took[0].as_secs_f64() * 1e3,
            took[took.len() - 1].as_secs_f64() * 1e3
        );
        anyhow::Ok(())
    }
    .await;
    delete_and_wait(Api::<Kustomization>::namespaced(client.clone(), ns)).await;
    delete_and_wait(Api::<eddy_api::source::GitRepository>::namespaced(client.clone(), ns)).await;
    outcome
}

/// Deletes object `app` of `api` and waits up to 30 s until it is gone (its finalizer released).
async fn delete_and_wait<K>(api: Api<K>)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let _ = api.delete("app", &Default::default()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while matches!(api.get_opt("app").await, Ok(Some(_))) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn notify_controller_signature(token: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}
