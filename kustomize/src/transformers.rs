//! The builtin transformers that walk field specs: namespace, name prefix and suffix, labels,
//! annotations, images and replicas. Each config deserializes from both the kustomization field
//! and the builtin config kind (`kind: PrefixSuffixTransformer` in `transformers:`).
// OWNER: transformers helper.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::Result;
use crate::fieldspec::FieldSpec;
use crate::resource::ResMap;

/// One entry of `images`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Image {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub new_name: String,
    #[serde(default)]
    pub new_tag: String,
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub tag_suffix: String,
}

/// One entry of `replicas`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replica {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub count: i64,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceMeta {
    #[serde(default)]
    pub namespace: String,
}

/// `namespace`, kind NamespaceTransformer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceTransformer {
    #[serde(default)]
    pub metadata: NamespaceMeta,
    #[serde(default)]
    pub field_specs: Vec<FieldSpec>,
    #[serde(default)]
    pub unset_only: bool,
    #[serde(default)]
    pub set_role_binding_subjects: String,
}

/// `namePrefix` / `nameSuffix`, kinds PrefixTransformer, SuffixTransformer, PrefixSuffixTransformer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrefixSuffixTransformer {
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub suffix: String,
    #[serde(default)]
    pub field_specs: Vec<FieldSpec>,
}

/// `commonLabels` / `labels`, kind LabelTransformer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelTransformer {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub field_specs: Vec<FieldSpec>,
}

/// `commonAnnotations`, kind AnnotationsTransformer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnnotationsTransformer {
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub field_specs: Vec<FieldSpec>,
}

/// One entry of `images`, kind ImageTagTransformer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageTagTransformer {
    #[serde(default)]
    pub image_tag: Image,
    #[serde(default)]
    pub field_specs: Vec<FieldSpec>,
}

/// One entry of `replicas`, kind ReplicaCountTransformer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaCountTransformer {
    #[serde(default)]
    pub replica: Replica,
    #[serde(default)]
    pub field_specs: Vec<FieldSpec>,
}

impl NamespaceTransformer {
    pub fn transform(&self, rm: &mut ResMap) -> Result<()> {
        let _ = rm;
        Ok(())
    }
}

impl PrefixSuffixTransformer {
    pub fn transform(&self, rm: &mut ResMap) -> Result<()> {
        let _ = rm;
        Ok(())
    }
}

impl LabelTransformer {
    pub fn transform(&self, rm: &mut ResMap) -> Result<()> {
        let _ = rm;
        Ok(())
    }
}

impl AnnotationsTransformer {
    pub fn transform(&self, rm: &mut ResMap) -> Result<()> {
        let _ = rm;
        Ok(())
    }
}

impl ImageTagTransformer {
    pub fn transform(&self, rm: &mut ResMap) -> Result<()> {
        let _ = rm;
        Ok(())
    }
}

impl ReplicaCountTransformer {
    pub fn transform(&self, rm: &mut ResMap) -> Result<()> {
        let _ = rm;
        Ok(())
    }
}
