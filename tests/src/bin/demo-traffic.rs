//! The demo's stand-ins for what a canary release needs and a KWOK node cannot run (its pods are
//! simulated and serve nothing): two test apps in place of the primary's and the canary's pods,
//! Debian's Prometheus scraping them, Debian's nginx in place of a Gateway API data plane,
//! reconfigured from the HTTPRoute progressive-controller writes, and steady load through nginx
//! (`eddy_tests::traffic`, `eddy_tests::prometheus`, as the canary tests use them). The Canary,
//! its target Deployment and the HTTPRoute are read from the cluster; Prometheus's URL goes to
//! standard output and `--url-file`. Runs until SIGINT or SIGTERM, then stops nginx and
//! Prometheus.
//!
//!   demo-traffic --namespace eddy-demo --canary web [--kubeconfig PATH] [--url-file PATH]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config, ResourceExt};
use serde_json::Value;

use eddy_api::progressive::Canary;
use eddy_tests::prometheus::{Prometheus, ScrapeTarget};
use eddy_tests::traffic::{Behaviour, Counts, LoadGenerator, NginxGatewayStandIn, TestApp, canary_services};

/// Share of the canary app's answers that are 500 while the target runs a `bad` image.
const BAD_ERROR_RATE: f64 = 0.3;

/// How long each stand-in app takes to answer: a plausible service, well under the demo's
/// request-duration limit.
const LATENCY: Duration = Duration::from_millis(20);

/// How often the load counts are logged.
const LOAD_REPORT: Duration = Duration::from_secs(10);

#[derive(Parser, Debug)]
#[command(
    name = "demo-traffic",
    about = "Stand-ins for a canary release on a simulated (KWOK) node: test apps, Prometheus, an nginx Gateway, load",
    long_about = "Stand-ins for a canary release on a node whose pods are simulated (KWOK) and serve \
nothing, for demos:\n\n\
- two test apps stand in for the Canary's primary and canary pods, exposing \
http_requests_total{code} and http_request_duration_seconds;\n\
- Debian's Prometheus scrapes them with the labels namespace and workload (<target>-primary, \
<target>);\n\
- Debian's nginx stands in for a Gateway API data plane, reconfigured whenever the HTTPRoute \
<apex> changes;\n\
- a load generator sends steady requests through nginx.\n\n\
While the target Deployment's image tag contains `bad`, the canary app answers 30% of requests \
with 500. Everything listens on 127.0.0.1. Prints `prometheus: <URL>` and `gateway: <URL>` once \
up, and runs until SIGINT or SIGTERM, then stops nginx and Prometheus."
)]
struct Flags {
    /// Namespace of the Canary, its target and its HTTPRoute.
    #[arg(long)]
    namespace: String,

    /// Name of the Canary; its target Deployment and apex (`service.name`, else the target) are
    /// read from it, waiting until it exists.
    #[arg(long)]
    canary: String,

    /// Kubeconfig of the cluster; KUBECONFIG or ~/.kube/config when unset.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,

    /// Also write Prometheus's URL (one line) to this file once everything is up.
    #[arg(long)]
    url_file: Option<PathBuf>,

    /// Requests a second sent through the nginx stand-in.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    rate: u32,
}

/// A line of this process's log, with the time (UTC) to read it next to the controllers' logs.
macro_rules! log {
    ($($arg:tt)*) => {
        println!("{} {}", Timestamp::now().strftime("%H:%M:%S%.3f"), format_args!($($arg)*))
    };
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let mut shutdown = pin!(shutdown_signal()?);
    let client = client(flags.kubeconfig.as_deref()).await?;
    let ns = flags.namespace.as_str();

    let canaries: Api<Canary> = Api::namespaced(client.clone(), ns);
    let canary = tokio::select! {
        canary = wait_for_canary(&canaries, &flags.canary) => canary?,
        () = &mut shutdown => return Ok(()),
    };
    let target = canary.spec.target_ref.name.clone();
    // As progressive-controller names it (`Release::new`).
    let apex = canary.spec.service.name.clone().unwrap_or_else(|| target.clone());
    log!(
        "Canary/{ns}/{}: target Deployment {target}, HTTPRoute {apex}",
        flags.canary
    );

    let healthy = Behaviour {
        error_rate: 0.0,
        latency: LATENCY,
    };
    let primary = TestApp::start("primary", healthy).await?;
    let canary_app = TestApp::start("canary", healthy).await?;
    log!(
        "stand-in apps (the pods are simulated): primary for {target}-primary at {}, canary for {target} at {}",
        primary.url("/"),
        canary_app.url("/")
    );
    let prometheus = Prometheus::start(&[
        ScrapeTarget::new(
            primary.addr,
            &[("namespace", ns), ("workload", &format!("{target}-primary"))],
        ),
        ScrapeTarget::new(canary_app.addr, &[("namespace", ns), ("workload", &target)]),
    ])
    .await?;
    prometheus
        .wait_for_samples("up == 1", 2, Duration::from_secs(30))
        .await?;
    log!("Prometheus (Debian's) scraping both stand-in apps every second");
    let mut nginx = NginxGatewayStandIn::start(canary_services(&apex, primary.addr, canary_app.addr)).await?;
    log!(
        "nginx (Debian's) standing in for a Gateway API data plane at {}, following HTTPRoute {ns}/{apex}",
        nginx.url("/")
    );
    let load = LoadGenerator::start(&nginx.url("/"), flags.rate, &[])?;
    log!("load generator: {} requests a second through nginx", flags.rate);

    println!("prometheus: {}", prometheus.url());
    println!("gateway: {}", nginx.url("/"));
    if let Some(path) = &flags.url_file {
        write_atomically(path, &format!("{}\n", prometheus.url()))?;
    }

    let routes: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &httproute());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    tokio::select! {
        () = follow_route(routes, &apex, &mut nginx) => {}
        () = follow_target(deployments, &target, &canary_app) => {}
        () = report_load(&load) => {}
        () = &mut shutdown => {}
    }
    log!("stopping the load, nginx and Prometheus");
    drop(load);
    drop(nginx);
    drop(prometheus);
    Ok(())
}

/// A future that completes on the first SIGTERM or SIGINT; the handlers are installed at once.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<Client> {
    eddy_runtime::install_crypto_provider();
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
}

fn httproute() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    )
}

async fn wait_for_canary(canaries: &Api<Canary>, name: &str) -> anyhow::Result<Canary> {
    let mut said = false;
    loop {
        if let Some(canary) = canaries
            .get_opt(name)
            .await
            .with_context(|| format!("reading Canary {name}"))?
        {
            return Ok(canary);
        }
        if !said {
            log!("waiting for Canary {name} to exist");
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let next = path.with_extension("next");
    std::fs::write(&next, text).with_context(|| format!("writing {}", next.display()))?;
    std::fs::rename(&next, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A watch of the one object named `name`, restarted with backoff after errors, which are logged.
fn watch_named<K>(api: Api<K>, name: &str) -> impl futures::Stream<Item = K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    watcher(api, config)
        .default_backoff()
        .applied_objects()
        .filter_map(|object| async move { object.inspect_err(|err| log!("watch error (retrying): {err}")).ok() })
}

/// Reconfigures nginx whenever the HTTPRoute `apex` changes. A route nginx cannot serve is
/// logged, and the previous configuration keeps serving.
async fn follow_route(routes: Api<DynamicObject>, apex: &str, nginx: &mut NginxGatewayStandIn) {
    let mut seen = String::new();
    let mut stream = pin!(watch_named(routes, apex));
    while let Some(route) = stream.next().await {
        let version = route.resource_version().unwrap_or_default();
        if version == seen {
            continue;
        }
        seen = version;
        let route = serde_json::to_value(&route).unwrap_or_default();
        match nginx.configure(&route).await {
            Ok(generation) => log!(
                "nginx Gateway stand-in, configuration {generation} from HTTPRoute {apex}: {}",
                describe_backends(&route)
            ),
            Err(err) => log!("nginx Gateway stand-in refused HTTPRoute {apex}, keeps the previous one: {err:#}"),
        }
    }
}

/// Sets the canary app's error rate from the target's image whenever the target changes.
async fn follow_target(deployments: Api<Deployment>, target: &str, canary: &TestApp) {
    let mut stream = pin!(watch_named(deployments, target));
    while let Some(deployment) = stream.next().await {
        let images = images(&deployment);
        let behaviour = Behaviour {
            error_rate: error_rate(&images),
            latency: LATENCY,
        };
        if behaviour != canary.behaviour() {
            canary.set_behaviour(behaviour);
            log!(
                "Deployment {target} runs {}: the stand-in canary app answers {:.0}% of requests with 500",
                images.join(", "),
                behaviour.error_rate * 100.0
            );
        }
    }
}

/// Logs who answered the load every [`LOAD_REPORT`].
async fn report_load(load: &LoadGenerator) {
    let mut ticks = tokio::time::interval(LOAD_REPORT);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        log!(
            "load, last {} s: {}",
            LOAD_REPORT.as_secs(),
            describe_counts(&load.reset())
        );
    }
}

/// The images of a Deployment's pod template.
fn images(deployment: &Deployment) -> Vec<String> {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .map(|pod| pod.containers.iter().filter_map(|c| c.image.clone()).collect())
        .unwrap_or_default()
}

/// The tag of an image reference: after the last `:` of its last path segment (a registry's
/// port is not a tag), without a digest.
fn image_tag(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map(|(_, tag)| tag).unwrap_or("")
}

/// The canary app's error rate for a target running `images`: [`BAD_ERROR_RATE`] when a tag
/// contains `bad`, none otherwise.
fn error_rate(images: &[String]) -> f64 {
    if images.iter().any(|image| image_tag(image).contains("bad")) {
        BAD_ERROR_RATE
    } else {
        0.0
    }
}

/// The backends of an HTTPRoute's rules with their weights, e.g. `web-primary 90, web-canary 10`;
/// with more than one rule (A/B matches), each is numbered.
fn describe_backends(route: &Value) -> String {
    let rules = route["spec"]["rules"].as_array().cloned().unwrap_or_default();
    let described: Vec<String> = rules
        .iter()
        .map(|rule| {
            let backends: Vec<String> = rule["backendRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| {
                    format!(
                        "{} {}",
                        b["name"].as_str().unwrap_or("?"),
                        b["weight"].as_i64().unwrap_or(1)
                    )
                })
                .collect();
            backends.join(", ")
        })
        .collect();
    match described.len() {
        0 => "no rules".into(),
        1 => described[0].clone(),
        _ => described
            .iter()
            .enumerate()
            .map(|(i, backends)| format!("rule {}: {backends}", i + 1))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Answers by who gave them and their status, e.g. `primary 180×200, canary 14×200 6×500`.
fn describe_counts(counts: &Counts) -> String {
    let mut parts: Vec<String> = Vec::new();
    for app in ["primary", "canary", ""] {
        let codes: Vec<String> = counts
            .answers
            .iter()
            .filter(|((name, _), _)| name == app)
            .map(|((_, code), n)| format!("{n}×{code}"))
            .collect();
        if !codes.is_empty() {
            let who = if app.is_empty() { "nginx itself" } else { app };
            parts.push(format!("{who} {}", codes.join(" ")));
        }
    }
    if counts.failed > 0 {
        parts.push(format!(
            "{} unanswered ({})",
            counts.failed,
            counts.last_failure.as_deref().unwrap_or("?")
        ));
    }
    if parts.is_empty() {
        "nothing answered".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_containing_bad_makes_the_canary_fail_30_percent() {
        assert_eq!(error_rate(&["nginx:1.29-bad".into()]), 0.3);
        assert_eq!(error_rate(&["nginx:1.28".into()]), 0.0);
        assert_eq!(
            error_rate(&["sidecar:1".into(), "registry.example/web:bad".into()]),
            0.3
        );
    }

    #[test]
    fn only_the_tag_counts_not_the_registry_or_repository() {
        assert_eq!(image_tag("registry.bad:5000/web:2"), "2");
        assert_eq!(image_tag("badger/web"), "");
        assert_eq!(image_tag("web:3-bad@sha256:abc"), "3-bad");
        assert_eq!(error_rate(&["bad.example:5000/bad/web:2".into()]), 0.0);
    }

    #[test]
    fn backends_are_described_per_rule_with_weights() {
        let route = serde_json::json!({"spec": {"rules": [
            {"matches": [{"headers": [{"name": "x", "value": "y"}]}], "backendRefs": [{"name": "web-canary", "weight": 100}]},
            {"backendRefs": [{"name": "web-primary", "weight": 90}, {"name": "web-canary", "weight": 10}]},
        ]}});
        assert_eq!(
            describe_backends(&route),
            "rule 1: web-canary 100; rule 2: web-primary 90, web-canary 10"
        );
        let route = serde_json::json!({"spec": {"rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": [{"name": "web-primary", "weight": 100}, {"name": "web-canary", "weight": 0}]},
        ]}});
        assert_eq!(describe_backends(&route), "web-primary 100, web-canary 0");
    }
}
