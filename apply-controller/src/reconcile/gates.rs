//! The gates before any work: the source's artifact (from the sources' watch stores, no request),
//! the dependencies' readiness, and the refusal of cross-namespace references. Waiting for a
//! source or a dependency is a condition and a requeue, not an error.

use super::*;

impl Run<'_> {
    /// Deletion, suspend handled by the caller; here: cross-namespace refusal, the source's
    /// artifact, and the dependencies.
    pub(super) fn gates(&self) -> Result<Artifact, Stop> {
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
}
