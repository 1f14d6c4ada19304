//! Field ownership from `metadata.managedFields`: which managers own a field (the FieldsV1
//! `f:`/`k:`/`v:` tree walked along a live object), and which entries the engine removes so that
//! fields set with `kubectl apply`/`kubectl edit` return to Git's control.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use serde_json::{Map, Value};

/// The managers whose fields the engine takes back before applying: `kubectl` and every
/// `kubectl-*` manager (`kubectl-client-side-apply`, `kubectl-edit`, `kubectl-patch`, ...),
/// `before-first-apply`, which the apiserver names the fields of objects created before any
/// apply, `kustomize-controller`, Flux's apply manager, and `eddy-cli`, which installs Eddy's
/// components before Eddy manages them from Git (`eddy bootstrap git`). What happens to the fields
/// depends on the manager (see [`HANDED_OVER_MANAGERS`]).
pub const DEFAULT_TAKEOVER_MANAGERS: [&str; 4] = ["kubectl", "before-first-apply", "kustomize-controller", "eddy-cli"];

/// The managers whose fields become the engine's own (Flux's list, and Eddy's installer): those
/// that applied the whole object before Eddy did, `kubectl apply` (client- or server-side), Flux's
/// `kustomize-controller` and `eddy-cli`. The next apply then removes a field its manifest lacks, so after a
/// migration a field removed from Git leaves the live object. The fields of the other managers
/// taken over (`kubectl-edit`, `kubectl-rollout`, `kubectl-label` ...) are only released: the
/// forced apply wins on the fields its manifest sets, and what such a command added elsewhere (a
/// `restartedAt` annotation, a label) stays.
pub const HANDED_OVER_MANAGERS: [&str; 5] = [
    "kubectl",
    "kubectl-client-side-apply",
    "before-first-apply",
    "kustomize-controller",
    "eddy-cli",
];

/// Whether `manager` is in `takeover`: equal to an entry, or an entry followed by `-`.
pub fn is_taken_over(manager: &str, takeover: &[String]) -> bool {
    takeover.iter().any(|t| {
        manager == t
            || manager
                .strip_prefix(t.as_str())
                .is_some_and(|rest| rest.starts_with('-'))
    })
}

/// The managedFields after the take-over, and the managers taken over; `None` when no entry
/// belongs to a manager to take over. The main-resource fields of the [`HANDED_OVER_MANAGERS`]
/// recorded at `api_version` are handed to `manager`'s apply entry of that version (made when it
/// has none), as Flux does: the apply that follows then owns them, so a field that its manifest
/// lacks is removed from the object instead of staying behind, owned by a manager that no longer
/// applies it. Field sets are specific to their version, so entries of another version, and those
/// of the other managers to take over, are dropped: their fields are released, not handed over.
/// Entries of subresources (`status`, `scale`) are kept: the engine applies only the main
/// resource.
pub fn taken_over(
    entries: &[ManagedFieldsEntry],
    takeover: &[String],
    manager: &str,
    api_version: &str,
) -> Option<(Vec<ManagedFieldsEntry>, Vec<String>)> {
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    let mut handed = Value::Object(Map::new());
    for entry in entries {
        let name = entry.manager.as_deref().unwrap_or_default();
        let subresource = entry.subresource.as_deref().unwrap_or_default();
        if subresource.is_empty() && name != manager && is_taken_over(name, takeover) {
            removed.push(name.to_owned());
            let same_version = entry.api_version.as_deref().is_none_or(|v| v == api_version);
            if HANDED_OVER_MANAGERS.contains(&name)
                && same_version
                && let Some(fields) = &entry.fields_v1
            {
                merge_fields(&mut handed, &fields.0);
            }
        } else {
            kept.push(entry.clone());
        }
    }
    if removed.is_empty() {
        return None;
    }
    if handed.as_object().is_some_and(Map::is_empty) {
        removed.sort();
        removed.dedup();
        return Some((kept, removed));
    }
    let is_ours = |e: &&mut ManagedFieldsEntry| {
        e.manager.as_deref() == Some(manager)
            && e.operation.as_deref() == Some("Apply")
            && e.api_version.as_deref().is_none_or(|v| v == api_version)
            && e.subresource.as_deref().unwrap_or_default().is_empty()
    };
    match kept.iter_mut().find(is_ours) {
        Some(ours) => {
            let fields = ours
                .fields_v1
                .get_or_insert_with(|| FieldsV1(Value::Object(Map::new())));
            merge_fields(&mut fields.0, &handed);
        }
        None => kept.push(ManagedFieldsEntry {
            manager: Some(manager.to_owned()),
            operation: Some("Apply".to_owned()),
            api_version: Some(api_version.to_owned()),
            fields_type: Some("FieldsV1".to_owned()),
            fields_v1: Some(FieldsV1(handed)),
            ..ManagedFieldsEntry::default()
        }),
    }
    removed.sort();
    removed.dedup();
    Some((kept, removed))
}

/// Adds the FieldsV1 set `from` to `into` (a union of the two trees).
fn merge_fields(into: &mut Value, from: &Value) {
    let (Value::Object(into), Value::Object(from)) = (into, from) else {
        return;
    };
    for (key, value) in from {
        merge_fields(
            into.entry(key.clone()).or_insert_with(|| Value::Object(Map::new())),
            value,
        );
    }
}

/// Splits a JSON Pointer into unescaped segments.
pub fn pointer_segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// The managers owning the field at `pointer` of `live`, sorted. A manager owns a field when its
/// FieldsV1 tree reaches it, or reaches an atomic value (a leaf) that contains it.
pub fn owners(live: &Value, entries: &[ManagedFieldsEntry], pointer: &str) -> Vec<String> {
    let segments = pointer_segments(pointer);
    let mut found: Vec<String> = entries
        .iter()
        .filter(|entry| {
            entry
                .fields_v1
                .as_ref()
                .is_some_and(|fields| owns(&fields.0, live, &segments))
        })
        .filter_map(|entry| entry.manager.clone())
        .collect();
    found.sort();
    found.dedup();
    found
}

fn owns(tree: &Value, live: &Value, segments: &[String]) -> bool {
    let mut node = tree;
    let mut value = Some(live);
    for segment in segments {
        let Some(children) = node.as_object() else {
            return false;
        };
        if children.is_empty() {
            // A leaf: the manager owns this value whole, everything below included.
            return true;
        }
        let (key, next) = match value {
            Some(Value::Array(items)) => {
                let Some(item) = segment.parse::<usize>().ok().and_then(|i| items.get(i)) else {
                    return false;
                };
                let Some(key) = list_item_key(children, item) else {
                    return false;
                };
                (key, Some(item))
            }
            _ => (format!("f:{segment}"), value.and_then(|v| v.get(segment.as_str()))),
        };
        let Some(child) = children.get(&key) else {
            return false;
        };
        node = child;
        value = next;
    }
    true
}

/// The FieldsV1 key of a list item: `k:{...}` when the item has all the key fields with those
/// values (associative lists), `v:<json>` when it equals the value (sets).
fn list_item_key(children: &Map<String, Value>, item: &Value) -> Option<String> {
    children.keys().find_map(|key| {
        if let Some(json) = key.strip_prefix("k:") {
            let fields: Map<String, Value> = serde_json::from_str(json).ok()?;
            fields.iter().all(|(k, v)| item.get(k) == Some(v)).then(|| key.clone())
        } else if let Some(json) = key.strip_prefix("v:") {
            let set_value: Value = serde_json::from_str(json).ok()?;
            (set_value == *item).then(|| key.clone())
        } else {
            None
        }
    })
}

/// The part of `live` that `manager` owns through server-side apply on the main resource (its
/// `Apply` entry, no subresource), with the live values: FieldsV1 `f:<name>` fields, `k:{...}`,
/// `v:<json>` and `i:<index>` list items, and a field listed without children (a leaf) whole.
/// List items keep their live order; items and fields the manager does not own are left out, and
/// a node owned only as itself (`.`) stays as an empty object. The result changes when an owned
/// value changes or a field stops being owned, never when only other managers' fields change;
/// `Null` when the manager owns nothing.
pub fn owned_fields(live: &Value, entries: &[ManagedFieldsEntry], manager: &str) -> Value {
    let mut tree = Map::new();
    for entry in entries.iter().filter(|e| {
        e.manager.as_deref() == Some(manager)
            && e.operation.as_deref() == Some("Apply")
            && e.subresource.as_deref().unwrap_or_default().is_empty()
    }) {
        if let Some(Value::Object(fields)) = entry.fields_v1.as_ref().map(|f| &f.0) {
            merge_trees(&mut tree, fields);
        }
    }
    if tree.is_empty() {
        return Value::Null;
    }
    project(&Value::Object(tree), live)
}

/// Adds `from` to the FieldsV1 tree `into`; a leaf (the whole value) absorbs any children.
fn merge_trees(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    let is_leaf = |v: &Value| v.as_object().is_none_or(Map::is_empty);
    for (key, child) in from {
        match into.get_mut(key) {
            Some(existing) if is_leaf(existing) => {}
            Some(existing) if is_leaf(child) => *existing = child.clone(),
            Some(Value::Object(existing)) => {
                if let Value::Object(child) = child {
                    merge_trees(existing, child);
                }
            }
            _ => {
                into.insert(key.clone(), child.clone());
            }
        }
    }
}

/// `value` cut down to the FieldsV1 `tree`: a leaf (no children) keeps the value whole.
fn project(tree: &Value, value: &Value) -> Value {
    let Some(tree) = tree.as_object().filter(|t| !t.is_empty()) else {
        return value.clone();
    };
    match value {
        Value::Object(fields) => Value::Object(
            tree.iter()
                .filter_map(|(key, child)| {
                    let name = key.strip_prefix("f:")?;
                    Some((name.to_owned(), project(child, fields.get(name)?)))
                })
                .collect(),
        ),
        Value::Array(items) => {
            let keys: Vec<(ItemKey, &Value)> = tree
                .iter()
                .filter_map(|(key, child)| Some((ItemKey::parse(key)?, child)))
                .collect();
            Value::Array(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(index, item)| {
                        let (_, child) = keys.iter().find(|(key, _)| key.matches(index, item))?;
                        Some(project(child, item))
                    })
                    .collect(),
            )
        }
        scalar => scalar.clone(),
    }
}

/// How FieldsV1 names a list item.
enum ItemKey {
    /// `k:{...}`: the item of an associative list with these key field values.
    Fields(Map<String, Value>),
    /// `v:<json>`: the item of a set equal to this value.
    Value(Value),
    /// `i:<index>`: the item at this position.
    Index(usize),
}

impl ItemKey {
    fn parse(key: &str) -> Option<Self> {
        if let Some(json) = key.strip_prefix("k:") {
            serde_json::from_str(json).ok().map(Self::Fields)
        } else if let Some(json) = key.strip_prefix("v:") {
            serde_json::from_str(json).ok().map(Self::Value)
        } else {
            key.strip_prefix("i:")?.parse().ok().map(Self::Index)
        }
    }

    fn matches(&self, index: usize, item: &Value) -> bool {
        match self {
            Self::Fields(fields) => fields.iter().all(|(k, v)| item.get(k) == Some(v)),
            Self::Value(value) => value == item,
            Self::Index(i) => *i == index,
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;
    use serde_json::json;

    use super::*;

    fn entry(manager: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    fn deployment() -> Value {
        json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "sidecar", "image": "envoy"},
                {"name": "web", "image": "nginx:edited", "ports": [{"containerPort": 80, "protocol": "TCP"}]}
            ]}}},
        })
    }

    fn managed() -> Vec<ManagedFieldsEntry> {
        vec![
            entry(
                "eddy-apply",
                json!({"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}},
                    "k:{\"name\":\"sidecar\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}}),
            ),
            entry(
                "kubectl-edit",
                json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"web\"}": {"f:image": {}}}}}}}),
            ),
        ]
    }

    #[test]
    fn owners_follow_fields_and_list_keys() {
        let live = deployment();
        let entries = managed();
        assert_eq!(owners(&live, &entries, "/spec/replicas"), ["kubectl-edit"]);
        assert_eq!(
            owners(&live, &entries, "/spec/template/spec/containers/1/image"),
            ["kubectl-edit"]
        );
        assert_eq!(
            owners(&live, &entries, "/spec/template/spec/containers/0/image"),
            ["eddy-apply"]
        );
        assert_eq!(
            owners(
                &live,
                &entries,
                "/spec/template/spec/containers/1/ports/0/containerPort"
            ),
            ["eddy-apply"]
        );
        assert_eq!(owners(&live, &entries, "/metadata/labels/app"), ["eddy-apply"]);
        assert!(owners(&live, &entries, "/metadata/labels/other").is_empty());
    }

    fn applied(fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            operation: Some("Apply".into()),
            ..entry("eddy-apply", fields)
        }
    }

    #[test]
    fn owned_fields_keep_owned_values_only() {
        let live = json!({
            "metadata": {"labels": {"app": "web", "team": "shop"}, "finalizers": ["a.example/x", "b.example/y"]},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [
                    {"name": "sidecar", "image": "envoy"},
                    {"name": "web", "image": "nginx", "imagePullPolicy": "IfNotPresent"},
                    {"name": "init", "image": "busybox"},
                ]}},
                "args": ["--one", "--two"],
            },
        });
        let entries = [
            applied(json!({
                "f:metadata": {"f:labels": {"f:app": {}}, "f:finalizers": {"v:\"b.example/y\"": {}}},
                "f:spec": {
                    "f:selector": {},
                    "f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {}},
                        "k:{\"name\":\"init\"}": {".": {}},
                    }}},
                    "f:args": {"i:1": {}},
                },
            })),
            entry("kubectl-edit", json!({"f:metadata": {"f:labels": {"f:team": {}}}})),
        ];
        assert_eq!(
            owned_fields(&live, &entries, "eddy-apply"),
            json!({
                "metadata": {"labels": {"app": "web"}, "finalizers": ["b.example/y"]},
                "spec": {
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}, {}]}},
                    "args": ["--two"],
                },
            })
        );
        assert_eq!(
            owned_fields(&live, &entries, "kubectl-edit"),
            Value::Null,
            "an Update entry is not an apply"
        );
    }

    #[test]
    fn kubectl_managers_are_taken_over_and_others_kept() {
        let takeover: Vec<String> = DEFAULT_TAKEOVER_MANAGERS.map(String::from).into();
        assert!(is_taken_over("kubectl-edit", &takeover));
        assert!(is_taken_over("kubectl-client-side-apply", &takeover));
        assert!(is_taken_over("kubectl", &takeover));
        assert!(!is_taken_over("kubectlish", &takeover));
        assert!(!is_taken_over("eddy-apply", &takeover));
        assert!(is_taken_over("kustomize-controller", &takeover), "Flux's apply manager");
        assert!(is_taken_over("eddy-cli", &takeover), "what eddy bootstrap installed");
        let mut entries = managed();
        entries[0].operation = Some("Apply".into());
        let (kept, removed) = taken_over(&entries, &takeover, "eddy-apply", "apps/v1").unwrap();
        assert_eq!(removed, ["kubectl-edit"]);
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(taken_over(&kept, &takeover, "eddy-apply", "apps/v1").is_none());
        let live = deployment();
        assert!(
            owners(&live, &kept, "/spec/replicas").is_empty(),
            "what kubectl edit set is released, not made Eddy's"
        );
        assert_eq!(owners(&live, &kept, "/metadata/labels/app"), ["eddy-apply"]);

        let mut applied_by_kubectl = managed();
        applied_by_kubectl[0].operation = Some("Apply".into());
        applied_by_kubectl[1].manager = Some("kubectl-client-side-apply".into());
        let (kept, removed) = taken_over(&applied_by_kubectl, &takeover, "eddy-apply", "apps/v1").unwrap();
        assert_eq!(removed, ["kubectl-client-side-apply"]);
        assert_eq!(
            owners(&live, &kept, "/spec/replicas"),
            ["eddy-apply"],
            "what kubectl apply set is handed to the apply manager, so its next apply may remove it"
        );
    }

    #[test]
    fn a_take_over_without_an_apply_entry_makes_one() {
        let takeover: Vec<String> = DEFAULT_TAKEOVER_MANAGERS.map(String::from).into();
        let flux = ManagedFieldsEntry {
            operation: Some("Apply".into()),
            ..entry(
                "kustomize-controller",
                json!({"f:data": {"f:dropped": {}, "f:value": {}}}),
            )
        };
        let status = ManagedFieldsEntry {
            subresource: Some("status".into()),
            ..entry("kubectl-edit", json!({"f:status": {"f:replicas": {}}}))
        };
        let (kept, removed) = taken_over(&[flux, status.clone()], &takeover, "eddy-apply", "v1").unwrap();
        assert_eq!(removed, ["kustomize-controller"]);
        assert_eq!(kept[0], status, "subresource entries stay as they are");
        assert_eq!(kept[1].manager.as_deref(), Some("eddy-apply"));
        assert_eq!(kept[1].operation.as_deref(), Some("Apply"));
        assert_eq!(kept[1].api_version.as_deref(), Some("v1"));
        assert_eq!(
            kept[1].fields_v1.as_ref().unwrap().0,
            json!({"f:data": {"f:dropped": {}, "f:value": {}}})
        );

        let other_version = ManagedFieldsEntry {
            api_version: Some("autoscaling/v1".into()),
            operation: Some("Apply".into()),
            ..entry(
                "kustomize-controller",
                json!({"f:spec": {"f:targetCPUUtilizationPercentage": {}}}),
            )
        };
        let (kept, removed) = taken_over(&[other_version], &takeover, "eddy-apply", "autoscaling/v2").unwrap();
        assert_eq!(removed, ["kustomize-controller"]);
        assert!(
            kept.is_empty(),
            "a field set of another version is released, not handed over: {kept:?}"
        );
    }
}
