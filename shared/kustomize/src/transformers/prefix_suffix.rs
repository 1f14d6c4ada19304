//! `namePrefix` and `nameSuffix`: rename objects (except the kinds whose names are fixed) through
//! `Resource::set_name`, so that references follow.

use super::*;

#[derive(Clone, Copy)]
enum Affix<'a> {
    Prefix(&'a str),
    Suffix(&'a str),
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

impl PrefixSuffixTransformer {
    /// Adds the prefix to every field the specs name, then the suffix. CustomResourceDefinitions,
    /// APIServices and Namespaces keep their names. A prefix or suffix added to
    /// `metadata/name` is recorded on the resource.
    pub fn transform(&self, rm: &mut ResMap) -> Result<()> {
        if !self.prefix.is_empty() {
            self.add(rm, Affix::Prefix(&self.prefix))?;
        }
        if !self.suffix.is_empty() {
            self.add(rm, Affix::Suffix(&self.suffix))?;
        }
        Ok(())
    }

    fn add(&self, rm: &mut ResMap, affix: Affix<'_>) -> Result<()> {
        for r in rm.iter_mut() {
            // kustomize selects by the id the resource was read with.
            let original = r.org_id().gvk;
            if keeps_its_name(&original) {
                continue;
            }
            for fs in self.field_specs.iter().filter(|fs| fs.selects(&original)) {
                if fs.path == "metadata/name" {
                    match affix {
                        Affix::Prefix(p) => r.prefixes.push(p.to_owned()),
                        Affix::Suffix(s) => r.suffixes.push(s.to_owned()),
                    }
                }
                edit_tracking_id(r, |obj| {
                    fs.apply_creating(obj, CreateKind::Scalar, &mut |node| {
                        let current = scalar_text(node).ok_or_else(|| wrong_node_kind("ScalarNode", node))?;
                        let renamed = match affix {
                            Affix::Prefix(p) => format!("{p}{current}"),
                            Affix::Suffix(s) => format!("{current}{s}"),
                        };
                        set_scalar(node, Value::String(renamed))
                    })
                })?;
            }
        }
        Ok(())
    }
}

fn keeps_its_name(gvk: &Gvk) -> bool {
    match gvk.kind.as_str() {
        "CustomResourceDefinition" | "Namespace" => true,
        "APIService" => gvk.group == "apiregistration.k8s.io",
        _ => false,
    }
}
