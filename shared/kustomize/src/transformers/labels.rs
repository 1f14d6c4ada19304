//! `labels`/`commonLabels` and `commonAnnotations`: set map entries along the label and
//! annotation field specs (selectors and templates included where kustomize includes them).

use super::*;

/// `commonLabels` / `labels`, kind LabelTransformer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelTransformer {
    #[serde(default, deserialize_with = "scalar_string_map")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub field_specs: Vec<FieldSpec>,
}

/// `commonAnnotations`, kind AnnotationsTransformer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnnotationsTransformer {
    #[serde(default, deserialize_with = "scalar_string_map")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub field_specs: Vec<FieldSpec>,
}

impl LabelTransformer {
    pub fn for_label_entry(label: &Label, config: &TransformerConfig) -> Result<Self> {
        let wrap = |what: &str| {
            let what = what.to_owned();
            move |e: Error| Error::new(format!("{what}: {}", e.message))
        };
        let mut specs = label.fields.clone();
        merge_specs(&mut specs, config.labels.clone()).map_err(wrap("failed to merge labels"))?;
        if label.include_selectors {
            merge_specs(&mut specs, config.common_labels.clone()).map_err(wrap("failed to merge labels"))?;
        } else {
            if label.include_templates {
                merge_specs(&mut specs, config.template_labels.clone())
                    .map_err(wrap("failed to merge template fieldSpec"))?;
            }
            merge_specs(&mut specs, vec![FieldSpec::new("", "", "", "metadata/labels", true)])
                .map_err(wrap("failed to merge labels"))?;
        }
        Ok(Self {
            labels: label.pairs.clone(),
            field_specs: specs,
        })
    }

    /// Sets every label on every field the specs name, creating maps where a spec says so.
    pub fn transform(&self, rm: &mut ResMap) -> Result<()> {
        set_map_entries(rm, &self.labels, &self.field_specs)
    }
}

impl AnnotationsTransformer {
    /// Sets every annotation on every field the specs name, creating maps where a spec says so.
    pub fn transform(&self, rm: &mut ResMap) -> Result<()> {
        set_map_entries(rm, &self.annotations, &self.field_specs)
    }
}

fn set_map_entries(rm: &mut ResMap, entries: &BTreeMap<String, String>, specs: &[FieldSpec]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    for r in rm.iter_mut() {
        for (key, value) in entries {
            for fs in specs {
                fs.apply_creating(&mut r.obj, CreateKind::Map, &mut |node| set_entry(node, key, value))?;
            }
        }
    }
    Ok(())
}
