//! Wiring of one kind's reconcile loop onto kube-runtime's Controller, with the runtime's scope
//! (namespace, label selector), concurrency, graceful shutdown, metrics and logging applied the
//! same way for every kind; and the single status writer every controller uses.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::{Context, ReconcileResult};
use eddy_api::conditions::{self, READY, Status};
use eddy_api::meta::RECONCILE_REQUESTED_AT;

/// A namespaced kind a controller watches and reconciles: what kube's watcher, reflector and
/// Controller need of it.
pub trait Watched:
    Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// An error a reconcile returns. Its reason is the condition reason and metric label.
pub trait ControllerError: std::error::Error + Send + Sync + 'static {
    /// CamelCase reason, e.g. `FetchFailed`.
    fn reason(&self) -> &'static str;

    /// How soon to retry.
    fn retry_after(&self) -> Duration {
        Duration::from_secs(30)
    }
}

/// Runs the reconcile loop of kind `K` until the context's shutdown token fires; then in-flight
/// reconciles finish and it returns.
pub async fn run_controller<K, E, R, Fut>(ctx: Arc<Context>, reconcile: R) -> anyhow::Result<()>
where
    K: Watched,
    R: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: ControllerError,
{
    let (api, watch) = watch_scope::<K>(&ctx).await?;
    drive(ctx, controller_for(api, watch), reconcile).await
}

/// A Controller of `K` that reconciles on what a user changes (the generation, a reconcile
/// request, labels and annotations, the start of a deletion, finalizers) but not on status
/// writes, so that a reconcile's own status write does not trigger another.
pub fn controller_for<K>(api: Api<K>, watch: watcher::Config) -> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    controller_and_store(api, watch).0
}

/// [`controller_for`], and the store its watch fills, for code that reads the objects beside
/// the reconcile (the store is ready once the controller has listed them).
pub fn controller_and_store<K>(api: Api<K>, watch: watcher::Config) -> (Controller<K>, Store<K>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = kube::runtime::reflector::store();
    let changes = kube::runtime::reflector::reflector(writer, kube::runtime::watcher(api, watch))
        .default_backoff()
        .touched_objects()
        .predicate_filter(trigger_key, Default::default());
    (Controller::for_stream(changes, store.clone()), store)
}

/// What of an object decides that a change is worth a reconcile (see [`controller_for`]).
pub fn trigger_key<K: Resource>(obj: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = obj.meta();
    let mut hasher = std::hash::DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    Some(hasher.finish())
}

/// The Api and watch configuration of kind `K` within the runtime's scope (`--watch-namespace`,
/// `--watch-label-selector`), checked by one list so that a missing CRD or a malformed selector
/// is a start-up error that says so, instead of a watch that retries forever.
pub async fn watch_scope<K>(ctx: &Context) -> anyhow::Result<(Api<K>, watcher::Config)>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    let kind = K::kind(&()).into_owned();
    let api = scoped_api::<K>(ctx);
    let mut probe = ListParams::default().limit(1);
    let mut watch = watcher::Config::default();
    if let Some(selector) = &ctx.args.watch_label_selector {
        probe = probe.labels(selector);
        watch = watch.labels(selector);
    }
    api.list(&probe).await.with_context(|| {
        format!(
            "cannot list {kind} objects ({}); is the CRD installed and the --watch-label-selector valid?",
            K::api_version(&())
        )
    })?;
    tracing::info!(kind = %kind, namespace = ?ctx.args.watch_namespace, selector = ?ctx.args.watch_label_selector, "watching");
    Ok((api, watch))
}

/// The Api of kind `K` in the runtime's namespace scope (`--watch-namespace`, all when unset).
pub fn scoped_api<K>(ctx: &Context) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    match &ctx.args.watch_namespace {
        Some(namespace) => Api::namespaced(ctx.client.clone(), namespace),
        None => Api::all(ctx.client.clone()),
    }
}

/// Runs `controller` (built by the caller, e.g. with extra watches) with `reconcile`, the
/// runtime's concurrency, metrics, logging and graceful shutdown, until the context's shutdown
/// token fires.
pub async fn drive<K, E, R, Fut>(ctx: Arc<Context>, controller: Controller<K>, reconcile: R) -> anyhow::Result<()>
where
    K: Watched,
    R: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: ControllerError,
{
    let kind = K::kind(&()).into_owned();
    let reconcile = Arc::new(reconcile);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let instrumented = {
        let kind = kind.clone();
        let in_flight = in_flight.clone();
        move |obj: Arc<K>, ctx: Arc<Context>| {
            let reconcile = reconcile.clone();
            let kind = kind.clone();
            let in_flight = in_flight.clone();
            let span = tracing::info_span!("reconcile", kind = %kind, namespace = %obj.namespace().unwrap_or_default(), name = %obj.name_any());
            async move {
                let _running = InFlight::enter(&in_flight);
                let started = Instant::now();
                let outcome = reconcile(obj, ctx.clone()).await;
                let (result, reason) = match &outcome {
                    Ok(_) => (ReconcileResult::Success, None),
                    Err(err) => (ReconcileResult::Error, Some(err.reason())),
                };
                ctx.metrics.observe_reconcile(&kind, result, reason, started.elapsed());
                outcome
            }
            .instrument(span)
        }
    };

    let controller = controller
        .with_config(controller::Config::default().concurrency(ctx.args.concurrent))
        .graceful_shutdown_on(ctx.shutdown.clone().cancelled_owned())
        .run(instrumented, retry_policy::<K, E>, ctx.clone())
        .for_each(|outcome| async move {
            if let Err(err) = outcome {
                tracing::debug!(error = %err, "reconcile loop");
            }
        });
    // kube-runtime's graceful shutdown can wait on a watch that is still listing (a signal right
    // after start-up); once shutdown is asked for and no reconcile is running, nothing is lost
    // by not waiting for it.
    let idle_after_shutdown = async {
        ctx.shutdown.cancelled().await;
        while in_flight.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        _ = controller => {}
        _ = idle_after_shutdown => {}
    }
    tracing::info!(kind = %kind, "stopped watching");
    Ok(())
}

/// Counts a running reconcile for as long as it lives, including when its future is dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn retry_policy<K, E>(obj: Arc<K>, err: &E, _: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
    E: ControllerError,
{
    tracing::warn!(
        kind = %K::kind(&()),
        namespace = %obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
        reason = err.reason(),
        error = %err,
        "reconcile failed"
    );
    Action::requeue(err.retry_after())
}

/// Writes `status` of `obj` by server-side apply on the status subresource, with the
/// controller's name as field manager: the one way Eddy controllers write status.
pub async fn write_status<K>(ctx: &Context, obj: &K, status: serde_json::Value) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(ctx.controller).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
}

/// The reconcile error of [`report_not_implemented`].
#[derive(Debug, thiserror::Error)]
#[error("writing the status of {object}: {source}")]
pub struct StatusWriteError {
    object: String,
    #[source]
    source: kube::Error,
}

impl StatusWriteError {
    /// The failure to write the status of `object` (`Kind/namespace/name`).
    pub fn new(object: impl Into<String>, source: kube::Error) -> Self {
        Self {
            object: object.into(),
            source,
        }
    }
}

impl ControllerError for StatusWriteError {
    fn reason(&self) -> &'static str {
        "StatusWriteFailed"
    }
}

/// The reconcile of a kind whose controller is not written yet: it says so in Ready (False,
/// reason `NotImplemented`), handles `reconcile.eddy.dev/requestedAt`, and does nothing else.
pub async fn report_not_implemented<K>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, StatusWriteError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Serialize + Clone + DeserializeOwned + Debug,
{
    let kind = K::kind(&());
    let object = format!("{kind}/{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    let current = serde_json::to_value(obj.as_ref())
        .map(|v| v["status"].clone())
        .unwrap_or_default();
    let mut conditions: Vec<Condition> = serde_json::from_value(current["conditions"].clone()).unwrap_or_default();
    let generation = obj.meta().generation;
    let message = format!("{} does not reconcile {kind} objects yet", ctx.controller);
    let requested = obj.annotations().get(RECONCILE_REQUESTED_AT).cloned();

    let up_to_date = conditions::get(&conditions, READY).is_some_and(|ready| {
        ready.status == Status::False.as_str() && ready.message == message && ready.observed_generation == generation
    }) && current["observedGeneration"].as_i64() == generation
        && current["lastHandledReconcileAt"].as_str() == requested.as_deref();
    if up_to_date {
        return Ok(Action::await_change());
    }

    conditions::set(
        &mut conditions,
        READY,
        Status::False,
        conditions::reason::NOT_IMPLEMENTED,
        message,
        generation,
        Timestamp::now(),
    );
    let mut status = serde_json::json!({ "observedGeneration": generation, "conditions": conditions });
    if let Some(requested) = requested {
        status["lastHandledReconcileAt"] = requested.into();
    }
    write_status(&ctx, obj.as_ref(), status)
        .await
        .map_err(|source| StatusWriteError { object, source })?;
    Ok(Action::await_change())
}
