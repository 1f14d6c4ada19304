//! Reaching the objects events are about and Receivers annotate, by apiVersion and kind only:
//! the kinds are few and known (Eddy's and Flux's), so their plural is derived instead of asking
//! discovery on every call.

use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};

/// The plural resource name of `kind`, by the rules Kubernetes' own kinds follow.
pub fn plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    if lower.ends_with('s') || lower.ends_with("ch") || lower.ends_with('x') {
        return format!("{lower}es");
    }
    format!("{lower}s")
}

/// The API of `kind` objects of `api_version` in `namespace`.
pub fn api(client: &Client, api_version: &str, kind: &str, namespace: &str) -> Api<DynamicObject> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &plural(kind));
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// The annotation that asks the controller of `api_version`'s group to reconcile at once.
pub fn requested_at_annotation(api_version: &str) -> &'static str {
    if crate::event::group_of(api_version).ends_with(".toolkit.fluxcd.io") || api_version.starts_with("flagger.app/") {
        "reconcile.fluxcd.io/requestedAt"
    } else {
        eddy_api::meta::RECONCILE_REQUESTED_AT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_of_the_known_kinds() {
        assert_eq!(plural("GitRepository"), "gitrepositories");
        assert_eq!(plural("OCIRepository"), "ocirepositories");
        assert_eq!(plural("Kustomization"), "kustomizations");
        assert_eq!(plural("ImagePolicy"), "imagepolicies");
        assert_eq!(plural("Bucket"), "buckets");
        assert_eq!(plural("HelmRelease"), "helmreleases");
        assert_eq!(plural("ImageUpdateAutomation"), "imageupdateautomations");
        assert_eq!(plural("Canary"), "canaries");
    }

    #[test]
    fn flux_objects_get_fluxs_annotation() {
        assert_eq!(
            requested_at_annotation("kustomize.toolkit.fluxcd.io/v1"),
            "reconcile.fluxcd.io/requestedAt"
        );
        assert_eq!(
            requested_at_annotation("apply.eddy.dev/v1alpha1"),
            "reconcile.eddy.dev/requestedAt"
        );
    }
}
