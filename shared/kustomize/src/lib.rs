//! A native kustomize v5 engine.
//!
//! [`build`] renders a kustomization directory to resources in the order `kustomize build`
//! prints them. Nothing is read outside [`Options::root`], remote bases are refused unless a
//! [`RemoteLoader`] is given, and nothing is ever executed: no plugins, no functions, no Helm.

pub mod error;
pub mod fieldspec;
pub mod fsys;
#[doc(hidden)]
pub mod fuzzing;
pub mod kustfile;
pub mod resource;
pub mod yaml;

mod builtin;
mod generators;
mod nameref;
mod patches;
mod plugins;
mod replacements;
mod schema;
mod smp;
mod sort;
mod target;
mod transformers;
mod vars;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{Error, Result};
pub use replacements::selector::LabelSelector;
pub use resource::{Gvk, ResId, ResMap, Resource};

/// Fetches a remote base (`github.com/org/repo//path?ref=v1`) into a local directory.
/// The engine itself never touches the network.
pub trait RemoteLoader: Send + Sync {
    /// Returns a directory holding the base, and the root it is confined to.
    fn fetch(&self, url: &str) -> std::result::Result<(PathBuf, PathBuf), String>;
}

/// Upper bounds on what one build may cost.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest file read, in bytes.
    pub max_file_bytes: usize,
    /// Most bytes read over the whole build.
    pub max_total_bytes: usize,
    /// Deepest nesting of YAML collections.
    pub max_depth: usize,
    /// Most aliases (and anchors) in one file.
    pub max_aliases: usize,
    /// Most documents in one file.
    pub max_documents: usize,
    /// Most YAML nodes in one file.
    pub max_nodes: usize,
    /// Deepest chain of kustomizations including bases and components.
    pub max_kustomization_depth: usize,
    /// Wall-clock bound on the whole build.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_bytes: 16 << 20,
            max_total_bytes: 512 << 20,
            max_depth: 128,
            max_aliases: 10_000,
            max_documents: 200_000,
            max_nodes: 20_000_000,
            max_kustomization_depth: 64,
            timeout: Duration::from_secs(120),
        }
    }
}

/// How a build is confined.
#[derive(Clone, Default)]
pub struct Options {
    /// Nothing outside this directory is read. Defaults to the kustomization directory itself.
    pub root: Option<PathBuf>,
    /// Loader for remote bases; `None` refuses them with an error.
    pub remote: Option<std::sync::Arc<dyn RemoteLoader>>,
    /// When the directory holds no kustomization file, render every manifest under it (and
    /// every subdirectory with a kustomization, as a base), as Flux does. Without it, a missing
    /// kustomization file is an error, as in kustomize.
    pub implicit_kustomization: bool,
    /// Changes made to the top-level kustomization before it is built.
    pub overlay: Option<Overlay>,
    pub limits: Limits,
}

/// What a caller adds to the top-level kustomization, as Flux's Kustomization fields do: the
/// namespace and name affixes replace the file's, patches, images and components are appended.
#[derive(Clone, Debug, Default)]
pub struct Overlay {
    /// `namespace`.
    pub namespace: Option<String>,
    /// `namePrefix`.
    pub name_prefix: Option<String>,
    /// `nameSuffix`.
    pub name_suffix: Option<String>,
    /// Inline patches, each with an optional target.
    pub patches: Vec<OverlayPatch>,
    /// `images` entries.
    pub images: Vec<OverlayImage>,
    /// Components, relative to the kustomization's directory.
    pub components: Vec<String>,
}

/// An inline patch of an [`Overlay`].
#[derive(Clone, Debug, Default)]
pub struct OverlayPatch {
    /// A strategic merge patch or a JSON 6902 patch, as YAML or JSON.
    pub patch: String,
    /// The objects to patch.
    pub target: Option<kustfile::Selector>,
}

/// An `images` entry of an [`Overlay`].
#[derive(Clone, Debug, Default)]
pub struct OverlayImage {
    /// The image name as written in the manifests.
    pub name: String,
    /// Replacement name.
    pub new_name: Option<String>,
    /// Replacement tag.
    pub new_tag: Option<String>,
    /// Replacement digest.
    pub digest: Option<String>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("root", &self.root)
            .field("remote", &self.remote.is_some())
            .field("implicit_kustomization", &self.implicit_kustomization)
            .field("overlay", &self.overlay)
            .field("limits", &self.limits)
            .finish()
    }
}

/// Renders the kustomization in `dir` to resources in output order.
pub fn build(dir: &Path, options: &Options) -> Result<ResMap> {
    target::build(dir, options)
}

/// [`build`], printed as multi-document YAML.
pub fn render(dir: &Path, options: &Options) -> Result<String> {
    build(dir, options).map(|rm| rm.to_yaml())
}
