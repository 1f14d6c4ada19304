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

/// How long a reconcile that applies a new revision runs before its status says so (Reconciling,
/// lastAttemptedRevision). Most applies finish sooner and write their status once, at the end;
/// a long apply or health wait shows its progress.
const PROGRESS_AFTER: Duration = Duration::from_secs(2);

/// Writes the status of a reconcile in progress; a failure is only logged, the final write
/// follows anyway.
async fn write_progress(ctx: &Context, shared: &Shared, ks: &Kustomization, status: &KustomizationStatus) {
    let written = match serde_json::to_value(status) {
        Ok(value) => write_status(ctx, ks, value).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match written {
        Ok(()) => shared.written.record(ks, status),
        Err(error) => tracing::warn!(error = %error, "writing the progress status failed"),
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
    /// The status to show if the apply takes long (see [`PROGRESS_AFTER`]).
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
            let show_progress = tokio::time::sleep(PROGRESS_AFTER);
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
                                write_progress(ctx, shared, &ks, &status).await;
                            }
                            // Not applying yet (reading variables): look again shortly.
                            None => show_progress.as_mut().reset(tokio::time::Instant::now() + PROGRESS_AFTER / 4),
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

    /// Shows the objects another writer keeps changing back ([`DRIFT_CONTESTED`]), with an event
    /// when the set is new; removes the condition once no object is contested.
    async fn report_contests(&mut self) {
        let contests = self.shared.contests.of(&self.key);
        if contests.is_empty() {
            conditions::remove(&mut self.status.conditions, DRIFT_CONTESTED);
            return;
        }
        let managers = |object: &ObjectRef| {
            let text = object.to_string();
            self.status
                .drift
                .iter()
                .find(|d| d.object == text)
                .map(|d| d.managers.join(", "))
                .filter(|m| !m.is_empty())
                .map(|m| format!(" by {m}"))
                .unwrap_or_default()
        };
        let lines: Vec<String> = contests
            .iter()
            .map(|c| {
                let pause = c.until.saturating_duration_since(tokio::time::Instant::now());
                format!(
                    "{}: changed back{} {} times within {:?}; corrections on change paused for {}s, the interval reconcile still corrects it",
                    c.object,
                    managers(&c.object),
                    crate::drift_watch::FIGHT_CORRECTIONS,
                    crate::drift_watch::FIGHT_WINDOW,
                    pause.as_secs()
                )
            })
            .collect();
        let objects: Vec<String> = contests.iter().map(|c| c.object.to_string()).collect();
        let message = format!("another writer contests {}", objects.join(", "));
        let known = conditions::get(&self.status.conditions, DRIFT_CONTESTED).is_some_and(|c| c.message == message);
        if known {
            return;
        }
        let generation = self.generation();
        conditions::set(
            &mut self.status.conditions,
            DRIFT_CONTESTED,
            Status::True,
            DRIFT_CONTESTED,
            message,
            generation,
            Timestamp::now(),
        );
        let report = Report::error(DRIFT_CONTESTED, lines.join("\n"));
        self.ctx.events.record(self.ks.as_ref(), report).await;
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
                self.status.drift = resolved(&self.status.drift, Vec::new());
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
            self.status.drift = resolved(&self.status.drift, reports);
            if mode == DriftMode::Report {
                // Leave the live objects as they are; health and status as usual.
                let previous = previous.expect("drift is only compared with a previous apply");
                return self.check_health_cached(&previous, &applier, &revision).await;
            }
        } else if !same_input {
            self.status.drift.clear();
        }

        let options = ApplyOptions {
            force: self.ks.spec.force,
            owner: Some(self.owner()),
            wait_timeout: self.timing.timeout,
            concurrency: usize::from(self.shared.args.apply_concurrency),
            ..ApplyOptions::default()
        };
        self.watch_kinds(&applier, &objects).await;
        // Until this reconcile ends, changes the live cache sees are held: they are this apply's.
        let _applying = self.shared.applying.begin(&self.key);
        let old = self.status.inventory.clone().unwrap_or_default();
        let change_set = match applier.apply_all_staged(objects, &options).await {
            Ok(change_set) => change_set,
            Err(err) => {
                // Objects created before the failure are remembered, so a later prune can find
                // them; nothing is pruned.
                let created: Vec<_> = err
                    .change_set
                    .entries
                    .iter()
                    .filter(|e| e.action == Change::Created)
                    .map(|e| e.object.to_entry())
                    .collect();
                if !created.is_empty() {
                    self.status.inventory = Some(inventory::merge(&old, &created));
                }
                let message = format!("Kustomization/{}: apply failed: {err}", self.key);
                return Err(Stop::failed(reasons::APPLY_FAILED, message).because(err));
            }
        };
        let next = next_inventory(&old, &change_set, self.ks.spec.prune);
        let mut new_inventory = next.inventory;
        let mut pruned = ChangeSet::default();
        if !next.prune.is_empty() {
            let report = applier
                .prune(
                    &old,
                    &new_inventory,
                    &PruneOptions::new(self.owner(), &self.shared.args.controller_namespace),
                )
                .await;
            new_inventory = report.inventory.clone();
            pruned = report.change_set.clone();
            if !report.is_success() {
                self.status.inventory = Some(new_inventory);
                let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
                return Err(Stop::failed(
                    reasons::PRUNE_FAILED,
                    format!("Kustomization/{}: prune failed: {}", self.key, errors.join("; ")),
                ));
            }
        }
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

    /// Deletion, suspend handled by the caller; here: cross-namespace refusal, the source's
    /// artifact, and the dependencies.
    fn gates(&self) -> Result<Artifact, Stop> {
        let spec = &self.ks.spec;
        let source_namespace = spec
            .source_ref
            .namespace
            .clone()
            .unwrap_or_else(|| self.namespace.clone());
        let kind = sources::source_kind_name(spec.source_ref.kind);
        if self.shared.args.no_cross_namespace_refs && source_namespace != self.namespace {
            return Err(Stop::terminal(
                reasons::ACCESS_DENIED,
                format!(
                    "Kustomization/{}: cross-namespace references are not allowed: sourceRef {kind}/{source_namespace}/{}",
                    self.key, spec.source_ref.name
                ),
            ));
        }
        let artifact =
            match self
                .shared
                .sources
                .artifact(spec.source_ref.kind, &source_namespace, &spec.source_ref.name)
            {
                SourceState::Ready(artifact) => artifact,
                SourceState::Waiting(message) => return Err(Stop::waiting(reasons::SOURCE_NOT_READY, message)),
                SourceState::Pending(message) => return Err(Stop::pending(reasons::SOURCE_NOT_READY, message)),
            };
        for dependency in &spec.depends_on {
            let namespace = dependency.namespace.clone().unwrap_or_else(|| self.namespace.clone());
            let subject = format!("Kustomization/{namespace}/{}", dependency.name);
            if self.shared.args.no_cross_namespace_refs && namespace != self.namespace {
                return Err(Stop::terminal(
                    reasons::ACCESS_DENIED,
                    format!(
                        "Kustomization/{}: cross-namespace references are not allowed: dependsOn {subject}",
                        self.key
                    ),
                ));
            }
            let found = self
                .shared
                .kustomizations
                .get(&kube::runtime::reflector::ObjectRef::new(&dependency.name).within(&namespace));
            let ready = found.as_ref().is_some_and(|dep| {
                dep.status
                    .as_ref()
                    .is_some_and(|s| conditions::is_ready(&s.conditions, dep.meta().generation))
            });
            if !ready {
                let why = if found.is_none() { "not found" } else { "not ready" };
                return Err(Stop::waiting(
                    reasons::DEPENDENCY_NOT_READY,
                    format!("dependency {subject} is {why}"),
                ));
            }
        }
        Ok(artifact)
    }

    /// The postBuild variables: substituteFrom in order (later entries win), then the inline
    /// ones. Read as the Kustomization's identity, so a tenant reads only what it may.
    async fn variables(&self, applier: &Applier) -> Result<Option<Variables>, Stop> {
        let Some(post_build) = &self.ks.spec.post_build else {
            return Ok(None);
        };
        let mut variables = Variables::new();
        let fail = |message: String| {
            Stop::failed(
                reasons::BUILD_FAILED,
                format!("Kustomization/{}: postBuild: {message}", self.key),
            )
        };
        let client = applier.resolver().client().clone();
        for from in &post_build.substitute_from {
            let (kind, secret) = match from.kind {
                SubstituteKind::ConfigMap => ("ConfigMap", false),
                SubstituteKind::Secret => ("Secret", true),
            };
            let subject = format!("{kind}/{}/{}", self.namespace, from.name);
            let data = match from.kind {
                SubstituteKind::ConfigMap => Api::<ConfigMap>::namespaced(client.clone(), &self.namespace)
                    .get_opt(&from.name)
                    .await
                    .map(|found| found.map(|map| map.data.unwrap_or_default())),
                SubstituteKind::Secret => Api::<Secret>::namespaced(client.clone(), &self.namespace)
                    .get_opt(&from.name)
                    .await
                    .map(|found| {
                        // Flux reads Secret values as strings too.
                        found.map(|secret| {
                            secret
                                .data
                                .unwrap_or_default()
                                .into_iter()
                                .map(|(key, value)| (key, String::from_utf8_lossy(&value.0).into_owned()))
                                .collect::<BTreeMap<_, _>>()
                        })
                    }),
            };
            match data {
                Ok(Some(data)) => {
                    for (key, value) in data {
                        variables
                            .insert(&key, value, secret)
                            .map_err(|e| fail(format!("{subject}: {e}")))?;
                    }
                }
                Ok(None) if from.optional => {}
                Ok(None) => return Err(fail(format!("{subject} not found"))),
                Err(e) => return Err(fail(format!("{subject}: {}", api_message(&e)))),
            }
        }
        let PostBuild { substitute, .. } = post_build;
        for (key, value) in substitute {
            variables.insert(key, value, false).map_err(|e| Stop {
                terminal: true,
                ..fail(format!("substitute: {e}"))
            })?;
        }
        Ok(Some(variables))
    }

    /// Everything the rendered objects depend on besides the live cluster.
    fn input_key(&self, artifact: &Artifact, variables: Option<&Variables>) -> u64 {
        let mut hasher = std::hash::DefaultHasher::new();
        artifact.digest.hash(&mut hasher);
        self.generation().hash(&mut hasher);
        if let Some(variables) = variables {
            variables.hash(&mut hasher);
        }
        self.ks.spec.service_account_name.hash(&mut hasher);
        self.shared.args.default_service_account.hash(&mut hasher);
        hasher.finish()
    }

    /// Starts the live cache's watch of every kind about to be applied, so that the next
    /// reconcile can be answered from it.
    async fn watch_kinds(&self, applier: &Applier, objects: &[DynamicObject]) {
        let mut seen = BTreeSet::new();
        for object in objects {
            let Ok(object) = ObjectRef::from_object(object) else {
                continue;
            };
            if !seen.insert((object.group.clone(), object.version.clone(), object.kind.clone())) {
                continue;
            }
            if let Ok(Some((resource, capabilities))) = applier.resolver().resolve(&object).await {
                self.shared.live.watch_kind(
                    &resource,
                    matches!(capabilities.scope, kube::discovery::Scope::Namespaced),
                );
            }
        }
    }

    /// Sets the ignored fields of each desired object to their live values.
    async fn keep_ignored_fields(
        &self,
        applier: &Applier,
        ignore: &IgnoreRules,
        objects: &mut [DynamicObject],
    ) -> Result<(), Stop> {
        for object in objects.iter_mut() {
            let mut value =
                serde_json::to_value(&*object).map_err(|e| Stop::failed(reasons::BUILD_FAILED, e.to_string()))?;
            if ignore.paths_for(&value).is_empty() {
                continue;
            }
            let Ok(reference) = ObjectRef::from_object(object) else {
                continue;
            };
            let read = match applier.resolver().api_for(&reference).await {
                Ok(api) => api.get_opt(&reference.name).await.map_err(|e| api_message(&e)),
                // A kind not served yet (its CRD is in this apply) has no objects.
                Err(SsaError::UnknownKind { .. }) => Ok(None),
                Err(e) => Err(e.to_string()),
            };
            let live = live_for_ignore(&reference, read).map_err(|message| {
                Stop::failed(reasons::APPLY_FAILED, format!("Kustomization/{}: {message}", self.key))
            })?;
            let live = live.and_then(|l| serde_json::to_value(l).ok());
            ignore.apply_to_desired(&mut value, live.as_ref());
            *object = serde_json::from_value(value).map_err(|e| Stop::failed(reasons::BUILD_FAILED, e.to_string()))?;
        }
        Ok(())
    }

    /// Compares the drifted objects with their desired state and reports the difference: one
    /// event (when the set of drifted fields is new) and the returned status entries.
    async fn report_drift(
        &self,
        applier: &Applier,
        ignore: &IgnoreRules,
        objects: &[DynamicObject],
        drifted: &[ObjectRef],
        mode: DriftMode,
    ) -> Vec<DriftReport> {
        let corrected = mode == DriftMode::Correct;
        let now = Time(Timestamp::now());
        let options = ApplyOptions {
            owner: Some(self.owner()),
            ..ApplyOptions::default()
        };
        let mut reports = Vec::new();
        for object in drifted {
            let desired = objects
                .iter()
                .find(|o| ObjectRef::from_object(o).is_ok_and(|r| same_object(&r, object)));
            let Some(desired) = desired else { continue };
            // The cluster, not the cache, says whether the object is gone: a cache that has not
            // yet seen a just-created object would report it deleted.
            match applier.diff(desired.clone(), &options).await {
                Ok(drift) if !drift.exists && !drift.skipped => reports.push(DriftReport {
                    object: object.to_string(),
                    fields: vec![String::new()],
                    managers: Vec::new(),
                    corrected,
                    detected_at: now.clone(),
                }),
                Ok(drift) if drift.is_drifted() => {
                    let value = serde_json::to_value(desired).unwrap_or_default();
                    let mut report = drift.to_report(corrected, now.clone());
                    report.fields.retain(|field| !ignore.ignores(&value, field));
                    if !report.fields.is_empty() {
                        reports.push(report);
                    }
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(object = %object, error = %err, "comparing a drifted object failed"),
            }
        }
        let previous: Vec<(&str, &Vec<String>)> = self
            .status
            .drift
            .iter()
            .map(|d| (d.object.as_str(), &d.fields))
            .collect();
        let current: Vec<(&str, &Vec<String>)> = reports.iter().map(|d| (d.object.as_str(), &d.fields)).collect();
        if !reports.is_empty() && previous != current {
            let lines: Vec<String> = reports.iter().map(describe_drift).collect();
            let verb = if corrected {
                "corrected"
            } else {
                "left as is (report-only)"
            };
            let message = format!("drift detected, {verb}:\n{}", lines.join("\n"));
            let mut report = Report::error(reasons::DRIFT_DETECTED, message);
            if let Some(revision) = &self.status.last_applied_revision {
                report = report.with("revision", revision.clone());
            }
            self.ctx.events.record(self.ks.as_ref(), report).await;
        }
        reports
    }

    /// Health when nothing was applied: from the live cache for the applied objects; objects it
    /// cannot vouch for are read from the cluster.
    async fn check_health_cached(&mut self, previous: &Applied, applier: &Applier, revision: &str) -> Result<(), Stop> {
        let targets = self.health_targets(previous.objects.iter().map(|(o, _)| o.clone()).collect());
        let all_current = targets.iter().all(|object| match self.shared.live.lookup(object) {
            Lookup::Present(entry) => entry.health.state == State::Current,
            _ => false,
        });
        let message = if targets.is_empty() {
            None
        } else if all_current {
            Some(format!("{} healthy", count(targets.len())))
        } else {
            let applied = previous
                .objects
                .iter()
                .map(|(object, fingerprint)| (object.clone(), (*fingerprint, None)))
                .collect();
            self.wait_healthy(applier, &targets, &applied).await?
        };
        self.mark_applied(revision, message);
        Ok(())
    }

    /// Ready for `revision`, and Healthy with `health` when health was checked.
    fn mark_applied(&mut self, revision: &str, health: Option<String>) {
        let generation = self.generation();
        conditions::mark_ready(
            &mut self.status.conditions,
            reason::SUCCEEDED,
            format!("Applied revision: {revision}"),
            generation,
            Timestamp::now(),
        );
        if let Some(health) = health {
            self.set_healthy(Status::True, reason::SUCCEEDED, health);
        }
    }

    /// What health decides Ready: every applied object with `wait`, else `healthChecks`.
    fn health_targets(&self, applied: Vec<ObjectRef>) -> Vec<ObjectRef> {
        if self.ks.spec.wait {
            return applied;
        }
        self.ks
            .spec
            .health_checks
            .iter()
            .map(|check| {
                ObjectRef::new(
                    check.api_version.as_deref().unwrap_or("v1"),
                    &check.kind,
                    check.namespace.as_deref().unwrap_or(&self.namespace),
                    &check.name,
                )
            })
            .collect()
    }

    async fn check_health(&mut self, applier: &Applier, change_set: &ChangeSet) -> Result<Option<String>, Stop> {
        let entries = change_set.entries.iter().filter(|e| e.action != Change::Skipped);
        let targets = self.health_targets(entries.clone().map(|e| e.object.clone()).collect());
        if targets.is_empty() {
            return Ok(None);
        }
        let applied = entries
            .filter_map(|e| Some((e.object.clone(), (e.fingerprint?, e.health.clone()))))
            .collect();
        self.wait_healthy(applier, &targets, &applied).await
    }

    /// Waits for `targets` to be healthy. Objects in `applied` (with the fingerprint their last
    /// apply left and, when known, their health in its response) are answered by the response
    /// or the live cache, without a request, whenever they can be; the others are read.
    async fn wait_healthy(
        &mut self,
        applier: &Applier,
        targets: &[ObjectRef],
        applied: &HashMap<ObjectRef, (Fingerprint, Option<Health>)>,
    ) -> Result<Option<String>, Stop> {
        let options = WaitOptions {
            timeout: self.timing.timeout,
            interval: Duration::from_secs(1),
            fail_fast: true,
        };
        let live = &self.shared.live;
        let observed = |object: &ObjectRef| -> Option<Health> {
            let (fingerprint, response) = applied.get(object)?;
            match response {
                Some(health) if health.state == State::Current => Some(health.clone()),
                _ => live.health_since(object, *fingerprint),
            }
        };
        match applier
            .wait_observed(targets, &options, &observed, Some(live.changes()))
            .await
        {
            Ok(_) => Ok(Some(format!("{} healthy", count(targets.len())))),
            Err(err) => {
                let message = format!("Kustomization/{}: {err}", self.key);
                self.set_healthy(Status::False, reasons::HEALTH_CHECK_FAILED, message.clone());
                Err(Stop::failed(reasons::HEALTH_CHECK_FAILED, message))
            }
        }
    }

    fn set_healthy(&mut self, state: Status, reason: &str, message: String) {
        let generation = self.generation();
        let unchanged = conditions::get(&self.status.conditions, HEALTHY)
            .is_some_and(|c| c.status == state.as_str() && c.message == message && c.observed_generation == generation);
        if !unchanged {
            conditions::set(
                &mut self.status.conditions,
                HEALTHY,
                state,
                reason,
                message,
                generation,
                Timestamp::now(),
            );
        }
    }

    /// Deletion: the applied objects go or stay as `deletionPolicy` says; then the finalizer
    /// is removed.
    async fn cleanup(self) -> Result<Action, Failure> {
        let spec = &self.ks.spec;
        let delete = !spec.suspend
            && match spec.deletion_policy {
                DeletionPolicy::MirrorPrune => spec.prune,
                DeletionPolicy::Delete | DeletionPolicy::WaitForTermination => true,
                DeletionPolicy::Orphan => false,
            };
        let inventory = self.status.inventory.clone().unwrap_or_default();
        self.shared.applied.forget(&self.key);
        self.shared.written.forget(self.ks.as_ref());
        if !delete || inventory.entries.is_empty() {
            tracing::info!(
                objects = inventory.entries.len(),
                "deleted; applied objects left in place"
            );
            return Ok(Action::await_change());
        }
        let failure = |message: String| Failure {
            reason: reasons::PRUNE_FAILED,
            message: format!("Kustomization/{}: {message}", self.key),
            retry: self.timing.retry,
            source: None,
        };
        if let Some(account) = self.account_gone().await {
            let why = format!("service account {}/{account} no longer exists", self.namespace);
            self.skip_collection(&why, inventory.entries.len()).await;
            return Ok(Action::await_change());
        }
        // In a namespace being deleted, the namespace controller removes the namespaced objects
        // (and the account and its bindings may be gone already): only objects elsewhere
        // (cluster-scoped, or in other namespaces) are this Kustomization's to delete.
        let terminating = self.namespace_terminating().await;
        let mut inventory = inventory;
        if terminating {
            let prefix = format!("{}_", self.namespace);
            inventory.entries.retain(|e| !e.id.starts_with(&prefix));
        }
        let applier = self.applier().map_err(|s| failure(s.message))?;
        let report = applier
            .prune(
                &inventory,
                &Inventory::default(),
                &PruneOptions::new(self.owner(), &self.shared.args.controller_namespace),
            )
            .await;
        if !report.is_success() {
            let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
            let impersonating =
                self.ks.spec.service_account_name.is_some() || self.shared.args.default_service_account.is_some();
            let forbidden = impersonating && report.errors.iter().all(SsaError::is_forbidden);
            if terminating || forbidden {
                // Waiting cannot help (the namespace goes, or the account lost its permissions
                // with its RoleBinding), and holding the finalizer would block the namespace.
                let why = if terminating {
                    format!("namespace {} is being deleted: {}", self.namespace, errors.join("; "))
                } else {
                    format!("the account may not delete them: {}", errors.join("; "))
                };
                self.skip_collection(&why, report.errors.len()).await;
                return Ok(Action::await_change());
            }
            return Err(failure(format!("deleting applied objects: {}", errors.join("; "))));
        }
        if terminating {
            tracing::warn!(
                namespace = %self.namespace,
                "namespace is being deleted; its own objects are left to the namespace controller"
            );
        }
        if spec.deletion_policy == DeletionPolicy::WaitForTermination {
            let deleted: Vec<ObjectRef> = report
                .change_set
                .entries
                .iter()
                .filter(|e| e.action == Change::Deleted)
                .map(|e| e.object.clone())
                .collect();
            wait_gone(&applier, &deleted, self.timing.timeout)
                .await
                .map_err(failure)?;
        }
        tracing::info!(
            objects = report.change_set.entries.len(),
            "deleted with the applied objects"
        );
        Ok(Action::await_change())
    }
}

impl Run<'_> {
    /// Whether the Kustomization's namespace is being deleted, read as the controller itself; a
    /// failed read says no, and the deletes decide.
    async fn namespace_terminating(&self) -> bool {
        let namespaces: Api<Namespace> = Api::all(self.ctx.client.clone());
        matches!(
            namespaces.get_opt(&self.namespace).await,
            Ok(Some(namespace)) if namespace.metadata.deletion_timestamp.is_some()
        )
    }

    /// The account the Kustomization impersonates, when it no longer exists (read as the
    /// controller itself; a failed read says it exists, and the deletes decide).
    async fn account_gone(&self) -> Option<String> {
        let account = self.ks.spec.service_account_name.as_ref().or(self
            .shared
            .args
            .default_service_account
            .as_ref())?;
        let accounts: Api<ServiceAccount> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        matches!(accounts.get_opt(account).await, Ok(None)).then(|| account.clone())
    }

    /// Leaves the applied objects in place, says so in a Warning event and the log, and lets the
    /// finalizer go.
    async fn skip_collection(&self, why: &str, objects: usize) {
        let message = format!(
            "Kustomization/{}: deleted without deleting its {}: {why}",
            self.key,
            count_applied(objects)
        );
        tracing::warn!(message = %message, "garbage collection skipped");
        self.ctx
            .events
            .record(self.ks.as_ref(), Report::error(reasons::PRUNE_SKIPPED, message))
            .await;
    }
}

fn count_applied(n: usize) -> String {
    if n == 1 {
        "1 applied object".into()
    } else {
        format!("{n} applied objects")
    }
}

/// The live object whose ignored fields the desired one keeps, from the read of it: only a
/// NotFound (`Ok(None)`) means there is none. Any failed read (a timeout, 429, 403) stops the run
/// with the reason, because taking it for an absent object would overwrite the ignored fields.
fn live_for_ignore(
    object: &ObjectRef,
    read: Result<Option<DynamicObject>, String>,
) -> Result<Option<DynamicObject>, String> {
    read.map_err(|message| format!("reading {object} for its ignored fields failed, nothing applied: {message}"))
}

/// Waits until every object is gone.
async fn wait_gone(applier: &Applier, objects: &[ObjectRef], timeout: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    for object in objects {
        loop {
            let api = match applier.resolver().api_for(object).await {
                Ok(api) => api,
                Err(_) => break,
            };
            match api.get_opt(&object.name).await {
                Ok(None) => break,
                Ok(Some(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Ok(Some(_)) => return Err(format!("{object} still exists after {timeout:?}")),
                Err(e) => return Err(format!("{object}: {}", api_message(&e))),
            }
        }
    }
    Ok(())
}

/// What `status.drift` shows after a comparison found `found`: that, when it found drift;
/// otherwise the corrections shown before (what was corrected since the revision was applied, kept
/// until a new revision or a newer drift), without the uncorrected entries, which are resolved.
fn resolved(shown: &[DriftReport], found: Vec<DriftReport>) -> Vec<DriftReport> {
    if !found.is_empty() {
        return found;
    }
    shown.iter().filter(|d| d.corrected).cloned().collect()
}

/// The same object, whatever the version it is written in.
fn same_object(a: &ObjectRef, b: &ObjectRef) -> bool {
    a.group == b.group
        && a.kind == b.kind
        && a.name == b.name
        && (a.namespace == b.namespace || a.namespace.is_empty() || b.namespace.is_empty())
}

fn describe_drift(report: &DriftReport) -> String {
    let fields = if report.fields == [String::new()] {
        "deleted".to_owned()
    } else {
        report.fields.join(", ")
    };
    if report.managers.is_empty() {
        format!("{}: {fields}", report.object)
    } else {
        format!(
            "{}: {fields} (changed by {})",
            report.object,
            report.managers.join(", ")
        )
    }
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 object".into()
    } else {
        format!("{n} objects")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drift(object: &str, corrected: bool) -> DriftReport {
        DriftReport {
            object: object.into(),
            fields: vec!["/spec/replicas".into()],
            managers: vec!["kubectl-edit".into()],
            corrected,
            detected_at: Time(Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn corrections_stay_shown_and_resolved_drift_goes() {
        let shown = [drift("Deployment/shop/web", true), drift("Deployment/shop/api", false)];
        assert_eq!(
            resolved(&shown, Vec::new()),
            [drift("Deployment/shop/web", true)],
            "a correction is history; uncorrected drift found no more is resolved"
        );
        let newer = vec![drift("Deployment/shop/worker", true)];
        assert_eq!(
            resolved(&shown, newer.clone()),
            newer,
            "newer drift replaces what was shown"
        );
    }

    #[test]
    fn drift_lines_name_fields_and_managers() {
        let report = DriftReport {
            object: "Deployment/shop/web".into(),
            fields: vec!["/spec/replicas".into()],
            managers: vec!["kubectl-edit".into()],
            corrected: true,
            detected_at: Time(Timestamp::now()),
        };
        assert_eq!(
            describe_drift(&report),
            "Deployment/shop/web: /spec/replicas (changed by kubectl-edit)"
        );
        let deleted = DriftReport {
            fields: vec![String::new()],
            managers: vec![],
            ..report
        };
        assert_eq!(describe_drift(&deleted), "Deployment/shop/web: deleted");
    }
}
