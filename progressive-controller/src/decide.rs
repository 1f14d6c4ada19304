//! The decision of one analysis tick: a pure function of the plan (from the spec), the status
//! (the state of the release, kept in the Canary) and what was seen (workloads, gates) to the
//! new status and the actions that go with it.
//!
//! Traffic and the canary's scale are not actions: they are functions of the status
//! ([`routes`], [`canary_scaled_up`]) that the controller converges to after writing the status.
//! So a controller killed at any point resumes from the status alone: it routes as the status
//! says (never further), and a step is taken again only if its status write was lost.
//!
//! The gates a tick needs (webhooks, metrics) depend on the status: [`gates_needed`] says which,
//! the controller evaluates them, and [`decide`] takes their results.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use eddy_api::progressive::{CanaryPhase, CanaryStatus, CheckResult, StepRecord, Strategy, WebhookType};

use crate::plan::Plan;
use crate::router::Routes;

/// Steps kept in `status.history`.
pub const HISTORY_LIMIT: usize = 60;
/// How soon a tick that waits for a workload to become ready looks again.
pub const READINESS_POLL: Duration = Duration::from_secs(1);

/// What the controller saw before deciding.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    /// The time of the tick.
    pub now: Timestamp,
    /// The revision the target runs now.
    pub revision: Revision,
    /// The primary workload; `None` when it does not exist.
    pub primary: Option<Workload>,
    /// The target (canary) workload.
    pub canary: Workload,
    /// The `progressive.eddy.dev/promote` annotation.
    pub promote: Option<String>,
    /// The `progressive.eddy.dev/abort` annotation.
    pub abort: Option<String>,
}

/// A revision of the target: the hash of its pod template and of the configs it uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revision {
    /// Hash of the pod template.
    pub spec: String,
    /// Checksums of the tracked ConfigMaps and Secrets, by `ConfigMap/name` or `Secret/name`.
    pub configs: BTreeMap<String, String>,
}

/// What matters of a workload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workload {
    /// All its replicas run the current template and are available.
    pub ready: bool,
    /// For the primary: the target revision (`status.lastAppliedSpec`) it was copied from.
    pub revision: Option<String>,
}

/// A gate a tick evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Gate {
    /// `confirm-rollout` webhooks: may the release start?
    ConfirmRollout,
    /// `pre-rollout` webhooks, once per revision before traffic reaches the canary.
    PreRollout,
    /// Metric checks and `rollout` webhooks of a step.
    Analysis,
    /// `confirm-traffic-increase` webhooks: may the weight go up?
    ConfirmTrafficIncrease,
    /// `confirm-promotion` webhooks: may the canary be promoted?
    ConfirmPromotion,
    /// `rollback` webhooks: does someone ask to roll back?
    Rollback,
}

/// Results of the gates evaluated for a tick.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gates {
    /// Confirm gates: `true` when every webhook of the type said yes.
    pub confirmed: BTreeMap<Gate, bool>,
    /// Check gates (`PreRollout`, `Analysis`): every check with its verdict.
    pub checks: BTreeMap<Gate, Vec<CheckResult>>,
    /// A `rollback` webhook asked to roll back.
    pub rollback_requested: bool,
}

impl Gates {
    fn confirmed(&self, gate: Gate) -> bool {
        self.confirmed.get(&gate).copied().unwrap_or(false)
    }

    fn checks(&self, gate: Gate) -> &[CheckResult] {
        self.checks.get(&gate).map(Vec::as_slice).unwrap_or_default()
    }
}

/// A side effect of a tick, other than routing and scaling (see the module comment).
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Copy the target to the primary (with its ConfigMaps and Secrets), marked with the
    /// revision it was copied from.
    WritePrimary,
    /// Call the webhooks of this type once, not waiting on their verdict.
    RunHooks(WebhookType),
    /// Record an event (and send it to `event` webhooks).
    Event {
        warning: bool,
        reason: &'static str,
        message: String,
    },
}

/// The outcome of a tick.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The status to write.
    pub status: CanaryStatus,
    /// What to do once it is written.
    pub actions: Vec<Action>,
    /// When to look again.
    pub requeue: Duration,
}

/// The gates the tick needs evaluated before [`decide`], in the order they are meant.
pub fn gates_needed(plan: &Plan, status: &CanaryStatus, seen: &Seen) -> Vec<Gate> {
    let mut gates = Vec::new();
    if plan.paused || !due(plan, status, seen.now) || restarts(status, seen) {
        return gates;
    }
    match phase(status) {
        CanaryPhase::Waiting if plan.hooks.confirm_rollout => gates.push(Gate::ConfirmRollout),
        CanaryPhase::Progressing | CanaryPhase::WaitingPromotion if seen.canary.ready => {
            if plan.hooks.rollback {
                gates.push(Gate::Rollback);
            }
            if first_step(status) {
                if plan.hooks.pre_rollout && !hook_done(status, WebhookType::PreRollout) {
                    gates.push(Gate::PreRollout);
                }
            } else {
                gates.push(Gate::Analysis);
            }
            match next_move(plan, status) {
                Move::Increase(_) if plan.hooks.confirm_traffic_increase => gates.push(Gate::ConfirmTrafficIncrease),
                Move::Promote if plan.hooks.confirm_promotion => gates.push(Gate::ConfirmPromotion),
                _ => {}
            }
        }
        _ => {}
    }
    gates
}

/// Decides the tick. `gates` holds the results of [`gates_needed`]; a gate not evaluated counts
/// as closed, a check gate not evaluated as failed.
pub fn decide(plan: &Plan, status: &CanaryStatus, seen: &Seen, gates: &Gates) -> Decision {
    let mut tick = Tick {
        plan,
        seen,
        gates,
        status: status.clone(),
        actions: Vec::new(),
        requeue: plan.interval,
    };
    tick.run();
    tick.status.phase.get_or_insert(CanaryPhase::Initializing);
    Decision {
        status: tick.status,
        actions: tick.actions,
        requeue: tick.requeue,
    }
}

/// Where traffic goes in `status`.
pub fn routes(plan: &Plan, status: &CanaryStatus) -> Routes {
    let phase = phase(status);
    let analysing = matches!(phase, CanaryPhase::Progressing | CanaryPhase::WaitingPromotion);
    let weight = status.canary_weight.clamp(0, 100);
    let mut routes = Routes {
        primary: 100 - weight,
        canary: weight,
        ..Routes::default()
    };
    if phase == CanaryPhase::Initializing {
        // Until the primary is ready, the target serves as it did before the Canary.
        return Routes {
            canary: 100,
            ..Routes::default()
        };
    }
    if !matches!(
        phase,
        CanaryPhase::Progressing | CanaryPhase::WaitingPromotion | CanaryPhase::Promoting | CanaryPhase::Failed
    ) {
        return Routes::primary_only();
    }
    match plan.strategy {
        Strategy::Canary => {
            if analysing && weight == 0 && status.hooks_done.iter().any(|h| h == MIRRORED) {
                routes.mirror = plan.mirror;
            }
            if analysing && weight > 0 {
                routes.session_affinity = plan.session_affinity.clone();
            }
        }
        Strategy::BlueGreen => {
            if analysing {
                routes.mirror = plan.mirror;
            }
        }
        Strategy::ABTesting => {
            if analysing || phase == CanaryPhase::Promoting {
                routes.matches = plan.matches.clone();
            }
        }
    }
    routes
}

/// Whether the target (the canary workload) runs replicas in `status`; otherwise it is scaled
/// to zero.
pub fn canary_scaled_up(status: &CanaryStatus) -> bool {
    match phase(status) {
        // Before initialisation the target serves as it did; once the primary is up it stops.
        CanaryPhase::Initializing => true,
        CanaryPhase::Progressing | CanaryPhase::WaitingPromotion | CanaryPhase::Promoting | CanaryPhase::Finalising => {
            true
        }
        // A release that failed after promotion keeps its canary serving (see `Tick::promoting`).
        CanaryPhase::Failed => status.canary_weight > 0,
        _ => false,
    }
}

/// The checksum a webhook payload carries: a hash of the revision under analysis (the target's
/// template and its configs), as Flagger's identifies a revision.
pub fn checksum(status: &CanaryStatus) -> String {
    use sha2::{Digest, Sha256};
    let mut text = status.last_applied_spec.clone().unwrap_or_default();
    for (name, sum) in &status.tracked_configs {
        text.push_str(&format!(";{name}={sum}"));
    }
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn phase(status: &CanaryStatus) -> CanaryPhase {
    status.phase.unwrap_or(CanaryPhase::Initializing)
}

fn hook_done(status: &CanaryStatus, hook: WebhookType) -> bool {
    status.hooks_done.iter().any(|done| *done == hook_name(hook))
}

fn hook_name(hook: WebhookType) -> String {
    serde_json::to_value(hook)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Whether an analysis step is due: an interval after the last one.
fn due(plan: &Plan, status: &CanaryStatus, now: Timestamp) -> bool {
    match &status.last_step_time {
        None => true,
        Some(MicroTime(last)) => {
            now.duration_since(*last) >= SignedDuration::try_from(plan.interval).unwrap_or(SignedDuration::MAX)
        }
    }
}

/// Time left until the next step is due.
fn until_due(plan: &Plan, status: &CanaryStatus, now: Timestamp) -> Duration {
    match &status.last_step_time {
        None => Duration::ZERO,
        Some(MicroTime(last)) => {
            let elapsed = Duration::try_from(now.duration_since(*last)).unwrap_or(Duration::ZERO);
            plan.interval.saturating_sub(elapsed)
        }
    }
}

/// Whether the target changed since the revision under analysis (a new release).
fn changed(status: &CanaryStatus, seen: &Seen) -> bool {
    status.last_applied_spec.as_deref() != Some(seen.revision.spec.as_str())
        || status.tracked_configs != seen.revision.configs
}

/// Whether a running release restarts because the target changed under it.
fn restarts(status: &CanaryStatus, seen: &Seen) -> bool {
    matches!(
        phase(status),
        CanaryPhase::Waiting | CanaryPhase::Progressing | CanaryPhase::WaitingPromotion
    ) && changed(status, seen)
}

/// Marker in `status.hooksDone` of a mirrored release that has started mirroring.
const MIRRORED: &str = "mirrored";

/// Whether the release is at its first step: nothing routed, iterated or mirrored to the canary
/// yet, so there is nothing to measure; the step runs the `pre-rollout` hooks instead.
fn first_step(status: &CanaryStatus) -> bool {
    status.canary_weight == 0 && status.iterations == 0 && !status.hooks_done.iter().any(|h| h == MIRRORED)
}

/// What a passed step leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Move {
    /// Route this weight to the canary.
    Increase(i32),
    /// Count one more iteration.
    Iterate,
    /// Promote.
    Promote,
}

fn next_move(plan: &Plan, status: &CanaryStatus) -> Move {
    match plan.strategy {
        Strategy::Canary => match plan.next_weight(status.canary_weight) {
            Some(weight) => Move::Increase(weight),
            None => Move::Promote,
        },
        Strategy::BlueGreen | Strategy::ABTesting => {
            if status.iterations < plan.iterations {
                Move::Iterate
            } else {
                Move::Promote
            }
        }
    }
}

struct Tick<'a> {
    plan: &'a Plan,
    seen: &'a Seen,
    gates: &'a Gates,
    status: CanaryStatus,
    actions: Vec<Action>,
    requeue: Duration,
}

impl Tick<'_> {
    fn run(&mut self) {
        if self.seen.primary.is_none() && phase(&self.status) != CanaryPhase::Initializing {
            self.event(
                true,
                "PrimaryMissing",
                "the primary workload is gone; initializing again".into(),
            );
            self.enter(CanaryPhase::Initializing);
        }
        match phase(&self.status) {
            CanaryPhase::Initializing => self.initializing(),
            CanaryPhase::Initialized | CanaryPhase::Succeeded | CanaryPhase::Failed => self.idle(),
            CanaryPhase::Waiting => self.waiting(),
            CanaryPhase::Progressing | CanaryPhase::WaitingPromotion => self.progressing(),
            CanaryPhase::Promoting => self.promoting(),
            CanaryPhase::Finalising => self.finalising(),
            CanaryPhase::Terminating | CanaryPhase::Terminated => {}
        }
    }

    fn event(&mut self, warning: bool, reason: &'static str, message: String) {
        self.actions.push(Action::Event {
            warning,
            reason,
            message,
        });
    }

    fn enter(&mut self, phase: CanaryPhase) {
        if self.status.phase != Some(phase) {
            self.status.phase = Some(phase);
            self.status.last_transition_time = Some(Time(self.seen.now));
        }
    }

    /// A promote request not yet handled, which answers the confirm gate waiting now.
    fn manual_promote(&mut self) -> bool {
        match &self.seen.promote {
            Some(token) if self.status.last_handled_promote_at.as_ref() != Some(token) => {
                self.status.last_handled_promote_at = Some(token.clone());
                self.event(
                    false,
                    "PromoteRequested",
                    "promotion confirmed by hand (eddy canary promote)".into(),
                );
                true
            }
            _ => false,
        }
    }

    /// Handles manual requests that have nothing to act on, so that their caller is answered.
    fn settle_manual_requests(&mut self) {
        if let Some(token) = &self.seen.promote
            && self.status.last_handled_promote_at.as_ref() != Some(token)
        {
            self.status.last_handled_promote_at = Some(token.clone());
            self.event(false, "PromoteIgnored", "no release is waiting for confirmation".into());
        }
        if let Some(token) = &self.seen.abort
            && self.status.last_handled_abort_at.as_ref() != Some(token)
        {
            self.status.last_handled_abort_at = Some(token.clone());
            let message = match phase(&self.status) {
                CanaryPhase::Promoting | CanaryPhase::Finalising => "too late to abort: the canary is being promoted",
                _ => "no release is running",
            };
            self.event(false, "AbortIgnored", message.into());
        }
    }

    fn initializing(&mut self) {
        match &self.seen.primary {
            Some(primary) if primary.ready => {
                self.status.last_applied_spec = Some(self.seen.revision.spec.clone());
                self.status.last_promoted_spec = Some(self.seen.revision.spec.clone());
                self.status.tracked_configs = self.seen.revision.configs.clone();
                self.status.canary_weight = 0;
                self.status.failed_checks = 0;
                self.status.iterations = 0;
                self.status.waiting_since = None;
                self.enter(CanaryPhase::Initialized);
                self.event(
                    false,
                    "Initialized",
                    "the primary is ready and serves all traffic; the target is scaled to zero".into(),
                );
                self.requeue = self.plan.interval;
            }
            Some(_) => {
                self.wait_for_readiness("primary");
                if phase(&self.status) == CanaryPhase::Initializing {
                    self.requeue = READINESS_POLL;
                }
            }
            None => {
                self.actions.push(Action::WritePrimary);
                self.status.waiting_since.get_or_insert(Time(self.seen.now));
                self.enter(CanaryPhase::Initializing);
                self.requeue = READINESS_POLL;
            }
        }
    }

    /// Waiting for a workload: fails the release after the progress deadline.
    fn wait_for_readiness(&mut self, which: &str) {
        let since = self.status.waiting_since.get_or_insert(Time(self.seen.now)).0;
        let waited = Duration::try_from(self.seen.now.duration_since(since)).unwrap_or(Duration::ZERO);
        if waited >= self.plan.progress_deadline {
            let message = format!(
                "the {which} is not ready after progressDeadlineSeconds ({}s)",
                self.plan.progress_deadline.as_secs()
            );
            self.status.waiting_since = None;
            match phase(&self.status) {
                CanaryPhase::Initializing => {
                    self.event(true, "ProgressDeadlineExceeded", message);
                    // The primary keeps being waited for: without it nothing can be released.
                    self.status.waiting_since = Some(Time(self.seen.now));
                }
                _ => self.roll_back("ProgressDeadlineExceeded", message),
            }
        } else {
            self.requeue = READINESS_POLL;
        }
    }

    fn idle(&mut self) {
        if self.plan.paused || !changed(&self.status, self.seen) {
            self.settle_manual_requests();
            return;
        }
        self.start_release();
    }

    /// A new revision of the target: a release from weight 0.
    fn start_release(&mut self) {
        self.status.last_applied_spec = Some(self.seen.revision.spec.clone());
        self.status.tracked_configs = self.seen.revision.configs.clone();
        self.status.canary_weight = 0;
        self.status.failed_checks = 0;
        self.status.iterations = 0;
        self.status.hooks_done.clear();
        self.status.history.clear();
        self.status.last_checks.clear();
        self.status.waiting_since = None;
        self.status.last_step_time = None;
        // A request made for an earlier release does not carry over.
        if let Some(token) = &self.seen.abort {
            self.status.last_handled_abort_at = Some(token.clone());
        }
        let revision = short(&self.seen.revision.spec);
        if self.plan.skip_analysis {
            self.event(
                false,
                "Promoting",
                format!("new revision {revision}: promoting without analysis (skipAnalysis)"),
            );
            self.actions.push(Action::WritePrimary);
            self.enter(CanaryPhase::Promoting);
            self.requeue = READINESS_POLL;
            return;
        }
        if self.plan.hooks.confirm_rollout {
            self.event(
                false,
                "Waiting",
                format!("new revision {revision}: waiting for confirm-rollout"),
            );
            self.enter(CanaryPhase::Waiting);
            self.requeue = Duration::ZERO;
        } else {
            self.event(
                false,
                "Progressing",
                format!("new revision {revision}: starting the analysis"),
            );
            self.enter(CanaryPhase::Progressing);
            self.requeue = READINESS_POLL;
        }
    }

    fn waiting(&mut self) {
        // An abort is answered even while paused: pausing holds traffic, it does not hold back
        // a rollback.
        if let Some(token) = &self.seen.abort
            && self.status.last_handled_abort_at.as_ref() != Some(token)
        {
            self.status.last_handled_abort_at = Some(token.clone());
            self.roll_back(
                "Aborted",
                "aborted by hand (eddy canary abort) before it started".into(),
            );
            return;
        }
        if self.plan.paused {
            return;
        }
        if changed(&self.status, self.seen) {
            self.status.last_applied_spec = Some(self.seen.revision.spec.clone());
            self.status.tracked_configs = self.seen.revision.configs.clone();
        }
        if !due(self.plan, &self.status, self.seen.now) {
            self.requeue = until_due(self.plan, &self.status, self.seen.now);
            return;
        }
        self.status.last_step_time = Some(MicroTime(self.seen.now));
        if self.gates.confirmed(Gate::ConfirmRollout) || self.manual_promote() {
            self.event(
                false,
                "Progressing",
                "confirm-rollout passed: starting the analysis".into(),
            );
            self.enter(CanaryPhase::Progressing);
            self.status.last_step_time = None;
            self.requeue = READINESS_POLL;
        } else {
            self.requeue = self.plan.interval;
        }
    }

    fn progressing(&mut self) {
        if let Some(token) = &self.seen.abort
            && self.status.last_handled_abort_at.as_ref() != Some(token)
        {
            self.status.last_handled_abort_at = Some(token.clone());
            self.roll_back("Aborted", "rolled back by hand (eddy canary abort)".into());
            return;
        }
        if self.plan.paused {
            return;
        }
        if changed(&self.status, self.seen) {
            self.event(
                false,
                "RevisionChanged",
                format!(
                    "new revision {} during the analysis: restarting from weight 0",
                    short(&self.seen.revision.spec)
                ),
            );
            self.start_release();
            return;
        }
        if !self.seen.canary.ready {
            self.wait_for_readiness("canary");
            return;
        }
        self.status.waiting_since = None;
        if !due(self.plan, &self.status, self.seen.now) {
            self.requeue = until_due(self.plan, &self.status, self.seen.now);
            return;
        }
        self.status.last_step_time = Some(MicroTime(self.seen.now));
        self.requeue = self.plan.interval;

        if self.gates.rollback_requested {
            self.roll_back("RollbackRequested", "a rollback webhook asked to roll back".into());
            return;
        }
        let first = first_step(&self.status);
        let pre_rollout = self.plan.hooks.pre_rollout && !hook_done(&self.status, WebhookType::PreRollout);
        let checks = match (first, pre_rollout) {
            (true, true) => self.gates.checks(Gate::PreRollout).to_vec(),
            (true, false) => Vec::new(),
            (false, _) => self.gates.checks(Gate::Analysis).to_vec(),
        };
        let failed: Vec<String> = checks.iter().filter(|c| !c.passed).map(|c| c.name.clone()).collect();
        self.record_checks(&checks, &failed);
        if !failed.is_empty() {
            self.status.failed_checks += 1;
            let reasons: Vec<String> = checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| format!("{}: {}", c.name, c.message.clone().unwrap_or_else(|| "failed".into())))
                .collect();
            let message = format!(
                "check failed ({}/{}): {}",
                self.status.failed_checks,
                self.plan.threshold,
                reasons.join("; ")
            );
            if self.status.failed_checks >= self.plan.threshold {
                self.roll_back("AnalysisFailed", message);
            } else {
                self.event(true, "CheckFailed", message);
            }
            return;
        }
        if first && pre_rollout {
            self.status.hooks_done.push(hook_name(WebhookType::PreRollout));
        }
        self.advance();
    }

    /// Keeps the checks of a step in `lastChecks` and `history`.
    fn record_checks(&mut self, checks: &[CheckResult], failed: &[String]) {
        let time = Time(self.seen.now);
        let mut by_name: BTreeMap<String, CheckResult> =
            self.status.last_checks.drain(..).map(|c| (c.name.clone(), c)).collect();
        let mut values = BTreeMap::new();
        for check in checks {
            let mut check = check.clone();
            check.time.get_or_insert_with(|| time.clone());
            if let Some(value) = check.value.filter(|v| v.is_finite()) {
                values.insert(check.name.clone(), value);
            }
            by_name.insert(check.name.clone(), check);
        }
        self.status.last_checks = by_name.into_values().collect();
        self.status.history.push(StepRecord {
            time,
            phase: phase(&self.status),
            canary_weight: self.status.canary_weight,
            values,
            failed: failed.to_vec(),
        });
        let excess = self.status.history.len().saturating_sub(HISTORY_LIMIT);
        self.status.history.drain(..excess);
    }

    /// A passed step: more weight, one more iteration, or promotion.
    fn advance(&mut self) {
        match next_move(self.plan, &self.status) {
            Move::Increase(weight) => {
                if self.plan.hooks.confirm_traffic_increase
                    && !self.gates.confirmed(Gate::ConfirmTrafficIncrease)
                    && !self.manual_promote()
                {
                    // Said once per weight, not at every step the gate stays closed.
                    let history = &self.status.history;
                    let held_before =
                        history.len() >= 2 && history[history.len() - 2].canary_weight == self.status.canary_weight;
                    if !held_before {
                        self.event(
                            false,
                            "Waiting",
                            format!(
                                "confirm-traffic-increase holds the weight at {}",
                                self.status.canary_weight
                            ),
                        );
                    }
                    return;
                }
                // A mirrored release spends its first step mirroring, at weight 0.
                if self.plan.mirror.is_some()
                    && self.status.canary_weight == 0
                    && !self.status.hooks_done.iter().any(|h| h == MIRRORED)
                {
                    self.status.hooks_done.push(MIRRORED.into());
                    self.event(false, "Mirroring", "mirroring requests to the canary".into());
                    return;
                }
                self.status.canary_weight = weight;
                self.event(false, "WeightIncreased", format!("canary weight {weight}%"));
            }
            Move::Iterate => {
                self.status.iterations += 1;
                self.event(
                    false,
                    "Iteration",
                    format!("iteration {}/{} passed", self.status.iterations, self.plan.iterations),
                );
            }
            Move::Promote => {
                if self.plan.hooks.confirm_promotion
                    && !self.gates.confirmed(Gate::ConfirmPromotion)
                    && !self.manual_promote()
                {
                    if phase(&self.status) != CanaryPhase::WaitingPromotion {
                        self.event(
                            false,
                            "WaitingPromotion",
                            "waiting for confirm-promotion (or eddy canary promote)".into(),
                        );
                    }
                    self.enter(CanaryPhase::WaitingPromotion);
                    return;
                }
                if self.plan.strategy == Strategy::BlueGreen {
                    // Blue/green switches all traffic to the tested canary, then promotes.
                    self.status.canary_weight = 100;
                }
                self.event(
                    false,
                    "Promoting",
                    format!("copying revision {} to the primary", short(&self.seen.revision.spec)),
                );
                self.actions.push(Action::WritePrimary);
                self.status.waiting_since = None;
                self.enter(CanaryPhase::Promoting);
                self.requeue = READINESS_POLL;
            }
        }
    }

    /// Copies the canary to the primary, then, once the primary runs it and is ready, moves
    /// traffic back to it.
    fn promoting(&mut self) {
        self.settle_manual_requests();
        let applied = self.status.last_applied_spec.clone();
        let primary = self.seen.primary.clone().unwrap_or_default();
        if primary.revision != applied {
            if self.seen.revision.spec.as_str() != applied.as_deref().unwrap_or_default() {
                // The analysed revision is gone from the target before it reached the primary.
                self.event(
                    false,
                    "RevisionChanged",
                    format!(
                        "new revision {} before promotion: restarting from weight 0",
                        short(&self.seen.revision.spec)
                    ),
                );
                self.start_release();
                return;
            }
            self.actions.push(Action::WritePrimary);
            self.requeue = READINESS_POLL;
            return;
        }
        if !primary.ready {
            // Traffic stays on the canary: a primary that is not ready gets none.
            let since = self.status.waiting_since.get_or_insert(Time(self.seen.now)).0;
            let waited = Duration::try_from(self.seen.now.duration_since(since)).unwrap_or(Duration::ZERO);
            if waited >= self.plan.progress_deadline {
                self.status.waiting_since = None;
                self.status.last_promoted_spec = applied;
                self.enter(CanaryPhase::Failed);
                let message = format!(
                    "the promoted primary is not ready after progressDeadlineSeconds ({}s); the canary keeps its {}% of traffic",
                    self.plan.progress_deadline.as_secs(),
                    self.status.canary_weight
                );
                self.event(true, "PromotionFailed", message);
                self.run_post_rollout();
            } else {
                self.requeue = READINESS_POLL;
            }
            return;
        }
        self.status.waiting_since = None;
        match self.plan.step_weight_promotion {
            Some(step) if self.status.canary_weight > step => {
                if !due(self.plan, &self.status, self.seen.now) {
                    self.requeue = until_due(self.plan, &self.status, self.seen.now);
                    return;
                }
                self.status.last_step_time = Some(MicroTime(self.seen.now));
                self.status.canary_weight -= step;
                self.event(
                    false,
                    "WeightDecreased",
                    format!("primary weight {}%", 100 - self.status.canary_weight),
                );
                self.requeue = self.plan.interval;
            }
            _ => {
                self.status.canary_weight = 0;
                self.enter(CanaryPhase::Finalising);
                self.event(
                    false,
                    "Finalising",
                    "the primary is ready and serves all traffic".into(),
                );
                self.requeue = Duration::ZERO;
            }
        }
    }

    fn finalising(&mut self) {
        self.settle_manual_requests();
        self.status.last_promoted_spec = self.status.last_applied_spec.clone();
        self.status.canary_weight = 0;
        self.enter(CanaryPhase::Succeeded);
        self.event(
            false,
            "Succeeded",
            format!(
                "revision {} promoted",
                short(self.status.last_applied_spec.as_deref().unwrap_or_default())
            ),
        );
        self.run_post_rollout();
        self.requeue = self.plan.interval;
    }

    fn roll_back(&mut self, reason: &'static str, message: String) {
        self.status.canary_weight = 0;
        self.status.waiting_since = None;
        self.enter(CanaryPhase::Failed);
        self.event(true, reason, format!("rolled back: {message}"));
        self.run_post_rollout();
        self.settle_manual_requests();
        self.requeue = self.plan.interval;
    }

    fn run_post_rollout(&mut self) {
        if self.plan.hooks.post_rollout && !hook_done(&self.status, WebhookType::PostRollout) {
            self.status.hooks_done.push(hook_name(WebhookType::PostRollout));
            self.actions.push(Action::RunHooks(WebhookType::PostRollout));
        }
    }
}

/// The first 12 characters of a revision hash, for messages.
fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

#[cfg(test)]
mod tests;
