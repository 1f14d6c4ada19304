//! Apply ordering, as pure functions: which stage an object belongs to and its rank within a
//! stage. Deletes use the reverse order.

use crate::inventory::ObjectRef;

/// The stages of a staged apply, applied (and waited for) in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// CustomResourceDefinitions, Namespaces and ClusterRoles: everything else may need them.
    /// Applied, then waited for until established, then discovery is refreshed.
    ClusterDefinitions,
    /// Kinds whose name ends in `Class` (StorageClass, IngressClass, GatewayClass, ...).
    Classes,
    /// Everything else, in [`KIND_ORDER`].
    Rest,
}

/// The first stage's kinds.
const CLUSTER_DEFINITIONS: [(&str, &str); 3] = [
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("", "Namespace"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
];

/// The apply order of well-known kinds (Flux's `ReconcileOrder`); kinds not listed come after
/// them, alphabetically, and before [`LAST_KINDS`].
pub const KIND_ORDER: [&str; 23] = [
    "CustomResourceDefinition",
    "Namespace",
    "ClusterRole",
    "ClusterClass",
    "RuntimeClass",
    "PriorityClass",
    "StorageClass",
    "VolumeSnapshotClass",
    "IngressClass",
    "GatewayClass",
    "ClusterRoleBinding",
    "ResourceQuota",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "Service",
    "LimitRange",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];

/// Kinds applied last: webhooks would otherwise intercept the objects they are shipped with.
pub const LAST_KINDS: [&str; 2] = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"];

/// The stage an object is applied in.
pub fn stage_of(object: &ObjectRef) -> Stage {
    if CLUSTER_DEFINITIONS
        .iter()
        .any(|(group, kind)| object.group == *group && object.kind == *kind)
    {
        Stage::ClusterDefinitions
    } else if object.kind.ends_with("Class") {
        Stage::Classes
    } else {
        Stage::Rest
    }
}

/// A total order key: stage, kind rank, kind name for unlisted kinds, group, namespace, name.
pub fn sort_key(object: &ObjectRef) -> impl Ord + use<> {
    let rank = match KIND_ORDER.iter().position(|k| *k == object.kind) {
        Some(position) => position,
        None => match LAST_KINDS.iter().position(|k| *k == object.kind) {
            Some(position) => KIND_ORDER.len() + 1 + position,
            None => KIND_ORDER.len(),
        },
    };
    (
        stage_of(object),
        rank,
        object.kind.clone(),
        object.group.clone(),
        object.namespace.clone(),
        object.name.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(api_version: &str, kind: &str, name: &str) -> ObjectRef {
        ObjectRef::new(api_version, kind, "ns", name)
    }

    #[test]
    fn definitions_come_first_then_classes_then_kinds_in_order_and_webhooks_last() {
        let mut objects = vec![
            obj(
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
                "hook",
            ),
            obj("apps/v1", "Deployment", "web"),
            obj("example.com/v1", "Widget", "w"),
            obj("v1", "ConfigMap", "config"),
            obj("storage.k8s.io/v1", "StorageClass", "fast"),
            obj("v1", "ServiceAccount", "sa"),
            obj("rbac.authorization.k8s.io/v1", "RoleBinding", "rb"),
            obj(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "widgets.example.com",
            ),
            obj("v1", "Namespace", "shop"),
            obj("v1", "Secret", "creds"),
            obj("apps/v1", "Deployment", "api"),
        ];
        objects.sort_by_key(sort_key);
        let names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "widgets.example.com",
                "shop",
                "fast",
                "sa",
                "rb",
                "config",
                "creds",
                "api",
                "web",
                "w",
                "hook"
            ]
        );
        assert_eq!(stage_of(&objects[0]), Stage::ClusterDefinitions);
        assert_eq!(stage_of(&objects[2]), Stage::Classes);
        assert_eq!(stage_of(&objects[3]), Stage::Rest);
    }
}
