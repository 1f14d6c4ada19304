//! `replicas`: sets the replica count of the named workloads.

use super::*;

/// One entry of `replicas`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replica {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub count: i64,
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

impl ReplicaCountTransformer {
    /// Sets the count on resources that have (or had) the replica's name and a kind a spec
    /// selects. A name that matches nothing is an error.
    pub fn transform(&self, rm: &mut ResMap) -> Result<()> {
        let mut found = false;
        let count = Value::from(self.replica.count);
        for fs in &self.field_specs {
            for r in rm.iter_mut() {
                let matches = r
                    .all_ids()
                    .any(|id| id.name == self.replica.name && fs.selects(&id.gvk));
                if !matches {
                    continue;
                }
                found = true;
                fs.apply_creating(&mut r.obj, CreateKind::Scalar, &mut |node| {
                    set_scalar(node, count.clone())
                })?;
            }
        }
        if !found {
            let kinds: Vec<String> = self.field_specs.iter().map(|fs| gvk_filter_string(&fs.gvk())).collect();
            bail!(
                "resource with name {} does not match a config with the following GVK [{}]",
                self.replica.name,
                kinds.join(" ")
            );
        }
        Ok(())
    }
}
