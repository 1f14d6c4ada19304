//! A Kustomization's `spec.ignore`: fields the controller neither compares nor corrects. Compiled
//! once per reconcile from the spec; applied to each desired object before server-side apply and
//! to each desired/live pair before drift is compared.

use std::cmp::Ordering;

use eddy_api::apply::IgnoreRule;
use serde_json::Value;

use crate::select::{SelectError, Selector};

/// Why `spec.ignore` cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    /// A path is not a JSON Pointer, or points at something that cannot be ignored.
    #[error("ignore[{rule}].paths[{path}]: '{pointer}' {problem}")]
    InvalidPath {
        /// Index of the rule.
        rule: usize,
        /// Index of the path in the rule.
        path: usize,
        /// The path as written.
        pointer: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The rule's target is not a valid selector.
    #[error("ignore[{rule}].target.{source}")]
    InvalidTarget {
        /// Index of the rule.
        rule: usize,
        /// What is wrong with the selector.
        #[source]
        source: SelectError,
    },
}

/// A compiled JSON Pointer: the text as written and its unescaped segments.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pointer {
    text: String,
    segments: Vec<String>,
}

#[derive(Clone, Debug)]
struct Rule {
    paths: Vec<Pointer>,
    target: Option<Selector>,
}

/// The compiled `spec.ignore` rules.
///
/// Paths are JSON Pointers (RFC 6901): `/spec/replicas`,
/// `/metadata/annotations/example.com~1note` (`~1` is `/`, `~0` is `~`). A numeric segment is a
/// position in a list (`/spec/template/spec/containers/0/image`), taken as is on both the desired
/// and the live object: a list whose items moved (a sidecar injected first) shifts what it
/// names. There are no wildcards. A path that does not exist in an object is skipped.
///
/// A rule's `target` is evaluated on the desired object when there is one (see
/// [`IgnoreRules::apply_to_desired`] and [`IgnoreRules::strip_pair`]), so a label edited on the
/// live object does not change which fields are ignored.
#[derive(Clone, Debug, Default)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

/// Pointers that cannot be ignored, with everything under them: the object's identity, and
/// metadata only the API server writes (copying the live value of these into an apply request
/// would make the request invalid or conditional).
const PROTECTED: &[&[&str]] = &[
    &["apiVersion"],
    &["kind"],
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "managedFields"],
    &["metadata", "resourceVersion"],
    &["metadata", "uid"],
];

impl IgnoreRules {
    /// Compiles the rules. Errors name the rule and path: a path that is not a JSON Pointer
    /// starting with `/` (or has an escape other than `~0` and `~1`), a path naming the object's
    /// identity (`/apiVersion`, `/kind`, `/metadata`, `/metadata/name`, `/metadata/namespace`) or
    /// API-server-maintained metadata (`managedFields`, `resourceVersion`, `uid`), and a target
    /// that is not a valid selector.
    pub fn new(rules: &[IgnoreRule]) -> Result<Self, IgnoreError> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(rule, r)| {
                let paths = r
                    .paths
                    .iter()
                    .enumerate()
                    .map(|(path, text)| {
                        Pointer::parse(text).map_err(|problem| IgnoreError::InvalidPath {
                            rule,
                            path,
                            pointer: text.clone(),
                            problem,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let target = r
                    .target
                    .as_ref()
                    .map(Selector::new)
                    .transpose()
                    .map_err(|source| IgnoreError::InvalidTarget { rule, source })?;
                Ok(Rule { paths, target })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { rules })
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The ignored pointers that apply to `object`, as written, in rule order, each once.
    pub fn paths_for(&self, object: &Value) -> Vec<&str> {
        let mut paths: Vec<&str> = Vec::new();
        for pointer in self.pointers_for(object) {
            if !paths.contains(&pointer.text.as_str()) {
                paths.push(&pointer.text);
            }
        }
        paths
    }

    /// Whether the field at `pointer` (e.g. a drifted field of a drift report) lies in a field
    /// ignored for `object`: an ignored pointer equals it or is a parent of it, segment by
    /// segment (`/spec/replicas` covers neither `/spec` nor `/spec/replicasMax`). A pointer
    /// that is not a valid JSON Pointer is not covered.
    pub fn ignores(&self, object: &Value, pointer: &str) -> bool {
        let Some(Ok(field)) = pointer
            .strip_prefix('/')
            .map(|rest| rest.split('/').map(unescape).collect::<Result<Vec<_>, _>>())
        else {
            return false;
        };
        self.pointers_for(object)
            .any(|p| field.len() >= p.segments.len() && field.iter().zip(&p.segments).all(|(f, p)| f == p))
    }

    /// Makes `desired` leave the ignored fields as they are live, before a server-side apply.
    ///
    /// For each ignored pointer that applies to `desired`: when the live object has a value
    /// there, `desired` takes that value (so the apply keeps the live value and this manager
    /// keeps, or gains, ownership of the field); when the live object has no such field, the
    /// field is removed from `desired`. Missing parent maps are created in `desired` where the
    /// live object has maps; a live value at a list position beyond the end of the desired list
    /// (other than the next one) is skipped. With no live object (a creation), `desired` is left
    /// as it is: there is nothing to keep.
    pub fn apply_to_desired(&self, desired: &mut Value, live: Option<&Value>) {
        let Some(live) = live else { return };
        for pointer in self.ordered_pointers_for(desired) {
            match get(live, &pointer.segments) {
                Some(value) => set(desired, live, &pointer.segments, value.clone()),
                None => remove(desired, &pointer.segments),
            }
        }
    }

    /// Removes the ignored fields that apply to `object` from it.
    ///
    /// To compare a desired object with its live counterpart, use [`IgnoreRules::strip_pair`],
    /// which selects the rules once, by the desired object, and strips both sides alike.
    pub fn strip(&self, object: &mut Value) {
        for pointer in self.ordered_pointers_for(object) {
            remove(object, &pointer.segments);
        }
    }

    /// Removes the ignored fields from a desired object and its live counterpart, the rules
    /// being selected by the desired object; used before comparing them for drift.
    pub fn strip_pair(&self, desired: &mut Value, live: &mut Value) {
        for pointer in self.ordered_pointers_for(desired) {
            remove(desired, &pointer.segments);
            remove(live, &pointer.segments);
        }
    }

    fn pointers_for<'s>(&'s self, object: &Value) -> impl Iterator<Item = &'s Pointer> {
        self.rules
            .iter()
            .filter(|rule| rule.target.as_ref().is_none_or(|t| t.matches(object)))
            .flat_map(|rule| rule.paths.iter())
    }

    /// The pointers for `object`, deepest list positions first, each once. Removing an item
    /// from a list shifts the items after it, so a pointer to a later item is handled before a
    /// pointer to an earlier one.
    fn ordered_pointers_for(&self, object: &Value) -> Vec<Pointer> {
        let mut pointers: Vec<Pointer> = self.pointers_for(object).cloned().collect();
        pointers.sort_by(|a, b| compare_segments(&b.segments, &a.segments));
        pointers.dedup_by(|a, b| a.segments == b.segments);
        pointers
    }
}

impl Pointer {
    fn parse(text: &str) -> Result<Self, &'static str> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err("is not a JSON pointer: it must start with '/'");
        };
        let segments = rest.split('/').map(unescape).collect::<Result<Vec<_>, _>>()?;
        let protected = segments == ["metadata"]
            || PROTECTED
                .iter()
                .any(|p| segments.len() >= p.len() && segments.iter().zip(p.iter()).all(|(s, p)| s == p));
        if protected {
            return Err("names the object's identity or metadata the API server maintains; it cannot be ignored");
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }
}

fn unescape(segment: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(segment.len());
    let mut chars = segment.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('~'),
            Some('1') => out.push('/'),
            _ => return Err("is not a JSON pointer: '~' must be followed by 0 or 1"),
        }
    }
    Ok(out)
}

/// Orders segment lists, list positions numerically (`/x/10` after `/x/9`).
fn compare_segments(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = match (index(x), index(y)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// A list position as RFC 6901 writes it: digits, no leading zero.
fn index(segment: &str) -> Option<usize> {
    let canonical = segment == "0" || (!segment.starts_with('0') && segment.bytes().all(|b| b.is_ascii_digit()));
    if canonical { segment.parse().ok() } else { None }
}

fn child<'a>(value: &'a Value, segment: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => items.get(index(segment)?),
        _ => None,
    }
}

fn child_mut<'a>(value: &'a mut Value, segment: &str) -> Option<&'a mut Value> {
    match value {
        Value::Object(map) => map.get_mut(segment),
        Value::Array(items) => items.get_mut(index(segment)?),
        _ => None,
    }
}

fn get<'a>(value: &'a Value, segments: &[String]) -> Option<&'a Value> {
    segments.iter().try_fold(value, |v, s| child(v, s))
}

fn remove(value: &mut Value, segments: &[String]) {
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let Some(parent) = parents.iter().try_fold(value, |v, s| child_mut(v, s)) else {
        return;
    };
    match parent {
        Value::Object(map) => {
            map.remove(last);
        }
        Value::Array(items) => {
            if let Some(i) = index(last).filter(|&i| i < items.len()) {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// Sets `segments` of `desired` to `value`, creating missing parents as maps where `live` has
/// maps; leaves `desired` alone where that is not possible.
fn set(desired: &mut Value, live: &Value, segments: &[String], value: Value) {
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut current = desired;
    for (depth, segment) in parents.iter().enumerate() {
        if let Value::Object(map) = current
            && !map.contains_key(segment)
        {
            if !get(live, &segments[..=depth]).is_some_and(Value::is_object) {
                return;
            }
            map.insert(segment.clone(), Value::Object(Default::default()));
        }
        match child_mut(current, segment) {
            Some(next) => current = next,
            None => return,
        }
    }
    match current {
        Value::Object(map) => {
            map.insert(last.clone(), value);
        }
        Value::Array(items) => match index(last) {
            Some(i) if i < items.len() => items[i] = value,
            Some(i) if i == items.len() => items.push(value),
            _ => {}
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use eddy_api::apply::ObjectSelector;
    use serde_json::json;

    use super::*;

    fn rules(rules: Value) -> IgnoreRules {
        let rules: Vec<IgnoreRule> = serde_json::from_value(rules).unwrap();
        IgnoreRules::new(&rules).unwrap()
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "template": {"spec": {"containers": [
                    {"name": "web", "image": image},
                    {"name": "proxy", "image": "envoy:1"}
                ]}}
            }
        })
    }

    #[test]
    fn paths_apply_only_to_targeted_objects() {
        let r = rules(json!([
            {"paths": ["/spec/replicas"], "target": {"kind": "Deployment", "name": "web"}},
            {"paths": ["/data/generated", "/spec/replicas"]},
            {"paths": ["/spec/paused"], "target": {"labelSelector": "app=api"}}
        ]));
        assert_eq!(
            r.paths_for(&deployment(1, "web:1")),
            ["/spec/replicas", "/data/generated"]
        );
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}});
        assert_eq!(r.paths_for(&cm), ["/data/generated", "/spec/replicas"]);
    }

    #[test]
    fn a_field_is_ignored_when_an_ignored_pointer_is_it_or_a_parent() {
        let r = rules(json!([
            {"paths": ["/spec/replicas", "/metadata/annotations/a~1b"]},
            {"paths": ["/spec/template"], "target": {"kind": "StatefulSet"}}
        ]));
        let d = deployment(1, "web:1");
        assert!(r.ignores(&d, "/spec/replicas"));
        assert!(r.ignores(&d, "/spec/replicas/x"));
        assert!(r.ignores(&d, "/metadata/annotations/a~1b"));
        assert!(!r.ignores(&d, "/spec/replicasMax"), "a string prefix is not a parent");
        assert!(!r.ignores(&d, "/spec"), "a child does not cover its parent");
        assert!(!r.ignores(&d, "/metadata/annotations/a"));
        assert!(!r.ignores(&d, "/spec/template/spec"), "that rule targets StatefulSets");
        assert!(!r.ignores(&d, "spec/replicas"));
    }

    #[test]
    fn desired_takes_the_live_value_of_an_ignored_field() {
        let r = rules(json!([{"paths": ["/spec/replicas", "/spec/template/spec/containers/0/image"]}]));
        let mut desired = deployment(1, "web:1");
        let live = deployment(5, "web:hotfix");
        r.apply_to_desired(&mut desired, Some(&live));
        assert_eq!(desired["spec"]["replicas"], 5);
        assert_eq!(
            desired["spec"]["template"]["spec"]["containers"][0]["image"],
            "web:hotfix"
        );
        assert_eq!(
            desired["spec"]["template"]["spec"]["containers"][1]["image"], "envoy:1",
            "only the named list item is touched"
        );
    }

    #[test]
    fn an_ignored_field_missing_live_is_removed_from_desired() {
        let r = rules(json!([{"paths": ["/spec/replicas"]}]));
        let mut desired = deployment(1, "web:1");
        let mut live = deployment(1, "web:1");
        live["spec"].as_object_mut().unwrap().remove("replicas");
        r.apply_to_desired(&mut desired, Some(&live));
        assert!(desired["spec"].get("replicas").is_none());
        assert_eq!(desired["spec"]["template"], live["spec"]["template"]);
    }

    #[test]
    fn a_created_object_keeps_its_desired_values() {
        let r = rules(json!([{"paths": ["/spec/replicas"]}]));
        let mut desired = deployment(3, "web:1");
        r.apply_to_desired(&mut desired, None);
        assert_eq!(desired, deployment(3, "web:1"));
    }

    #[test]
    fn a_field_only_live_has_is_added_to_desired_through_missing_maps() {
        let r = rules(json!([{"paths": [
            "/metadata/annotations/example.com~1owner",
            "/spec/template/spec/containers/1/args"
        ]}]));
        let mut desired = deployment(1, "web:1");
        let mut live = deployment(1, "web:1");
        live["metadata"]["annotations"] = json!({"example.com/owner": "ops", "other": "x"});
        live["spec"]["template"]["spec"]["containers"][1]["args"] = json!(["--debug"]);
        r.apply_to_desired(&mut desired, Some(&live));
        assert_eq!(desired["metadata"]["annotations"], json!({"example.com/owner": "ops"}));
        assert_eq!(
            desired["spec"]["template"]["spec"]["containers"][1]["args"],
            json!(["--debug"])
        );
    }

    #[test]
    fn list_items_are_not_invented_from_maps() {
        let r = rules(json!([{"paths": ["/spec/template/spec/volumes/0/name"]}]));
        let mut desired = deployment(1, "web:1");
        let mut live = deployment(1, "web:1");
        live["spec"]["template"]["spec"]["volumes"] = json!([{"name": "cache"}]);
        r.apply_to_desired(&mut desired, Some(&live));
        assert_eq!(desired, deployment(1, "web:1"));
    }

    #[test]
    fn a_live_list_item_past_the_desired_end_is_appended() {
        let r = rules(json!([{"paths": ["/spec/template/spec/containers/2"]}]));
        let mut desired = deployment(1, "web:1");
        let mut live = deployment(1, "web:1");
        let sidecar = json!({"name": "injected", "image": "mesh:2"});
        live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(sidecar.clone());
        r.apply_to_desired(&mut desired, Some(&live));
        assert_eq!(desired["spec"]["template"]["spec"]["containers"][2], sidecar);
    }

    #[test]
    fn stripping_removes_later_list_items_first() {
        let r = rules(json!([{"paths": [
            "/spec/template/spec/containers/0",
            "/spec/template/spec/containers/1/image",
            "/spec/template/spec/containers/2",
            "/spec/template/spec/containers/10"
        ]}]));
        let mut object = deployment(1, "web:1");
        let containers = object["spec"]["template"]["spec"]["containers"].as_array_mut().unwrap();
        containers.push(json!({"name": "third"}));
        containers.push(json!({"name": "fourth"}));
        r.strip(&mut object);
        assert_eq!(
            object["spec"]["template"]["spec"]["containers"],
            json!([{"name": "proxy"}, {"name": "fourth"}])
        );
    }

    #[test]
    fn stripping_a_pair_hides_drift_in_ignored_fields_only() {
        let r = rules(json!([{"paths": ["/spec/replicas"], "target": {"labelSelector": "app=web"}}]));
        let mut desired = deployment(1, "web:1");
        let mut live = deployment(7, "web:1");
        live["metadata"]["labels"]["app"] = json!("edited");
        r.strip_pair(&mut desired, &mut live);
        assert!(
            live["spec"].get("replicas").is_none(),
            "selected by the desired object's labels"
        );
        assert_eq!(desired["spec"], live["spec"]);

        let mut desired = deployment(1, "web:1");
        let mut live = deployment(7, "web:2");
        r.strip_pair(&mut desired, &mut live);
        assert_ne!(desired["spec"], live["spec"], "an image change is still drift");
    }

    #[test]
    fn escaped_segments_name_keys_with_slashes_and_tildes() {
        let r = rules(json!([{"paths": ["/metadata/annotations/a~1b~0c", "/metadata/annotations/~01"]}]));
        let mut object = json!({"metadata": {"annotations": {"a/b~c": "1", "~1": "2", "a": "3"}}});
        r.strip(&mut object);
        assert_eq!(object, json!({"metadata": {"annotations": {"a": "3"}}}));
    }

    #[test]
    fn missing_paths_and_scalars_along_the_way_are_skipped() {
        let r =
            rules(json!([{"paths": ["/spec/replicas/x", "/spec/nothing/here", "/spec/template/spec/containers/9"]}]));
        let mut object = deployment(1, "web:1");
        r.strip(&mut object);
        assert_eq!(object, deployment(1, "web:1"));
        let live = deployment(2, "web:1");
        r.apply_to_desired(&mut object, Some(&live));
        assert_eq!(object, deployment(1, "web:1"));
    }

    #[test]
    fn invalid_rules_are_errors_naming_rule_and_path() {
        let compile = |rules: Value| {
            let rules: Vec<IgnoreRule> = serde_json::from_value(rules).unwrap();
            IgnoreRules::new(&rules).unwrap_err().to_string()
        };
        let err = compile(json!([{"paths": ["/spec/replicas"]}, {"paths": ["/ok", "spec/replicas"]}]));
        assert!(
            err.starts_with("ignore[1].paths[1]: 'spec/replicas' is not a JSON pointer"),
            "{err}"
        );
        let err = compile(json!([{"paths": [""]}]));
        assert!(err.starts_with("ignore[0].paths[0]: '' is not a JSON pointer"), "{err}");
        let err = compile(json!([{"paths": ["/metadata/annotations/a~2"]}]));
        assert!(err.contains("'~' must be followed by 0 or 1"), "{err}");
        for protected in ["/metadata", "/metadata/name", "/kind", "/metadata/managedFields/0"] {
            let err = compile(json!([{"paths": [protected]}]));
            assert!(err.contains("cannot be ignored"), "{protected}: {err}");
        }
        let err = compile(json!([{"paths": ["/spec"], "target": {"name": "web["}}]));
        assert!(
            err.starts_with("ignore[0].target.name: invalid regular expression"),
            "{err}"
        );
    }

    #[test]
    fn metadata_fields_other_than_identity_can_be_ignored() {
        let r = IgnoreRules::new(&[IgnoreRule {
            paths: vec!["/metadata/labels".into(), "/metadata/namespaceSelector".into()],
            target: Some(ObjectSelector::default()),
        }])
        .unwrap();
        assert_eq!(r.paths_for(&json!({})).len(), 2);
    }
}
