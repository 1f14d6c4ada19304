//! A Canary's spec turned into what the analysis needs: the strategy, the weight ladder, the
//! gates that exist. Checked once per reconcile; a spec that cannot be released says why.

use std::time::Duration;

use eddy_api::progressive::{CanarySpec, RequestMatch, RouterKind, SessionAffinity, Strategy, WebhookType};

/// Weight added per step when a canary strategy names neither `stepWeight` nor `stepWeights`.
pub const DEFAULT_STEP_WEIGHT: i32 = 10;
/// Iterations of a blue/green release on the `kubernetes` router when none are given (Flagger's).
pub const DEFAULT_KUBERNETES_ITERATIONS: i32 = 10;
/// The shortest analysis interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// How a release runs, derived from a Canary's spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Canary weights, blue/green or A/B testing.
    pub strategy: Strategy,
    /// Time between two analysis steps.
    pub interval: Duration,
    /// Failed checks that roll the release back.
    pub threshold: i32,
    /// The canary weights of a weighted release, in order; the last is the highest.
    pub ladder: Vec<i32>,
    /// Weight moved back to the primary per step after promotion; all at once when `None`.
    pub step_weight_promotion: Option<i32>,
    /// Analysis steps of a blue/green or A/B release.
    pub iterations: i32,
    /// Percentage of requests mirrored to the canary, when mirroring.
    pub mirror: Option<i32>,
    /// Requests sent to the canary during A/B testing.
    pub matches: Vec<RequestMatch>,
    /// Sticky canary sessions.
    pub session_affinity: Option<SessionAffinity>,
    /// Promote without analysis.
    pub skip_analysis: bool,
    /// Held where it is (`suspend`, or `eddy canary pause`).
    pub paused: bool,
    /// How long the canary or the primary may take to become ready.
    pub progress_deadline: Duration,
    /// Which webhook types the Canary has.
    pub hooks: Hooks,
}

/// The webhook types a Canary has, as flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    pub confirm_rollout: bool,
    pub pre_rollout: bool,
    pub confirm_traffic_increase: bool,
    pub confirm_promotion: bool,
    pub post_rollout: bool,
    pub rollback: bool,
}

/// Why a Canary's spec cannot be released.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("analysis.interval: {0}")]
    Interval(String),
    #[error("analysis.stepWeights must increase and stay within 1..=100, got {0:?}")]
    Ladder(Vec<i32>),
    #[error("analysis.maxWeight ({max}) is below the first step ({step})")]
    MaxWeight { max: i32, step: i32 },
    #[error("{strategy:?} needs analysis.iterations")]
    Iterations { strategy: Strategy },
    #[error("A/B testing needs analysis.match")]
    Matches,
    #[error("the {router} router cannot {what}; use gatewayapi, istio or nginx for that")]
    Router { router: &'static str, what: &'static str },
}

impl Plan {
    /// The plan of `spec`; `paused` is the `progressive.eddy.dev/paused` annotation.
    pub fn new(spec: &CanarySpec, paused: bool) -> Result<Self, PlanError> {
        let analysis = spec.analysis.clone().unwrap_or_else(|| {
            serde_json::from_value(serde_json::json!({})).expect("an empty analysis has every default")
        });
        let interval = analysis
            .interval
            .to_std()
            .map_err(|err| PlanError::Interval(err.to_string()))?;
        if interval < MIN_INTERVAL {
            return Err(PlanError::Interval(format!(
                "{} is shorter than the shortest interval, 1s",
                analysis.interval
            )));
        }
        let kubernetes = spec.provider == RouterKind::Kubernetes;
        let strategy = match analysis.strategy {
            Some(strategy) => strategy,
            None if kubernetes => Strategy::BlueGreen,
            None if analysis.iterations.is_some() && !analysis.match_requests.is_empty() => Strategy::ABTesting,
            None if analysis.iterations.is_some() => Strategy::BlueGreen,
            None => Strategy::Canary,
        };
        let iterations = match (strategy, analysis.iterations) {
            (Strategy::Canary, _) => 0,
            (_, Some(n)) => n,
            (Strategy::BlueGreen, None) if kubernetes => DEFAULT_KUBERNETES_ITERATIONS,
            (strategy, None) => return Err(PlanError::Iterations { strategy }),
        };
        if strategy == Strategy::ABTesting && analysis.match_requests.is_empty() {
            return Err(PlanError::Matches);
        }
        if kubernetes && strategy != Strategy::BlueGreen {
            return Err(PlanError::Router {
                router: "kubernetes",
                what: "split traffic by weight or by request (it switches the apex Service)",
            });
        }
        if kubernetes && analysis.step_weight_promotion.is_some() {
            return Err(PlanError::Router {
                router: "kubernetes",
                what: "move traffic back to the primary in steps (stepWeightPromotion)",
            });
        }
        if kubernetes && analysis.mirror {
            return Err(PlanError::Router {
                router: "kubernetes",
                what: "mirror traffic",
            });
        }
        let ladder = if strategy == Strategy::Canary {
            ladder(analysis.step_weights.clone(), analysis.step_weight, analysis.max_weight)?
        } else {
            Vec::new()
        };
        let has = |kind: WebhookType| analysis.webhooks.iter().any(|hook| hook.hook_type == kind);
        Ok(Self {
            strategy,
            interval,
            threshold: analysis.threshold.max(1),
            ladder,
            step_weight_promotion: analysis.step_weight_promotion,
            iterations,
            mirror: analysis.mirror.then(|| analysis.mirror_weight.unwrap_or(100)),
            matches: analysis.match_requests.clone(),
            session_affinity: analysis.session_affinity.clone(),
            skip_analysis: spec.skip_analysis,
            paused: spec.suspend || paused,
            progress_deadline: Duration::from_secs(spec.progress_deadline_seconds.max(1) as u64),
            hooks: Hooks {
                confirm_rollout: has(WebhookType::ConfirmRollout),
                pre_rollout: has(WebhookType::PreRollout),
                confirm_traffic_increase: has(WebhookType::ConfirmTrafficIncrease),
                confirm_promotion: has(WebhookType::ConfirmPromotion),
                post_rollout: has(WebhookType::PostRollout),
                rollback: has(WebhookType::Rollback),
            },
        })
    }

    /// The highest canary weight of a weighted release.
    pub fn max_weight(&self) -> i32 {
        self.ladder.last().copied().unwrap_or(100)
    }

    /// The weight after `weight` on the ladder, if any.
    pub fn next_weight(&self, weight: i32) -> Option<i32> {
        self.ladder.iter().copied().find(|step| *step > weight)
    }
}

/// The weights of a weighted release: `stepWeights` as written, or `stepWeight` repeated up to
/// `maxWeight` (100 by default), the last step clamped to `maxWeight`.
fn ladder(step_weights: Vec<i32>, step_weight: Option<i32>, max_weight: Option<i32>) -> Result<Vec<i32>, PlanError> {
    if !step_weights.is_empty() {
        let increasing = step_weights.windows(2).all(|pair| pair[0] < pair[1]);
        let in_range = step_weights.iter().all(|w| (1..=100).contains(w));
        if !increasing || !in_range {
            return Err(PlanError::Ladder(step_weights));
        }
        let max = max_weight.unwrap_or(100);
        let ladder: Vec<i32> = step_weights.into_iter().filter(|w| *w <= max).collect();
        return match ladder.is_empty() {
            true => Err(PlanError::MaxWeight { max, step: 0 }),
            false => Ok(ladder),
        };
    }
    let step = step_weight.unwrap_or(DEFAULT_STEP_WEIGHT);
    let max = max_weight.unwrap_or(100);
    if max < step {
        return Err(PlanError::MaxWeight { max, step });
    }
    let mut ladder: Vec<i32> = (1..).map(|n| n * step).take_while(|w| *w < max).collect();
    ladder.push(max);
    Ok(ladder)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(analysis: serde_json::Value, provider: &str) -> CanarySpec {
        serde_json::from_value(serde_json::json!({
            "targetRef": {"kind": "Deployment", "name": "web"},
            "provider": provider,
            "service": {"port": 80},
            "analysis": analysis,
        }))
        .unwrap()
    }

    #[test]
    fn step_weight_climbs_to_max_weight() {
        let plan = Plan::new(
            &spec(serde_json::json!({"stepWeight": 20, "maxWeight": 50}), "gatewayapi"),
            false,
        )
        .unwrap();
        assert_eq!(plan.strategy, Strategy::Canary);
        assert_eq!(plan.ladder, vec![20, 40, 50]);
        assert_eq!(plan.next_weight(40), Some(50));
        assert_eq!(plan.next_weight(50), None);
    }

    #[test]
    fn step_weights_are_the_ladder() {
        let plan = Plan::new(
            &spec(serde_json::json!({"stepWeights": [5, 25, 50, 100]}), "gatewayapi"),
            false,
        )
        .unwrap();
        assert_eq!(plan.ladder, vec![5, 25, 50, 100]);
        assert_eq!(plan.max_weight(), 100);
        let err = Plan::new(
            &spec(serde_json::json!({"stepWeights": [5, 50, 25]}), "gatewayapi"),
            false,
        )
        .unwrap_err();
        assert_eq!(err, PlanError::Ladder(vec![5, 50, 25]));
    }

    #[test]
    fn strategy_is_derived_as_flagger_does() {
        let ab = Plan::new(
            &spec(
                serde_json::json!({"iterations": 3, "match": [{"headers": {"x-canary": {"exact": "1"}}}]}),
                "gatewayapi",
            ),
            false,
        )
        .unwrap();
        assert_eq!((ab.strategy, ab.iterations), (Strategy::ABTesting, 3));
        let bg = Plan::new(&spec(serde_json::json!({"iterations": 4}), "gatewayapi"), false).unwrap();
        assert_eq!((bg.strategy, bg.iterations), (Strategy::BlueGreen, 4));
        let kubernetes = Plan::new(&spec(serde_json::json!({}), "kubernetes"), false).unwrap();
        assert_eq!(
            (kubernetes.strategy, kubernetes.iterations),
            (Strategy::BlueGreen, DEFAULT_KUBERNETES_ITERATIONS)
        );
    }

    #[test]
    fn what_a_router_cannot_do_is_refused() {
        let err = Plan::new(&spec(serde_json::json!({"strategy": "Canary"}), "kubernetes"), false).unwrap_err();
        assert!(
            matches!(
                err,
                PlanError::Router {
                    router: "kubernetes",
                    ..
                }
            ),
            "{err}"
        );
        let err = Plan::new(&spec(serde_json::json!({"interval": "500ms"}), "istio"), false).unwrap_err();
        assert!(err.to_string().contains("shortest interval"), "{err}");
    }
}
