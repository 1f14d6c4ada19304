//! Canary releases end to end: progressive-controller against the local control plane (KWOK
//! makes the primary's and the target's pods Ready), Debian's Prometheus scraping two test apps
//! (the primary's and the canary's), and Debian's nginx standing in for a Gateway API data plane,
//! reconfigured from the HTTPRoute the controller writes. Load goes through nginx, so the
//! canary's metrics move only because the controller moved traffic.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use eddy_api::progressive::{Canary, CanaryPhase};
use eddy_tests::prometheus::{Prometheus, ScrapeTarget};
use eddy_tests::traffic::{Behaviour, LoadGenerator, NginxGatewayStandIn, TestApp, canary_services};
use eddy_tests::{ControllerProcess, cluster_namespace, delete_namespace, eventually, install_crds, workspace_binary};

use crate::routers::install_peer_crds;

/// How long a whole release may take on a busy two-core machine.
const RELEASE_LIMIT: Duration = Duration::from_secs(120);

fn httproute() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    )
}

/// The target Deployment `web`, running `image`.
fn deployment(image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 8080}]}]}
            }
        }
    })
}

/// Everything a canary test needs, stopped when dropped.
struct Rig {
    client: Client,
    ns: String,
    stable: TestApp,
    canary: TestApp,
    prometheus: Prometheus,
    controller: Option<ControllerProcess>,
    /// The canary weights nginx was configured with, in order, each once per change.
    weights: Arc<Mutex<Vec<i64>>>,
    /// Every HTTPRoute spec nginx was configured with, in order.
    routes: Arc<Mutex<Vec<Value>>>,
    follower: Option<JoinHandle<()>>,
    proxy_url: Option<String>,
}

impl Rig {
    /// Starts the apps (the canary behaving as `canary`), Prometheus, the target Deployment and
    /// progressive-controller; with `proxy`, nginx following the HTTPRoute.
    async fn start(prefix: &str, canary: Behaviour, proxy: bool) -> Self {
        let (client, ns) = cluster_namespace(prefix).await;
        install_crds(&client).await.unwrap();
        install_peer_crds(&client).await;
        let stable = TestApp::start("primary", Behaviour::healthy()).await.unwrap();
        let canary = TestApp::start("canary", canary).await.unwrap();
        let prometheus = Prometheus::start(&[
            ScrapeTarget::new(stable.addr, &[("namespace", &ns), ("workload", "web-primary")]),
            ScrapeTarget::new(canary.addr, &[("namespace", &ns), ("workload", "web")]),
        ])
        .await
        .unwrap();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        deployments
            .create(
                &PostParams::default(),
                &serde_json::from_value(deployment("example/web:1")).unwrap(),
            )
            .await
            .unwrap();
        let mut rig = Self {
            client,
            ns,
            stable,
            canary,
            prometheus,
            controller: None,
            weights: Arc::default(),
            routes: Arc::default(),
            follower: None,
            proxy_url: None,
        };
        rig.start_controller();
        if proxy {
            rig.follow_route().await;
        }
        rig
    }

    fn start_controller(&mut self) {
        let metrics_server = format!("--metrics-server={}", self.prometheus.url());
        self.controller = Some(
            ControllerProcess::start(
                "progressive-controller",
                &[
                    &format!("--leader-election-namespace={}", self.ns),
                    &format!("--watch-namespace={}", self.ns),
                    &metrics_server,
                    "--leader-election-lease-duration=2s",
                ],
            )
            .unwrap(),
        );
    }

    /// Starts nginx and a task that reconfigures it whenever the HTTPRoute `web` changes.
    async fn follow_route(&mut self) {
        let mut proxy = NginxGatewayStandIn::start(canary_services("web", self.stable.addr, self.canary.addr))
            .await
            .unwrap();
        self.proxy_url = Some(proxy.url("/"));
        let routes: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &self.ns, &httproute());
        let weights = self.weights.clone();
        let configured = self.routes.clone();
        self.follower = Some(tokio::spawn(async move {
            let mut seen = String::new();
            loop {
                if let Ok(Some(route)) = routes.get_opt("web").await {
                    let version = route.resource_version().unwrap_or_default();
                    if version != seen {
                        let route = serde_json::to_value(&route).unwrap();
                        proxy
                            .configure(&route)
                            .await
                            .expect("nginx follows the controller's HTTPRoute");
                        seen = version;
                        configured.lock().unwrap().push(route["spec"].clone());
                        if std::env::var_os("EDDY_DEBUG_NGINX").is_some() {
                            eprintln!("{}", proxy.config());
                        }
                        let weight = canary_weight(&route);
                        let mut weights = weights.lock().unwrap();
                        if weights.last() != Some(&weight) {
                            weights.push(weight);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }

    fn load(&self, rate: u32, headers: &[(&str, &str)]) -> LoadGenerator {
        LoadGenerator::start(self.proxy_url.as_deref().expect("the rig has a proxy"), rate, headers).unwrap()
    }

    fn canaries(&self) -> Api<Canary> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn create_canary(&self, spec: Value) {
        let canary = json!({
            "apiVersion": "progressive.eddy.dev/v1alpha1",
            "kind": "Canary",
            "metadata": {"name": "web"},
            "spec": spec,
        });
        self.canaries()
            .create(&PostParams::default(), &serde_json::from_value(canary).unwrap())
            .await
            .unwrap();
    }

    async fn phase(&self) -> Option<CanaryPhase> {
        self.canaries().get("web").await.ok()?.status?.phase
    }

    async fn wait_for_phase(&self, phase: CanaryPhase, limit: Duration) -> Canary {
        let what = format!("Canary/{}/web to reach {phase:?}", self.ns);
        let started = Instant::now();
        loop {
            let canary = self.canaries().get("web").await.unwrap();
            if canary.status.as_ref().and_then(|s| s.phase) == Some(phase) {
                return canary;
            }
            if started.elapsed() > limit {
                panic!(
                    "timed out waiting for {what}; status: {}\ncontroller logs:\n{}",
                    serde_json::to_string_pretty(&canary.status).unwrap(),
                    self.controller
                        .as_ref()
                        .map(ControllerProcess::logs)
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until nginx was configured with `weight` on the canary.
    async fn wait_for_weight(&self, weight: i64, limit: Duration) {
        let started = Instant::now();
        while !self.weights().contains(&weight) {
            if started.elapsed() > limit {
                let status = self.canaries().get("web").await.ok().and_then(|c| c.status);
                panic!(
                    "timed out waiting for the canary at {weight}%: weights {:?}; status: {}\ncontroller logs:\n{}",
                    self.weights(),
                    serde_json::to_string_pretty(&status).unwrap(),
                    self.controller
                        .as_ref()
                        .map(ControllerProcess::logs)
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until nginx was configured with a route whose spec satisfies `check`: requests
    /// sent afterwards are routed by it.
    async fn wait_for_route(&self, what: &str, check: impl Fn(&Value) -> bool) {
        let started = Instant::now();
        while !self.routes.lock().unwrap().last().is_some_and(&check) {
            if started.elapsed() > RELEASE_LIMIT {
                let status = self.canaries().get("web").await.ok().and_then(|c| c.status);
                panic!("timed out waiting for nginx to route with {what}; status: {status:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The weights nginx was given since the release started (after the primary took over).
    fn release_weights(&self) -> Vec<i64> {
        let weights = self.weights();
        let start = weights.iter().position(|w| *w == 0).unwrap_or(0);
        weights[start..].to_vec()
    }

    /// Releases a new version of the target: its image changes.
    async fn release(&self, image: &str) {
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.ns);
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}});
        deployments
            .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .unwrap();
    }

    async fn deployment(&self, name: &str) -> Deployment {
        Api::<Deployment>::namespaced(self.client.clone(), &self.ns)
            .get(name)
            .await
            .unwrap()
    }

    fn weights(&self) -> Vec<i64> {
        self.weights.lock().unwrap().clone()
    }

    async fn stop(mut self) {
        if let Some(follower) = self.follower.take() {
            follower.abort();
        }
        self.prometheus.stop();
        delete_namespace(&self.client, &self.ns).await;
    }
}

fn image(deployment: &Deployment) -> String {
    deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

fn replicas(deployment: &Deployment) -> i32 {
    deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// The canary's weight in an HTTPRoute's default (last) rule.
fn canary_weight(route: &Value) -> i64 {
    let rules = route["spec"]["rules"].as_array().cloned().unwrap_or_default();
    let Some(rule) = rules.last() else { return 0 };
    rule["backendRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["name"] == "web-canary")
        .and_then(|b| b["weight"].as_i64())
        .unwrap_or(0)
}

/// The spec of a weighted canary on the Gateway API router, checked by the built-in metrics.
fn weighted_spec(extra: Value) -> Value {
    let mut spec = json!({
        "provider": "gatewayapi",
        "targetRef": {"kind": "Deployment", "name": "web"},
        "service": {"port": 80, "targetPort": 8080, "gatewayRefs": [{"name": "gateway"}]},
        "progressDeadlineSeconds": 60,
        "analysis": {
            "interval": "2s",
            "threshold": 2,
            "stepWeights": [5, 25, 50, 100],
            "metrics": [
                {"name": "request-success-rate", "interval": "30s", "thresholdRange": {"min": 99}},
                {"name": "request-duration", "interval": "30s", "thresholdRange": {"max": 500}}
            ]
        }
    });
    merge(&mut spec, extra);
    spec
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (key, value) in extra {
                if value.is_null() {
                    base.remove(&key);
                } else {
                    merge(base.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (base, extra) => *base = extra,
    }
}

/// A webhook receiver on 127.0.0.1 that counts calls per path and answers each path with the
/// status a test sets (200 unless told).
#[derive(Clone, Default)]
struct Hooks {
    calls: Arc<Mutex<BTreeMap<String, u32>>>,
    answers: Arc<Mutex<BTreeMap<String, u16>>>,
}

impl Hooks {
    async fn start() -> (Self, SocketAddr, JoinHandle<()>) {
        let hooks = Self::default();
        let state = hooks.clone();
        let app = Router::new().route(
            "/{hook}",
            post(move |axum::extract::Path(hook): axum::extract::Path<String>| {
                let state = state.clone();
                async move {
                    *state.calls.lock().unwrap().entry(hook.clone()).or_default() += 1;
                    let code = state.answers.lock().unwrap().get(&hook).copied().unwrap_or(200);
                    StatusCode::from_u16(code).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (hooks, addr, server)
    }

    fn answer(&self, hook: &str, code: u16) {
        self.answers.lock().unwrap().insert(hook.into(), code);
    }

    fn calls(&self, hook: &str) -> u32 {
        self.calls.lock().unwrap().get(hook).copied().unwrap_or(0)
    }
}

fn hook(kind: &str, addr: SocketAddr) -> Value {
    json!({"type": kind, "name": kind, "url": format!("http://{addr}/{kind}"), "timeout": "2s"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local control plane, Prometheus and nginx (scripts/test runs them)"]
async fn a_healthy_canary_walks_its_steps_and_is_promoted() {
    let rig = Rig::start("canary-healthy", Behaviour::healthy(), true).await;
    rig.create_canary(weighted_spec(json!({}))).await;
    let initialized = rig.wait_for_phase(CanaryPhase::Initialized, RELEASE_LIMIT).await;
    eventually(Duration::from_secs(20), "the target scaled to zero", || async {
        (replicas(&rig.deployment("web").await) == 0).then_some(())
    })
    .await;
    let primary = rig.deployment("web-primary").await;
    assert_eq!(image(&primary), "example/web:1");
    assert_eq!(replicas(&primary), 2, "the primary takes the target's replicas");
    assert_eq!(primary.annotations()["apply.eddy.dev/reconcile"], "disabled");
    assert_eq!(primary.owner_references()[0].uid, initialized.uid().unwrap());
    let services: Api<Service> = Api::namespaced(rig.client.clone(), &rig.ns);
    for name in ["web", "web-primary", "web-canary"] {
        services
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("Service {name}: {e}"));
    }

    let load = rig.load(40, &[]);
    rig.release("example/web:2").await;
    let done = rig.wait_for_phase(CanaryPhase::Succeeded, RELEASE_LIMIT).await;
    let counts = load.stop().await;

    eventually(
        Duration::from_secs(20),
        "traffic back on the promoted primary",
        || async { (rig.weights().last() == Some(&0)).then_some(()) },
    )
    .await;
    let weights = rig.weights();
    // Until the primary is ready the target keeps serving (100 on the canary's side), then the
    // primary takes all of it, then the release walks its steps and hands traffic back.
    assert_eq!(weights, vec![100, 0, 5, 25, 50, 100, 0], "nginx routed the canary so");
    assert_eq!(image(&rig.deployment("web-primary").await), "example/web:2", "promoted");
    assert_eq!(replicas(&rig.deployment("web").await), 0, "the canary is scaled down");
    assert!(
        counts.served_by("canary") > 0,
        "the canary answered real traffic: {counts:?}"
    );
    let status = done.status.unwrap();
    let success = status
        .last_checks
        .iter()
        .find(|c| c.name == "request-success-rate")
        .unwrap();
    assert!(success.passed && success.value.unwrap() >= 99.0, "{success:?}");
    assert!(status.history.iter().any(|s| s.values.contains_key("request-duration")));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local control plane, Prometheus and nginx (scripts/test runs them)"]
async fn a_canary_whose_error_rate_rises_is_rolled_back_without_a_human() {
    let bad = Behaviour {
        error_rate: 0.3,
        ..Behaviour::healthy()
    };
    let rig = Rig::start("canary-errors", bad, true).await;
    rig.create_canary(weighted_spec(json!({}))).await;
    rig.wait_for_phase(CanaryPhase::Initialized, RELEASE_LIMIT).await;
    let _load = rig.load(40, &[]);
    rig.release("example/web:2").await;
    let failed = rig.wait_for_phase(CanaryPhase::Failed, RELEASE_LIMIT).await;
    let status = failed.status.unwrap();
    assert_eq!(status.failed_checks, 2);
    assert_eq!(status.canary_weight, 0);
    let check = status
        .last_checks
        .iter()
        .find(|c| c.name == "request-success-rate")
        .unwrap();
    assert!(!check.passed && check.value.unwrap() < 99.0, "{check:?}");
    assert_eq!(
        image(&rig.deployment("web-primary").await),
        "example/web:1",
        "never promoted"
    );
    eventually(Duration::from_secs(20), "the canary scaled to zero", || async {
        (replicas(&rig.deployment("web").await) == 0).then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(20),
        "nginx routing everything to the primary",
        || async { (rig.weights().last() == Some(&0)).then_some(()) },
    )
    .await;
    let ready = eddy_api::conditions::get(&status.conditions, "Ready").cloned().unwrap();
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains("request-success-rate"), "{}", ready.message);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local control plane, Prometheus and nginx (scripts/test runs them)"]
async fn prometheus_stopped_mid_analysis_fails_the_checks_and_never_promotes() {
    let mut rig = Rig::start("canary-noprom", Behaviour::healthy(), true).await;
    rig.create_canary(weighted_spec(
        json!({"analysis": {"stepWeights": [10, 20, 30, 40, 50, 60, 70, 80]}}),
    ))
    .await;
    rig.wait_for_phase(CanaryPhase::Initialized, RELEASE_LIMIT).await;
    let _load = rig.load(40, &[]);
    rig.release("example/web:2").await;
    rig.wait_for_weight(20, RELEASE_LIMIT).await;
    rig.prometheus.kill();
    let failed = rig.wait_for_phase(CanaryPhase::Failed, RELEASE_LIMIT).await;
    let status = failed.status.unwrap();
    let check = status
        .last_checks
        .iter()
        .find(|c| c.name == "request-success-rate")
        .unwrap();
    assert!(!check.passed && check.value.is_none(), "{check:?}");
    assert!(
        check.message.as_deref().unwrap_or_default().contains("Prometheus"),
        "{check:?}"
    );
    assert_eq!(
        image(&rig.deployment("web-primary").await),
        "example/web:1",
        "never promoted"
    );
    let weights = rig.release_weights();
    assert!(
        weights.iter().all(|w| *w <= 30),
        "no step after Prometheus went away: {weights:?}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local control plane, Prometheus and nginx (scripts/test runs them)"]
async fn confirm_promotion_holds_in_waiting_promotion_until_eddy_canary_promote() {
    let (hooks, addr, server) = Hooks::start().await;
    hooks.answer("confirm-promotion", 403);
    let rig = Rig::start("canary-confirm", Behaviour::healthy(), true).await;
    rig.create_canary(weighted_spec(json!({"analysis": {
        "stepWeights": [50],
        "webhooks": [hook("confirm-promotion", addr), hook("post-rollout", addr)]
    }})))
    .await;
    rig.wait_for_phase(CanaryPhase::Initialized, RELEASE_LIMIT).await;
    let _load = rig.load(40, &[]);
    rig.release("example/web:2").await;
    rig.wait_for_phase(CanaryPhase::WaitingPromotion, RELEASE_LIMIT).await;
    let asked = hooks.calls("confirm-promotion");
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(rig.phase().await, Some(CanaryPhase::WaitingPromotion), "the gate holds");
    assert!(
        hooks.calls("confirm-promotion") > asked,
        "the gate is asked again every interval"
    );
    assert_eq!(image(&rig.deployment("web-primary").await), "example/web:1");

    let output = tokio::process::Command::new(workspace_binary("eddy"))
        .args(["canary", "promote", "web", "-n", &rig.ns, "--timeout=60s"])
        .env("KUBECONFIG", eddy_tests::kubeconfig_path())
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    rig.wait_for_phase(CanaryPhase::Succeeded, RELEASE_LIMIT).await;
    assert_eq!(image(&rig.deployment("web-primary").await), "example/web:2");
    eventually(Duration::from_secs(20), "the post-rollout hook", || async {
        (hooks.calls("post-rollout") == 1).then_some(())
    })
    .await;
    server.abort();
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local control plane, Prometheus and nginx (scripts/test runs them)"]
async fn blue_green_on_the_kubernetes_router_switches_the_apex_service_once() {
    let (hooks, addr, server) = Hooks::start().await;
    let rig = Rig::start("canary-bluegreen", Behaviour::healthy(), false).await;
    rig.create_canary(json!({
        "provider": "kubernetes",
        "targetRef": {"kind": "Deployment", "name": "web"},
        "service": {"port": 80, "targetPort": 8080},
        "analysis": {"interval": "1s", "iterations": 3, "webhooks": [hook("rollout", addr)]}
    }))
    .await;
    rig.wait_for_phase(CanaryPhase::Initialized, RELEASE_LIMIT).await;
    let services: Api<Service> = Api::namespaced(rig.client.clone(), &rig.ns);
    let selector = |service: Service| service.spec.unwrap().selector.unwrap()["app"].clone();
    // The status is written first; the apex Service follows it a moment later.
    eventually(Duration::from_secs(20), "the apex Service on the primary", || async {
        (selector(services.get("web").await.ok()?) == "web-primary").then_some(())
    })
    .await;

    rig.release("example/web:2").await;
    let mut selectors = vec!["web-primary".to_owned()];
    let started = Instant::now();
    while rig.phase().await != Some(CanaryPhase::Succeeded) {
        let now = selector(services.get("web").await.unwrap());
        if selectors.last() != Some(&now) {
            selectors.push(now);
        }
        assert!(
            started.elapsed() < RELEASE_LIMIT,
            "not promoted; selectors {selectors:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    selectors.push(selector(services.get("web").await.unwrap()));
    selectors.dedup();
    assert_eq!(
        selectors,
        vec!["web-primary", "web", "web-primary"],
        "one switch to the canary and back"
    );
    assert!(hooks.calls("rollout") >= 3, "every iteration ran its check");
    assert_eq!(image(&rig.deployment("web-primary").await), "example/web:2");
    server.abort();
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local control plane, Prometheus and nginx (scripts/test runs them)"]
async fn ab_testing_sends_only_matching_requests_to_the_canary() {
    let rig = Rig::start("canary-ab", Behaviour::healthy(), true).await;
    rig.create_canary(weighted_spec(json!({"analysis": {
        "stepWeights": null,
        "iterations": 4,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}]
    }})))
    .await;
    rig.wait_for_phase(CanaryPhase::Initialized, RELEASE_LIMIT).await;
    let insiders = rig.load(20, &[("x-canary", "insider")]);
    let others = rig.load(20, &[]);
    rig.release("example/web:2").await;
    rig.wait_for_phase(CanaryPhase::Progressing, RELEASE_LIMIT).await;
    // Once the matched route is in place, measure a while.
    rig.wait_for_route("the matched rule", |spec| {
        spec["rules"].as_array().is_some_and(|r| r.len() == 2)
    })
    .await;
    insiders.reset();
    others.reset();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (inside, outside) = (insiders.counts(), others.counts());
    if rig.phase().await == Some(CanaryPhase::Progressing) {
        let status = rig.canaries().get("web").await.unwrap().status;
        assert_eq!(
            inside.served_by("primary"),
            0,
            "insiders all on the canary: {inside:?}; weights {:?}; status {status:?}",
            rig.weights()
        );
        assert_eq!(
            outside.served_by("canary"),
            0,
            "everyone else on the primary: {outside:?}; routes {:#?}",
            rig.routes.lock().unwrap()
        );
    }
    rig.wait_for_phase(CanaryPhase::Succeeded, RELEASE_LIMIT).await;
    assert_eq!(image(&rig.deployment("web-primary").await), "example/web:2");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local control plane, Prometheus and nginx (scripts/test runs them)"]
async fn mirroring_copies_requests_to_the_canary_while_the_primary_answers() {
    let rig = Rig::start("canary-mirror", Behaviour::healthy(), true).await;
    rig.create_canary(weighted_spec(json!({"analysis": {
        "stepWeights": null,
        "iterations": 4,
        "mirror": true
    }})))
    .await;
    rig.wait_for_phase(CanaryPhase::Initialized, RELEASE_LIMIT).await;
    let load = rig.load(30, &[]);
    rig.release("example/web:2").await;
    rig.wait_for_route("the mirror filter", |spec| spec.to_string().contains("RequestMirror"))
        .await;
    load.reset();
    let before = rig.canary.requests_by_code().await.unwrap().values().sum::<u64>();
    eventually(RELEASE_LIMIT, "mirrored requests at the canary", || async {
        let now = rig.canary.requests_by_code().await.ok()?.values().sum::<u64>();
        (now > before + 20).then_some(())
    })
    .await;
    let counts = load.counts();
    if rig.phase().await == Some(CanaryPhase::Progressing) {
        assert_eq!(
            counts.served_by("canary"),
            0,
            "every answer comes from the primary: {counts:?}"
        );
    }
    let done = rig.wait_for_phase(CanaryPhase::Succeeded, RELEASE_LIMIT).await;
    let history = done.status.unwrap().history;
    assert!(
        history.iter().any(|s| s.values.contains_key("request-success-rate")),
        "the canary was measured on mirrored traffic: {history:?}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local control plane, Prometheus and nginx (scripts/test runs them)"]
async fn a_new_revision_mid_analysis_restarts_from_zero_and_the_newest_is_promoted() {
    let rig = Rig::start("canary-restart", Behaviour::healthy(), true).await;
    rig.create_canary(weighted_spec(json!({}))).await;
    rig.wait_for_phase(CanaryPhase::Initialized, RELEASE_LIMIT).await;
    let _load = rig.load(40, &[]);
    rig.release("example/web:2").await;
    rig.wait_for_weight(25, RELEASE_LIMIT).await;
    rig.release("example/web:3").await;
    rig.wait_for_phase(CanaryPhase::Succeeded, RELEASE_LIMIT).await;
    let weights = rig.release_weights();
    let restart = weights.iter().position(|w| *w == 25).unwrap();
    assert_eq!(weights[restart + 1], 0, "restarted from 0 after {weights:?}");
    assert!(
        weights[restart + 1..].contains(&5),
        "walked again from the first step: {weights:?}"
    );
    assert_eq!(image(&rig.deployment("web-primary").await), "example/web:3");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local control plane, Prometheus and nginx (scripts/test runs them)"]
async fn killed_in_every_phase_the_controller_resumes_without_a_jump_or_a_second_promotion() {
    let (hooks, addr, server) = Hooks::start().await;
    hooks.answer("confirm-promotion", 403);
    let mut rig = Rig::start("canary-kill", Behaviour::healthy(), true).await;
    rig.create_canary(weighted_spec(json!({"analysis": {
        "webhooks": [hook("pre-rollout", addr), hook("confirm-promotion", addr), hook("post-rollout", addr)]
    }})))
    .await;
    rig.wait_for_phase(CanaryPhase::Initialized, RELEASE_LIMIT).await;
    let primary_generation = rig.deployment("web-primary").await.metadata.generation.unwrap();
    let _load = rig.load(40, &[]);
    rig.release("example/web:2").await;

    // Kill the controller (SIGKILL, no cleanup) whenever the weight or the phase changes, and
    // start a new one at once, until the release is done.
    static KILLS: AtomicU32 = AtomicU32::new(0);
    let mut last = (None, -1);
    let started = Instant::now();
    loop {
        let canary = rig.canaries().get("web").await.unwrap();
        let status = canary.status.clone().unwrap_or_default();
        if status.phase == Some(CanaryPhase::WaitingPromotion) {
            hooks.answer("confirm-promotion", 200);
        }
        if status.phase == Some(CanaryPhase::Succeeded) {
            break;
        }
        let now = (status.phase, status.canary_weight);
        if now != last {
            last = now;
            rig.controller.as_ref().unwrap().signal("KILL").unwrap();
            rig.controller = None;
            KILLS.fetch_add(1, Ordering::Relaxed);
            rig.start_controller();
        }
        assert!(started.elapsed() < RELEASE_LIMIT * 2, "not promoted; status {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(KILLS.load(Ordering::Relaxed) >= 5, "killed in every phase");
    eventually(Duration::from_secs(20), "the post-rollout hook", || async {
        (hooks.calls("post-rollout") > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let weights = rig.release_weights();
    let ladder = [0, 5, 25, 50, 100];
    for pair in weights.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        let next = ladder
            .iter()
            .position(|w| *w == from)
            .and_then(|i| ladder.get(i + 1))
            .copied();
        assert!(
            to < from || Some(to) == next,
            "weight jumped {from} -> {to} in {weights:?}"
        );
    }
    assert_eq!(hooks.calls("pre-rollout"), 1, "pre-rollout once");
    assert_eq!(hooks.calls("post-rollout"), 1, "post-rollout once");
    let primary = rig.deployment("web-primary").await;
    assert_eq!(image(&primary), "example/web:2");
    assert_eq!(
        primary.metadata.generation.unwrap(),
        primary_generation + 1,
        "the primary was written with the canary's spec once"
    );
    server.abort();
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local control plane, Prometheus and nginx (scripts/test runs them)"]
async fn promotion_never_routes_to_a_primary_that_is_not_ready() {
    let (hooks, addr, server) = Hooks::start().await;
    hooks.answer("confirm-promotion", 403);
    let rig = Rig::start("canary-unready", Behaviour::healthy(), true).await;
    rig.create_canary(weighted_spec(json!({"analysis": {
        "stepWeights": [50, 100],
        "webhooks": [hook("confirm-promotion", addr)]
    }})))
    .await;
    rig.wait_for_phase(CanaryPhase::Initialized, RELEASE_LIMIT).await;
    let _load = rig.load(40, &[]);
    rig.release("example/web:2").await;
    rig.wait_for_phase(CanaryPhase::WaitingPromotion, RELEASE_LIMIT).await;
    // Someone pauses the primary's rollouts: its new template will not roll out.
    let deployments: Api<Deployment> = Api::namespaced(rig.client.clone(), &rig.ns);
    let pause = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"paused": true}});
    deployments
        .patch(
            "web-primary",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(&pause),
        )
        .await
        .unwrap();
    hooks.answer("confirm-promotion", 200);
    rig.wait_for_phase(CanaryPhase::Promoting, RELEASE_LIMIT).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(rig.phase().await, Some(CanaryPhase::Promoting), "waits for the primary");
    assert_eq!(rig.weights().last(), Some(&100), "all traffic stays on the canary");

    let resume = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"paused": false}});
    deployments
        .patch(
            "web-primary",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(&resume),
        )
        .await
        .unwrap();
    rig.wait_for_phase(CanaryPhase::Succeeded, RELEASE_LIMIT).await;
    eventually(Duration::from_secs(20), "traffic back on the primary", || async {
        (rig.weights().last() == Some(&0)).then_some(())
    })
    .await;
    server.abort();
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local control plane and Prometheus (scripts/test runs them)"]
async fn a_canary_that_cannot_be_released_says_why() {
    let rig = Rig::start("canary-invalid", Behaviour::healthy(), false).await;
    // The kubernetes router switches the apex Service: it cannot split by weight.
    rig.create_canary(json!({
        "provider": "kubernetes",
        "targetRef": {"kind": "Deployment", "name": "web"},
        "service": {"port": 80},
        "analysis": {"strategy": "Canary", "stepWeight": 10}
    }))
    .await;
    let stalled = eventually(Duration::from_secs(30), "Stalled on the Canary", || async {
        let canary = rig.canaries().get("web").await.ok()?;
        eddy_api::conditions::get(&canary.status?.conditions, "Stalled").cloned()
    })
    .await;
    assert_eq!(stalled.reason, "InvalidSpec");
    assert!(
        stalled.message.contains("kubernetes router cannot"),
        "{}",
        stalled.message
    );
    assert_eq!(replicas(&rig.deployment("web").await), 2, "the target is left alone");

    let missing: Api<Canary> = rig.canaries();
    missing
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "progressive.eddy.dev/v1alpha1",
                "kind": "Canary",
                "metadata": {"name": "ghost"},
                "spec": {
                    "provider": "kubernetes",
                    "targetRef": {"kind": "Deployment", "name": "ghost"},
                    "service": {"port": 80}
                }
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let ready = eventually(
        Duration::from_secs(30),
        "Ready on the Canary without target",
        || async {
            let canary = missing.get("ghost").await.ok()?;
            eddy_api::conditions::get(&canary.status?.conditions, "Ready").cloned()
        },
    )
    .await;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "TargetNotFound")
    );
    assert!(
        ready.message.contains(&format!("Deployment/{}/ghost", rig.ns)),
        "{}",
        ready.message
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local control plane and Prometheus (scripts/test runs them)"]
async fn revert_on_deletion_gives_the_target_its_traffic_back() {
    let rig = Rig::start("canary-revert", Behaviour::healthy(), false).await;
    rig.create_canary(json!({
        "provider": "kubernetes",
        "targetRef": {"kind": "Deployment", "name": "web"},
        "service": {"port": 80, "targetPort": 8080},
        "revertOnDeletion": true,
        "analysis": {"interval": "1s", "iterations": 2}
    }))
    .await;
    rig.wait_for_phase(CanaryPhase::Initialized, RELEASE_LIMIT).await;
    eventually(Duration::from_secs(20), "the target scaled to zero", || async {
        (replicas(&rig.deployment("web").await) == 0).then_some(())
    })
    .await;
    rig.canaries()
        .delete("web", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    eventually(RELEASE_LIMIT, "the Canary gone", || async {
        rig.canaries().get_opt("web").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(
        replicas(&rig.deployment("web").await),
        2,
        "the target has its replicas back"
    );
    let services: Api<Service> = Api::namespaced(rig.client.clone(), &rig.ns);
    let apex = services.get("web").await.expect("the apex Service stays");
    assert_eq!(
        apex.spec.unwrap().selector.unwrap()["app"],
        "web",
        "and selects the target's pods"
    );
    assert!(apex.metadata.owner_references.unwrap_or_default().is_empty());
    rig.stop().await;
}

/// The canary weights of the HTTPRoute `web` as the API server holds it, polled until `done`.
async fn route_weights_until(rig: &Rig, done: impl AsyncFn() -> bool) -> Vec<i64> {
    let routes: Api<DynamicObject> = Api::namespaced_with(rig.client.clone(), &rig.ns, &httproute());
    let mut weights: Vec<i64> = Vec::new();
    let started = Instant::now();
    while !done().await {
        if let Ok(Some(route)) = routes.get_opt("web").await {
            let weight = canary_weight(&serde_json::to_value(&route).unwrap());
            if weights.last() != Some(&weight) {
                weights.push(weight);
            }
        }
        assert!(started.elapsed() < RELEASE_LIMIT, "still going after {weights:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    weights
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local control plane and Prometheus (scripts/test runs them)"]
async fn step_weight_climbs_to_max_weight_then_promotes() {
    let (hooks, addr, server) = Hooks::start().await;
    let rig = Rig::start("canary-stepweight", Behaviour::healthy(), false).await;
    rig.create_canary(weighted_spec(json!({"analysis": {
        "interval": "1s",
        "stepWeights": null,
        "stepWeight": 20,
        "maxWeight": 50,
        "metrics": null,
        "webhooks": [hook("rollout", addr)]
    }})))
    .await;
    rig.wait_for_phase(CanaryPhase::Initialized, RELEASE_LIMIT).await;
    rig.release("example/web:2").await;
    let weights = route_weights_until(&rig, async || rig.phase().await == Some(CanaryPhase::Succeeded)).await;
    let climb: Vec<i64> = weights.iter().copied().filter(|w| *w > 0).collect();
    assert_eq!(climb, vec![20, 40, 50], "stepWeight 20 up to maxWeight 50: {weights:?}");
    assert!(hooks.calls("rollout") >= 3, "every step was checked");
    assert_eq!(image(&rig.deployment("web-primary").await), "example/web:2");
    server.abort();
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local control plane and Prometheus (scripts/test runs them)"]
async fn eddy_canary_pause_holds_the_weight_until_resume() {
    let (_hooks, addr, server) = Hooks::start().await;
    let rig = Rig::start("canary-pause", Behaviour::healthy(), false).await;
    rig.create_canary(weighted_spec(json!({"analysis": {
        "interval": "1s",
        "stepWeights": [10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
        "metrics": null,
        "webhooks": [hook("rollout", addr)]
    }})))
    .await;
    rig.wait_for_phase(CanaryPhase::Initialized, RELEASE_LIMIT).await;
    rig.release("example/web:2").await;
    eventually(RELEASE_LIMIT, "the canary at 20% or more", || async {
        let status = rig.canaries().get("web").await.ok()?.status?;
        (status.canary_weight >= 20).then_some(())
    })
    .await;
    let eddy = |verb: &'static str| {
        let ns = rig.ns.clone();
        async move {
            let output = tokio::process::Command::new(workspace_binary("eddy"))
                .args(["canary", verb, "web", "-n", &ns])
                .env("KUBECONFIG", eddy_tests::kubeconfig_path())
                .output()
                .await
                .unwrap();
            assert!(
                output.status.success(),
                "eddy canary {verb}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    };
    eddy("pause").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = rig.canaries().get("web").await.unwrap().status.unwrap().canary_weight;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let status = rig.canaries().get("web").await.unwrap().status.unwrap();
    assert_eq!(status.canary_weight, held, "paused at {held}%");
    assert_eq!(status.phase, Some(CanaryPhase::Progressing));
    let paused = eddy_api::conditions::get(&status.conditions, "Reconciling")
        .cloned()
        .unwrap();
    assert!(paused.message.contains("paused"), "{}", paused.message);
    eddy("resume").await;
    rig.wait_for_phase(CanaryPhase::Succeeded, RELEASE_LIMIT).await;
    server.abort();
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local control plane and Prometheus (scripts/test runs them)"]
async fn a_changed_config_map_starts_a_release_and_its_copy_is_promoted() {
    let rig = Rig::start("canary-config", Behaviour::healthy(), false).await;
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(rig.client.clone(), &rig.ns);
    let settings = |greeting: &str| {
        serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"greeting": greeting}})).unwrap()
    };
    maps.create(&PostParams::default(), &settings("hello")).await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(rig.client.clone(), &rig.ns);
    let mount = json!({"spec": {"template": {"spec": {
        "volumes": [{"name": "settings", "configMap": {"name": "settings"}}],
        "containers": [{"name": "web", "envFrom": [{"configMapRef": {"name": "settings"}}]}]
    }}}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&mount))
        .await
        .unwrap();
    rig.create_canary(json!({
        "provider": "kubernetes",
        "targetRef": {"kind": "Deployment", "name": "web"},
        "service": {"port": 80, "targetPort": 8080},
        "analysis": {"interval": "1s", "iterations": 1}
    }))
    .await;
    let initialized = rig.wait_for_phase(CanaryPhase::Initialized, RELEASE_LIMIT).await;
    let tracked = initialized.status.unwrap().tracked_configs;
    assert!(tracked.contains_key("ConfigMap/settings"), "{tracked:?}");
    let copy = maps
        .get("settings-primary")
        .await
        .expect("the primary's copy of the ConfigMap");
    assert_eq!(copy.data.unwrap()["greeting"], "hello");
    let primary = rig.deployment("web-primary").await;
    let pod = primary.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.volumes.unwrap()[0].config_map.as_ref().unwrap().name,
        "settings-primary"
    );
    assert_eq!(
        pod.containers[0].env_from.as_ref().unwrap()[0]
            .config_map_ref
            .as_ref()
            .unwrap()
            .name,
        "settings-primary"
    );

    // Only the ConfigMap changes: a new revision all the same.
    maps.replace("settings", &PostParams::default(), &{
        let mut changed = maps.get("settings").await.unwrap();
        changed.data = Some([("greeting".to_owned(), "bonjour".to_owned())].into());
        changed
    })
    .await
    .unwrap();
    rig.wait_for_phase(CanaryPhase::Succeeded, RELEASE_LIMIT).await;
    let copy = maps.get("settings-primary").await.unwrap();
    assert_eq!(
        copy.data.unwrap()["greeting"],
        "bonjour",
        "the promoted primary reads the new data"
    );
    assert_eq!(image(&rig.deployment("web-primary").await), "example/web:1");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local control plane and Prometheus (scripts/test runs them)"]
async fn a_router_asked_for_what_it_cannot_do_stalls_the_canary_with_the_reason() {
    let rig = Rig::start("canary-refused", Behaviour::healthy(), false).await;
    // SMI's TrafficSplit has weights only: no A/B matches.
    rig.create_canary(json!({
        "provider": "smi",
        "targetRef": {"kind": "Deployment", "name": "web"},
        "service": {"port": 80, "targetPort": 8080},
        "analysis": {"interval": "1s", "iterations": 2, "match": [{"headers": {"x-canary": {"exact": "1"}}}]}
    }))
    .await;
    rig.wait_for_phase(CanaryPhase::Initialized, RELEASE_LIMIT).await;
    rig.release("example/web:2").await;
    let stalled = eventually(RELEASE_LIMIT, "Stalled on the Canary", || async {
        let canary = rig.canaries().get("web").await.ok()?;
        eddy_api::conditions::get(&canary.status?.conditions, "Stalled").cloned()
    })
    .await;
    assert_eq!(stalled.reason, "RouterRefused");
    assert!(stalled.message.contains("smi"), "{}", stalled.message);
    assert_eq!(
        image(&rig.deployment("web-primary").await),
        "example/web:1",
        "nothing promoted"
    );
    rig.stop().await;
}
