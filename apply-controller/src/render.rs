//! From a source Artifact to the objects to apply: download and verify the artifact, unpack it
//! confined to a temporary directory, build `spec.path` with the native kustomize engine (a
//! directory without a kustomization renders all its manifests) and the Kustomization's own
//! overlay fields, stamp `commonMetadata`, and substitute `postBuild` variables.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eddy_api::apply::{KustomizationSpec, ObjectSelector};
use eddy_api::meta::Artifact;
use eddy_kustomize::{self as kustomize, Overlay, OverlayImage, OverlayPatch};
use eddy_remote_base::GitRemoteBases;
use eddy_source::artifact::{self, FetchError};
use serde_json::Value;

use crate::substitute::{self, Variables};

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The artifact could not be downloaded or did not match its digest.
    #[error("{0}")]
    Fetch(#[from] FetchError),
    /// The artifact could not be unpacked.
    #[error("unpacking the artifact: {0}")]
    Unpack(String),
    /// `spec.path` is not a directory inside the artifact.
    #[error("spec.path {path:?}: {reason}")]
    Path {
        /// The path as written.
        path: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// The kustomize build failed.
    #[error("kustomize build of {path:?} failed: {message}")]
    Build {
        /// `spec.path`.
        path: String,
        /// The engine's error, naming the file and field.
        message: String,
    },
    /// Variable substitution failed.
    #[error("{0}")]
    Substitute(#[from] substitute::SubstituteError),
}

impl RenderError {
    /// The condition reason: Flux's `ArtifactFailed` or `BuildFailed`.
    pub fn reason(&self) -> &'static str {
        match self {
            RenderError::Fetch(_) | RenderError::Unpack(_) => "ArtifactFailed",
            _ => "BuildFailed",
        }
    }
}

/// How a render may reach beyond the artifact.
#[derive(Clone, Copy, Debug)]
pub struct Reach {
    /// Largest artifact downloaded, in bytes.
    pub max_artifact_size: u64,
    /// Remote bases are cloned, all of them within this time; refused when `None`.
    pub remote_bases: Option<Duration>,
}

/// Renders that run at once; more wait for a place. A render whose caller timed out keeps its
/// place until its work ends (remote bases stop at the interrupt the caller leaves behind), so
/// slow renders tie up at most this many blocking threads.
pub const RENDERS: usize = 8;
static RENDERING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(RENDERS);

/// Sets its flag when dropped: the render's caller stopped waiting (its timeout passed), so the
/// Git work of remote bases stops too.
struct InterruptOnDrop(Arc<AtomicBool>);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The objects a render produced.
#[derive(Debug)]
pub struct Rendered {
    /// The objects, substituted.
    pub objects: Vec<Value>,
    /// A remote base was read at a branch: the same inputs may render other objects later.
    pub read_a_branch: bool,
}

/// Downloads, verifies and renders `artifact` as `spec` says.
pub async fn render(
    http: &reqwest::Client,
    artifact: &Artifact,
    spec: &KustomizationSpec,
    variables: Option<Variables>,
    reach: Reach,
) -> Result<Rendered, RenderError> {
    let file = artifact::fetch(http, artifact, reach.max_artifact_size).await?;
    let spec = spec.clone();
    let place = RENDERING
        .acquire()
        .await
        .expect("the renders semaphore is never closed");
    let interrupt = InterruptOnDrop(Arc::default());
    let stop = interrupt.0.clone();
    tokio::task::spawn_blocking(move || {
        let _place = place;
        build(file, &spec, variables.as_ref(), reach, stop)
    })
    .await
    .map_err(|e| RenderError::Unpack(format!("the render task failed: {e}")))?
}

fn build(
    file: std::fs::File,
    spec: &KustomizationSpec,
    variables: Option<&Variables>,
    reach: Reach,
    interrupt: Arc<AtomicBool>,
) -> Result<Rendered, RenderError> {
    let max_artifact_size = reach.max_artifact_size;
    let dir = tempfile::tempdir().map_err(|e| RenderError::Unpack(e.to_string()))?;
    let limits = artifact::Limits {
        max_bytes: max_artifact_size.saturating_mul(8),
        ..artifact::Limits::default()
    };
    artifact::unpack(std::io::BufReader::new(file), dir.path(), limits)
        .map_err(|e| RenderError::Unpack(e.to_string()))?;
    let root = dir
        .path()
        .canonicalize()
        .map_err(|e| RenderError::Unpack(e.to_string()))?;
    let written = spec.path.clone().unwrap_or_else(|| "./".into());
    let target = confined(&root, &written)?;
    let remote = reach
        .remote_bases
        .map(|timeout| Arc::new(GitRemoteBases::new(timeout, interrupt)));
    let options = kustomize::Options {
        root: Some(root),
        implicit_kustomization: true,
        overlay: Some(overlay(spec)),
        remote: remote.clone().map(|r| r as Arc<dyn kustomize::RemoteLoader>),
        ..Default::default()
    };
    let resources = kustomize::build(&target, &options).map_err(|e| RenderError::Build {
        path: written.clone(),
        message: e.to_string(),
    })?;
    let mut objects = resources.to_values();
    if let Some(metadata) = &spec.common_metadata {
        for object in &mut objects {
            stamp(object, "labels", &metadata.labels);
            stamp(object, "annotations", &metadata.annotations);
        }
    }
    if let Some(variables) = variables {
        substitute::substitute(&mut objects, variables)?;
    }
    Ok(Rendered {
        objects,
        read_a_branch: remote.is_some_and(|r| r.read_a_branch()),
    })
}

/// `path` inside `root`: relative, without `..` climbing out, an existing directory once links
/// are resolved.
fn confined(root: &Path, path: &str) -> Result<PathBuf, RenderError> {
    let fail = |reason| RenderError::Path {
        path: path.to_owned(),
        reason,
    };
    let relative = Path::new(path.trim_start_matches('/'));
    let mut depth = 0usize;
    for component in relative.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            _ => return Err(fail("leaves the artifact")),
        }
    }
    let target = root
        .join(relative)
        .canonicalize()
        .map_err(|_| fail("no such directory in the artifact"))?;
    if !target.starts_with(root) {
        return Err(fail("leaves the artifact"));
    }
    if !target.is_dir() {
        return Err(fail("is not a directory"));
    }
    Ok(target)
}

/// The Kustomization's own kustomize fields, as an overlay on the top-level kustomization.
fn overlay(spec: &KustomizationSpec) -> Overlay {
    Overlay {
        namespace: spec.target_namespace.clone(),
        name_prefix: spec.name_prefix.clone(),
        name_suffix: spec.name_suffix.clone(),
        patches: spec
            .patches
            .iter()
            .map(|p| OverlayPatch {
                patch: p.patch.clone(),
                target: p.target.as_ref().map(selector),
            })
            .collect(),
        images: spec
            .images
            .iter()
            .map(|i| OverlayImage {
                name: i.name.clone(),
                new_name: i.new_name.clone(),
                new_tag: i.new_tag.clone(),
                digest: i.digest.clone(),
            })
            .collect(),
        components: spec.components.clone(),
    }
}

fn selector(s: &ObjectSelector) -> kustomize::kustfile::Selector {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    kustomize::kustfile::Selector {
        group: text(&s.group),
        version: text(&s.version),
        kind: text(&s.kind),
        name: text(&s.name),
        namespace: text(&s.namespace),
        label_selector: text(&s.label_selector),
        annotation_selector: text(&s.annotation_selector),
    }
}

/// Adds `values` to `metadata.<field>` of `object` (Flux's commonMetadata: metadata only, never
/// selectors or templates).
fn stamp(object: &mut Value, field: &str, values: &std::collections::BTreeMap<String, String>) {
    if values.is_empty() {
        return;
    }
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let map = metadata
        .entry(field)
        .or_insert_with(|| Value::Object(Default::default()));
    if !map.is_object() {
        *map = Value::Object(Default::default());
    }
    if let Some(map) = map.as_object_mut() {
        for (key, value) in values {
            map.insert(key.clone(), Value::String(value.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("apps/prod")).unwrap();
        assert_eq!(confined(&root, "./apps/prod").unwrap(), root.join("apps/prod"));
        assert_eq!(confined(&root, "apps/../apps/prod/").unwrap(), root.join("apps/prod"));
        assert_eq!(confined(&root, "/apps").unwrap(), root.join("apps"));
        for bad in ["../", "apps/../../etc", "missing"] {
            let err = confined(&root, bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
            let err = confined(&root, "escape").unwrap_err().to_string();
            assert!(err.contains("leaves the artifact"), "{err}");
        }
    }

    #[test]
    fn common_metadata_goes_on_metadata_only() {
        let mut object = serde_json::json!({
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}}}
        });
        let labels = [("team".to_owned(), "shop".to_owned())].into();
        stamp(&mut object, "labels", &labels);
        assert_eq!(object["metadata"]["labels"]["team"], "shop");
        assert_eq!(object["metadata"]["labels"]["app"], "web");
        assert!(object["spec"]["selector"]["matchLabels"].get("team").is_none());
    }
}
