//! progressive-controller: releases new versions of Deployments as canaries, step by step,
//! gated by metrics and webhooks, promoted or rolled back without a human unless one is asked.
//!
//! One analysis tick per Canary reconcile ([`reconcile`]): the target and primary are read
//! ([`workload`]), the gates the tick needs are evaluated ([`gates`], [`metrics`], [`webhook`]),
//! the decision is a pure function of spec, status and observations ([`plan`], [`decide`]), the
//! status is written, and the world follows it: Services and a router's objects ([`router`],
//! [`release`]), the canary's scale, the primary. MetricTemplates get a Ready condition that says
//! whether their query renders ([`templates`]).
//!
//! Data: Canaries and MetricTemplates from watch caches; Deployments watched to start a release
//! as soon as a target changes; everything else read from the API server when a tick needs it.
//! Nothing is stored outside the Canary's status.

pub mod compat;
pub mod decide;
pub mod gates;
pub mod metrics;
pub mod plan;
pub mod reconcile;
pub mod release;
pub mod router;
pub mod telemetry;
pub mod templates;
pub mod webhook;
pub mod workload;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, predicates, watcher};

use eddy_api::progressive::{Canary, MetricTemplate};
use eddy_runtime::{self as runtime, RuntimeArgs, controller_and_store, controller_for, drive, watch_scope};

/// The controller's name: its field manager, event reporter and default Lease name.
pub const NAME: &str = "progressive-controller";

/// Command-line flags.
#[derive(clap::Parser, Debug)]
#[command(
    name = "progressive-controller",
    version,
    about = "releases new versions as canaries gated by metrics"
)]
pub struct Flags {
    #[command(flatten)]
    pub runtime: RuntimeArgs,

    /// The Prometheus that Canaries without `metricsServer` query (Flagger's `-metrics-server`).
    #[arg(long, env = "EDDY_METRICS_SERVER")]
    pub metrics_server: Option<String>,

    /// Time allowed for one metric query.
    #[arg(long, env = "EDDY_QUERY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub query_timeout: Duration,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    eddy_api::meta::Duration::parse(text)
        .and_then(|d| d.to_std())
        .map_err(|e| e.to_string())
}

/// Runs the controller until a shutdown signal.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    let settings = gates::GateSettings {
        metrics_server: flags.metrics_server.clone(),
        query_timeout: flags.query_timeout,
    };
    runtime::run(NAME, flags.runtime, move |ctx| async move {
        let metrics = telemetry::CanaryMetrics::register(&ctx.metrics);
        let shared = Arc::new(reconcile::Shared::new(settings, metrics));
        let (canaries_api, canaries_watch) = watch_scope::<Canary>(&ctx).await?;
        let (canary_controller, canaries) = controller_and_store(canaries_api, canaries_watch);
        // A change of a target's spec starts its release at once rather than at the next
        // interval. Metadata only, and only new generations: rollouts' status churn is read when
        // a tick needs it.
        let deployments_api: Api<PartialObjectMeta<Deployment>> = match &ctx.args.watch_namespace {
            Some(namespace) => Api::namespaced(ctx.client.clone(), namespace),
            None => Api::all(ctx.client.clone()),
        };
        let deployments = watcher(deployments_api, watcher::Config::default())
            .touched_objects()
            .predicate_filter(predicates::generation, Default::default());
        let canary_controller =
            canary_controller.watches_stream(deployments, move |deployment: PartialObjectMeta<Deployment>| {
                let namespace = deployment.namespace();
                let name = deployment.name_any();
                canaries
                    .state()
                    .into_iter()
                    .filter(|canary| canary.namespace() == namespace && canary.spec.target_ref.name == name)
                    .map(|canary| ObjectRef::from_obj(canary.as_ref()))
                    .collect::<Vec<_>>()
            });
        let (templates_api, templates_watch) = watch_scope::<MetricTemplate>(&ctx).await?;
        let template_controller = controller_for(templates_api, templates_watch);
        tokio::try_join!(
            drive(ctx.clone(), canary_controller, move |canary, ctx| {
                reconcile::reconcile(canary, ctx, shared.clone())
            }),
            drive(ctx.clone(), template_controller, templates::reconcile),
        )?;
        Ok(())
    })
    .await
}
