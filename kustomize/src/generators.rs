//! configMapGenerator and secretGenerator, and kustomize's content-hash name suffix.
// OWNER: generators helper.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Result, bail};
use crate::fsys::Loader;
use crate::resource::{Behavior, ResMap, Resource};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeneratorOptions {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub disable_name_suffix_hash: bool,
    #[serde(default)]
    pub immutable: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMapArgs {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub behavior: Behavior,
    #[serde(default)]
    pub literals: Vec<String>,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub envs: Vec<String>,
    #[serde(default)]
    pub env: String,
    #[serde(default)]
    pub options: Option<GeneratorOptions>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretArgs {
    #[serde(flatten)]
    pub args: ConfigMapArgs,
    #[serde(default, rename = "type")]
    pub kind: String,
}

/// Makes the ConfigMap one `configMapGenerator` entry describes. `global` is the
/// kustomization's `generatorOptions`.
pub fn config_map(args: &ConfigMapArgs, global: Option<&GeneratorOptions>, ldr: &Loader) -> Result<Resource> {
    let _ = (args, global, ldr);
    bail!("configMapGenerator is not implemented yet")
}

/// Makes the Secret one `secretGenerator` entry describes.
pub fn secret(args: &SecretArgs, global: Option<&GeneratorOptions>, ldr: &Loader) -> Result<Resource> {
    let _ = (args, global, ldr);
    bail!("secretGenerator is not implemented yet")
}

/// Adds a generated resource to `rm` according to its behavior (create, merge, replace).
pub fn absorb(rm: &mut ResMap, generated: Resource) -> Result<()> {
    rm.append(generated)
}

/// Appends the content hash to the name of every generated resource that wants one.
pub fn add_hash_suffixes(rm: &mut ResMap) -> Result<()> {
    let _ = rm;
    Ok(())
}
