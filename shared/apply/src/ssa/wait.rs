//! Waiting for health: reads objects through discovery ([`Resolver`]) until their kstatus health
//! ([`crate::status::assess`]) is Current, failing fast once one Failed. Kept in the engine, so
//! that [`crate::status`] stays the pure assessment the engine and the cache build on.

use std::collections::BTreeMap;

use kube::api::{Api, DynamicObject};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Resolver, api_message};
use crate::inventory::ObjectRef;
use crate::status::{Health, ObjectHealth, State, WaitError, WaitOptions, assess};

/// Reads the health of one object now.
pub async fn health_of(resolver: &Resolver, object: &ObjectRef) -> Health {
    let api: Api<DynamicObject> = match resolver.api_for(object).await {
        Ok(api) => api,
        Err(err) => {
            return Health {
                state: State::Unknown,
                message: err.to_string(),
            };
        }
    };
    match api.get_opt(&object.name).await {
        Ok(Some(live)) => match serde_json::to_value(&live) {
            Ok(value) => assess(&value),
            Err(err) => Health {
                state: State::Unknown,
                message: format!("unreadable object: {err}"),
            },
        },
        Ok(None) if object.group == "batch" && object.kind == "Job" => {
            // A Job with ttlSecondsAfterFinished disappears once done; Flux counts that as done.
            Health::current("job finished and was deleted")
        }
        Ok(None) => Health {
            state: State::NotFound,
            message: "not found".into(),
        },
        Err(err) => Health {
            state: State::Unknown,
            message: format!("get failed: {}", api_message(&err)),
        },
    }
}

/// Polls `objects` every `options.interval` until all are Current, returning their health. Stops
/// early (fail-fast) when each object is Current or Failed and at least one Failed.
pub async fn wait(
    resolver: &Resolver,
    objects: &[ObjectRef],
    options: &WaitOptions,
) -> Result<Vec<ObjectHealth>, WaitError> {
    wait_observed(resolver, objects, options, &|_: &ObjectRef| None, None).await
}

/// [`wait`], reading health from `observed` where it answers (a watch cache) and from the API
/// server where it says `None`. While every object still waited for is answered by `observed`,
/// a round starts as soon as `changes` is marked (or after `options.interval`), not on a timer
/// alone. An object `observed` reported unhealthy is read from the API server once more before
/// the wait fails, so the error states what the cluster says, not what a lagging cache saw.
pub async fn wait_observed(
    resolver: &Resolver,
    objects: &[ObjectRef],
    options: &WaitOptions,
    observed: &(dyn Fn(&ObjectRef) -> Option<Health> + Sync),
    mut changes: Option<watch::Receiver<()>>,
) -> Result<Vec<ObjectHealth>, WaitError> {
    let deadline = Instant::now() + options.timeout;
    let mut last: BTreeMap<ObjectRef, Health> = BTreeMap::new();
    loop {
        if let Some(changes) = &mut changes {
            changes.mark_unchanged();
        }
        let mut polled = false;
        for object in objects {
            if last.get(object).is_some_and(|h| h.state == State::Current) {
                continue;
            }
            let health = match observed(object) {
                Some(health) => health,
                None => {
                    polled = true;
                    health_of(resolver, object).await
                }
            };
            last.insert(object.clone(), health);
        }
        let not_current = |last: &BTreeMap<ObjectRef, Health>| -> Vec<ObjectHealth> {
            objects
                .iter()
                .filter(|object| last[*object].state != State::Current)
                .map(|object| ObjectHealth {
                    object: object.clone(),
                    health: last[object].clone(),
                })
                .collect()
        };
        let pending = not_current(&last);
        if pending.is_empty() {
            return Ok(objects
                .iter()
                .map(|object| ObjectHealth {
                    object: object.clone(),
                    health: last[object].clone(),
                })
                .collect());
        }
        let settled = pending.iter().all(|o| o.health.state == State::Failed);
        let out_of_time = Instant::now() + options.interval > deadline;
        if (options.fail_fast && settled) || out_of_time {
            // The verdict is the cluster's: what the cache reported is read once more.
            for object in &pending {
                if observed(&object.object).is_some() {
                    last.insert(object.object.clone(), health_of(resolver, &object.object).await);
                }
            }
            let pending = not_current(&last);
            if pending.is_empty() {
                continue;
            }
            if options.fail_fast && pending.iter().all(|o| o.health.state == State::Failed) {
                return Err(WaitError::Failed { failed: pending });
            }
            if out_of_time {
                return Err(WaitError::Timeout {
                    timeout: options.timeout,
                    unhealthy: pending,
                });
            }
        }
        let closed = match &mut changes {
            Some(changes) if !polled => {
                matches!(
                    tokio::time::timeout(options.interval, changes.changed()).await,
                    Ok(Err(_))
                )
            }
            _ => {
                tokio::time::sleep(options.interval).await;
                false
            }
        };
        if closed {
            // The cache is gone: poll on the timer from now on.
            changes = None;
        }
    }
}
