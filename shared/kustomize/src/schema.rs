//! What the engine knows about built-in Kubernetes types: which kinds are cluster-scoped, and
//! which lists strategic merge combines element by element. The data lives in `schema/table.rs`,
//! generated from Kubernetes' OpenAPI document by `cargo xtask kustomize-schema`.
//!
//! The table keeps only the lists whose patch strategy includes `merge` and the object types on
//! the way to them; any other field is absent, which strategic merge treats like a field with no
//! schema (its lists are replaced whole).

mod table;

use crate::resource::Gvk;

/// An object type, reduced to the fields that lead to merge lists. Sorted by field name.
#[derive(Debug)]
pub(crate) struct Type {
    pub(crate) fields: &'static [(&'static str, Field)],
}

/// What one field of a [`Type`] holds.
#[derive(Debug)]
pub(crate) enum Field {
    Object(&'static Type),
    /// A map (`additionalProperties`) whose values are objects of this type.
    #[allow(
        dead_code,
        reason = "the generator supports it; the current Kubernetes document needs none"
    )]
    MapOf(&'static Type),
    List(MergeList),
}

/// A list merged element by element (`x-kubernetes-patch-strategy` includes `merge`).
#[derive(Debug)]
pub(crate) struct MergeList {
    /// The element fields that identify an element: `x-kubernetes-list-map-keys` when present,
    /// else `x-kubernetes-patch-merge-key`. Empty for lists of scalars, which merge as sets.
    pub(crate) keys: &'static [&'static str],
    pub(crate) items: Option<&'static Type>,
}

/// Shorthand the generated table uses for list fields.
const fn merge_list(keys: &'static [&'static str], items: Option<&'static Type>) -> Field {
    Field::List(MergeList { keys, items })
}

impl Type {
    pub(crate) fn field(&self, name: &str) -> Option<&'static Field> {
        let i = self.fields.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
        // Safe to index: binary_search returned a position inside the slice.
        let fields: &'static [(&'static str, Field)] = self.fields;
        Some(&fields[i].1)
    }
}

/// The type of a built-in kind, or `None` for kinds the table does not know (custom resources)
/// or whose objects hold no merge lists.
pub(crate) fn kind_type(gvk: &Gvk) -> Option<&'static Type> {
    let key = (gvk.group.as_str(), gvk.version.as_str(), gvk.kind.as_str());
    let i = table::KINDS
        .binary_search_by(|(g, v, k, _)| (*g, *v, *k).cmp(&key))
        .ok()?;
    Some(table::KINDS[i].3)
}

/// Kinds whose objects have no namespace. Matches group, version and kind exactly, as kustomize
/// does; unknown kinds (custom resources) count as namespaced.
pub fn is_cluster_scoped(gvk: &Gvk) -> bool {
    let key = (gvk.group.as_str(), gvk.version.as_str(), gvk.kind.as_str());
    table::CLUSTER_SCOPED.binary_search(&key).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_keys(ty: &Type, path: &[&str]) -> Option<&'static [&'static str]> {
        let (last, parents) = path.split_last()?;
        let mut ty: &Type = ty;
        for name in parents {
            ty = match ty.field(name)? {
                Field::Object(t) | Field::MapOf(t) => t,
                Field::List(list) => list.items?,
            };
        }
        match ty.field(last)? {
            Field::List(list) => Some(list.keys),
            _ => None,
        }
    }

    #[test]
    fn deployment_containers_merge_by_name_and_ports_by_port_and_protocol() {
        let deployment = kind_type(&Gvk::new("apps", "v1", "Deployment")).expect("Deployment is built in");
        assert_eq!(
            list_keys(deployment, &["spec", "template", "spec", "containers"]),
            Some(&["name"][..])
        );
        assert_eq!(
            list_keys(deployment, &["spec", "template", "spec", "containers", "ports"]),
            Some(&["containerPort", "protocol"][..])
        );
        assert_eq!(
            list_keys(deployment, &["spec", "template", "spec", "containers", "env"]),
            Some(&["name"][..])
        );
        assert_eq!(list_keys(deployment, &["metadata", "finalizers"]), Some(&[][..]));
    }

    #[test]
    fn atomic_lists_are_absent_so_they_are_replaced() {
        let pod = kind_type(&Gvk::new("", "v1", "Pod")).expect("Pod is built in");
        assert_eq!(list_keys(pod, &["spec", "tolerations"]), None);
        assert_eq!(list_keys(pod, &["spec", "containers", "args"]), None);
    }

    #[test]
    fn service_ports_merge_by_port_and_protocol() {
        let service = kind_type(&Gvk::new("", "v1", "Service")).expect("Service is built in");
        assert_eq!(list_keys(service, &["spec", "ports"]), Some(&["port", "protocol"][..]));
    }

    #[test]
    fn custom_resources_have_no_type() {
        assert!(kind_type(&Gvk::new("example.com", "v1", "Widget")).is_none());
    }

    #[test]
    fn cluster_scope_follows_the_api_paths() {
        assert!(is_cluster_scoped(&Gvk::new("", "v1", "Namespace")));
        assert!(is_cluster_scoped(&Gvk::new(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole"
        )));
        assert!(is_cluster_scoped(&Gvk::new(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition"
        )));
        assert!(is_cluster_scoped(&Gvk::new("storage.k8s.io", "v1", "StorageClass")));
        assert!(is_cluster_scoped(&Gvk::new(
            "rbac.authorization.k8s.io",
            "v1beta1",
            "ClusterRole"
        )));
        assert!(!is_cluster_scoped(&Gvk::new("apps", "v1", "Deployment")));
        assert!(!is_cluster_scoped(&Gvk::new("", "v1", "ConfigMap")));
        assert!(!is_cluster_scoped(&Gvk::new("example.com", "v1", "Namespace")));
    }
}
