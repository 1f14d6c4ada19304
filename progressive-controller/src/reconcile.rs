//! The Canary reconcile: read the target and the primary, evaluate the gates the tick needs,
//! [`decide`](crate::decide::decide), write the status, then make the world follow it: the
//! generated Services, the router's objects, the canary's scale, the primary.
//!
//! The status is written before anything it implies, so a controller killed at any point resumes
//! from it (see `decide`). What was last written to the router and the Services is remembered in
//! memory only to skip identical writes; after a restart everything is written once again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;

use eddy_api::conditions::{self, Status};
use eddy_api::meta::RECONCILE_REQUESTED_AT;
use eddy_api::progressive::{ABORT_REQUESTED_AT, Canary, CanaryPhase, CanaryStatus, PAUSED, PROMOTE_REQUESTED_AT};
use eddy_runtime::events::Report;
use eddy_runtime::{Context, ControllerError, write_status};

use crate::decide::{self, Seen};
use crate::gates::{self, GateSettings};
use crate::plan::Plan;
use crate::release::{self, Release};
use crate::router::{self, RouterError, RouterInputs};
use crate::telemetry::CanaryMetrics;
use crate::workload::{self, WorkloadError};

/// The finalizer of a Canary with `revertOnDeletion`.
pub const FINALIZER: &str = "progressive.eddy.dev/finalizer";

/// Why a reconcile failed; the reason is the Ready condition's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error(transparent)]
    Router(#[from] RouterError),
    #[error("writing the status of Canary/{object}: {source}")]
    Status {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("{what} of Canary/{object}: {source}")]
    Finalizer {
        what: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
}

impl ControllerError for Error {
    fn reason(&self) -> &'static str {
        match self {
            Self::Workload(WorkloadError::TargetMissing { .. }) => "TargetNotFound",
            Self::Workload(_) => "WorkloadFailed",
            Self::Router(_) => "RouterFailed",
            Self::Status { .. } => "StatusWriteFailed",
            Self::Finalizer { .. } => "FinalizerFailed",
        }
    }

    fn retry_after(&self) -> Duration {
        Duration::from_secs(5)
    }
}

/// What the Canary reconciles share besides the runtime's context.
pub struct Shared {
    /// Settings of the gates (default Prometheus, timeouts).
    pub gates: GateSettings,
    /// The Canaries' metrics.
    pub metrics: CanaryMetrics,
    /// Per Canary uid: the hash of what was last written to the router and the Services.
    written: Mutex<HashMap<String, String>>,
}

impl Shared {
    pub fn new(gates: GateSettings, metrics: CanaryMetrics) -> Self {
        Self {
            gates,
            metrics,
            written: Mutex::default(),
        }
    }

    /// Whether `key` of `uid` changed since it was last recorded.
    fn changed(&self, uid: &str, key: &str) -> bool {
        self.written.lock().expect("not poisoned").get(uid).map(String::as_str) != Some(key)
    }

    fn record(&self, uid: &str, key: String) {
        self.written.lock().expect("not poisoned").insert(uid.to_owned(), key);
    }

    fn forget(&self, uid: &str) {
        self.written.lock().expect("not poisoned").remove(uid);
    }
}

/// Reconciles one Canary: one analysis tick.
pub async fn reconcile(canary: Arc<Canary>, ctx: Arc<Context>, shared: Arc<Shared>) -> Result<Action, Error> {
    let namespace = canary.namespace().unwrap_or_default();
    let object = format!("{namespace}/{}", canary.name_any());
    let uid = canary.uid().unwrap_or_default();
    if canary.meta().deletion_timestamp.is_some() {
        shared.forget(&uid);
        let checks: Vec<String> = canary
            .status
            .iter()
            .flat_map(|s| s.last_checks.iter().map(|c| c.name.clone()))
            .collect();
        shared.metrics.forget(&namespace, &canary.name_any(), &checks);
        return finalize(&canary, &ctx, &object).await;
    }
    ensure_finalizer(&canary, &ctx, &object).await?;

    let status = canary.status.clone().unwrap_or_default();
    let paused = canary.annotations().get(PAUSED).is_some_and(|v| v == "true");
    let plan = match Plan::new(&canary.spec, paused) {
        Ok(plan) => plan,
        Err(err) => return stall(&canary, &ctx, status, "InvalidSpec", err.to_string()).await,
    };
    let target = match workload::read_target(&ctx.client, &namespace, &canary.spec.target_ref.name).await {
        Ok(target) => target,
        Err(err @ WorkloadError::TargetMissing { .. }) => {
            let mut next = status.clone();
            let generation = canary.meta().generation;
            conditions::mark_failed(
                &mut next.conditions,
                "TargetNotFound",
                err.to_string(),
                generation,
                Timestamp::now(),
            );
            if next != status {
                write(&canary, &ctx, &object, next).await?;
            }
            return Ok(Action::requeue(plan.interval.max(Duration::from_secs(5))));
        }
        Err(err) => return Err(err.into()),
    };
    let pod_labels = target
        .deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let Some(selector) = release::selector_label(&pod_labels) else {
        let err = WorkloadError::NoSelectorLabel {
            namespace: namespace.clone(),
            name: target.deployment.name_any(),
        };
        return stall(&canary, &ctx, status, "NoSelectorLabel", err.to_string()).await;
    };
    let release = Release::new(&canary, selector).with_target_ports(&target.deployment);
    let primary = workload::read_primary(&ctx.client, &release).await?;

    // Traffic first follows the status as written: after a restart, or a write whose routing
    // was lost, the step the status names gets a whole interval of traffic before it is judged.
    let restored = match converge_routes(&ctx, &shared, &canary, &release, &plan, &status).await {
        Ok(restored) => restored,
        Err(err) => return router_failure(&canary, &ctx, status, err).await,
    };
    let analysing = matches!(
        status.phase,
        Some(CanaryPhase::Progressing | CanaryPhase::WaitingPromotion)
    );
    if restored && analysing && status.canary_weight > 0 {
        return Ok(Action::requeue(plan.interval));
    }

    let seen = Seen {
        now: Timestamp::now(),
        revision: target.revision.clone(),
        primary: primary
            .as_ref()
            .map(|primary| workload::workload(primary, canary.spec.primary_ready_threshold())),
        canary: workload::workload(&target.deployment, canary.spec.canary_ready_threshold()),
        promote: canary.annotations().get(PROMOTE_REQUESTED_AT).cloned(),
        abort: canary.annotations().get(ABORT_REQUESTED_AT).cloned(),
    };
    let needed = decide::gates_needed(&plan, &status, &seen);
    let results = gates::evaluate(&ctx, &shared.gates, &canary, &release, &status, &needed).await;
    let decision = decide::decide(&plan, &status, &seen, &results);

    let mut next = decision.status.clone();
    describe(
        &mut next,
        &plan,
        canary.meta().generation,
        canary.annotations().get(RECONCILE_REQUESTED_AT),
        &crate::compat::ignored_fields(&canary.spec),
    );
    if next != status {
        write(&canary, &ctx, &object, next.clone()).await?;
    }
    shared.metrics.observe(&namespace, &canary.name_any(), &next);
    // A step that follows the previous one with nothing waited for in between (readiness,
    // a restart) ran late by whatever exceeds the interval.
    if let (Some(before), Some(now)) = (&status.last_step_time, &next.last_step_time)
        && before != now
        && status.waiting_since.is_none()
        && status.phase == next.phase
    {
        let since = Duration::try_from(now.0.duration_since(before.0)).unwrap_or_default();
        shared.metrics.step_ran(since.saturating_sub(plan.interval));
    }

    // The world follows the status: Services, then traffic, then the canary's scale, so that
    // the target is scaled down only once traffic left it.
    if let Err(err) = converge_routes(&ctx, &shared, &canary, &release, &plan, &next).await {
        return router_failure(&canary, &ctx, next, err).await;
    }
    let primary_replicas = primary.as_ref().map(workload::replicas);
    for action in &decision.actions {
        match action {
            decide::Action::WritePrimary => {
                let replicas = primary_replicas
                    .unwrap_or_else(|| workload::replicas(&target.deployment))
                    .max(1);
                workload::write_primary(&ctx.client, ctx.controller, &release, &target, replicas).await?;
                copy_autoscaler(&ctx, &canary, &release).await?;
            }
            decide::Action::RunHooks(kind) => gates::run_hooks(&ctx, &shared.gates, &canary, &next, *kind).await,
            decide::Action::Event {
                warning,
                reason,
                message,
            } => {
                let report = match warning {
                    true => Report::error(*reason, message.clone()),
                    false => Report::info(*reason, message.clone()),
                };
                let revision = next.last_applied_spec.clone().unwrap_or_default();
                ctx.events
                    .record(canary.as_ref(), report.with("progressive.eddy.dev/revision", revision))
                    .await;
                gates::send_event(&canary, &next, *warning, reason, message).await;
            }
        }
    }
    converge_scale(&ctx, &release, &target.deployment, primary_replicas, &next).await?;
    Ok(Action::requeue(decision.requeue.max(Duration::from_millis(50))))
}

/// The conditions that say where the release is: Ready True when a revision is fully released
/// and nothing runs, Reconciling while a release runs, Ready False after a rollback.
fn describe(
    status: &mut CanaryStatus,
    plan: &Plan,
    generation: Option<i64>,
    requested: Option<&String>,
    ignored: &[String],
) {
    let now = Timestamp::now();
    let phase = status.phase.unwrap_or(CanaryPhase::Initializing);
    let revision = status.last_applied_spec.clone().unwrap_or_default();
    let revision = revision.get(..12).unwrap_or(&revision).to_owned();
    let conditions = &mut status.conditions;
    // Described only when the spec could be released: whatever stalled it is gone.
    conditions::remove(conditions, conditions::STALLED);
    match phase {
        CanaryPhase::Initialized | CanaryPhase::Succeeded => {
            let message = match phase {
                CanaryPhase::Succeeded => format!("revision {revision} promoted"),
                _ => format!("initialized: the primary serves revision {revision}"),
            };
            conditions::mark_ready(conditions, conditions::reason::SUCCEEDED, message, generation, now);
        }
        CanaryPhase::Failed => {
            let message = match status.canary_weight {
                0 => format!("revision {revision} was rolled back: {}", failure(&status.last_checks)),
                weight => format!(
                    "revision {revision} was promoted but the primary is not ready; the canary keeps {weight}% of traffic"
                ),
            };
            // Stalled: only a new revision of the target changes this, so health checks (kstatus)
            // read a rolled-back Canary as failed rather than in progress.
            conditions::mark_stalled(conditions, "RolledBack", message, generation, now);
        }
        _ if plan.paused => {
            conditions::mark_reconciling(
                conditions,
                conditions::reason::SUSPENDED,
                format!("paused at {phase:?}, weight {}%", status.canary_weight),
                generation,
                now,
            );
        }
        _ => {
            let message = format!(
                "{phase:?}: revision {revision}, canary weight {}%, failed checks {}/{}",
                status.canary_weight, status.failed_checks, plan.threshold
            );
            conditions::mark_reconciling(conditions, conditions::reason::PROGRESSING, message, generation, now);
        }
    }
    let promoted = matches!(phase, CanaryPhase::Initialized | CanaryPhase::Succeeded);
    let (promoted_status, reason) = match promoted {
        true => (Status::True, "Promoted"),
        false => (Status::False, "Progressing"),
    };
    conditions::set(
        conditions,
        "Promoted",
        promoted_status,
        reason,
        format!("{phase:?}"),
        generation,
        now,
    );
    if !ignored.is_empty()
        && let Some(ready) = status.conditions.iter_mut().find(|c| c.type_ == conditions::READY)
    {
        ready.message = format!("{}; accepted but not acted on: {}", ready.message, ignored.join("; "));
    }
    status.observed_generation = generation;
    status.last_handled_reconcile_at = requested.cloned();
}

/// The failed checks of the last step, for a message.
fn failure(checks: &[eddy_api::progressive::CheckResult]) -> String {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.message.clone().unwrap_or_else(|| "failed".into())))
        .collect();
    match failed.is_empty() {
        true => "see the Canary's events".into(),
        false => failed.join("; "),
    }
}

async fn write(canary: &Canary, ctx: &Context, object: &str, status: CanaryStatus) -> Result<(), Error> {
    let value = serde_json::to_value(&status).unwrap_or_default();
    write_status(ctx, canary, value).await.map_err(|source| Error::Status {
        object: object.to_owned(),
        source,
    })
}

/// A router that cannot write what the status asks: a Canary asking for what its router cannot
/// do (or lacking what it needs) stalls with the reason; an object the API server refuses (its
/// CRD missing, a webhook refusing) is a failure retried.
async fn router_failure(canary: &Canary, ctx: &Context, status: CanaryStatus, err: Error) -> Result<Action, Error> {
    match err {
        Error::Router(RouterError::Apply { .. }) => {
            let object = format!("{}/{}", canary.namespace().unwrap_or_default(), canary.name_any());
            let mut next = status.clone();
            let message = err.to_string();
            let generation = canary.meta().generation;
            conditions::mark_failed(
                &mut next.conditions,
                "RouterFailed",
                message.clone(),
                generation,
                Timestamp::now(),
            );
            if next != status {
                write(canary, ctx, &object, next).await?;
                ctx.events.record(canary, Report::error("RouterFailed", message)).await;
            }
            Ok(Action::requeue(Duration::from_secs(10)))
        }
        Error::Router(refused) => stall(canary, ctx, status, "RouterRefused", refused.to_string()).await,
        other => Err(other),
    }
}

/// A spec that cannot be released: Stalled, with the reason, until the Canary changes.
async fn stall(
    canary: &Canary,
    ctx: &Context,
    mut status: CanaryStatus,
    reason: &str,
    err: String,
) -> Result<Action, Error> {
    let object = format!("{}/{}", canary.namespace().unwrap_or_default(), canary.name_any());
    let message = format!("Canary/{object}: {err}");
    let generation = canary.meta().generation;
    let current = conditions::get(&status.conditions, conditions::STALLED).map(|c| c.message.clone());
    if current.as_deref() != Some(message.as_str()) || status.observed_generation != generation {
        conditions::mark_stalled(
            &mut status.conditions,
            reason,
            message.clone(),
            generation,
            Timestamp::now(),
        );
        status.observed_generation = generation;
        write(canary, ctx, &object, status).await?;
        ctx.events.record(canary, Report::error(reason, message)).await;
    }
    // Also looked at again now and then: a target's labels can change without the Canary.
    Ok(Action::requeue(Duration::from_secs(60)))
}

/// Writes the generated Services and the router's objects when they differ from what was last
/// written; says whether it wrote.
async fn converge_routes(
    ctx: &Context,
    shared: &Shared,
    canary: &Canary,
    release: &Release,
    plan: &Plan,
    status: &CanaryStatus,
) -> Result<bool, Error> {
    let routes = decide::routes(plan, status);
    let router = router::router_for(release.router);
    let inputs = router_inputs(ctx, canary).await?;
    let mut objects = services(release, router.owns_apex_service());
    objects.extend(router.desired(release, &routes, &inputs)?);
    let key = workload::hash(&serde_json::Value::Array(
        objects.iter().map(|d| d.object.clone()).collect(),
    ));
    let uid = canary.uid().unwrap_or_default();
    if !shared.changed(&uid, &key) {
        return Ok(false);
    }
    router::apply(&ctx.client, ctx.controller, &objects).await?;
    shared.record(&uid, key);
    Ok(true)
}

/// The Services every release has: `<apex>-primary`, `<apex>-canary`, and the apex Service
/// selecting the primary unless the router steers with it.
fn services(release: &Release, router_owns_apex: bool) -> Vec<router::Desired> {
    let service = kube::core::ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&());
    let meta = |m: &Option<eddy_api::progressive::ServiceMetadata>| m.clone().unwrap_or_default();
    let (primary, canary, apex) = (
        meta(&release.service.primary),
        meta(&release.service.canary),
        meta(&release.service.apex),
    );
    let mut objects = vec![
        router::Desired {
            resource: service.clone(),
            object: release.service_object(
                &release.primary_service,
                &release.primary_selector(),
                &primary.labels,
                &primary.annotations,
            ),
        },
        router::Desired {
            resource: service.clone(),
            object: release.service_object(
                &release.canary_service,
                &release.canary_selector(),
                &canary.labels,
                &canary.annotations,
            ),
        },
    ];
    if !router_owns_apex {
        objects.push(router::Desired {
            resource: service,
            object: release.service_object(
                &release.apex,
                &release.primary_selector(),
                &apex.labels,
                &apex.annotations,
            ),
        });
    }
    objects
}

async fn router_inputs(ctx: &Context, canary: &Canary) -> Result<RouterInputs, Error> {
    let Some(reference) = &canary.spec.ingress_ref else {
        return Ok(RouterInputs::default());
    };
    let namespace = canary.namespace().unwrap_or_default();
    let api: Api<k8s_openapi::api::networking::v1::Ingress> = Api::namespaced(ctx.client.clone(), &namespace);
    let ingress = api
        .get_opt(&reference.name)
        .await
        .map_err(|source| WorkloadError::Read {
            object: format!("Ingress/{namespace}/{}", reference.name),
            source,
        })?;
    Ok(RouterInputs {
        ingress: ingress.map(|i| serde_json::to_value(i).unwrap_or_default()),
    })
}

/// Scales the target as the status says: up (to the primary's replicas) while a release runs,
/// to zero otherwise.
async fn converge_scale(
    ctx: &Context,
    release: &Release,
    target: &k8s_openapi::api::apps::v1::Deployment,
    primary_replicas: Option<i32>,
    status: &CanaryStatus,
) -> Result<(), Error> {
    let current = workload::replicas(target);
    let wanted = match decide::canary_scaled_up(status) {
        true if current > 0 => return Ok(()),
        true => primary_replicas.unwrap_or(1).max(1),
        false => 0,
    };
    if current != wanted {
        workload::scale(&ctx.client, &release.namespace, &release.target, wanted).await?;
    }
    Ok(())
}

/// Copies the target's HorizontalPodAutoscaler (`autoscalerRef`) for the primary.
async fn copy_autoscaler(ctx: &Context, canary: &Canary, release: &Release) -> Result<(), Error> {
    let Some(reference) = &canary.spec.autoscaler_ref else {
        return Ok(());
    };
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &release.namespace);
    let object = format!("HorizontalPodAutoscaler/{}/{}", release.namespace, reference.name);
    let Some(hpa) = api
        .get_opt(&reference.name)
        .await
        .map_err(|source| WorkloadError::Read {
            object: object.clone(),
            source,
        })?
    else {
        return Ok(());
    };
    let mut spec = serde_json::to_value(hpa.spec).unwrap_or_default();
    spec["scaleTargetRef"]["name"] = release.primary.clone().into();
    if let Some(bounds) = &reference.primary_scaler_replicas {
        if let Some(min) = bounds.min_replicas {
            spec["minReplicas"] = min.into();
        }
        if let Some(max) = bounds.max_replicas {
            spec["maxReplicas"] = max.into();
        }
    }
    let name = format!("{}-primary", reference.name);
    let copy = json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": release.metadata(&name, &BTreeMap::new(), &BTreeMap::new()),
        "spec": spec,
    });
    api.patch(&name, &PatchParams::apply(ctx.controller).force(), &Patch::Apply(&copy))
        .await
        .map_err(|source| WorkloadError::Write {
            object: format!("HorizontalPodAutoscaler/{}/{name}", release.namespace),
            source,
        })?;
    Ok(())
}

/// Adds or removes the finalizer as `revertOnDeletion` asks.
async fn ensure_finalizer(canary: &Canary, ctx: &Context, object: &str) -> Result<(), Error> {
    let has = canary.finalizers().iter().any(|f| f == FINALIZER);
    if has == canary.spec.revert_on_deletion {
        return Ok(());
    }
    let mut finalizers: Vec<String> = canary
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if canary.spec.revert_on_deletion {
        finalizers.push(FINALIZER.into());
    }
    set_finalizers(canary, ctx, object, finalizers).await
}

async fn set_finalizers(canary: &Canary, ctx: &Context, object: &str, finalizers: Vec<String>) -> Result<(), Error> {
    let api: Api<Canary> = Api::namespaced(ctx.client.clone(), &canary.namespace().unwrap_or_default());
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": canary.resource_version()}});
    api.patch(&canary.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|source| Error::Finalizer {
            what: "updating the finalizers",
            object: object.to_owned(),
            source,
        })
}

/// `revertOnDeletion`: gives the target its replicas back, points the apex Service at it and
/// keeps that Service, then lets the generated objects go with the Canary.
async fn finalize(canary: &Canary, ctx: &Context, object: &str) -> Result<Action, Error> {
    if !canary.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let namespace = canary.namespace().unwrap_or_default();
    let target = match workload::read_target(&ctx.client, &namespace, &canary.spec.target_ref.name).await {
        Ok(target) => Some(target),
        Err(WorkloadError::TargetMissing { .. }) => None,
        Err(err) => return Err(err.into()),
    };
    if let Some(target) = target {
        let pod_labels = target
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        if let Some(selector) = release::selector_label(&pod_labels) {
            let release = Release::new(canary, selector);
            let primary = workload::read_primary(&ctx.client, &release).await?;
            if workload::replicas(&target.deployment) == 0 {
                let replicas = primary.as_ref().map(workload::replicas).unwrap_or(1).max(1);
                workload::scale(&ctx.client, &namespace, &release.target, replicas).await?;
            }
            if !workload::workload(&target.deployment, canary.spec.canary_ready_threshold()).ready {
                // Traffic moves back only to a target that serves.
                return Ok(Action::requeue(decide::READINESS_POLL));
            }
            // The apex Service survives the Canary and selects the target's pods.
            let apex = json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": release.apex, "namespace": namespace, "ownerReferences": []},
                "spec": {"selector": release.canary_selector()},
            });
            let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(ctx.client.clone(), &namespace);
            services
                .patch(&release.apex, &PatchParams::default(), &Patch::Merge(&apex))
                .await
                .map_err(|source| WorkloadError::Write {
                    object: format!("Service/{namespace}/{}", release.apex),
                    source,
                })?;
            let _ = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(ctx.client.clone(), &namespace)
                .delete(&release.primary, &DeleteParams::background())
                .await;
            ctx.events
                .record(
                    canary,
                    Report::info(
                        "Reverted",
                        format!(
                            "Deployment/{namespace}/{} serves again through Service/{namespace}/{}",
                            release.target, release.apex
                        ),
                    ),
                )
                .await;
        }
    }
    let finalizers: Vec<String> = canary
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    set_finalizers(canary, ctx, object, finalizers).await?;
    Ok(Action::await_change())
}
