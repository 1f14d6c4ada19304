//! Deletion: the applied objects go or stay as `deletionPolicy` says, and the finalizer is
//! released even when they cannot be deleted (namespace being deleted, account gone or
//! forbidden), so a namespace's deletion is never blocked.

use super::*;

impl Run<'_> {
    /// Deletion: the applied objects go or stay as `deletionPolicy` says; then the finalizer
    /// is removed.
    pub(super) async fn cleanup(self) -> Result<Action, Failure> {
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
    pub(super) async fn namespace_terminating(&self) -> bool {
        let namespaces: Api<Namespace> = Api::all(self.ctx.client.clone());
        matches!(
            namespaces.get_opt(&self.namespace).await,
            Ok(Some(namespace)) if namespace.metadata.deletion_timestamp.is_some()
        )
    }

    /// The account the Kustomization impersonates, when it no longer exists (read as the
    /// controller itself; a failed read says it exists, and the deletes decide).
    pub(super) async fn account_gone(&self) -> Option<String> {
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
    pub(super) async fn skip_collection(&self, why: &str, objects: usize) {
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

/// Waits until every object is gone.
pub(super) async fn wait_gone(applier: &Applier, objects: &[ObjectRef], timeout: Duration) -> Result<(), String> {
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

pub(super) fn count_applied(n: usize) -> String {
    if n == 1 {
        "1 applied object".into()
    } else {
        format!("{n} applied objects")
    }
}
