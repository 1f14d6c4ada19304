//! The kustomization file.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::fieldspec::FieldSpec;
use crate::generators::{ConfigMapArgs, GeneratorOptions, SecretArgs};
use crate::replacements::ReplacementField;
use crate::transformers::{Image, Replica};
use crate::vars::Var;

/// The names kustomize accepts for a kustomization file, in the order it looks for them.
pub const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// A kustomization (`kind: Kustomization`) or a component (`kind: Component`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kustomization {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default, rename = "openapi")]
    pub open_api: BTreeMap<String, String>,
    #[serde(default)]
    pub name_prefix: String,
    #[serde(default)]
    pub name_suffix: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: Vec<Label>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub patches_strategic_merge: Vec<String>,
    #[serde(default)]
    pub patches_json6902: Vec<Patch>,
    #[serde(default)]
    pub patches: Vec<Patch>,
    #[serde(default)]
    pub images: Vec<Image>,
    #[serde(default)]
    pub image_tags: Vec<Image>,
    #[serde(default)]
    pub replacements: Vec<ReplacementField>,
    #[serde(default)]
    pub replicas: Vec<Replica>,
    #[serde(default)]
    pub vars: Vec<Var>,
    #[serde(default)]
    pub sort_options: Option<SortOptions>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub components: Vec<String>,
    #[serde(default)]
    pub crds: Vec<String>,
    #[serde(default)]
    pub bases: Vec<String>,
    #[serde(default)]
    pub config_map_generator: Vec<ConfigMapArgs>,
    #[serde(default)]
    pub secret_generator: Vec<SecretArgs>,
    #[serde(default)]
    pub helm_globals: Option<Value>,
    #[serde(default)]
    pub helm_charts: Vec<Value>,
    #[serde(default)]
    pub helm_chart_inflation_generator: Vec<Value>,
    #[serde(default)]
    pub generator_options: Option<GeneratorOptions>,
    #[serde(default)]
    pub configurations: Vec<String>,
    #[serde(default)]
    pub generators: Vec<String>,
    #[serde(default)]
    pub transformers: Vec<String>,
    #[serde(default)]
    pub validators: Vec<String>,
    #[serde(default)]
    pub build_metadata: Vec<String>,
}

/// One entry of `labels`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Label {
    #[serde(default)]
    pub pairs: BTreeMap<String, String>,
    #[serde(default)]
    pub include_selectors: bool,
    #[serde(default)]
    pub include_templates: bool,
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
}

/// One entry of `patches` or `patchesJson6902`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Patch {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub patch: String,
    #[serde(default)]
    pub target: Option<Selector>,
    #[serde(default)]
    pub options: BTreeMap<String, bool>,
}

/// A patch target: every part is optional, name and namespace are regular expressions.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub label_selector: String,
    #[serde(default)]
    pub annotation_selector: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SortOptions {
    #[serde(default)]
    pub order: String,
    #[serde(default)]
    pub legacy_sort_options: Option<LegacySortOptions>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LegacySortOptions {
    #[serde(default)]
    pub order_first: Vec<String>,
    #[serde(default)]
    pub order_last: Vec<String>,
}

impl Kustomization {
    /// Parses a kustomization file; unknown fields are errors, as in kustomize.
    pub fn parse(text: &str, limits: &crate::Limits) -> Result<Self> {
        let value = crate::yaml::parse_document(text, limits)?;
        let value = if value.is_null() {
            Value::Object(Default::default())
        } else {
            value
        };
        let empty = is_empty(&value);
        let mut k: Kustomization =
            serde_json::from_value(value).map_err(|e| Error::new(format!("invalid kustomization: {e}")))?;
        if empty {
            return Err(Error::new("kustomization file is empty"));
        }
        k.fix();
        k.check()?;
        Ok(k)
    }

    /// kustomize's FixKustomization: legacy fields folded into their successors.
    fn fix(&mut self) {
        if self.kind.is_empty() {
            self.kind = "Kustomization".into();
        }
        if self.api_version.is_empty() {
            self.api_version = if self.kind == "Component" {
                "kustomize.config.k8s.io/v1alpha1".into()
            } else {
                "kustomize.config.k8s.io/v1beta1".into()
            };
        }
        let bases = std::mem::take(&mut self.bases);
        self.resources.extend(bases);
        let image_tags = std::mem::take(&mut self.image_tags);
        self.images.extend(image_tags);
    }

    fn check(&self) -> Result<()> {
        match self.kind.as_str() {
            "Kustomization" | "Component" => {}
            other => {
                return Err(Error::new(format!(
                    "kind: unknown kind '{other}', expected Kustomization or Component"
                )));
            }
        }
        if !self.helm_charts.is_empty()
            || !self.helm_chart_inflation_generator.is_empty()
            || self.helm_globals.is_some()
        {
            return Err(Error::new(
                "helmCharts: Helm is not supported (it would execute a program)",
            ));
        }
        Ok(())
    }
}

/// kustomize refuses a kustomization that sets nothing but apiVersion and kind (empty values
/// count as unset).
fn is_empty(value: &Value) -> bool {
    let blank = |v: &Value| match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Number(_) | Value::Bool(true) => false,
    };
    value
        .as_object()
        .is_some_and(|m| m.iter().all(|(k, v)| k == "apiVersion" || k == "kind" || blank(v)))
}
