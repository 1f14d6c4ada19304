//! Builtin generator and transformer config kinds listed under `generators` and `transformers`
//! (`apiVersion: builtin`, `kind: PrefixSuffixTransformer`, ...). Anything else would be a
//! plugin that executes code, which Eddy never runs.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result, bail};
use crate::fsys::Loader;
use crate::generators::{self, ConfigMapArgs, SecretArgs};
use crate::kustfile::{Patch, SortOptions};
use crate::replacements::ReplacementTransformer;
use crate::resource::{Object, ResMap, Resource};
use crate::transformers::{
    AnnotationsTransformer, ImageTagTransformer, LabelTransformer, NamespaceTransformer, PrefixSuffixTransformer,
    ReplicaCountTransformer,
};
use crate::{patches, target};

/// The config objects one `generators` / `transformers` entry holds: inline YAML, a file, or a
/// directory with a kustomization whose resources are configs.
pub fn load_configs(entry: &str, ldr: &Loader) -> Result<Vec<Resource>> {
    if entry.contains('\n')
        && let Ok(inline) = target::resources_from_text(entry, ldr)
    {
        return Ok(inline);
    }
    if ldr.is_dir(entry) {
        let child = ldr.child(entry)?;
        let rm = crate::target::build_configs(&child)?;
        return Ok(rm.into_iter().collect());
    }
    let (display, text) = ldr.read(entry)?;
    target::resources_from_text(&text, ldr).map_err(|e| e.in_file(display))
}

fn check_builtin(config: &Resource) -> Result<()> {
    let api_version = config.api_version();
    if api_version != "builtin" && !api_version.is_empty() {
        bail!(
            "'{}' ({}) is a plugin; Eddy runs only the builtin kinds (apiVersion: builtin)",
            config.name(),
            config.kind()
        );
    }
    Ok(())
}

/// The config without apiVersion, kind and metadata, deserialized as `T`.
fn body<T: DeserializeOwned>(config: &Resource) -> Result<T> {
    let mut obj: Object = config.obj.clone();
    for key in ["apiVersion", "kind", "metadata"] {
        obj.remove(key);
    }
    from_object(obj, config)
}

fn from_object<T: DeserializeOwned>(obj: Object, config: &Resource) -> Result<T> {
    serde_json::from_value(Value::Object(obj))
        .map_err(|e| Error::new(format!("invalid {} '{}': {e}", config.kind(), config.name())))
}

pub fn generate(config: &Resource, rm: &mut ResMap, ldr: &Loader) -> Result<()> {
    check_builtin(config)?;
    let named = |mut args: ConfigMapArgs| {
        if args.name.is_empty() {
            args.name = config.name().to_owned();
        }
        if args.namespace.is_empty() {
            args.namespace = config.namespace().to_owned();
        }
        args
    };
    match config.kind() {
        "ConfigMapGenerator" => {
            let args = named(body::<ConfigMapArgs>(config)?);
            let cm = generators::config_map(&args, None, ldr)?;
            generators::absorb(rm, cm)
        }
        "SecretGenerator" => {
            let mut args = body::<SecretArgs>(config)?;
            args.args = named(args.args);
            let secret = generators::secret(&args, None, ldr)?;
            generators::absorb(rm, secret)
        }
        other => bail!("'{other}' is not a builtin generator kind"),
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PatchStrategicMergeConfig {
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    patches: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Json6902Config {
    #[serde(default)]
    target: Option<crate::kustfile::Selector>,
    #[serde(default)]
    path: String,
    #[serde(default)]
    json_op: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SortConfig {
    #[serde(default)]
    sort_options: Option<SortOptions>,
}

pub fn transform(config: &Resource, rm: &mut ResMap, ldr: &Loader) -> Result<()> {
    check_builtin(config)?;
    match config.kind() {
        "NamespaceTransformer" => {
            let mut obj = config.obj.clone();
            obj.remove("apiVersion");
            obj.remove("kind");
            from_object::<NamespaceTransformer>(obj, config)?.transform(rm)
        }
        "PrefixSuffixTransformer" | "PrefixTransformer" | "SuffixTransformer" => {
            body::<PrefixSuffixTransformer>(config)?.transform(rm)
        }
        "LabelTransformer" => body::<LabelTransformer>(config)?.transform(rm),
        "AnnotationsTransformer" => body::<AnnotationsTransformer>(config)?.transform(rm),
        "ImageTagTransformer" => body::<ImageTagTransformer>(config)?.transform(rm),
        "ReplicaCountTransformer" => body::<ReplicaCountTransformer>(config)?.transform(rm),
        "ReplacementTransformer" => body::<ReplacementTransformer>(config)?.transform(rm, ldr),
        "PatchTransformer" => patches::patch(rm, &body::<Patch>(config)?, ldr),
        "PatchStrategicMergeTransformer" => {
            let c = body::<PatchStrategicMergeConfig>(config)?;
            let mut entries = c.paths;
            if !c.patches.is_empty() {
                entries.push(c.patches);
            }
            if entries.is_empty() {
                bail!("empty file path and empty patch content");
            }
            patches::patches_strategic_merge(rm, &entries, ldr)
        }
        "PatchJson6902Transformer" => {
            let c = body::<Json6902Config>(config)?;
            let p = Patch {
                path: c.path,
                patch: c.json_op,
                target: c.target,
                options: Default::default(),
            };
            patches::patch_json6902(rm, &p, ldr)
        }
        "SortOrderTransformer" => {
            let c = body::<SortConfig>(config)?;
            crate::sort::sort(rm, c.sort_options.as_ref())
        }
        other => bail!("'{other}' is not a builtin transformer kind"),
    }
}
