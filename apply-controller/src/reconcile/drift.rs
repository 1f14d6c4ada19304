//! Drift: drifted objects compared with a server-side dry-run and reported (fields and the
//! managers that changed them), what `status.drift` keeps, and the objects another writer
//! contests (`DriftContested`).

use super::*;

impl Run<'_> {
    /// Compares the drifted objects with their desired state and reports the difference: one
    /// event (when the set of drifted fields is new) and the returned status entries.
    pub(super) async fn report_drift(
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

    /// Shows the objects another writer keeps changing back ([`DRIFT_CONTESTED`]), with an event
    /// when the set is new; removes the condition once no object is contested.
    pub(super) async fn report_contests(&mut self) {
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
}

/// What `status.drift` shows after a comparison found `found`: that, when it found drift;
/// otherwise the corrections shown before (what was corrected since the revision was applied, kept
/// until a new revision or a newer drift), without the uncorrected entries, which are resolved.
pub(super) fn resolved(shown: &[DriftReport], found: Vec<DriftReport>) -> Vec<DriftReport> {
    if !found.is_empty() {
        return found;
    }
    shown.iter().filter(|d| d.corrected).cloned().collect()
}

/// The same object, whatever the version it is written in.
pub(super) fn same_object(a: &ObjectRef, b: &ObjectRef) -> bool {
    a.group == b.group
        && a.kind == b.kind
        && a.name == b.name
        && (a.namespace == b.namespace || a.namespace.is_empty() || b.namespace.is_empty())
}

pub(super) fn describe_drift(report: &DriftReport) -> String {
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
