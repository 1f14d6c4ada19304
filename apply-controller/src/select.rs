//! Object selectors (`spec.ignore[].target` and the like), compiled once from the API's
//! [`ObjectSelector`] and matched against rendered or live objects as JSON.

use std::collections::BTreeMap;

use eddy_api::apply::ObjectSelector;
use eddy_kustomize::LabelSelector;
use regex::Regex;
use serde_json::Value;

/// Why an [`ObjectSelector`] cannot be compiled. `field` is the selector's field, e.g. `name`.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// `name` or `namespace` is not a regular expression.
    #[error("{field}: invalid regular expression: {source}")]
    InvalidRegex {
        /// The selector field.
        field: &'static str,
        /// What the regex parser said.
        #[source]
        source: regex::Error,
    },
    /// `labelSelector` or `annotationSelector` is not a Kubernetes label selector.
    #[error("{field}: invalid selector: {source}")]
    InvalidLabelSelector {
        /// The selector field.
        field: &'static str,
        /// What the selector parser said.
        #[source]
        source: eddy_kustomize::Error,
    },
}

/// A compiled [`ObjectSelector`]. Every field that is set and not empty must match; an empty
/// field means any, as in kustomize, and the empty selector matches every object.
///
/// - `group`, `version` and `kind` are compared exactly with the object's `apiVersion` and `kind`.
///   (Kustomize compiles them as regular expressions too; exact comparison differs only for
///   patterns, and a dot in a group is not a wildcard here.) Since empty means any, the core
///   group cannot be singled out by `group`; `version: v1` with a `kind` does that in practice.
/// - `name` and `namespace` are regular expressions anchored at both ends, as kustomize's patch
///   targets: `web` matches `web` only, `web-.*` matches `web-1`. A cluster-scoped object, or one
///   whose manifest leaves the namespace out, has the empty namespace.
/// - `labelSelector` and `annotationSelector` are Kubernetes label selectors
///   (`app=web,tier in (a,b),!legacy`) over `metadata.labels` and `metadata.annotations`.
#[derive(Clone, Debug)]
pub struct Selector {
    group: Option<String>,
    version: Option<String>,
    kind: Option<String>,
    name: Option<Regex>,
    namespace: Option<Regex>,
    labels: Option<LabelSelector>,
    annotations: Option<LabelSelector>,
}

impl Selector {
    /// Compiles `selector`; an invalid regular expression or label selector is an error naming
    /// the field.
    pub fn new(selector: &ObjectSelector) -> Result<Self, SelectError> {
        Ok(Self {
            group: set(&selector.group).map(str::to_owned),
            version: set(&selector.version).map(str::to_owned),
            kind: set(&selector.kind).map(str::to_owned),
            name: set(&selector.name).map(|p| anchored("name", p)).transpose()?,
            namespace: set(&selector.namespace).map(|p| anchored("namespace", p)).transpose()?,
            labels: set(&selector.label_selector)
                .map(|s| label_selector("labelSelector", s))
                .transpose()?,
            annotations: set(&selector.annotation_selector)
                .map(|s| label_selector("annotationSelector", s))
                .transpose()?,
        })
    }

    /// Whether `object` (a manifest or a live object, as JSON) is selected.
    pub fn matches(&self, object: &Value) -> bool {
        let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str).unwrap_or("");
        let (group, version) = match text("/apiVersion").split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", text("/apiVersion")),
        };
        let exact = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let regex = |want: &Option<Regex>, have: &str| want.as_ref().is_none_or(|re| re.is_match(have));
        exact(&self.group, group)
            && exact(&self.version, version)
            && exact(&self.kind, text("/kind"))
            && regex(&self.name, text("/metadata/name"))
            && regex(&self.namespace, text("/metadata/namespace"))
            && self
                .labels
                .as_ref()
                .is_none_or(|s| s.matches(&string_map(object, "/metadata/labels")))
            && self
                .annotations
                .as_ref()
                .is_none_or(|s| s.matches(&string_map(object, "/metadata/annotations")))
    }
}

/// The field's value, unless unset or empty (kustomize treats both as "any").
fn set(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|s| !s.is_empty())
}

fn anchored(field: &'static str, pattern: &str) -> Result<Regex, SelectError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|source| SelectError::InvalidRegex { field, source })
}

fn label_selector(field: &'static str, text: &str) -> Result<LabelSelector, SelectError> {
    LabelSelector::parse(text).map_err(|source| SelectError::InvalidLabelSelector { field, source })
}

/// The string entries of the map at `pointer`; values of other types are left out.
fn string_map(object: &Value, pointer: &str) -> BTreeMap<String, String> {
    object
        .pointer(pointer)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web-frontend",
                "namespace": "shop",
                "labels": {"app": "web", "tier": "front"},
                "annotations": {"team": "payments"}
            }
        })
    }

    fn selects(selector: ObjectSelector, object: &Value) -> bool {
        Selector::new(&selector).unwrap().matches(object)
    }

    #[test]
    fn empty_selector_matches_every_object() {
        assert!(selects(ObjectSelector::default(), &deployment()));
        assert!(selects(ObjectSelector::default(), &json!({})));
    }

    #[test]
    fn group_version_and_kind_are_compared_exactly() {
        let d = deployment();
        let sel = |group: &str, version: &str, kind: &str| ObjectSelector {
            group: Some(group.into()),
            version: Some(version.into()),
            kind: Some(kind.into()),
            ..Default::default()
        };
        assert!(selects(sel("apps", "v1", "Deployment"), &d));
        assert!(!selects(sel("apps", "v1", "Deploy.*"), &d));
        assert!(selects(sel("", "v1", "Deployment"), &d), "an empty group means any");
        assert!(!selects(sel("apps", "v1", "deployment"), &d));
        assert!(!selects(sel("apps", "v1beta1", "Deployment"), &d));
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert!(selects(
            ObjectSelector {
                version: Some("v1".into()),
                kind: Some("ConfigMap".into()),
                ..Default::default()
            },
            &cm
        ));
        assert!(!selects(
            ObjectSelector {
                group: Some("apps".into()),
                ..Default::default()
            },
            &cm
        ));
    }

    #[test]
    fn name_and_namespace_are_regular_expressions_anchored_at_both_ends() {
        let d = deployment();
        let by_name = |name: &str| ObjectSelector {
            name: Some(name.into()),
            ..Default::default()
        };
        assert!(selects(by_name("web-frontend"), &d));
        assert!(selects(by_name("web-.*"), &d));
        assert!(selects(by_name("api|web-frontend"), &d));
        assert!(!selects(by_name("web"), &d), "a prefix must not match");
        assert!(!selects(by_name("frontend"), &d), "a suffix must not match");
        let by_namespace = |namespace: &str| ObjectSelector {
            namespace: Some(namespace.into()),
            ..Default::default()
        };
        assert!(selects(by_namespace("sh.p"), &d));
        assert!(!selects(by_namespace("sho"), &d));
        let cluster_scoped = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
        assert!(!selects(by_namespace(".+"), &cluster_scoped));
        assert!(selects(by_namespace(".*"), &cluster_scoped));
    }

    #[test]
    fn label_and_annotation_selectors_use_kubernetes_syntax() {
        let d = deployment();
        let by_labels = |s: &str| ObjectSelector {
            label_selector: Some(s.into()),
            ..Default::default()
        };
        assert!(selects(by_labels("app=web,tier in (front,back),!legacy"), &d));
        assert!(!selects(by_labels("app=web,tier notin (front)"), &d));
        assert!(!selects(by_labels("team=payments"), &d), "annotations are not labels");
        let by_annotations = |s: &str| ObjectSelector {
            annotation_selector: Some(s.into()),
            ..Default::default()
        };
        assert!(selects(by_annotations("team=payments"), &d));
        assert!(!selects(by_annotations("app=web"), &d));
    }

    #[test]
    fn every_set_field_must_match() {
        let selector = ObjectSelector {
            kind: Some("Deployment".into()),
            name: Some("web-.*".into()),
            label_selector: Some("app=api".into()),
            ..Default::default()
        };
        assert!(!selects(selector, &deployment()));
    }

    #[test]
    fn empty_fields_mean_any() {
        let selector = ObjectSelector {
            group: Some(String::new()),
            name: Some(String::new()),
            label_selector: Some(String::new()),
            ..Default::default()
        };
        assert!(selects(selector, &deployment()));
    }

    #[test]
    fn invalid_expressions_are_errors_naming_the_field() {
        let err = Selector::new(&ObjectSelector {
            namespace: Some("shop(".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().starts_with("namespace: invalid regular expression"),
            "{err}"
        );
        let err = Selector::new(&ObjectSelector {
            annotation_selector: Some("team in payments".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().starts_with("annotationSelector: invalid selector"),
            "{err}"
        );
    }
}
