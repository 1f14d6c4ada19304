//! postBuild variables, read as the Kustomization's identity, and the key of every input the
//! rendered objects depend on besides the cluster (what the fast path compares).

use super::*;

impl Run<'_> {
    /// The postBuild variables: substituteFrom in order (later entries win), then the inline
    /// ones. Read as the Kustomization's identity, so a tenant reads only what it may.
    pub(super) async fn variables(&self, applier: &Applier) -> Result<Option<Variables>, Stop> {
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
    pub(super) fn input_key(&self, artifact: &Artifact, variables: Option<&Variables>) -> u64 {
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
}
