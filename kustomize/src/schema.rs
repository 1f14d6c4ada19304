//! What the engine knows about built-in Kubernetes types: which kinds are cluster-scoped, and
//! how strategic merge combines their lists. Tables are generated from Kubernetes' OpenAPI
//! document.
// OWNER: strategic-merge helper. Placeholder until the generated tables land.

use crate::resource::Gvk;

/// Kinds whose objects have no namespace.
pub fn is_cluster_scoped(gvk: &Gvk) -> bool {
    matches!(
        gvk.kind.as_str(),
        "Namespace"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "PersistentVolume"
            | "StorageClass"
            | "PriorityClass"
            | "MutatingWebhookConfiguration"
            | "ValidatingWebhookConfiguration"
            | "APIService"
            | "Node"
            | "IngressClass"
            | "RuntimeClass"
    )
}
