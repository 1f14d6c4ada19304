//! notify-controller: events in, alerts out; webhooks in.
//!
//! Every Eddy controller (and any Flux controller) POSTs its events here ([`server`]); Alerts
//! select them ([`matching`], [`dedup`], [`change`]) and Providers deliver them to chat,
//! dashboards and commit statuses ([`dispatch`], [`providers`], [`target`], [`http`]).
//! Receivers turn a Git host's push webhook into an immediate reconcile ([`receiver`]).
//! Provider, Alert and Receiver objects get conditions that say whether they work ([`status`]).
//!
//! Data: events arrive on `--events-addr`; Alerts, Providers and Receivers are read from watch
//! caches; Secrets are read when a Provider or Receiver is resolved; nothing is stored on disk.

pub mod change;
pub mod dedup;
pub mod dispatch;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod matching;
pub mod metrics;
pub mod objects;
pub mod providers;
pub mod receiver;
pub mod server;
pub mod signature;
pub mod status;
pub mod target;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;

use eddy_api::notify::{Alert, Provider, Receiver};
use eddy_runtime::{self as runtime, RuntimeArgs, controller_and_store, drive, watch_scope};

/// The controller's name: its field manager, event reporter and default Lease name.
pub const NAME: &str = "notify-controller";

/// Command-line flags.
#[derive(clap::Parser, Debug)]
#[command(
    name = "notify-controller",
    version,
    about = "forwards events to chat and commit statuses, and receives webhooks"
)]
pub struct Flags {
    #[command(flatten)]
    pub runtime: RuntimeArgs,

    /// Where controllers POST their events (`--events-addr` of the other controllers).
    #[arg(long, env = "EDDY_EVENTS_BIND_ADDRESS", default_value = "0.0.0.0:9090")]
    pub events_bind_address: SocketAddr,

    /// Where Git hosts and registries call Receivers (`/hook/...`).
    #[arg(long, env = "EDDY_RECEIVER_BIND_ADDRESS", default_value = "0.0.0.0:9292")]
    pub receiver_bind_address: SocketAddr,

    /// An event that says the same as one sent within this window is not sent again (Flux's
    /// `--rate-limit-interval`); `0s` sends every event.
    #[arg(long, env = "EDDY_DEDUP_WINDOW", default_value = "5m", value_parser = parse_duration)]
    pub dedup_window: std::time::Duration,

    /// Refuse Provider addresses (and redirects, and DNS answers) that are loopback, private
    /// or link-local, so that an Alert cannot be used to reach inside the cluster. Recommended
    /// in production when no Provider is in-cluster.
    #[arg(long, env = "EDDY_BLOCK_PRIVATE_ADDRESSES", default_value_t = false, action = clap::ArgAction::Set)]
    pub block_private_addresses: bool,

    /// How often notify-controller drops what it remembers of deleted Alerts and Providers
    /// (their senders, resolved addresses, threads and states).
    #[arg(long, env = "EDDY_SWEEP_INTERVAL", default_value = "1m", value_parser = parse_duration, hide = true)]
    pub sweep_interval: std::time::Duration,

    /// Refuse Alerts and Receivers that select objects in other namespaces.
    #[arg(long, env = "EDDY_NO_CROSS_NAMESPACE_REFS", default_value_t = false, action = clap::ArgAction::Set)]
    pub no_cross_namespace_refs: bool,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    eddy_api::meta::Duration::parse(text)
        .and_then(|d| d.to_std())
        .map_err(|e| e.to_string())
}

/// Runs the controller until a shutdown signal.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    let settings = dispatch::Settings {
        dedup_window: flags.dedup_window,
        sweep_interval: flags.sweep_interval.max(std::time::Duration::from_millis(100)),
        block_private: flags.block_private_addresses,
        cross_namespace: !flags.no_cross_namespace_refs,
    };
    let (events_addr, receiver_addr) = (flags.events_bind_address, flags.receiver_bind_address);
    runtime::run_serving(NAME, flags.runtime, move |ctx| async move {
        let metrics = metrics::NotifyMetrics::register(&ctx.metrics);
        let (alerts_api, alerts_watch) = watch_scope::<Alert>(&ctx).await?;
        let (providers_api, providers_watch) = watch_scope::<Provider>(&ctx).await?;
        let (receivers_api, receivers_watch) = watch_scope::<Receiver>(&ctx).await?;
        let (alert_controller, alerts) = controller_and_store(alerts_api, alerts_watch);
        let (provider_controller, providers) = controller_and_store(providers_api.clone(), providers_watch.clone());
        // An Alert's Ready follows its Provider: created, changed or deleted.
        let referring = alerts.clone();
        let alert_controller = alert_controller.watches(providers_api, providers_watch, move |provider: Provider| {
            let namespace = provider.metadata.namespace.clone();
            let name = provider.metadata.name.clone().unwrap_or_default();
            referring
                .state()
                .into_iter()
                .filter(|alert| alert.metadata.namespace == namespace && alert.spec.provider_ref.name == name)
                .map(|alert| ObjectRef::from_obj(alert.as_ref()))
                .collect::<Vec<_>>()
        });
        let (receiver_controller, receivers) = controller_and_store(receivers_api, receivers_watch);

        let (alert_changed, alert_changes) = mpsc::unbounded_channel::<ObjectRef<Alert>>();
        let alert_changes = futures::stream::unfold(alert_changes, |mut changes| async move {
            changes.recv().await.map(|change| (change, changes))
        });
        let alert_controller = alert_controller.reconcile_on(alert_changes);
        let hub = dispatch::Hub::new(
            ctx.clone(),
            settings.clone(),
            metrics.clone(),
            alerts.clone(),
            providers.clone(),
            alert_changed,
        );
        let registry = Arc::new(receiver::Registry::default());

        let (queue, queued) = mpsc::channel(dispatch::EVENT_QUEUE);
        let servers = ctx.shutdown.child_token();
        // Only once the Alerts, Providers and Receivers are known do the listeners open and
        // /readyz say ready: a Service routes events and webhooks to the replica that leads.
        let serve = {
            let (client, registry, metrics, servers, ctx) = (
                ctx.client.clone(),
                registry.clone(),
                metrics.clone(),
                servers.clone(),
                ctx.clone(),
            );
            let (alerts, providers, cross_namespace) = (alerts.clone(), providers.clone(), settings.cross_namespace);
            async move {
                alerts.wait_until_ready().await.context("the Alert cache")?;
                providers.wait_until_ready().await.context("the Provider cache")?;
                receivers.wait_until_ready().await.context("the Receiver cache")?;
                let events = server::bind(events_addr, "event endpoint").await?;
                let hooks = server::bind(receiver_addr, "webhook receiver").await?;
                ctx.readiness.set(true);
                let events = server::listen(
                    events,
                    "event endpoint",
                    server::router(queue, metrics.clone()),
                    servers.clone(),
                );
                let receivers = receiver::router(client, registry, receivers, metrics, cross_namespace);
                let hooks = server::listen(hooks, "webhook receiver", receivers, servers);
                tokio::try_join!(events, hooks).map(|_| ())
            }
        };
        let dispatcher = tokio::spawn(hub.clone().dispatch(queued));

        let controllers = async {
            let (hub_a, hub_p) = (hub.clone(), hub.clone());
            let outcome = tokio::try_join!(
                drive(ctx.clone(), alert_controller, move |alert, ctx| {
                    status::reconcile_alert(alert, ctx, hub_a.clone())
                }),
                drive(ctx.clone(), provider_controller, move |provider, ctx| {
                    status::reconcile_provider(provider, ctx, hub_p.clone())
                }),
                drive(ctx.clone(), receiver_controller, move |receiver, ctx| {
                    receiver::reconcile(receiver, ctx, registry.clone())
                }),
            );
            servers.cancel();
            outcome.map(|_| ())
        };
        let outcome = tokio::try_join!(controllers, serve);
        dispatcher.abort();
        outcome.map(|_| ())
    })
    .await
}
