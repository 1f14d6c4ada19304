//! Health: of the applied objects with `wait`, of `healthChecks` otherwise; answered by the apply's
//! response or the live cache where they can, read from the cluster where not; and the Ready and
//! Healthy conditions it decides.

use super::*;

impl Run<'_> {
    /// Health when nothing was applied: from the live cache for the applied objects; objects it
    /// cannot vouch for are read from the cluster.
    pub(super) async fn check_health_cached(
        &mut self,
        previous: &Applied,
        applier: &Applier,
        revision: &str,
    ) -> Result<(), Stop> {
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
    pub(super) fn mark_applied(&mut self, revision: &str, health: Option<String>) {
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
    pub(super) fn health_targets(&self, applied: Vec<ObjectRef>) -> Vec<ObjectRef> {
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

    pub(super) async fn check_health(
        &mut self,
        applier: &Applier,
        change_set: &ChangeSet,
    ) -> Result<Option<String>, Stop> {
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
    pub(super) async fn wait_healthy(
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

    pub(super) fn set_healthy(&mut self, state: Status, reason: &str, message: String) {
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
}

pub(super) fn count(n: usize) -> String {
    if n == 1 {
        "1 object".into()
    } else {
        format!("{n} objects")
    }
}
