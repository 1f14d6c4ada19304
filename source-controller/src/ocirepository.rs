//! The OCIRepository reconciler: resolve the tag, semver range or digest to a manifest digest
//! (a HEAD request, no pull), and only when it or the layer selection changed, pull the selected
//! layer with its digest verified, then either unpack it (confined) and repack it reproducibly
//! with the ignore rules, or store it as it is. A failure keeps the previous artifact served.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use eddy_api::source::{OCILayerOperation, OCIRepository, OCIRepositoryStatus};
use eddy_runtime::Context;
use eddy_source::artifact::{self, Limits, pack};
use eddy_source::oci::{self, Repository};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use oci_client::secrets::RegistryAuth;

use crate::Sources;
use crate::credentials::CredentialsError;
use crate::reconcile::{self, Failure, NewArtifact, SourceError, SourceKind, SourceStatus};

/// The largest layer pulled; far above any manifest bundle.
const MAX_LAYER_BYTES: u64 = 512 << 20;

impl SourceKind for OCIRepository {
    type Status = OCIRepositoryStatus;

    fn current_status(&self) -> Option<&OCIRepositoryStatus> {
        self.status.as_ref()
    }

    fn interval(&self) -> Duration {
        self.spec.interval.to_std().unwrap_or(Duration::from_secs(60))
    }

    fn suspended(&self) -> bool {
        self.spec.suspend
    }

    fn source_status(status: &mut OCIRepositoryStatus) -> SourceStatus<'_> {
        SourceStatus {
            conditions: &mut status.conditions,
            artifact: status.artifact.as_ref(),
            observed_generation: &mut status.observed_generation,
            last_handled_reconcile_at: &mut status.last_handled_reconcile_at,
        }
    }
}

/// Reconciles one OCIRepository. Registry calls run within `spec.timeout`.
pub async fn reconcile(obj: Arc<OCIRepository>, ctx: Arc<Context>, sources: Arc<Sources>) -> Result<Action, Failure> {
    let (ctx, sources) = (ctx.as_ref(), sources.as_ref());
    reconcile::reconcile_source(obj, ctx, sources, |obj, mut status| async move {
        let timeout = obj.spec.timeout.to_std().unwrap_or(Duration::from_secs(60));
        let outcome = match tokio::time::timeout(timeout, fetch_and_store(&obj, ctx, sources, &mut status)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(SourceError::Timeout {
                url: obj.spec.url.clone(),
                timeout: obj.spec.timeout.to_string(),
            }),
        };
        (status, outcome)
    })
    .await
}

async fn fetch_and_store(
    obj: &OCIRepository,
    ctx: &Context,
    sources: &Sources,
    status: &mut OCIRepositoryStatus,
) -> Result<Option<NewArtifact>, SourceError> {
    let repository = Repository::parse(&obj.spec.url)?;
    let auth = match &obj.spec.secret_ref {
        Some(secret) => {
            registry_auth(
                ctx,
                &obj.namespace().unwrap_or_default(),
                &secret.name,
                &repository.registry,
            )
            .await?
        }
        None => RegistryAuth::Anonymous,
    };
    let client = oci::client(obj.spec.insecure);
    let reference = obj.spec.reference.clone().unwrap_or_default();
    let resolved = oci::resolve(&client, &auth, &repository, &reference).await?;

    let selector = obj.spec.layer_selector.clone();
    let unchanged = status
        .artifact
        .as_ref()
        .is_some_and(|a| a.revision == resolved.revision && sources.store.contains(a))
        && status.observed_layer_selector == selector
        && status.observed_ignore == obj.spec.ignore;
    if unchanged {
        tracing::debug!(revision = %resolved.revision, "artifact unchanged; nothing pulled");
        return Ok(None);
    }

    let media_type = selector.as_ref().and_then(|s| s.media_type.clone());
    let layer = oci::pull_layer(
        &client,
        &auth,
        &repository,
        &resolved.digest,
        media_type.as_deref(),
        MAX_LAYER_BYTES,
    )
    .await?;
    let operation = selector
        .as_ref()
        .and_then(|s| s.operation)
        .unwrap_or(OCILayerOperation::Extract);
    let owner = reconcile::owner(obj);
    let store = sources.store.clone();
    let revision = resolved.revision.clone();
    let ignore = obj.spec.ignore.clone();
    let (mut artifact, dropped) = reconcile::run_blocking(move || -> Result<_, SourceError> {
        match operation {
            OCILayerOperation::Copy => {
                let mut blob = layer.file;
                let (artifact, _) = store
                    .put(&owner, &revision, |w| std::io::copy(&mut blob, w))
                    .map_err(|e| SourceError::Storage(e.to_string()))?;
                Ok((artifact, Vec::new()))
            }
            OCILayerOperation::Extract => {
                let work = tempfile::tempdir().map_err(|e| SourceError::Storage(e.to_string()))?;
                artifact::unpack(layer.file, work.path(), Limits::default())
                    .map_err(|e| SourceError::Storage(format!("layer {}: {e}", layer.media_type)))?;
                let (artifact, packed) = store
                    .put(&owner, &revision, |w| pack(work.path(), ignore.as_deref(), w))
                    .map_err(|e| SourceError::Storage(e.to_string()))?;
                Ok((artifact, packed.dropped))
            }
        }
        .map(|(mut artifact, dropped): (eddy_api::meta::Artifact, _)| {
            artifact.metadata = layer.annotations.clone().into_iter().collect::<BTreeMap<_, _>>();
            (artifact, dropped)
        })
    })
    .await?;
    artifact
        .metadata
        .retain(|key, _| key.starts_with("org.opencontainers.image."));
    tracing::info!(revision = %artifact.revision, digest = %artifact.digest, "stored artifact");
    sources
        .store
        .collect_garbage(&reconcile::owner(obj), sources.retention, &artifact.path)
        .map_err(|e| SourceError::Storage(format!("garbage collection: {e}")))?;
    status.artifact = Some(artifact);
    status.url = Some(obj.spec.url.clone());
    status.observed_layer_selector = selector;
    status.observed_ignore = obj.spec.ignore.clone();
    Ok(Some(NewArtifact {
        summary: format!("digest {}", resolved.digest),
        dropped,
    }))
}

/// Credentials for `registry` from a `kubernetes.io/dockerconfigjson` Secret.
async fn registry_auth(
    ctx: &Context,
    namespace: &str,
    name: &str,
    registry: &str,
) -> Result<RegistryAuth, CredentialsError> {
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| CredentialsError::Read {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            message: e.to_string(),
        })?
        .ok_or_else(|| CredentialsError::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })?;
    let invalid = |problem: String| CredentialsError::Invalid {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        problem,
    };
    let data = secret.data.unwrap_or_default();
    let config = data
        .get(".dockerconfigjson")
        .ok_or_else(|| invalid("has no .dockerconfigjson key (type kubernetes.io/dockerconfigjson)".into()))?;
    oci::docker_config_auth(&config.0, registry).map_err(invalid)
}
