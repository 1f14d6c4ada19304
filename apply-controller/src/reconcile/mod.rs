//! The reconcile of a Kustomization.
//!
//! Gates first: deletion (under a finalizer that honours `deletionPolicy`), suspend, the source's
//! artifact and the dependencies; waiting on either is a condition and a requeue, not an error.
//! Then the pipeline: fetch and verify the artifact, render, substitute, staged apply, inventory,
//! prune, health. Each failing step sets Ready=False with its own reason and a message naming the
//! objects involved, emits one event, and keeps the previous inventory: a failed fetch, render or
//! apply never prunes.
//!
//! When the inputs (artifact digest, generation, variables, identity) are those of the last
//! successful apply and the live cache shows every applied object as it was left, nothing is
//! fetched, rendered or sent: the reconcile makes no API request. When the cache shows drift, the
//! drifted objects are compared field by field with a server-side dry-run, reported (event and
//! `status.drift`, naming fields and the managers that changed them) and, unless the
//! Kustomization only reports drift, corrected.
//!
//! This module holds the outer reconcile, the run's state and the pipeline that calls the steps
//! in order; each step is a module of its own: `gates`, `variables`, rendering
//! ([`crate::render`]), `apply`, `drift`, `prune`, `health`, `progress`, and `cleanup` on
//! deletion. The pure decisions (fast path, next inventory) are [`crate::plan`].

mod apply;
mod cleanup;
mod drift;
mod gates;
mod health;
mod progress;
mod prune;
mod variables;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use eddy_api::apply::{
    DeletionPolicy, DriftMode, DriftReport, Inventory, Kustomization, KustomizationStatus, PostBuild, SubstituteKind,
};
use eddy_api::conditions::{self, READY, Status, reason};
use eddy_api::meta::{Artifact, RECONCILE_REQUESTED_AT};
use eddy_apply::inventory::{self, ObjectRef};
use eddy_apply::ssa::cache::{Fingerprint, Lookup};
use eddy_apply::ssa::{
    Action as Change, Applier, ApplyOptions, ChangeSet, Error as SsaError, Owner, PruneOptions, api_message,
};
use eddy_apply::status::{Health, State, WaitOptions};
use eddy_runtime::events::Report;
use eddy_runtime::{Context, ControllerError, write_status};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event};
use kube::{Api, Resource, ResourceExt};

use crate::Shared;
use crate::applied::{self, Applied, Comparison};
use crate::ignore::IgnoreRules;
use crate::plan::{Situation, Step, next_inventory, plan};
use crate::render::{self, RenderError};
use crate::sources::{self, SourceState};
use crate::substitute::Variables;

/// Holds a Kustomization until its objects are handled as `deletionPolicy` says.
pub const FINALIZER: &str = "apply.eddy.dev/finalizer";
/// Condition: the health of the applied objects (or `healthChecks`).
pub const HEALTHY: &str = "Healthy";
/// Condition, present while true: another writer keeps changing applied objects back, so
/// corrections on change are paused for them (the interval reconcile still corrects).
pub const DRIFT_CONTESTED: &str = "DriftContested";

/// Condition reasons.
pub mod reasons {
    /// The source has no artifact yet, or does not exist.
    pub const SOURCE_NOT_READY: &str = "SourceNotReady";
    /// A dependency is not Ready.
    pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
    /// A reference to another namespace was refused.
    pub const ACCESS_DENIED: &str = "AccessDenied";
    /// The artifact could not be downloaded, verified or unpacked.
    pub const ARTIFACT_FAILED: &str = "ArtifactFailed";
    /// Rendering or substitution failed.
    pub const BUILD_FAILED: &str = "BuildFailed";
    /// The server-side apply failed.
    pub const APPLY_FAILED: &str = "ReconciliationFailed";
    /// Deleting objects that left the source failed.
    pub const PRUNE_FAILED: &str = "PruneFailed";
    /// The Kustomization was deleted without deleting its objects, which could not be (its
    /// namespace is being deleted, or its account is gone or may not).
    pub const PRUNE_SKIPPED: &str = "PruneSkipped";
    /// Applied objects did not become healthy.
    pub const HEALTH_CHECK_FAILED: &str = "HealthCheckFailed";
    /// Live objects differ from what was applied.
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    /// The whole pipeline took longer than `spec.timeout`.
    pub const TIMEOUT: &str = "ReconciliationTimeout";
}

/// The error a failed step came from, kept for its chain of causes.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failed reconcile, already recorded in status and events; retried at `retryInterval`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    reason: &'static str,
    message: String,
    retry: Duration,
    /// The error the step failed with, when there was one.
    #[source]
    source: Option<Cause>,
}

impl ControllerError for Failure {
    fn reason(&self) -> &'static str {
        self.reason
    }

    fn retry_after(&self) -> Duration {
        self.retry
    }
}

/// Reconciles one Kustomization.
pub async fn reconcile(ks: Arc<Kustomization>, ctx: Arc<Context>, shared: Arc<Shared>) -> Result<Action, Failure> {
    let namespace = ks.namespace().unwrap_or_default();
    let api: Api<Kustomization> = Api::namespaced(ctx.client.clone(), &namespace);
    let retry = Timing::of(&ks).retry;
    let outcome = finalizer::finalizer(&api, FINALIZER, ks, |event| async {
        match event {
            Event::Apply(ks) => Run::new(ks, &ctx, &shared).apply().await,
            Event::Cleanup(ks) => Run::new(ks, &ctx, &shared).cleanup().await,
        }
    })
    .await;
    match outcome {
        Ok(action) => Ok(action),
        // The object was read from the watch before its finalizer was added (a source turning
        // Ready triggers the reconcile from that copy), so the patch's precondition fails. The
        // watch event of the finalizer is on its way; look again shortly, not at retryInterval.
        Err(finalizer::Error::AddFinalizer(kube::Error::Api(status))) if status.code == 422 || status.code == 409 => {
            Ok(Action::requeue(Duration::from_secs(1)))
        }
        Err(finalizer::Error::ApplyFailed(failure) | finalizer::Error::CleanupFailed(failure)) => Err(failure),
        Err(other) => Err(Failure {
            reason: reason::FAILED,
            message: other.to_string(),
            retry,
            source: Some(Box::new(other)),
        }),
    }
}

/// The intervals of a Kustomization.
#[derive(Clone, Copy, Debug)]
struct Timing {
    interval: Duration,
    retry: Duration,
    timeout: Duration,
}

impl Timing {
    fn of(ks: &Kustomization) -> Self {
        let to_std = |d: &eddy_api::meta::Duration| d.to_std().ok();
        let interval = to_std(&ks.spec.interval).unwrap_or(Duration::from_secs(600));
        Self {
            interval,
            retry: ks.spec.retry_interval.as_ref().and_then(to_std).unwrap_or(interval),
            timeout: ks.spec.timeout.as_ref().and_then(to_std).unwrap_or(interval),
        }
    }
}

/// One reconcile: the object, its status as it is being rewritten, and what it needs.
struct Run<'a> {
    ks: Arc<Kustomization>,
    ctx: &'a Context,
    shared: &'a Shared,
    key: String,
    namespace: String,
    name: String,
    timing: Timing,
    /// The status as last written: by this process when it wrote one (the watch's copy may
    /// lag behind its last write), else the object's.
    written: Option<KustomizationStatus>,
    /// The status being rewritten, starting from `written`.
    status: KustomizationStatus,
    /// The status to show if the apply takes long (see [`progress::PROGRESS_AFTER`]).
    progress: Arc<Mutex<Option<KustomizationStatus>>>,
}

/// How a step ended when it did not succeed.
struct Stop {
    reason: &'static str,
    message: String,
    /// A wait (source, dependency): requeued, not an error.
    waiting: bool,
    /// A wait a new Kustomization need not show yet (see [`Run::shows_wait`]).
    quiet: bool,
    /// Retrying cannot help until the Kustomization changes: Stalled, not retried.
    terminal: bool,
    /// The error behind the message, when there is one.
    source: Option<Cause>,
}

impl Stop {
    fn failed(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            waiting: false,
            quiet: false,
            terminal: false,
            source: None,
        }
    }

    /// The same stop, caused by `source`.
    fn because(self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            source: Some(Box::new(source)),
            ..self
        }
    }

    /// A failure of the Kustomization's own spec (a refused reference, an invalid ignore rule
    /// or variable name): the same spec fails the same way, so it waits for a change.
    fn terminal(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            terminal: true,
            ..Self::failed(reason, message)
        }
    }

    fn waiting(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            waiting: true,
            ..Self::failed(reason, message)
        }
    }

    /// A wait for a source whose first fetch is under way.
    fn pending(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            quiet: true,
            ..Self::waiting(reason, message)
        }
    }
}

impl<'a> Run<'a> {
    fn new(ks: Arc<Kustomization>, ctx: &'a Context, shared: &'a Shared) -> Self {
        let namespace = ks.namespace().unwrap_or_default();
        let name = ks.name_any();
        let written = shared.written.current(ks.as_ref(), ks.status.as_ref());
        Self {
            key: format!("{namespace}/{name}"),
            timing: Timing::of(&ks),
            status: written.clone().unwrap_or_default(),
            written,
            progress: Arc::default(),
            ks,
            ctx,
            shared,
            namespace,
            name,
        }
    }

    fn generation(&self) -> Option<i64> {
        self.ks.meta().generation
    }

    fn owner(&self) -> Owner {
        Owner::new(&self.name, &self.namespace)
    }

    /// The apply engine of the identity this Kustomization acts as.
    fn applier(&self) -> Result<Arc<Applier>, Stop> {
        let account = self
            .ks
            .spec
            .service_account_name
            .clone()
            .or_else(|| self.shared.args.default_service_account.clone());
        match account {
            None => Ok(self.shared.identities.own()),
            Some(account) => self
                .shared
                .identities
                .service_account(&self.namespace, &account)
                .map_err(|e| Stop::failed(reasons::APPLY_FAILED, e)),
        }
    }

    async fn apply(mut self) -> Result<Action, Failure> {
        if self.ks.spec.suspend {
            self.acknowledge();
            self.write().await?;
            return Ok(Action::await_change());
        }
        let (ctx, shared, ks, progress) = (self.ctx, self.shared, self.ks.clone(), self.progress.clone());
        let timeout = self.timing.timeout;
        let outcome = {
            let pipeline = tokio::time::timeout(timeout, self.pipeline());
            tokio::pin!(pipeline);
            let show_progress = tokio::time::sleep(progress::PROGRESS_AFTER);
            tokio::pin!(show_progress);
            let mut shown = false;
            loop {
                tokio::select! {
                    outcome = &mut pipeline => break outcome,
                    () = &mut show_progress, if !shown => {
                        let status = progress.lock().unwrap_or_else(PoisonError::into_inner).take();
                        match status {
                            Some(status) => {
                                shown = true;
                                progress::write_progress(ctx, shared, &ks, &status).await;
                            }
                            // Not applying yet (reading variables): look again shortly.
                            None => show_progress.as_mut().reset(tokio::time::Instant::now() + progress::PROGRESS_AFTER / 4),
                        }
                    }
                }
            }
        };
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(_) => Err(Stop::failed(
                reasons::TIMEOUT,
                format!(
                    "reconciliation did not finish within the timeout of {:?}",
                    self.timing.timeout
                ),
            )),
        };
        self.acknowledge();
        self.report_contests().await;
        match outcome {
            Ok(()) => {
                self.write().await?;
                Ok(Action::requeue(self.timing.interval))
            }
            Err(stop) if stop.waiting && !self.shows_wait(&stop) => {
                // Triggered again when the source gets its artifact; looked at again after
                // --requeue-dependency otherwise, when the wait is shown.
                tracing::debug!(reason = stop.reason, message = %stop.message, "waiting, not shown yet");
                Ok(Action::requeue(self.shared.args.requeue_dependency))
            }
            Err(stop) if stop.waiting => {
                let changed = self.mark_waiting(&stop);
                self.write().await?;
                if changed {
                    tracing::info!(reason = stop.reason, message = %stop.message, "waiting");
                }
                Ok(Action::requeue(self.shared.args.requeue_dependency))
            }
            Err(stop) if stop.terminal => {
                self.mark_stopped(&stop).await;
                self.write().await?;
                tracing::warn!(reason = stop.reason, message = %stop.message, "stalled until the Kustomization changes");
                Ok(Action::await_change())
            }
            Err(stop) => {
                self.mark_stopped(&stop).await;
                self.write().await?;
                Err(Failure {
                    reason: stop.reason,
                    message: stop.message,
                    retry: self.timing.retry,
                    source: stop.source,
                })
            }
        }
    }

    /// Whether a wait is written to the status now. A Kustomization created together with its
    /// source would otherwise show SourceNotReady for the moment of the source's first fetch and
    /// cost a status write: one without status, younger than `--requeue-dependency`, waiting
    /// for a source its controller has not reported on yet, shows nothing until it is older.
    fn shows_wait(&self, stop: &Stop) -> bool {
        if !stop.quiet || self.written.is_some() {
            return true;
        }
        let created = self.ks.meta().creation_timestamp.as_ref().map(|t| t.0);
        let young = created.is_some_and(|created| {
            Timestamp::now()
                .duration_since(created)
                .try_into()
                .is_ok_and(|age: Duration| age < self.shared.args.requeue_dependency)
        });
        !young
    }

    /// observedGeneration and the handled reconcile request.
    fn acknowledge(&mut self) {
        self.status.observed_generation = self.generation();
        if let Some(requested) = self.ks.annotations().get(RECONCILE_REQUESTED_AT) {
            self.status.last_handled_reconcile_at = Some(requested.clone());
        }
    }

    fn mark_waiting(&mut self, stop: &Stop) -> bool {
        let conditions = &mut self.status.conditions;
        let unchanged = conditions::get(conditions, READY).is_some_and(|c| c.message == stop.message);
        conditions::set(
            conditions,
            READY,
            Status::False,
            stop.reason,
            stop.message.clone(),
            self.ks.meta().generation,
            Timestamp::now(),
        );
        conditions::set(
            conditions,
            conditions::RECONCILING,
            Status::True,
            reason::PROGRESSING,
            stop.message.clone(),
            self.ks.meta().generation,
            Timestamp::now(),
        );
        conditions::remove(conditions, conditions::STALLED);
        !unchanged
    }

    /// Ready=False with the stop's reason and message: Stalled too when the stop is terminal
    /// (it waits for a change), a retryable failure otherwise. One event, when the message is new.
    async fn mark_stopped(&mut self, stop: &Stop) {
        let generation = self.generation();
        let repeated = conditions::get(&self.status.conditions, READY)
            .is_some_and(|r| r.status == "False" && r.message == stop.message)
            && conditions::get(&self.status.conditions, conditions::STALLED).is_some() == stop.terminal;
        let conditions = &mut self.status.conditions;
        let (reason, message, now) = (stop.reason, stop.message.as_str(), Timestamp::now());
        if stop.terminal {
            conditions::mark_stalled(conditions, reason, message, generation, now);
        } else {
            conditions::mark_failed(conditions, reason, message, generation, now);
        }
        if !repeated {
            let mut report = Report::error(stop.reason, &stop.message);
            if let Some(revision) = &self.status.last_attempted_revision {
                report = report.with("revision", revision.clone());
            }
            self.ctx.events.record(self.ks.as_ref(), report).await;
        }
    }

    /// Writes the status when it differs from the last one written.
    async fn write(&mut self) -> Result<(), Failure> {
        // What this process wrote last, a progress status of this very reconcile included.
        let last = self.shared.written.current(self.ks.as_ref(), self.written.as_ref());
        if last.as_ref() == Some(&self.status) {
            return Ok(());
        }
        let value = serde_json::to_value(&self.status).map_err(|e| self.kube_failure(e.to_string(), None))?;
        write_status(self.ctx, self.ks.as_ref(), value)
            .await
            .map_err(|e| self.kube_failure(format!("writing status: {e}"), Some(Box::new(e))))?;
        self.shared.written.record(self.ks.as_ref(), &self.status);
        self.written = Some(self.status.clone());
        Ok(())
    }

    fn kube_failure(&self, message: String, source: Option<Cause>) -> Failure {
        Failure {
            reason: reason::FAILED,
            message: format!("Kustomization/{}: {message}", self.key),
            retry: self.timing.retry,
            source,
        }
    }

    async fn pipeline(&mut self) -> Result<(), Stop> {
        let artifact = self.gates()?;
        let ignore = IgnoreRules::new(&self.ks.spec.ignore).map_err(|e| {
            Stop::terminal(
                reasons::BUILD_FAILED,
                format!("Kustomization/{}: spec.ignore: {e}", self.key),
            )
            .because(e)
        })?;
        let applier = self.applier()?;
        let variables = self.variables(&applier).await?;
        let input = self.input_key(&artifact, variables.as_ref());
        let revision = artifact.revision.clone();
        let previous = self.shared.applied.get(&self.key);
        let same_inputs = previous.as_ref().filter(|p| {
            p.input == input && !p.floating && self.status.last_applied_revision.as_deref() == Some(&revision)
        });
        // A reconcile request does not trust the cache, which may not have seen an edit made
        // just before the request: every applied object is compared with a dry-run.
        let requested = self.ks.annotations().get(RECONCILE_REQUESTED_AT);
        let situation = Situation {
            same_inputs,
            forced: requested.is_some() && requested != self.status.last_handled_reconcile_at.as_ref(),
            ready: conditions::is_ready(&self.status.conditions, self.generation()),
            drift_shown: self.status.drift.iter().any(|d| !d.corrected),
        };
        let comparison = match same_inputs {
            Some(previous) => applied::compare(previous, &self.shared.live),
            None => Comparison::Unknown,
        };
        let drifted = match plan(situation, comparison) {
            Step::Verify => {
                let previous = same_inputs.expect("verified only against a previous apply").clone();
                self.status.drift = drift::resolved(&self.status.drift, Vec::new());
                return self.check_health_cached(&previous, &applier, &revision).await;
            }
            Step::Apply { drifted } => drifted,
        };
        let same_input = same_inputs.is_some();

        if !same_input && self.status.last_attempted_revision.as_deref() != Some(&revision) {
            let generation = self.generation();
            conditions::mark_reconciling(
                &mut self.status.conditions,
                reason::PROGRESSING,
                format!("applying revision {revision}"),
                generation,
                Timestamp::now(),
            );
            self.status.last_attempted_revision = Some(revision.clone());
            *self.progress.lock().unwrap_or_else(PoisonError::into_inner) = Some(self.status.clone());
        }
        self.status.last_attempted_revision = Some(revision.clone());

        let rendered = render::render(
            &self.shared.http,
            &artifact,
            &self.ks.spec,
            variables,
            render::Reach {
                max_artifact_size: self.shared.args.max_artifact_size,
                remote_bases: (!self.shared.args.no_remote_bases).then_some(self.timing.timeout),
            },
        )
        .await
        .map_err(|e: RenderError| Stop::failed(e.reason(), format!("Kustomization/{}: {e}", self.key)).because(e))?;
        let mut objects = eddy_apply::ssa::objects_from_values(rendered.objects)
            .map_err(|e| Stop::failed(reasons::BUILD_FAILED, e.to_string()))?;
        if !ignore.is_empty() {
            self.keep_ignored_fields(&applier, &ignore, &mut objects).await?;
        }

        let mode = self
            .ks
            .spec
            .drift_detection
            .as_ref()
            .map(|d| d.mode)
            .unwrap_or_default();
        if !drifted.is_empty() {
            let reports = self.report_drift(&applier, &ignore, &objects, &drifted, mode).await;
            self.status.drift = drift::resolved(&self.status.drift, reports);
            if mode == DriftMode::Report {
                // Leave the live objects as they are; health and status as usual.
                let previous = previous.expect("drift is only compared with a previous apply");
                return self.check_health_cached(&previous, &applier, &revision).await;
            }
        } else if !same_input {
            self.status.drift.clear();
        }

        // Until this reconcile ends, changes the live cache sees are held: they are this apply's.
        let _applying = self.shared.applying.begin(&self.key);
        let old = self.status.inventory.clone().unwrap_or_default();
        let change_set = self.apply_objects(&applier, objects, &old).await?;
        let (new_inventory, pruned) = self.prune_stale(&applier, &old, &change_set).await?;
        self.status.inventory = Some(new_inventory);
        self.status.last_applied_revision = Some(revision.clone());
        // Stored before the health wait, so that changes seen during it are compared with what
        // this apply left.
        self.shared
            .applied
            .set(&self.key, Applied::new(input, &change_set, rendered.read_a_branch));

        let health = self.check_health(&applier, &change_set).await;
        let changes: Vec<String> = change_set
            .changes()
            .chain(pruned.changes())
            .map(ToString::to_string)
            .collect();
        match health {
            Err(stop) => {
                self.shared.applied.forget(&self.key);
                Err(stop)
            }
            Ok(message) => {
                let was_ready = conditions::is_ready(&self.status.conditions, self.generation());
                self.mark_applied(&revision, message);
                if !changes.is_empty() || !was_ready {
                    let text = if changes.is_empty() {
                        format!("Applied revision: {revision}")
                    } else {
                        changes.join("\n")
                    };
                    self.ctx
                        .events
                        .record(
                            self.ks.as_ref(),
                            Report::info(reason::SUCCEEDED, text).with("revision", revision),
                        )
                        .await;
                }
                for dependent in sources::dependents_of(&self.shared.kustomizations, &self.ks) {
                    let _ = self.shared.trigger.send(dependent);
                }
                Ok(())
            }
        }
    }
}
