//! `namespace`: sets the namespace of namespaced objects and of the subjects of RoleBindings and
//! ClusterRoleBindings that name the default ServiceAccount namespace.

use super::*;

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
    /// Only fill namespace fields that are empty.
    #[serde(default)]
    pub unset_only: bool,
    /// Which (Cluster)RoleBinding subjects get the namespace: `defaultOnly` (the default:
    /// subjects named `default`), `allServiceAccounts`, or `none`.
    #[serde(default)]
    pub set_role_binding_subjects: String,
}

impl NamespaceTransformer {
    fn subject_mode(&self) -> Result<SubjectMode> {
        match self.set_role_binding_subjects.as_str() {
            "" | "defaultOnly" => Ok(SubjectMode::NamedDefault),
            "allServiceAccounts" => Ok(SubjectMode::AllServiceAccounts),
            "none" => Ok(SubjectMode::None),
            other => bail!(
                "invalid value \"{other}\" for setRoleBindingSubjects: must be one of \"defaultOnly\", \"none\" or \"allServiceAccounts\""
            ),
        }
    }

    /// Moves every namespaced resource to the namespace (cluster-scoped ones keep theirs),
    /// renames `v1` Namespace objects to it, and fills the namespace fields the field specs
    /// name. Two resources ending with the same id is an error.
    pub fn transform(&self, rm: &mut ResMap) -> Result<()> {
        if self.metadata.namespace.is_empty() {
            return Ok(());
        }
        let mode = self.subject_mode()?;
        for r in rm.iter_mut() {
            if r.obj.is_empty() {
                continue;
            }
            // kustomize records the id before this transformer even when nothing changes.
            r.remember_id();
            self.set_namespace_fields(&mut r.obj, mode)?;
        }
        let mut seen: std::collections::HashMap<(crate::resource::Gvk, String, String), crate::resource::ResId> =
            std::collections::HashMap::new();
        for r in rm.iter() {
            let id = r.id();
            let key = (id.gvk.clone(), id.name.clone(), id.effective_namespace().to_owned());
            if let Some(first) = seen.insert(key, id.clone()) {
                bail!("namespace transformation produces ID conflict: [{first} {id}]");
            }
        }
        Ok(())
    }

    fn set_namespace_fields(&self, obj: &mut Object, mode: SubjectMode) -> Result<()> {
        let namespace = self.metadata.namespace.as_str();
        let mut setter = |node: &mut Value| -> Result<()> {
            if self.unset_only {
                match scalar_text(node) {
                    None => return Err(wrong_node_kind("ScalarNode", node)),
                    Some(text) if !text.is_empty() => return Ok(()),
                    Some(_) => {}
                }
            }
            set_scalar(node, Value::String(namespace.to_owned()))
        };
        let gvk = object_gvk(obj);
        // metadata.namespace is set here for namespaced kinds only, whatever the specs say.
        if gvk.is_namespaced() {
            FieldSpec::new("", "", "", "metadata/namespace", true).apply_creating(
                obj,
                CreateKind::Scalar,
                &mut setter,
            )?;
        }
        let role_binding = is_role_binding(&gvk.kind);
        if role_binding && mode != SubjectMode::None {
            set_subject_namespaces(obj, mode, &mut setter).map_err(|e| {
                Error::new(format!(
                    "setting namespace on (cluster)role binding subjects: {}",
                    e.message
                ))
            })?;
        }
        let is_v1 = obj.get("apiVersion").and_then(Value::as_str) == Some("v1");
        let specs = self.field_specs.iter().filter(|fs| {
            fs.path != "metadata/namespace"
                && (is_v1 || fs.path != "metadata/name")
                && !(role_binding && is_role_binding(&fs.kind) && fs.path == "subjects/namespace")
        });
        for fs in specs {
            fs.apply_creating(obj, CreateKind::Scalar, &mut setter).map_err(|e| {
                let why = if e.message.contains("wrong node kind") {
                    "namespace field specs must target scalar nodes"
                } else {
                    "namespace transformation failed"
                };
                Error::new(format!("{why}: {}", e.message))
            })?;
        }
        Ok(())
    }
}

fn is_role_binding(kind: &str) -> bool {
    kind == "RoleBinding" || kind == "ClusterRoleBinding"
}

/// Subjects named `default` (or, in `allServiceAccounts` mode, every ServiceAccount subject)
/// get the namespace, whatever namespace they named before.
fn set_subject_namespaces(
    obj: &mut Object,
    mode: SubjectMode,
    setter: &mut dyn FnMut(&mut Value) -> Result<()>,
) -> Result<()> {
    let subjects = match obj.get_mut("subjects") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(wrong_node_kind("SequenceNode", other)),
    };
    for subject in subjects {
        let Value::Object(subject) = subject else {
            continue;
        };
        let (field, wanted) = match mode {
            SubjectMode::NamedDefault => ("name", "default"),
            SubjectMode::AllServiceAccounts => ("kind", "ServiceAccount"),
            SubjectMode::None => return Ok(()),
        };
        if subject.get(field).and_then(Value::as_str) == Some(wanted) {
            let namespace = subject
                .entry("namespace")
                .or_insert_with(|| Value::String(String::new()));
            setter(namespace)?;
        }
    }
    Ok(())
}
