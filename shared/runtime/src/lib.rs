//! eddy-runtime: controller start-up shared by every Eddy binary: logging, the Kubernetes client,
//! `/metrics`, `/healthz` and `/readyz`, leader election on a Lease, graceful shutdown on
//! SIGTERM/SIGINT, the one status writer, and [`events`] (a Kubernetes Event and the same event
//! forwarded to notify-controller, in one call).
//!
//! May depend on: eddy-api, kube's client and runtime, axum, prometheus-client, clap, tracing.
//! Never on Git, OCI, artifacts or the engines (eddy-source, eddy-apply, eddy-kustomize): a
//! controller that only reads its objects and reports (notify-controller) links nothing else.
//!
//! [`run`] owns the process lifecycle. The controllers it is given run only while this instance
//! leads; on a signal they stop taking work, in-flight reconciles get `--shutdown-timeout` to
//! finish, the Lease is released and `run` returns `Ok`. Losing the Lease is an error: the
//! process exits non-zero so that its restart starts from a clean state, as controller-runtime does.

mod args;
mod controller;
pub mod events;
mod leader;
mod metrics;
mod probes;
mod telemetry;
mod written;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use tokio_util::sync::CancellationToken;

pub use args::{LogFormat, RuntimeArgs};
pub use controller::{
    ControllerError, StatusWriteError, Watched, controller_and_store, controller_for, drive, report_not_implemented,
    run_controller, scoped_api, trigger_key, watch_scope, write_status,
};
pub use metrics::{Metrics, ReconcileResult};
pub use written::LastWritten;

use crate::events::EventRecorder;

/// Installs ring as the process-wide rustls provider, once. kube, reqwest and the OCI client all
/// need it; calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Bound on releasing the Lease and flushing events at shutdown.
const CLEANUP_BOUND: Duration = Duration::from_secs(5);

/// What a controller's reconcilers share: the client, the flags, metrics, the event recorder and
/// the shutdown signal.
#[derive(Clone)]
pub struct Context {
    /// Client of the cluster.
    pub client: Client,
    /// The controller's name, also its field manager and event reporter.
    pub controller: &'static str,
    /// The runtime flags.
    pub args: RuntimeArgs,
    /// Metrics of this process.
    pub metrics: Metrics,
    /// Records and forwards events.
    pub events: EventRecorder,
    /// Cancelled when the process should stop taking work.
    pub shutdown: CancellationToken,
    /// What `/readyz` answers; see [`run_serving`].
    pub readiness: Readiness,
}

/// The flag `/readyz` answers from.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Makes `/readyz` answer ready (`true`) or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether `/readyz` answers ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// When a controller's `/readyz` starts answering ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadyFrom {
    /// Once connected: a standby replica is ready too (nothing routes traffic to it).
    Start,
    /// Once the controllers say they serve ([`Readiness::set`]), which only the leader does, so
    /// that a Service routes its traffic to the replica that answers it.
    Serving,
}

/// Runs `controllers` for `controller` under leader election until a shutdown signal.
pub async fn run<F, Fut>(controller: &'static str, args: RuntimeArgs, controllers: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Context>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    run_ready_from(controller, args, ReadyFrom::Start, controllers).await
}

/// [`run`] for a controller that serves traffic through a Service: `/readyz` answers ready only
/// once `controllers` set [`Context::readiness`] (when their listeners are bound), so a standby
/// replica, or a new one during a rollout, gets no traffic until it leads and listens.
pub async fn run_serving<F, Fut>(controller: &'static str, args: RuntimeArgs, controllers: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Context>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    run_ready_from(controller, args, ReadyFrom::Serving, controllers).await
}

async fn run_ready_from<F, Fut>(
    controller: &'static str,
    args: RuntimeArgs,
    ready_from: ReadyFrom,
    controllers: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Context>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    telemetry::init(args.log_format, &args.log_level)?;
    // One process-wide TLS provider; kube, reqwest and the OCI client all use it.
    crate::install_crypto_provider();

    let client = Client::try_default()
        .await
        .context("no usable Kubernetes configuration (in-cluster service account or KUBECONFIG)")?;
    let version = client
        .apiserver_version()
        .await
        .context("the Kubernetes API server is not reachable")?;
    tracing::info!(controller, apiserver = %version.git_version, "connected to the Kubernetes API server");

    let metrics = Metrics::new(controller);
    let readiness = Readiness::default();
    let shutdown = CancellationToken::new();
    let servers = CancellationToken::new();
    probes::serve(
        args.metrics_addr,
        args.health_addr,
        metrics.clone(),
        readiness.0.clone(),
        servers.clone(),
    )
    .await?;
    tokio::spawn(wait_for_signal(shutdown.clone()));

    let instance = leader::identity();
    let (events, forwarder) = EventRecorder::new(
        client.clone(),
        controller,
        Some(instance.clone()),
        args.events_addr.clone(),
        metrics.events_dropped(),
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        controller,
        args: args.clone(),
        metrics: metrics.clone(),
        events: events.clone(),
        shutdown: shutdown.clone(),
        readiness: readiness.clone(),
    });
    if ready_from == ReadyFrom::Start {
        readiness.set(true);
    }

    let outcome = if args.leader_elect {
        let lease = leader::Lease::new(client, controller, &args, instance).await?;
        lead_then_run(lease, &metrics, &args, &shutdown, || controllers(ctx)).await
    } else {
        metrics.set_leader(true);
        run_until_stopped(controllers(ctx), &args, &shutdown).await
    };

    readiness.set(false);
    if let Some(forwarder) = forwarder {
        forwarder.shutdown(events, CLEANUP_BOUND).await;
    }
    servers.cancel();
    match &outcome {
        Ok(()) => tracing::info!(controller, "stopped"),
        Err(err) => tracing::error!(controller, error = %format!("{err:#}"), "stopped with an error"),
    }
    outcome
}

/// Waits for leadership (or a signal), runs the controllers while leading, and releases the Lease.
async fn lead_then_run<F, Fut>(
    lease: leader::Lease,
    metrics: &Metrics,
    args: &RuntimeArgs,
    shutdown: &CancellationToken,
    controllers: F,
) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let description = lease.describe().to_owned();
    let mut leadership = lease.watch().await;
    tracing::info!(lease = %description, "waiting for leadership");
    tokio::select! {
        _ = shutdown.cancelled() => {
            leadership.release(CLEANUP_BOUND).await;
            return Ok(());
        }
        acquired = leadership.wait_for_leadership() => acquired?,
    }
    metrics.set_leader(true);
    tracing::info!(lease = %description, "became leader; starting controllers");

    let work = shutdown.child_token();
    let outcome = tokio::select! {
        outcome = run_until_stopped(controllers(), args, &work) => outcome,
        _ = leadership.wait_for_loss() => {
            work.cancel();
            Err(anyhow::anyhow!("lost the leader {description}; exiting so that a fresh process competes again"))
        }
    };
    metrics.set_leader(false);
    leadership.release(CLEANUP_BOUND).await;
    outcome
}

/// Runs the controllers; after `shutdown` fires they get `--shutdown-timeout` to finish.
async fn run_until_stopped<Fut>(
    controllers: Fut,
    args: &RuntimeArgs,
    shutdown: &CancellationToken,
) -> anyhow::Result<()>
where
    Fut: Future<Output = anyhow::Result<()>>,
{
    tokio::pin!(controllers);
    tokio::select! {
        outcome = &mut controllers => return outcome,
        _ = shutdown.cancelled() => {}
    }
    tracing::info!(bound = ?args.shutdown_timeout, "shutting down; waiting for in-flight reconciles");
    match tokio::time::timeout(args.shutdown_timeout, controllers).await {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::warn!(bound = ?args.shutdown_timeout, "in-flight reconciles did not finish in time; stopping anyway");
            Ok(())
        }
    }
}

async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; the process will not shut down gracefully");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "shutdown requested");
    shutdown.cancel();
}

/// The body of every controller's `main`: runs `work` on a multi-threaded Tokio runtime and turns
/// its outcome into the exit code (0 after a clean shutdown, 1 with the error printed otherwise).
pub fn block_on_main(controller: &str, work: impl Future<Output = anyhow::Result<()>>) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{controller}: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{controller}: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
