//! The tick's decisions, phase by phase, and properties over random runs: weights stay on the
//! ladder and never skip a step, promotion only follows a passed last step, one-time hooks run
//! once, and a lost status write (a controller killed mid-tick) never makes traffic jump.

use std::time::Duration;

use eddy_api::progressive::{CanaryPhase, CanarySpec, CanaryStatus, CheckResult, WebhookType};
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::plan::Plan;
use proptest::strategy::Strategy as Generator;

fn spec(analysis: serde_json::Value) -> CanarySpec {
    serde_json::from_value(serde_json::json!({
        "targetRef": {"kind": "Deployment", "name": "web"},
        "provider": "gatewayapi",
        "service": {"port": 80},
        "progressDeadlineSeconds": 60,
        "analysis": analysis,
    }))
    .unwrap()
}

fn plan(analysis: serde_json::Value) -> Plan {
    Plan::new(&spec(analysis), false).unwrap()
}

fn hook(kind: &str) -> serde_json::Value {
    serde_json::json!({"type": kind, "name": kind, "url": "http://127.0.0.1:1/"})
}

/// A world the tests drive tick by tick: the target's revision, the workloads' readiness, the
/// gates' answers and the clock.
struct World {
    now: Timestamp,
    revision: String,
    primary: Option<Workload>,
    canary_ready: bool,
    checks_pass: bool,
    confirm: bool,
    promote: Option<String>,
    abort: Option<String>,
}

impl World {
    fn new() -> Self {
        Self {
            now: Timestamp::from_second(1_800_000_000).unwrap(),
            revision: "rev-1".into(),
            primary: None,
            canary_ready: true,
            checks_pass: true,
            confirm: true,
            promote: None,
            abort: None,
        }
    }

    fn seen(&self) -> Seen {
        Seen {
            now: self.now,
            revision: Revision {
                spec: self.revision.clone(),
                configs: Default::default(),
            },
            primary: self.primary.clone(),
            canary: Workload {
                ready: self.canary_ready,
                revision: None,
            },
            promote: self.promote.clone(),
            abort: self.abort.clone(),
        }
    }

    /// One reconcile: the gates it needs answered from the world, then the decision; the
    /// primary follows `WritePrimary` as the controller would make it.
    fn tick(&mut self, plan: &Plan, status: &CanaryStatus) -> Decision {
        let seen = self.seen();
        let mut gates = Gates::default();
        for gate in gates_needed(plan, status, &seen) {
            match gate {
                Gate::PreRollout | Gate::Analysis => {
                    let check = CheckResult {
                        name: "request-success-rate".into(),
                        value: Some(if self.checks_pass { 99.5 } else { 80.0 }),
                        passed: self.checks_pass,
                        message: (!self.checks_pass).then(|| "80 is below 99".into()),
                        time: None,
                    };
                    gates.checks.insert(gate, vec![check]);
                }
                Gate::Rollback => gates.rollback_requested = false,
                confirm => {
                    gates.confirmed.insert(confirm, self.confirm);
                }
            }
        }
        let decision = decide(plan, status, &seen, &gates);
        if decision.actions.contains(&Action::WritePrimary) {
            self.primary = Some(Workload {
                ready: false,
                revision: Some(self.revision.clone()),
            });
        }
        decision
    }

    /// Time passes and the primary's rollout completes.
    fn advance(&mut self, by: Duration) {
        self.now = self.now.checked_add(by).unwrap();
        if let Some(primary) = &mut self.primary {
            primary.ready = true;
        }
    }
}

/// Runs ticks until `until` holds or `limit` ticks passed; returns the statuses seen.
fn run(
    plan: &Plan,
    world: &mut World,
    status: &mut CanaryStatus,
    limit: usize,
    until: impl Fn(&CanaryStatus) -> bool,
) -> Vec<CanaryStatus> {
    let mut seen = Vec::new();
    for _ in 0..limit {
        let decision = world.tick(plan, status);
        *status = decision.status;
        seen.push(status.clone());
        if until(status) {
            break;
        }
        world.advance(plan.interval);
    }
    seen
}

fn initialized(plan: &Plan, world: &mut World) -> CanaryStatus {
    let mut status = CanaryStatus::default();
    run(plan, world, &mut status, 5, |s| {
        s.phase == Some(CanaryPhase::Initialized)
    });
    assert_eq!(status.phase, Some(CanaryPhase::Initialized));
    status
}

#[test]
fn initialization_writes_the_primary_then_waits_for_it() {
    let plan = plan(serde_json::json!({"stepWeight": 25}));
    let mut world = World::new();
    let first = world.tick(&plan, &CanaryStatus::default());
    assert_eq!(first.status.phase, Some(CanaryPhase::Initializing));
    assert!(first.actions.contains(&Action::WritePrimary));
    assert!(
        canary_scaled_up(&first.status),
        "the target serves until the primary is ready"
    );
    let waiting = world.tick(&plan, &first.status);
    assert_eq!(
        waiting.status.phase,
        Some(CanaryPhase::Initializing),
        "the primary is not ready yet"
    );
    world.advance(Duration::from_secs(1));
    let done = world.tick(&plan, &waiting.status);
    assert_eq!(done.status.phase, Some(CanaryPhase::Initialized));
    assert_eq!(done.status.last_applied_spec.as_deref(), Some("rev-1"));
    assert!(!canary_scaled_up(&done.status));
    assert_eq!(routes(&plan, &done.status), Routes::primary_only());
}

#[test]
fn a_healthy_canary_walks_every_step_and_is_promoted() {
    let plan = plan(serde_json::json!({"interval": "1s", "stepWeights": [5, 25, 50, 100]}));
    let mut world = World::new();
    let mut status = initialized(&plan, &mut world);
    world.revision = "rev-2".into();
    let statuses = run(&plan, &mut world, &mut status, 40, |s| {
        s.phase == Some(CanaryPhase::Succeeded)
    });
    let weights: Vec<i32> = statuses.iter().map(|s| s.canary_weight).collect();
    let mut ladder: Vec<i32> = weights.clone();
    ladder.dedup();
    assert_eq!(ladder, vec![0, 5, 25, 50, 100, 0], "weights went {weights:?}");
    assert_eq!(status.phase, Some(CanaryPhase::Succeeded));
    assert_eq!(status.last_promoted_spec.as_deref(), Some("rev-2"));
    assert_eq!(world.primary.as_ref().unwrap().revision.as_deref(), Some("rev-2"));
    assert!(!canary_scaled_up(&status));
    let phases: Vec<CanaryPhase> = statuses.iter().filter_map(|s| s.phase).collect();
    assert!(phases.contains(&CanaryPhase::Promoting) && phases.contains(&CanaryPhase::Finalising));
    // The first step at weight 0 (nothing to measure), then passed analyses at 5, 25, 50 and
    // 100, each with its value in the history.
    let weights: Vec<i32> = status.history.iter().map(|step| step.canary_weight).collect();
    assert_eq!(weights, vec![0, 5, 25, 50, 100]);
    assert!(
        status.history[1..]
            .iter()
            .all(|step| step.values.contains_key("request-success-rate"))
    );
}

#[test]
fn failed_checks_reaching_the_threshold_roll_back() {
    let plan = plan(serde_json::json!({"stepWeight": 20, "threshold": 2}));
    let mut world = World::new();
    let mut status = initialized(&plan, &mut world);
    world.revision = "rev-2".into();
    run(&plan, &mut world, &mut status, 10, |s| s.canary_weight == 40);
    world.checks_pass = false;
    let statuses = run(&plan, &mut world, &mut status, 10, |s| {
        s.phase == Some(CanaryPhase::Failed)
    });
    assert_eq!(status.phase, Some(CanaryPhase::Failed));
    assert_eq!(status.failed_checks, 2);
    assert_eq!(status.canary_weight, 0);
    assert_eq!(routes(&plan, &status), Routes::primary_only());
    assert!(!canary_scaled_up(&status));
    assert!(
        statuses.iter().all(|s| s.canary_weight <= 40),
        "no step after a failed check"
    );
    assert_eq!(
        world.primary.as_ref().unwrap().revision.as_deref(),
        Some("rev-1"),
        "never promoted"
    );
    let last = status
        .last_checks
        .iter()
        .find(|c| c.name == "request-success-rate")
        .unwrap();
    assert_eq!((last.value, last.passed), (Some(80.0), false));
    assert!(last.time.is_some());
}

#[test]
fn a_failed_canary_starts_again_on_the_next_revision_only() {
    let plan = plan(serde_json::json!({"stepWeight": 50}));
    let mut world = World::new();
    let mut status = initialized(&plan, &mut world);
    world.revision = "rev-2".into();
    world.checks_pass = false;
    run(&plan, &mut world, &mut status, 10, |s| {
        s.phase == Some(CanaryPhase::Failed)
    });
    world.checks_pass = true;
    let idle = world.tick(&plan, &status);
    assert_eq!(
        idle.status.phase,
        Some(CanaryPhase::Failed),
        "the failed revision is not retried"
    );
    world.revision = "rev-3".into();
    let again = world.tick(&plan, &status);
    assert_eq!(again.status.phase, Some(CanaryPhase::Progressing));
    assert_eq!((again.status.failed_checks, again.status.canary_weight), (0, 0));
}

#[test]
fn a_new_revision_during_the_analysis_restarts_from_zero() {
    let plan = plan(serde_json::json!({"stepWeight": 10}));
    let mut world = World::new();
    let mut status = initialized(&plan, &mut world);
    world.revision = "rev-2".into();
    run(&plan, &mut world, &mut status, 10, |s| s.canary_weight == 30);
    world.revision = "rev-3".into();
    let restarted = world.tick(&plan, &status);
    assert_eq!(restarted.status.canary_weight, 0);
    assert_eq!(restarted.status.phase, Some(CanaryPhase::Progressing));
    assert_eq!(restarted.status.last_applied_spec.as_deref(), Some("rev-3"));
    assert!(restarted.status.history.is_empty());
}

#[test]
fn a_canary_that_never_becomes_ready_fails_after_the_progress_deadline() {
    let plan = plan(serde_json::json!({"stepWeight": 10}));
    let mut world = World::new();
    let mut status = initialized(&plan, &mut world);
    world.revision = "rev-2".into();
    world.canary_ready = false;
    let mut ticks = 0;
    while status.phase != Some(CanaryPhase::Failed) {
        status = world.tick(&plan, &status).status;
        world.advance(Duration::from_secs(10));
        ticks += 1;
        assert!(ticks < 20, "still {:?} after {ticks} ticks", status.phase);
    }
    assert!(ticks >= 6, "failed before the 60s deadline, after {ticks} ticks of 10s");
}

#[test]
fn confirm_promotion_holds_until_promoted_by_hand() {
    let plan = plan(serde_json::json!({"stepWeight": 50, "webhooks": [hook("confirm-promotion")]}));
    let mut world = World::new();
    let mut status = initialized(&plan, &mut world);
    world.revision = "rev-2".into();
    world.confirm = false;
    run(&plan, &mut world, &mut status, 20, |_| false);
    assert_eq!(status.phase, Some(CanaryPhase::WaitingPromotion));
    assert_eq!(status.canary_weight, 100);
    world.promote = Some("t1".into());
    run(&plan, &mut world, &mut status, 10, |s| {
        s.phase == Some(CanaryPhase::Succeeded)
    });
    assert_eq!(status.phase, Some(CanaryPhase::Succeeded));
    assert_eq!(status.last_handled_promote_at.as_deref(), Some("t1"));
}

#[test]
fn confirm_rollout_waits_with_the_canary_scaled_down() {
    let plan = plan(serde_json::json!({"stepWeight": 50, "webhooks": [hook("confirm-rollout")]}));
    let mut world = World::new();
    let mut status = initialized(&plan, &mut world);
    world.revision = "rev-2".into();
    world.confirm = false;
    run(&plan, &mut world, &mut status, 5, |_| false);
    assert_eq!(status.phase, Some(CanaryPhase::Waiting));
    assert!(!canary_scaled_up(&status));
    world.confirm = true;
    run(&plan, &mut world, &mut status, 5, |s| {
        s.phase == Some(CanaryPhase::Progressing)
    });
    assert_eq!(status.phase, Some(CanaryPhase::Progressing));
}

#[test]
fn abort_rolls_back_at_once() {
    let plan = plan(serde_json::json!({"stepWeight": 10}));
    let mut world = World::new();
    let mut status = initialized(&plan, &mut world);
    world.revision = "rev-2".into();
    run(&plan, &mut world, &mut status, 10, |s| s.canary_weight == 20);
    world.abort = Some("a1".into());
    let aborted = world.tick(&plan, &status);
    assert_eq!(aborted.status.phase, Some(CanaryPhase::Failed));
    assert_eq!(aborted.status.last_handled_abort_at.as_deref(), Some("a1"));
    assert_eq!(routes(&plan, &aborted.status), Routes::primary_only());
}

#[test]
fn blue_green_iterates_then_switches_all_traffic_and_promotes() {
    let plan = plan(serde_json::json!({"iterations": 3}));
    let mut world = World::new();
    let mut status = initialized(&plan, &mut world);
    world.revision = "rev-2".into();
    let statuses = run(&plan, &mut world, &mut status, 20, |s| {
        s.phase == Some(CanaryPhase::Succeeded)
    });
    assert_eq!(status.phase, Some(CanaryPhase::Succeeded));
    let analysing: Vec<&CanaryStatus> = statuses
        .iter()
        .filter(|s| s.phase == Some(CanaryPhase::Progressing))
        .collect();
    assert!(
        analysing.iter().all(|s| routes(&plan, s) == Routes::primary_only()),
        "no traffic during iterations"
    );
    let promoting = statuses
        .iter()
        .find(|s| s.phase == Some(CanaryPhase::Promoting))
        .unwrap();
    assert_eq!(
        routes(&plan, promoting).canary,
        100,
        "switched to the tested canary while the primary updates"
    );
    let analysed = status.history.iter().filter(|step| !step.values.is_empty()).count();
    assert_eq!(analysed, 3, "one analysis per iteration, as Flagger counts them");
}

#[test]
fn ab_testing_routes_matching_requests_only() {
    let plan = plan(serde_json::json!({"iterations": 2, "match": [{"headers": {"x-canary": {"exact": "insider"}}}]}));
    let mut world = World::new();
    let mut status = initialized(&plan, &mut world);
    world.revision = "rev-2".into();
    let statuses = run(&plan, &mut world, &mut status, 20, |s| {
        s.phase == Some(CanaryPhase::Succeeded)
    });
    let progressing = statuses
        .iter()
        .find(|s| s.phase == Some(CanaryPhase::Progressing))
        .unwrap();
    let routed = routes(&plan, progressing);
    assert_eq!((routed.primary, routed.canary, routed.matches.len()), (100, 0, 1));
    assert_eq!(routes(&plan, &status), Routes::primary_only());
}

#[test]
fn mirroring_comes_before_the_first_weight() {
    let plan = plan(serde_json::json!({"stepWeight": 50, "mirror": true, "mirrorWeight": 40}));
    let mut world = World::new();
    let mut status = initialized(&plan, &mut world);
    world.revision = "rev-2".into();
    let statuses = run(&plan, &mut world, &mut status, 20, |s| s.canary_weight == 50);
    let mirrored = statuses
        .iter()
        .find(|s| routes(&plan, s).mirror.is_some())
        .expect("a mirrored step");
    assert_eq!(mirrored.canary_weight, 0);
    assert_eq!(routes(&plan, mirrored).mirror, Some(40));
    assert_eq!(
        routes(&plan, &status).mirror,
        None,
        "no mirroring once traffic is weighted"
    );
}

#[test]
fn pre_rollout_runs_once_and_a_failure_counts() {
    let plan = plan(serde_json::json!({"stepWeight": 50, "threshold": 3, "webhooks": [hook("pre-rollout")]}));
    let mut world = World::new();
    let mut status = initialized(&plan, &mut world);
    world.revision = "rev-2".into();
    world.checks_pass = false;
    run(&plan, &mut world, &mut status, 2, |_| false);
    assert!(status.failed_checks >= 1);
    assert!(!status.hooks_done.iter().any(|h| h == "pre-rollout"));
    world.checks_pass = true;
    run(&plan, &mut world, &mut status, 3, |s| s.canary_weight > 0);
    assert!(status.hooks_done.iter().any(|h| h == "pre-rollout"));
    let needed = gates_needed(&plan, &status, &world.seen());
    assert!(!needed.contains(&Gate::PreRollout), "{needed:?}");
}

#[test]
fn post_rollout_runs_once_whatever_the_outcome() {
    let plan = plan(serde_json::json!({"stepWeight": 50, "webhooks": [hook("post-rollout")]}));
    let mut world = World::new();
    let mut status = initialized(&plan, &mut world);
    world.revision = "rev-2".into();
    let mut calls = 0;
    for _ in 0..20 {
        let decision = world.tick(&plan, &status);
        calls += decision
            .actions
            .iter()
            .filter(|a| **a == Action::RunHooks(WebhookType::PostRollout))
            .count();
        status = decision.status;
        world.advance(plan.interval);
    }
    assert_eq!(status.phase, Some(CanaryPhase::Succeeded));
    assert_eq!(calls, 1);
}

#[test]
fn promotion_waits_for_a_ready_primary_and_keeps_traffic_on_the_canary() {
    let plan = plan(serde_json::json!({"stepWeight": 100}));
    let mut world = World::new();
    let mut status = initialized(&plan, &mut world);
    world.revision = "rev-2".into();
    run(&plan, &mut world, &mut status, 10, |s| {
        s.phase == Some(CanaryPhase::Promoting)
    });
    assert_eq!(status.canary_weight, 100);
    // The primary's rollout never completes.
    for _ in 0..5 {
        world.now = world.now.checked_add(Duration::from_secs(5)).unwrap();
        world.primary.as_mut().unwrap().ready = false;
        status = world.tick(&plan, &status).status;
        assert_eq!(
            routes(&plan, &status).canary,
            100,
            "no traffic to a primary that is not ready"
        );
    }
    world.now = world.now.checked_add(Duration::from_secs(60)).unwrap();
    status = world.tick(&plan, &status).status;
    assert_eq!(status.phase, Some(CanaryPhase::Failed));
    assert_eq!(routes(&plan, &status).canary, 100, "the canary keeps serving");
    assert!(canary_scaled_up(&status));
}

#[test]
fn a_paused_canary_holds_its_weight() {
    let running = plan(serde_json::json!({"stepWeight": 10}));
    let mut world = World::new();
    let mut status = initialized(&running, &mut world);
    world.revision = "rev-2".into();
    run(&running, &mut world, &mut status, 10, |s| s.canary_weight == 20);
    let paused = Plan::new(&spec(serde_json::json!({"stepWeight": 10})), true).unwrap();
    run(&paused, &mut world, &mut status, 5, |_| false);
    assert_eq!(status.canary_weight, 20);
    assert!(gates_needed(&paused, &status, &world.seen()).is_empty());
}

#[test]
fn skip_analysis_promotes_directly() {
    let mut spec = spec(serde_json::json!({"stepWeight": 10}));
    spec.skip_analysis = true;
    let plan = Plan::new(&spec, false).unwrap();
    let mut world = World::new();
    let mut status = initialized(&plan, &mut world);
    world.revision = "rev-2".into();
    let statuses = run(&plan, &mut world, &mut status, 10, |s| {
        s.phase == Some(CanaryPhase::Succeeded)
    });
    assert_eq!(status.phase, Some(CanaryPhase::Succeeded));
    assert!(statuses.iter().all(|s| s.canary_weight == 0));
}

#[test]
fn a_step_is_not_taken_before_the_interval() {
    let plan = plan(serde_json::json!({"interval": "30s", "stepWeight": 10}));
    let mut world = World::new();
    let mut status = initialized(&plan, &mut world);
    world.revision = "rev-2".into();
    run(&plan, &mut world, &mut status, 10, |s| s.canary_weight == 10);
    let early = world.tick(&plan, &status);
    assert_eq!(early.status.canary_weight, 10);
    assert!(early.requeue <= Duration::from_secs(30));
    assert!(
        gates_needed(&plan, &status, &world.seen()).is_empty(),
        "no gate is called early"
    );
}

/// What may happen to a Canary between two ticks.
#[derive(Clone, Debug)]
enum Event {
    Tick {
        pass: bool,
        confirm: bool,
        ready: bool,
    },
    NewRevision,
    Promote,
    Abort,
    /// The controller dies after deciding, before the status is written.
    LostWrite,
}

fn event() -> impl Generator<Value = Event> {
    prop_oneof![
        8 => (any::<bool>(), any::<bool>(), prop::bool::weighted(0.9)).prop_map(|(p, c, r)| Event::Tick { pass: p || r, confirm: c, ready: r }),
        1 => Just(Event::NewRevision),
        1 => Just(Event::Promote),
        1 => Just(Event::Abort),
        2 => Just(Event::LostWrite),
    ]
}

fn analysis() -> impl Generator<Value = serde_json::Value> {
    let hooks = prop::collection::vec(
        prop::sample::select(vec![
            "confirm-rollout",
            "pre-rollout",
            "confirm-traffic-increase",
            "confirm-promotion",
            "post-rollout",
        ]),
        0..3,
    );
    let weights = prop_oneof![
        (1..=50i32, 10..=100i32)
            .prop_map(|(step, max)| serde_json::json!({"stepWeight": step, "maxWeight": max.max(step)})),
        prop::collection::btree_set(1..=100i32, 1..5)
            .prop_map(|set| serde_json::json!({"stepWeights": set.into_iter().collect::<Vec<_>>()})),
        (1..=5i32).prop_map(|n| serde_json::json!({"iterations": n})),
    ];
    (weights, hooks, 1..=3i32, any::<bool>()).prop_map(|(mut analysis, hooks, threshold, mirror)| {
        analysis["threshold"] = threshold.into();
        analysis["webhooks"] = hooks.into_iter().map(hook).collect::<Vec<_>>().into();
        if mirror {
            analysis["mirror"] = true.into();
        }
        analysis
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn weights_stay_on_the_ladder_and_promotion_follows_the_last_step(
        analysis in analysis(),
        events in prop::collection::vec(event(), 1..80),
    ) {
        let plan = plan(analysis);
        let mut world = World::new();
        let mut status = initialized(&plan, &mut world);
        world.revision = "rev-2".into();
        let mut revision = 2;
        let mut post_rollouts_this_release = 0;
        for event in events {
            match event {
                Event::NewRevision => {
                    revision += 1;
                    world.revision = format!("rev-{revision}");
                    continue;
                }
                Event::Promote => {
                    world.promote = Some(format!("p{revision}-{}", world.now));
                    continue;
                }
                Event::Abort => {
                    world.abort = Some(format!("a{revision}-{}", world.now));
                    continue;
                }
                Event::LostWrite => {
                    // Decided, acted on, never written: the next tick starts from the old status.
                    let lost = world.tick(&plan, &status);
                    let (before, after) = (routes(&plan, &status), routes(&plan, &lost.status));
                    prop_assert!(one_move(&plan, &before, &after), "{before:?} -> {after:?}");
                    world.advance(plan.interval);
                    continue;
                }
                Event::Tick { pass, confirm, ready } => {
                    world.checks_pass = pass;
                    world.confirm = confirm;
                    world.canary_ready = ready;
                }
            }
            let before = status.clone();
            let decision = world.tick(&plan, &status);
            let after = decision.status.clone();
            let (old, new) = (before.canary_weight, after.canary_weight);
            let starts = before.last_applied_spec != after.last_applied_spec;
            if starts {
                post_rollouts_this_release = 0;
            }
            post_rollouts_this_release += decision.actions.iter().filter(|a| **a == Action::RunHooks(WebhookType::PostRollout)).count();
            prop_assert!(post_rollouts_this_release <= 1, "post-rollout ran twice for one release");

            if plan.strategy == eddy_api::progressive::Strategy::Canary {
                prop_assert!(new <= plan.max_weight(), "weight {new} above maxWeight {}", plan.max_weight());
                let allowed = new == old || new == 0 || Some(new) == plan.next_weight(old);
                prop_assert!(allowed, "weight {old} -> {new} on ladder {:?}", plan.ladder);
            }
            let promoted = after.phase == Some(CanaryPhase::Promoting) && before.phase != Some(CanaryPhase::Promoting);
            if promoted && !plan.skip_analysis {
                match plan.strategy {
                    eddy_api::progressive::Strategy::Canary => prop_assert_eq!(old, plan.max_weight(), "promoted before the last step"),
                    _ => prop_assert_eq!(before.iterations, plan.iterations, "promoted before the last iteration"),
                }
                let last = after.history.last().expect("the promoting step was analysed");
                prop_assert!(last.failed.is_empty(), "promoted on a failed step");
                prop_assert!(decision.actions.contains(&Action::WritePrimary));
            }
            if decision.actions.contains(&Action::WritePrimary) {
                prop_assert!(matches!(after.phase, Some(CanaryPhase::Promoting | CanaryPhase::Initializing)));
            }
            let (from, to) = (routes(&plan, &before), routes(&plan, &after));
            prop_assert!(one_move(&plan, &from, &to), "{from:?} -> {to:?}");
            status = after;
            world.advance(plan.interval);
        }
    }
}

/// Whether traffic moved by at most one step: the canary's share went up by one rung (or to
/// 100 for a blue/green switch), or back to the primary.
fn one_move(plan: &Plan, before: &Routes, after: &Routes) -> bool {
    after.canary <= before.canary
        || Some(after.canary) == plan.next_weight(before.canary)
        || (plan.strategy == eddy_api::progressive::Strategy::BlueGreen && after.canary == 100)
}

#[test]
fn abort_is_answered_while_paused() {
    let running = plan(serde_json::json!({"stepWeight": 10}));
    let mut world = World::new();
    let mut status = initialized(&running, &mut world);
    world.revision = "rev-2".into();
    run(&running, &mut world, &mut status, 10, |s| s.canary_weight == 20);
    let paused = Plan::new(&spec(serde_json::json!({"stepWeight": 10})), true).unwrap();
    world.abort = Some("a1".into());
    let aborted = world.tick(&paused, &status);
    assert_eq!(aborted.status.phase, Some(CanaryPhase::Failed));
    assert_eq!(routes(&paused, &aborted.status), Routes::primary_only());
}

#[test]
fn the_kubernetes_router_refuses_stepped_promotion() {
    let mut spec = spec(serde_json::json!({"iterations": 2, "stepWeightPromotion": 10}));
    spec.provider = eddy_api::progressive::RouterKind::Kubernetes;
    let err = Plan::new(&spec, false).unwrap_err();
    assert!(err.to_string().contains("stepWeightPromotion"), "{err}");
}
