//! `scripts/bench-canary`: progressive-controller on the local control plane, with release
//! binaries, in two parts.
//!
//! 1. Change to promotion: R releases of one Canary (Gateway API router, `analysis.interval` 1s,
//!    stepWeights 25/50/75/100) gated by a `rollout` webhook to a local server and the built-in
//!    `request-success-rate` against Debian's Prometheus scraping two test apps, with load going
//!    through nginx reconfigured from the controller's HTTPRoute (as tests/tests/cluster/canary.rs
//!    wires them). Each release is timed from the change of the target's image to Succeeded, and
//!    broken down from watches of the Canary and the Deployments.
//! 2. Many Canaries: N targets and Canaries (Gateway API router, headless Services, interval I,
//!    stepWeight 1 up to 100, a `rollout` webhook to one local server) released at once. Once all are analysing,
//!    progressive-controller's RSS, CPU and `/metrics` (step lateness, reconciles) are read over a
//!    window, and step lateness is also computed exactly from every status change the benchmark
//!    watches.
//!
//! The pods run on fake nodes of their own (KWOK makes their pods Ready), tainted so that no one
//! else's pods land there and removed at the end, as are the namespaces.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use eddy_api::progressive::{Canary, CanaryPhase};
use eddy_tests::prometheus::{Prometheus, ScrapeTarget};
use eddy_tests::traffic::{Behaviour, LoadGenerator, NginxGatewayStandIn, TestApp, canary_services};
use eddy_tests::{ControllerProcess, cluster, install_crds, kubeconfig_path, namespace, repo_root};
use progressive_controller::workload::REVISION_ANNOTATION;

/// Label and taint key of the benchmark's fake nodes; the value is the benchmark's process id.
const NODE_KEY: &str = "eddy.dev/bench-canary";
/// Pods one fake node takes.
const PODS_PER_NODE: usize = 250;
/// Weights of a part 1 release.
const LADDER: [i32; 4] = [25, 50, 75, 100];
/// How long one part 1 release may take.
const RELEASE_LIMIT: Duration = Duration::from_secs(120);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Settings {
    releases: usize,
    canaries: usize,
    interval: usize,
    window: usize,
    concurrent: usize,
    ramp_limit: usize,
    log_level: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings {
        releases: env("BENCH_RELEASES", 5),
        canaries: env("BENCH_CANARIES", 200),
        interval: env("BENCH_INTERVAL", 5).max(1),
        window: env("BENCH_WINDOW", 60).max(1),
        concurrent: env("BENCH_CONCURRENT", 4).max(1),
        ramp_limit: env("BENCH_RAMP_TIMEOUT", 300),
        log_level: std::env::var("BENCH_LOG_LEVEL").unwrap_or_else(|_| "warn".to_owned()),
    };
    let client = cluster().await;
    install_crds(&client).await.context("installing Eddy's CRDs")?;
    install_peer_crds(&client).await?;
    let pods = (4 * settings.releases.min(1)) + 2 * settings.canaries + 8;
    let nodes = FakeNodes::create(&client, pods.div_ceil(PODS_PER_NODE)).await?;

    let mut outcome = Ok(());
    if settings.releases > 0 {
        let ns = namespace(&client, "bench-canary-release").await;
        outcome = release_latency(&client, &ns, &settings).await;
        delete_namespace_and_wait(&client, &ns).await;
    }
    if outcome.is_ok() && settings.canaries > 0 {
        let ns = namespace(&client, "bench-canary-many").await;
        outcome = many_canaries(&client, &ns, &settings).await;
        println!("  deleting namespace {ns}");
        delete_namespace_and_wait(&client, &ns).await;
    }
    nodes.delete(&client).await;
    println!(
        "\nmachine: {} cores, {}; code: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        code_version()
    );
    outcome
}

// --- part 1: change to promotion -------------------------------------------------------------

async fn release_latency(client: &Client, ns: &str, settings: &Settings) -> anyhow::Result<()> {
    let hooks = HookServer::start().await?;
    let stable = TestApp::start("primary", Behaviour::healthy()).await?;
    let canary_app = TestApp::start("canary", Behaviour::healthy()).await?;
    let prometheus = Prometheus::start(&[
        ScrapeTarget::new(stable.addr, &[("namespace", ns), ("workload", "web-primary")]),
        ScrapeTarget::new(canary_app.addr, &[("namespace", ns), ("workload", "web")]),
    ])
    .await?;
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(deployment("web", 2, "example/web:1"))?,
        )
        .await
        .context("creating Deployment web")?;
    let metrics_server = format!("--metrics-server={}", prometheus.url());
    let controller = start_controller(ns, settings, &[&metrics_server])?;
    let watch = CanaryWatch::start(client, ns, 1.0);
    let deployments = DeploymentWatch::start(client, ns);
    let mut proxy = NginxGatewayStandIn::start(canary_services("web", stable.addr, canary_app.addr)).await?;
    let load = LoadGenerator::start(&proxy.url("/"), 40, &[])?;
    let follower = {
        let routes: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &httproute());
        tokio::spawn(async move {
            let mut seen = String::new();
            loop {
                if let Ok(Some(route)) = routes.get_opt("web").await
                    && route.resource_version().unwrap_or_default() != seen
                {
                    let value = serde_json::to_value(&route).unwrap_or_default();
                    if proxy.configure(&value).await.is_ok() {
                        seen = route.resource_version().unwrap_or_default();
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let outcome = async {
        let canary = json!({
            "apiVersion": "progressive.eddy.dev/v1alpha1",
            "kind": "Canary",
            "metadata": {"name": "web"},
            "spec": {
                "provider": "gatewayapi",
                "targetRef": {"kind": "Deployment", "name": "web"},
                "service": {"port": 80, "targetPort": 8080, "gatewayRefs": [{"name": "gateway"}]},
                "progressDeadlineSeconds": 120,
                "analysis": {
                    "interval": "1s",
                    "threshold": 2,
                    "stepWeights": LADDER,
                    "metrics": [{"name": "request-success-rate", "interval": "1m", "thresholdRange": {"min": 99}}],
                    "webhooks": [{"type": "rollout", "name": "gate", "url": hooks.url("rollout"), "timeout": "2s"}]
                }
            }
        });
        Api::<Canary>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &serde_json::from_value(canary)?)
            .await
            .context("creating Canary web")?;
        watch
            .wait("Canary web to be Initialized", RELEASE_LIMIT, |states| {
                states
                    .get("web")
                    .is_some_and(|s| s.phase == Some(CanaryPhase::Initialized))
            })
            .await?;
        println!(
            "change to promotion: Canary on the gatewayapi router, interval 1s, stepWeights {LADDER:?}, \
             gates: rollout webhook (127.0.0.1) and request-success-rate (Prometheus, 1m, min 99%); \
             load 40 req/s through nginx following the HTTPRoute; --concurrent={}",
            settings.concurrent
        );
        // The first release warms up the canary's series (request-success-rate reads a minute of
        // them) and every connection; it is not counted.
        let mut rows = Vec::new();
        for release in 0..=settings.releases {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let started = Instant::now();
            Api::<Deployment>::namespaced(client.clone(), ns)
                .patch(
                    "web",
                    &PatchParams::default(),
                    &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                        {"name": "web", "image": format!("example/web:{}", release + 2)}
                    ]}}}})),
                )
                .await
                .context("changing the target's image")?;
            watch
                .wait("the release to succeed", RELEASE_LIMIT, |_| {
                    watch.changes_since(started).iter().any(|c| {
                        c.phase == Some(CanaryPhase::Succeeded)
                            && watch
                                .changes_since(started)
                                .iter()
                                .any(|p| p.phase == Some(CanaryPhase::Progressing) && p.at <= c.at)
                    })
                })
                .await
                .with_context(|| format!("release {release}; controller log:\n{}", controller.logs()))?;
            // The world settles before the next release: the canary scaled to zero.
            let settled = Instant::now() + Duration::from_secs(30);
            while deployments.replicas("web") != Some(0) && Instant::now() < settled {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let row = Breakdown::of(
                started,
                &watch.changes_since(started),
                &deployments.changes_since(started),
            );
            if release == 0 {
                println!("  warm-up release: {:.2} s (not counted)", row.total);
            } else {
                rows.push(row);
            }
        }
        print_breakdowns(&rows);
        println!(
            "  rollout webhook calls: {}; Prometheus and nginx ran on this machine too",
            hooks.calls()
        );
        anyhow::Ok(())
    }
    .await;
    follower.abort();
    let _ = load.stop().await;
    keep_log(&controller, "release");
    drop(controller);
    outcome
}

/// The phases of one release, in seconds.
struct Breakdown {
    total: f64,
    detect: f64,
    canary_ready: f64,
    noticed: f64,
    steps: f64,
    promotion: f64,
    finalising: f64,
    failed_checks: i32,
}

impl Breakdown {
    /// From the Canary's and the Deployments' changes after `started` (the change of the target).
    fn of(started: Instant, canary: &[CanaryChange], deployments: &[DeploymentChange]) -> Self {
        let secs = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64();
        let first = |check: &dyn Fn(&CanaryChange) -> bool| canary.iter().find(|c| check(c)).cloned();
        let progressing = first(&|c| c.phase == Some(CanaryPhase::Progressing)).map_or(started, |c| c.at);
        let first_step = first(&|c| c.phase == Some(CanaryPhase::Progressing) && c.weight == LADDER[0])
            .map_or(progressing, |c| c.at);
        let canary_ready = deployments
            .iter()
            .find(|d| d.name == "web" && d.ready && d.at >= progressing)
            .map_or(first_step, |d| d.at.min(first_step));
        let promoting = first(&|c| c.phase == Some(CanaryPhase::Promoting)).map_or(first_step, |c| c.at);
        let succeeded = first(&|c| c.phase == Some(CanaryPhase::Succeeded));
        let succeeded_at = succeeded.as_ref().map_or(promoting, |c| c.at);
        let finalising = first(&|c| c.phase == Some(CanaryPhase::Finalising)).map_or(succeeded_at, |c| c.at);
        Self {
            total: secs(started, succeeded_at),
            detect: secs(started, progressing),
            canary_ready: secs(progressing, canary_ready),
            noticed: secs(canary_ready, first_step),
            steps: secs(first_step, promoting),
            promotion: secs(promoting, finalising),
            finalising: secs(finalising, succeeded_at),
            failed_checks: succeeded.map_or(0, |c| c.failed_checks),
        }
    }
}

fn print_breakdowns(rows: &[Breakdown]) {
    println!(
        "  {:>7} {:>8} {:>8} {:>13} {:>9} {:>9} {:>10} {:>11} {:>7}",
        "release", "total", "detect", "canary ready", "noticed", "steps", "promotion", "finalising", "failed"
    );
    let line = |label: &str, r: &Breakdown| {
        println!(
            "  {label:>7} {:>7.2}s {:>7.2}s {:>12.2}s {:>8.2}s {:>8.2}s {:>9.2}s {:>10.2}s {:>7}",
            r.total, r.detect, r.canary_ready, r.noticed, r.steps, r.promotion, r.finalising, r.failed_checks
        )
    };
    for (i, row) in rows.iter().enumerate() {
        line(&(i + 1).to_string(), row);
    }
    if rows.is_empty() {
        return;
    }
    let column = |f: fn(&Breakdown) -> f64| {
        let mut values: Vec<f64> = rows.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        (values[(values.len() - 1) / 2], values[values.len() - 1])
    };
    let columns = [
        column(|r| r.total),
        column(|r| r.detect),
        column(|r| r.canary_ready),
        column(|r| r.noticed),
        column(|r| r.steps),
        column(|r| r.promotion),
        column(|r| r.finalising),
    ];
    let summary = |pick: fn((f64, f64)) -> f64| Breakdown {
        total: pick(columns[0]),
        detect: pick(columns[1]),
        canary_ready: pick(columns[2]),
        noticed: pick(columns[3]),
        steps: pick(columns[4]),
        promotion: pick(columns[5]),
        finalising: pick(columns[6]),
        failed_checks: rows.iter().map(|r| r.failed_checks).max().unwrap_or(0),
    };
    line("median", &summary(|(median, _)| median));
    line("max", &summary(|(_, max)| max));
    println!(
        "  detect: image changed -> Progressing; canary ready: -> the target Deployment ready (KWOK); \
         noticed: -> first step ({}%), the readiness poll is 1 s; steps: -> Promoting, {} intervals of 1 s; \
         promotion: -> the primary rolled out and ready (poll 1 s), Finalising; finalising: -> Succeeded; \
         failed: failed checks in the release (median column: the max)",
        LADDER[0],
        LADDER.len()
    );
}

// --- part 2: many Canaries analysing at once --------------------------------------------------

async fn many_canaries(client: &Client, ns: &str, settings: &Settings) -> anyhow::Result<()> {
    let n = settings.canaries;
    let interval = settings.interval;
    println!(
        "\n{n} Canaries analysing at once: gatewayapi router, headless Services, interval {interval}s, \
         stepWeight 1 up to 100, a rollout webhook to one local server; progressive-controller --concurrent={} \
         --log-level={}",
        settings.concurrent, settings.log_level
    );
    let hooks = HookServer::start().await?;
    let controller = start_controller(ns, settings, &[])?;
    let pid = controller.pid();
    let watch = CanaryWatch::start(client, ns, interval as f64);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let canaries: Api<Canary> = Api::namespaced(client.clone(), ns);
    let outcome = async {
    let created = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (deployments, canaries, url) = (deployments.clone(), canaries.clone(), hooks.url("rollout"));
            async move {
                let name = format!("app-{i}");
                deployments
                    .create(
                        &PostParams::default(),
                        &serde_json::from_value(deployment(&name, 1, "example/app:1"))?,
                    )
                    .await
                    .with_context(|| format!("creating Deployment {name}"))?;
                let canary = json!({
                    "apiVersion": "progressive.eddy.dev/v1alpha1",
                    "kind": "Canary",
                    "metadata": {"name": name},
                    "spec": {
                        "provider": "gatewayapi",
                        "targetRef": {"kind": "Deployment", "name": name},
                        // Headless: three Services per Canary would take 600 of the control
                        // plane's 254 Service addresses; the controller's work is the same.
                        "service": {"port": 80, "targetPort": 8080, "headless": true, "gatewayRefs": [{"name": "gateway"}]},
                        "progressDeadlineSeconds": 900,
                        "analysis": {
                            "interval": format!("{interval}s"),
                            "threshold": 5,
                            "stepWeight": 1,
                            "maxWeight": 100,
                            "webhooks": [{"type": "rollout", "name": "gate", "url": url, "timeout": "5s"}]
                        }
                    }
                });
                canaries
                    .create(&PostParams::default(), &serde_json::from_value(canary)?)
                    .await
                    .with_context(|| format!("creating Canary {name}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    let limit = Duration::from_secs(settings.ramp_limit as u64 + 300);
    watch
        .wait("every Canary to be Initialized", limit, |states| {
            states
                .values()
                .filter(|s| s.phase == Some(CanaryPhase::Initialized))
                .count()
                == n
        })
        .await
        .with_context(|| format!("controller log:\n{}", tail(&controller.logs(), 40)))?;
    println!(
        "  {n} Deployments and Canaries created and Initialized in {:.1} s",
        created.elapsed().as_secs_f64()
    );
    // The targets go to zero replicas once their primaries serve; the release starts after.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_rss = proc_kib(pid, "VmRSS:");
    let idle_hwm = proc_kib(pid, "VmHWM:");

    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak_rss = peak_rss.clone();
        tokio::spawn(async move {
            loop {
                peak_rss.fetch_max(proc_kib(pid, "VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let released = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let deployments = deployments.clone();
            async move {
                let patch = json!({"spec": {"template": {"metadata": {"annotations": {"bench/release": "2"}}}}});
                deployments
                    .patch(&format!("app-{i}"), &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .with_context(|| format!("releasing Deployment app-{i}"))
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    let patched = released.elapsed().as_secs_f64();
    let ramp = watch
        .wait(
            "every Canary to be analysing",
            Duration::from_secs(settings.ramp_limit as u64),
            |states| {
                states
                    .values()
                    .filter(|s| s.phase == Some(CanaryPhase::Progressing) && s.weight >= 1)
                    .count()
                    == n
            },
        )
        .await;
    let analysing = watch
        .states()
        .values()
        .filter(|s| s.phase == Some(CanaryPhase::Progressing) && s.weight >= 1)
        .count();
    match ramp {
        Ok(()) => println!(
            "  released: {n} targets patched in {patched:.1} s; all {n} analysing (weight >= 1) {:.1} s after the first patch",
            released.elapsed().as_secs_f64()
        ),
        Err(_) => println!(
            "  released: {n} targets patched in {patched:.1} s; only {analysing} of {n} analysing after {} s; measuring anyway",
            settings.ramp_limit
        ),
    }

    let window = Duration::from_secs(settings.window as u64);
    let before = Snapshot::take(pid, &controller, &hooks, &watch).await;
    tokio::time::sleep(window.saturating_sub(before.at.elapsed())).await;
    let after = Snapshot::take(pid, &controller, &hooks, &watch).await;
    sampler.abort();
    let (window_start, window_end) = (before.at, after.at);
    let peak_hwm = proc_kib(pid, "VmHWM:");
    let peak_window_rss = peak_rss.load(Ordering::Relaxed);

    let states = watch.states();
    let by_phase = states.values().fold(BTreeMap::new(), |mut counts, s| {
        *counts
            .entry(format!("{:?}", s.phase.unwrap_or(CanaryPhase::Initializing)))
            .or_insert(0) += 1;
        counts
    });
    let mut weights: Vec<i32> = states.values().map(|s| s.weight).collect();
    weights.sort();
    let mut late: Vec<f64> = watch
        .lateness()
        .into_iter()
        .filter(|(at, _)| *at >= window_start && *at <= window_end)
        .map(|(_, late)| late)
        .collect();
    late.sort_by(f64::total_cmp);
    let lateness = after.lateness.since(&before.lateness);
    let durations = after.reconcile_durations.since(&before.reconcile_durations);
    let secs = window_end.duration_since(window_start).as_secs_f64();
    let cpu = after.cpu - before.cpu;
    let hook_calls = after.hook_calls - before.hook_calls;
    let weight_steps: i32 = after
        .weights
        .iter()
        .map(|(name, weight)| weight - before.weights.get(name).copied().unwrap_or(0))
        .sum();

    println!("  window: {secs:.1} s while they analyse; canary weight steps taken in it: {weight_steps}");
    println!(
        "  progressive-controller RSS: idle after initialising {:.1} MiB (VmHWM then {:.1}); during the window max {:.1} MiB; \
         peak VmHWM {:.1} MiB (goal <= 64 MiB: {})",
        mib(idle_rss),
        mib(idle_hwm),
        mib(peak_window_rss),
        mib(peak_hwm),
        if mib(peak_hwm) <= 64.0 { "met" } else { "NOT MET" }
    );
    println!(
        "  CPU in the window: progressive-controller {cpu:.1} s ({:.0}% of a core); kube-apiserver {:.1} s; etcd {:.1} s; \
         this benchmark {:.1} s; machine busy {:.0} of {:.0} core-seconds",
        100.0 * cpu / secs,
        after.apiserver_cpu - before.apiserver_cpu,
        after.etcd_cpu - before.etcd_cpu,
        after.own_cpu - before.own_cpu,
        after.machine_busy - before.machine_busy,
        secs * std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
    );
    let expected = n as f64 * secs / interval as f64;
    println!(
        "  eddy_canary_step_lateness_seconds in the window: {} steps (one per Canary per interval would be {expected:.0}); \
         p50 {}, p99 {}; every step within {}; above 1.024 s: {}; in (0.512, 1.024] s: {}",
        lateness.count(),
        shown(lateness.quantile(0.5)),
        shown(lateness.quantile(0.99)),
        shown(lateness.all_within()),
        lateness.above(1.024),
        lateness.above(0.512) - lateness.above(1.024)
    );
    if !late.is_empty() {
        let pick = |q: f64| late[((late.len() - 1) as f64 * q).round() as usize];
        let over = late.iter().filter(|l| **l > 1.0).count();
        println!(
            "  step lateness from the statuses (lastStepTime - previous - interval, exact): {} steps, p50 {:.3} s, p99 {:.3} s, \
             max {:.3} s; late by more than 1 s: {over} (goal 0: {})",
            late.len(),
            pick(0.5),
            pick(0.99),
            late[late.len() - 1],
            if over == 0 { "met" } else { "NOT MET" }
        );
    }
    println!(
        "  reconciles in the window: {:.0} ({:.1}/s); duration p50 {}, p99 {}; rollout webhook calls {hook_calls}",
        after.reconciles - before.reconciles,
        (after.reconciles - before.reconciles) / secs,
        shown(durations.quantile(0.5)),
        shown(durations.quantile(0.99)),
    );
    println!(
        "  at the end: phases {by_phase:?}; canary weight min {} median {} max {}",
        weights.first().copied().unwrap_or(0),
        weights.get(weights.len().saturating_sub(1) / 2).copied().unwrap_or(0),
        weights.last().copied().unwrap_or(0)
    );
    let requests = after.requests.delta(&before.requests);
    let touched: f64 = requests.iter().map(|(_, n)| n).sum();
    println!(
        "  API requests in the window, all clients, watches excluded: {touched:.0} ({:.1} per step); by verb and resource:",
        touched / lateness.count().max(1.0)
    );
    for ((verb, resource), count) in requests.iter().take(12) {
        println!("    {count:>7.0}  {verb} {resource}");
    }
    let log = controller.logs();
    let warnings = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .count();
    if warnings > 0 {
        println!(
            "  controller log lines at warn or error: {warnings}; the last:\n{}",
            tail(&log, 5)
        );
    }
    anyhow::Ok(())
    }
    .await;
    keep_log(&controller, "many");
    drop(controller);
    outcome
}

/// What is read of the controller and the machine at each end of the window.
struct Snapshot {
    /// When the controller's metrics and the process figures were read.
    at: Instant,
    cpu: f64,
    apiserver_cpu: f64,
    etcd_cpu: f64,
    own_cpu: f64,
    machine_busy: f64,
    lateness: Buckets,
    reconcile_durations: Buckets,
    reconciles: f64,
    hook_calls: u64,
    weights: HashMap<String, i32>,
    requests: Requests,
}

impl Snapshot {
    /// Reads the API server's counters first (kubectl takes a while), then everything else at
    /// one moment, `at`.
    async fn take(pid: u32, controller: &ControllerProcess, hooks: &HookServer, watch: &CanaryWatch) -> Self {
        let requests = Requests::read().await;
        let at = Instant::now();
        let exposition = controller
            .get(controller.metrics, "/metrics")
            .await
            .map(|(_, text)| text)
            .unwrap_or_default();
        let canary = |line: &str| line.contains("kind=\"Canary\"");
        Self {
            at,
            cpu: cpu_seconds(pid),
            apiserver_cpu: cluster_pid("kube-apiserver").map_or(0.0, cpu_seconds),
            etcd_cpu: cluster_pid("etcd").map_or(0.0, cpu_seconds),
            own_cpu: cpu_seconds(std::process::id()),
            machine_busy: machine_busy(),
            lateness: Buckets::parse(&exposition, "eddy_canary_step_lateness_seconds", |_| true),
            reconcile_durations: Buckets::parse(&exposition, "eddy_reconcile_duration_seconds", canary),
            reconciles: samples(&exposition, "eddy_reconcile_total")
                .filter(|(labels, _)| canary(labels))
                .map(|(_, v)| v)
                .sum(),
            hook_calls: hooks.calls(),
            weights: watch.states().into_iter().map(|(name, s)| (name, s.weight)).collect(),
            requests,
        }
    }
}

// --- the controller, the webhook server, the fake nodes ---------------------------------------

fn start_controller(ns: &str, settings: &Settings, extra: &[&str]) -> anyhow::Result<ControllerProcess> {
    let mut args = vec![
        format!("--watch-namespace={ns}"),
        "--leader-elect=false".to_owned(),
        format!("--concurrent={}", settings.concurrent),
        format!("--log-level={}", settings.log_level),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ControllerProcess::start("progressive-controller", &args)
}

/// Copies the controller's log to `.cache/bench-canary/<pid>/progressive-controller-<part>.log`
/// (the process's own log goes with it).
fn keep_log(controller: &ControllerProcess, part: &str) {
    let dir = repo_root().join(format!(".cache/bench-canary/{}", std::process::id()));
    let path = dir.join(format!("progressive-controller-{part}.log"));
    if std::fs::create_dir_all(&dir).is_ok() && std::fs::write(&path, controller.logs()).is_ok() {
        println!("  progressive-controller's log: {}", path.display());
    }
}

/// A webhook receiver on 127.0.0.1 that answers 200 to every POST and counts them.
struct HookServer {
    addr: SocketAddr,
    calls: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl HookServer {
    async fn start() -> anyhow::Result<Self> {
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let app = axum::Router::new().fallback(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, calls, task })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The Deployment `name` with `replicas` pods labelled `app: <name>`, placed on the benchmark's
/// fake nodes.
fn deployment(name: &str, replicas: i32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {NODE_KEY: std::process::id().to_string()},
                    "tolerations": [{"key": NODE_KEY, "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{"name": "web", "image": image, "ports": [{"containerPort": 8080}]}]
                }
            }
        }
    })
}

/// Fake nodes that KWOK keeps Ready (it manages every node), labelled and tainted with
/// [`NODE_KEY`] so that only the benchmark's pods run there.
struct FakeNodes {
    names: Vec<String>,
}

impl FakeNodes {
    async fn create(client: &Client, count: usize) -> anyhow::Result<Self> {
        let api: Api<Node> = Api::all(client.clone());
        let id = std::process::id().to_string();
        let mut names = Vec::new();
        for i in 0..count.max(1) {
            let name = format!("bench-canary-{id}-{i}");
            let pods = PODS_PER_NODE.to_string();
            let node = json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok", NODE_KEY: id}
                },
                "spec": {"taints": [{"key": NODE_KEY, "value": id, "effect": "NoSchedule"}]},
                "status": {
                    "allocatable": {"cpu": "64", "memory": "512Gi", "pods": pods},
                    "capacity": {"cpu": "64", "memory": "512Gi", "pods": pods}
                }
            });
            api.create(&PostParams::default(), &serde_json::from_value(node)?)
                .await
                .with_context(|| format!("creating Node {name}"))?;
            names.push(name);
        }
        let nodes = Self { names };
        let deadline = Instant::now() + Duration::from_secs(60);
        for name in &nodes.names {
            loop {
                let ready = api.get_opt(name).await.ok().flatten().is_some_and(|node| {
                    node.status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                });
                if ready {
                    break;
                }
                if Instant::now() > deadline {
                    nodes.delete(client).await;
                    bail!("fake Node {name} did not become Ready within 60 s (is the KWOK controller running?)");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(nodes)
    }

    async fn delete(&self, client: &Client) {
        let api: Api<Node> = Api::all(client.clone());
        for name in &self.names {
            let _ = api.delete(name, &DeleteParams::default()).await;
        }
    }
}

async fn delete_namespace_and_wait(client: &Client, ns: &str) {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let _ = api.delete(ns, &DeleteParams::background()).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while matches!(api.get_opt(ns).await, Ok(Some(_))) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Installs every CRD of `.cache/peer-crds/*.yaml` (tests/cluster/peer-crds.sh fetches them), as
/// tests/tests/cluster/routers.rs does, and waits until each is Established.
async fn install_peer_crds(client: &Client) -> anyhow::Result<()> {
    let dir = repo_root().join(".cache/peer-crds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("{} is missing: run tests/cluster/peer-crds.sh", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|path| path.extension().is_some_and(|ext| ext == "yaml"));
    files.sort();
    if files.is_empty() {
        bail!("no CRDs in {}: run tests/cluster/peer-crds.sh", dir.display());
    }
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("eddy-tests").force();
    let mut names = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        let documents: Vec<Value> =
            serde_saphyr::from_multiple(&text).with_context(|| format!("reading {}", file.display()))?;
        for document in documents
            .into_iter()
            .filter(|d| d["kind"] == "CustomResourceDefinition")
        {
            let crd: CustomResourceDefinition = serde_json::from_value(document)?;
            let name = crd.name_any();
            api.patch(&name, &params, &Patch::Apply(&crd))
                .await
                .with_context(|| format!("applying CRD {name} from {}", file.display()))?;
            names.push(name);
        }
    }
    for name in &names {
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), name, conditions::is_crd_established()),
        )
        .await
        .with_context(|| format!("CRD {name} did not become Established"))??;
    }
    Ok(())
}

fn httproute() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    )
}

// --- watching the Canaries and the Deployments ------------------------------------------------

/// A change of a Canary's phase or weight, when the benchmark saw it.
#[derive(Clone, Debug)]
struct CanaryChange {
    at: Instant,
    phase: Option<CanaryPhase>,
    weight: i32,
    failed_checks: i32,
}

/// What the benchmark keeps of a Canary's status.
#[derive(Clone, Debug, Default)]
struct CanaryState {
    phase: Option<CanaryPhase>,
    weight: i32,
    last_step: Option<Timestamp>,
    waiting: bool,
}

#[derive(Default)]
struct Watched {
    states: HashMap<String, CanaryState>,
    changes: Vec<CanaryChange>,
    /// (seen at, seconds late) of every step that followed a step, as the controller counts it.
    lateness: Vec<(Instant, f64)>,
}

/// Follows every Canary of a namespace with one watch: phases, weights and step lateness,
/// computed from `status.lastStepTime` exactly as progressive-controller's histogram is.
struct CanaryWatch {
    watched: Arc<Mutex<Watched>>,
    task: tokio::task::JoinHandle<()>,
}

impl CanaryWatch {
    fn start(client: &Client, ns: &str, interval: f64) -> Self {
        let watched = Arc::new(Mutex::new(Watched::default()));
        let api: Api<Canary> = Api::namespaced(client.clone(), ns);
        let into = watched.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(next) = stream.next().await {
                let Ok(canary) = next else { continue };
                let at = Instant::now();
                let status = canary.status.clone().unwrap_or_default();
                let now = CanaryState {
                    phase: status.phase,
                    weight: status.canary_weight,
                    last_step: status.last_step_time.as_ref().map(|t| t.0),
                    waiting: status.waiting_since.is_some(),
                };
                let mut watched = into.lock().unwrap();
                let before = watched
                    .states
                    .insert(canary.name_any(), now.clone())
                    .unwrap_or_default();
                if let (Some(previous), Some(step)) = (before.last_step, now.last_step)
                    && previous != step
                    && !before.waiting
                    && before.phase == now.phase
                {
                    let since = step.duration_since(previous).as_secs_f64();
                    watched.lateness.push((at, (since - interval).max(0.0)));
                }
                if (before.phase, before.weight) != (now.phase, now.weight) {
                    watched.changes.push(CanaryChange {
                        at,
                        phase: now.phase,
                        weight: now.weight,
                        failed_checks: status.failed_checks,
                    });
                }
            }
        });
        Self { watched, task }
    }

    fn states(&self) -> HashMap<String, CanaryState> {
        self.watched.lock().unwrap().states.clone()
    }

    fn changes_since(&self, since: Instant) -> Vec<CanaryChange> {
        let watched = self.watched.lock().unwrap();
        watched.changes.iter().filter(|c| c.at >= since).cloned().collect()
    }

    fn lateness(&self) -> Vec<(Instant, f64)> {
        self.watched.lock().unwrap().lateness.clone()
    }

    /// Waits until `done` holds of the states, for at most `limit`.
    async fn wait(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&HashMap<String, CanaryState>) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let states = self.states();
            if done(&states) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let phases = states.values().fold(BTreeMap::new(), |mut counts, s| {
                    *counts.entry(format!("{:?}/{}", s.phase, s.weight)).or_insert(0) += 1;
                    counts
                });
                bail!("timed out after {limit:?} waiting for {what}; Canaries by phase/weight: {phases:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for CanaryWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A change of a Deployment's readiness or replicas, when the benchmark saw it.
#[derive(Clone, Debug)]
struct DeploymentChange {
    at: Instant,
    name: String,
    ready: bool,
    replicas: i32,
}

/// Follows the Deployments of a namespace with one watch; ready as progressive-controller reads
/// it with the default ready threshold ([`deployment_ready`]).
struct DeploymentWatch {
    changes: Arc<Mutex<Vec<DeploymentChange>>>,
    task: tokio::task::JoinHandle<()>,
}

impl DeploymentWatch {
    fn start(client: &Client, ns: &str) -> Self {
        let changes: Arc<Mutex<Vec<DeploymentChange>>> = Arc::default();
        let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let into = changes.clone();
        let task = tokio::spawn(async move {
            let mut last: HashMap<String, (bool, i32, Option<String>)> = HashMap::new();
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(next) = stream.next().await {
                let Ok(deployment) = next else { continue };
                let at = Instant::now();
                let name = deployment.name_any();
                let now = (
                    deployment_ready(&deployment),
                    replicas(&deployment),
                    deployment.annotations().get(REVISION_ANNOTATION).cloned(),
                );
                if last.get(&name) != Some(&now) {
                    into.lock().unwrap().push(DeploymentChange {
                        at,
                        name: name.clone(),
                        ready: now.0,
                        replicas: now.1,
                    });
                    last.insert(name, now);
                }
            }
        });
        Self { changes, task }
    }

    fn changes_since(&self, since: Instant) -> Vec<DeploymentChange> {
        let changes = self.changes.lock().unwrap();
        changes.iter().filter(|c| c.at >= since).cloned().collect()
    }

    fn replicas(&self, name: &str) -> Option<i32> {
        let changes = self.changes.lock().unwrap();
        changes.iter().rev().find(|c| c.name == name).map(|c| c.replicas)
    }
}

impl Drop for DeploymentWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The replicas a Deployment asks for.
fn replicas(deployment: &Deployment) -> i32 {
    deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Every desired replica runs the current template and is available, no old one is left, and
/// the Deployment controller has seen the current generation: progressive-controller's ready
/// (`workload::workload`) at its default threshold, 100%.
fn deployment_ready(deployment: &Deployment) -> bool {
    let desired = replicas(deployment);
    let status = deployment.status.clone().unwrap_or_default();
    desired > 0
        && status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0)
        && status.updated_replicas.unwrap_or(0) >= desired
        && status.available_replicas.unwrap_or(0) >= desired
        && status.replicas.unwrap_or(0) <= desired
}

// --- reading metrics and /proc ----------------------------------------------------------------

/// The samples of metric `name` in a Prometheus or OpenMetrics exposition: (the line up to the
/// value, the value).
fn samples<'a>(exposition: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    exposition.lines().filter_map(move |line| {
        let rest = line.strip_prefix(name)?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        Some((series, value.parse().ok()?))
    })
}

/// The value of label `key` in a series written as in an exposition.
fn label<'a>(series: &'a str, key: &str) -> Option<&'a str> {
    // Preceded by `{` or `,`, so that `resource` does not match `subresource`.
    let start = [format!("{{{key}=\""), format!(",{key}=\"")]
        .iter()
        .find_map(|needle| series.find(needle.as_str()).map(|at| at + needle.len()))?;
    let end = series[start..].find('"')? + start;
    Some(&series[start..end])
}

/// A cumulative histogram read from an exposition: (upper bound, observations at most it),
/// ascending, `+Inf` last.
#[derive(Clone, Debug, Default)]
struct Buckets(Vec<(f64, f64)>);

impl Buckets {
    /// The buckets of histogram `name`, summed over the series `keep` accepts.
    fn parse(exposition: &str, name: &str, keep: impl Fn(&str) -> bool) -> Self {
        let bucket = format!("{name}_bucket");
        let mut by_bound: Vec<(f64, f64)> = Vec::new();
        for (series, value) in samples(exposition, &bucket).filter(|(series, _)| keep(series)) {
            let Some(bound) = label(series, "le").and_then(|le| le.replace("+Inf", "inf").parse::<f64>().ok()) else {
                continue;
            };
            match by_bound.iter_mut().find(|(b, _)| *b == bound) {
                Some((_, count)) => *count += value,
                None => by_bound.push((bound, value)),
            }
        }
        by_bound.sort_by(|a, b| a.0.total_cmp(&b.0));
        Self(by_bound)
    }

    /// The observations made between `earlier` and this.
    fn since(&self, earlier: &Buckets) -> Buckets {
        Buckets(
            self.0
                .iter()
                .map(|(bound, count)| {
                    let before = earlier.0.iter().find(|(b, _)| b == bound).map_or(0.0, |(_, c)| *c);
                    (*bound, count - before)
                })
                .collect(),
        )
    }

    fn count(&self) -> f64 {
        self.0.last().map_or(0.0, |(_, c)| *c)
    }

    /// The `q` quantile, interpolated within its bucket as `histogram_quantile` does; the
    /// highest finite bound when it falls in the `+Inf` bucket.
    fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for (bound, count) in &self.0 {
            if *count >= rank {
                if bound.is_infinite() {
                    return Some(lower.0);
                }
                let within = (rank - lower.1) / (count - lower.1).max(f64::MIN_POSITIVE);
                return Some(lower.0 + (bound - lower.0) * within);
            }
            lower = (*bound, *count);
        }
        None
    }

    /// The smallest bound every observation is within (infinite when some fell above all).
    fn all_within(&self) -> Option<f64> {
        let total = self.count();
        (total > 0.0).then(|| {
            self.0
                .iter()
                .find(|(_, count)| *count >= total)
                .map_or(f64::INFINITY, |(bound, _)| *bound)
        })
    }

    /// Observations above `bound` (which should be one of the bounds).
    fn above(&self, bound: f64) -> f64 {
        let within = self.0.iter().rfind(|(b, _)| *b <= bound).map_or(0.0, |(_, c)| *c);
        self.count() - within
    }
}

fn shown(seconds: Option<f64>) -> String {
    match seconds {
        None => "n/a".to_owned(),
        Some(s) if s.is_infinite() => "+Inf".to_owned(),
        Some(s) if s < 1.0 => format!("{:.1} ms", s * 1e3),
        Some(s) => format!("{s:.3} s"),
    }
}

/// The API server's `apiserver_request_total` by (verb, resource), watches excluded.
struct Requests(BTreeMap<(String, String), f64>);

impl Requests {
    async fn read() -> Self {
        let kubectl = repo_root().join(".cache/cluster/bin/kubectl");
        let output = tokio::process::Command::new(kubectl)
            .args(["get", "--raw", "/metrics"])
            .env("KUBECONFIG", kubeconfig_path())
            .output()
            .await;
        let text = output
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut counts = BTreeMap::new();
        for (series, value) in samples(&text, "apiserver_request_total") {
            let verb = label(series, "verb").unwrap_or_default();
            if verb == "WATCH" {
                continue;
            }
            let mut resource = label(series, "resource").unwrap_or_default().to_owned();
            if let Some(sub) = label(series, "subresource").filter(|s| !s.is_empty()) {
                resource = format!("{resource}/{sub}");
            }
            *counts.entry((verb.to_owned(), resource)).or_insert(0.0) += value;
        }
        Self(counts)
    }

    /// The requests made since `earlier`, most first.
    fn delta(&self, earlier: &Requests) -> Vec<((String, String), f64)> {
        let mut delta: Vec<((String, String), f64)> = self
            .0
            .iter()
            .map(|(key, n)| (key.clone(), n - earlier.0.get(key).copied().unwrap_or(0.0)))
            .filter(|(_, n)| *n > 0.0)
            .collect();
        delta.sort_by(|a, b| b.1.total_cmp(&a.1));
        delta
    }
}

fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / clock_ticks()
}

/// Core-seconds the machine spent busy since boot.
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let fields: Vec<f64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system (idle) (iowait) irq softirq steal
    [0, 1, 2, 5, 6, 7].iter().filter_map(|i| fields.get(*i)).sum::<f64>() / clock_ticks()
}

fn cluster_pid(component: &str) -> Option<u32> {
    let path = repo_root().join(format!(".cache/cluster/kwok/clusters/eddy/pids/{component}.pid"));
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn code_version() -> String {
    Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(repo_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
