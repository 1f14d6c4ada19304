//! Field specs: which field of which kinds a transformer touches (`spec/template/metadata/labels`),
//! and the walk that reaches those fields in an object. Specs come from the built-in tables
//! (`builtin.rs`), `configurations` files and transformer configs; transformers and name
//! references call [`FieldSpec::apply`] or [`FieldSpec::apply_creating`] with a setter.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::resource::{Gvk, Object, ResId};

/// kustomize's FieldSpec: an optional group/version/kind filter and a slash-separated path.
///
/// A path segment ending in `[]` names a list; a segment that reaches a list without it walks
/// every element with the rest of the path too. `\/` is a slash inside a segment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub create: bool,
}

/// What a walk creates when a field on the path is missing (and the spec says `create`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateKind {
    /// Never create; a missing field ends the walk (name references, vars, images).
    Nothing,
    /// Missing maps on the way, and an empty string at the end (names, namespaces, replicas).
    Scalar,
    /// Missing maps on the way and at the end (labels, annotations).
    Map,
}

impl FieldSpec {
    pub fn new(group: &str, version: &str, kind: &str, path: &str, create: bool) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            path: path.to_owned(),
            create,
        }
    }

    /// The spec's own group/version/kind (empty parts are wildcards).
    pub fn gvk(&self) -> Gvk {
        Gvk::new(&self.group, &self.version, &self.kind)
    }

    /// Whether the spec's kind filter selects `gvk` (empty parts match anything).
    pub fn selects(&self, gvk: &Gvk) -> bool {
        (self.group.is_empty() || self.group == gvk.group)
            && (self.version.is_empty() || self.version == gvk.version)
            && (self.kind.is_empty() || self.kind == gvk.kind)
    }

    /// Same field as `other` for merging tables: same path, and this spec's kind is within
    /// `other`'s filter. kustomize's MergeOne treats such a pair as one entry.
    pub fn same_field_as(&self, other: &FieldSpec) -> bool {
        self.path == other.path && other.selects(&self.gvk())
    }

    /// The path split into segments; a leading slash is ignored and `\/` is kept in a segment.
    pub fn segments(&self) -> Vec<String> {
        split_path(&self.path)
    }

    /// Calls `f` on every value the path reaches in `obj` when the spec selects the object's
    /// kind. Nothing is created: a missing field ends the walk without error.
    pub fn apply(&self, obj: &mut Object, f: &mut dyn FnMut(&mut Value) -> Result<()>) -> Result<()> {
        self.apply_creating(obj, CreateKind::Nothing, f)
    }

    /// Like [`FieldSpec::apply`], but when the spec says `create`, missing fields on the path
    /// are created as `create` describes. A null field on the path counts as missing. The
    /// leaf handed to `f` may be any value, including null for an existing null field.
    pub fn apply_creating(
        &self,
        obj: &mut Object,
        create: CreateKind,
        f: &mut dyn FnMut(&mut Value) -> Result<()>,
    ) -> Result<()> {
        if !self.selects(&object_gvk(obj)) {
            return Ok(());
        }
        let segments = self.segments();
        let walk = Walk {
            create: if self.create { create } else { CreateKind::Nothing },
        };
        walk.map(obj, &segments, f).map_err(|e| {
            Error::new(format!(
                "considering field '{}' of object {}: {}",
                self.path,
                object_id(obj),
                e.message
            ))
        })
    }
}

struct Walk {
    create: CreateKind,
}

impl Walk {
    fn value(&self, value: &mut Value, path: &[String], f: &mut dyn FnMut(&mut Value) -> Result<()>) -> Result<()> {
        if path.is_empty() {
            return f(value);
        }
        match value {
            Value::Null => Ok(()),
            Value::Object(map) => self.map(map, path, f),
            // A list keeps the whole remaining path: the walk goes on in each element.
            Value::Array(items) => items.iter_mut().try_for_each(|item| self.value(item, path, f)),
            _ => Err(Error::new("expected sequence or mapping node")),
        }
    }

    fn map(
        &self,
        map: &mut Map<String, Value>,
        path: &[String],
        f: &mut dyn FnMut(&mut Value) -> Result<()>,
    ) -> Result<()> {
        let (segment, rest) = path.split_first().expect("path is not empty");
        let (name, is_list) = match segment.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (segment.as_str(), false),
        };
        if name.is_empty() {
            return Err(Error::new("cannot set or create an empty field name"));
        }
        if self.create == CreateKind::Nothing || is_list {
            let Some(field) = map.get_mut(name) else {
                return Ok(());
            };
            // A null list named with `[]` becomes an empty list, as kustomize retypes it.
            if is_list && field.is_null() {
                *field = Value::Array(Vec::new());
            }
            return self.value(field, rest, f);
        }
        let leaf = rest.is_empty();
        let field = map.entry(name).or_insert(Value::Null);
        if field.is_null() {
            *field = if leaf && self.create == CreateKind::Scalar {
                Value::String(String::new())
            } else {
                Value::Object(Map::new())
            };
        }
        self.value(field, rest, f)
    }
}

/// Splits a field-spec path on `/`, keeping escaped slashes (`\/`) inside a segment.
pub fn split_path(path: &str) -> Vec<String> {
    let mut parts: Vec<&str> = path.split('/').collect();
    if parts.len() > 1 && parts[0].is_empty() {
        parts.remove(0);
    }
    let mut segments: Vec<String> = Vec::with_capacity(parts.len());
    for part in parts {
        match segments.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push('/');
                last.push_str(part);
            }
            _ => segments.push(part.to_owned()),
        }
    }
    segments
}

/// The group/version/kind an object declares.
pub fn object_gvk(obj: &Object) -> Gvk {
    let text = |key: &str| obj.get(key).and_then(Value::as_str).unwrap_or("");
    Gvk::from_api_version(text("apiVersion"), text("kind"))
}

/// The id an object declares, for messages.
pub fn object_id(obj: &Object) -> ResId {
    let meta = |key: &str| {
        obj.get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    ResId {
        gvk: object_gvk(obj),
        name: meta("name"),
        namespace: meta("namespace"),
    }
}

/// kustomize's name for the kind of YAML node a value is.
pub fn node_kind(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "MappingNode",
        Value::Array(_) => "SequenceNode",
        _ => "ScalarNode",
    }
}

/// The error kustomize gives when a setter finds the wrong kind of node.
pub fn wrong_node_kind(expected: &str, found: &Value) -> Error {
    Error::new(format!(
        "wrong node kind: expected {expected} but got {}",
        node_kind(found)
    ))
}

/// The text of a scalar as YAML would print it; `None` for maps and lists.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(value: Value) -> Object {
        match value {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn set_to(text: &'static str) -> impl FnMut(&mut Value) -> Result<()> {
        move |v: &mut Value| {
            *v = Value::String(text.to_owned());
            Ok(())
        }
    }

    #[test]
    fn path_splits_on_slashes_but_keeps_escaped_ones() {
        assert_eq!(split_path("a/b/c"), ["a", "b", "c"]);
        assert_eq!(split_path("/a/b"), ["a", "b"]);
        assert_eq!(
            split_path(r"metadata/annotations/example.com\/x"),
            ["metadata", "annotations", "example.com/x"]
        );
        assert_eq!(split_path(""), [""]);
    }

    #[test]
    fn walk_iterates_lists_with_and_without_brackets() {
        let mut o = obj(json!({"kind": "Pod", "apiVersion": "v1", "spec": {"containers": [
            {"image": "a"}, {"image": "b"}, {"name": "no-image"}]}}));
        let mut seen = Vec::new();
        for path in ["spec/containers[]/image", "spec/containers/image"] {
            FieldSpec::new("", "", "", path, true)
                .apply(&mut o, &mut |v| {
                    seen.push(v.clone());
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(seen, [json!("a"), json!("b"), json!("a"), json!("b")]);
    }

    #[test]
    fn create_makes_maps_on_the_way_but_never_lists() {
        let mut o = obj(json!({"kind": "Deployment", "apiVersion": "apps/v1", "spec": {}}));
        let fs = FieldSpec::new("", "", "Deployment", "spec/template/metadata/labels", true);
        fs.apply_creating(&mut o, CreateKind::Map, &mut |_| Ok(())).unwrap();
        assert_eq!(o["spec"], json!({"template": {"metadata": {"labels": {}}}}));

        let fs = FieldSpec::new("", "", "", "spec/containers[]/image", true);
        fs.apply_creating(&mut o, CreateKind::Scalar, &mut set_to("x")).unwrap();
        assert!(o["spec"].get("containers").is_none());
    }

    #[test]
    fn without_create_a_missing_field_is_left_alone() {
        let mut o = obj(json!({"kind": "Job", "apiVersion": "batch/v1", "spec": {}}));
        let fs = FieldSpec::new("batch", "", "Job", "spec/selector/matchLabels", false);
        fs.apply_creating(&mut o, CreateKind::Map, &mut |_| panic!("not reached"))
            .unwrap();
        assert_eq!(o["spec"], json!({}));
    }

    #[test]
    fn kind_filter_reads_the_objects_api_version() {
        let mut o = obj(json!({"kind": "Deployment", "apiVersion": "extensions/v1beta1", "metadata": {}}));
        let fs = FieldSpec::new("apps", "", "Deployment", "metadata/name", true);
        fs.apply_creating(&mut o, CreateKind::Scalar, &mut set_to("x")).unwrap();
        assert!(o["metadata"].get("name").is_none());
    }

    #[test]
    fn scalar_in_the_middle_of_a_path_is_an_error_naming_field_and_object() {
        let mut o = obj(json!({"kind": "Thing", "apiVersion": "v1", "metadata": {"name": "t"}, "spec": "text"}));
        let fs = FieldSpec::new("", "", "", "spec/selector", true);
        let err = fs.apply(&mut o, &mut set_to("x")).unwrap_err();
        assert_eq!(
            err.message,
            "considering field 'spec/selector' of object Thing.v1.[noGrp]/t.[noNs]: expected sequence or mapping node"
        );
    }

    #[test]
    fn null_list_named_with_brackets_becomes_empty() {
        let mut o = obj(json!({"kind": "Pod", "apiVersion": "v1", "spec": {"initContainers": null}}));
        FieldSpec::new("", "", "", "spec/initContainers[]/image", true)
            .apply(&mut o, &mut set_to("x"))
            .unwrap();
        assert_eq!(o["spec"], json!({"initContainers": []}));
    }

    #[test]
    fn empty_segment_is_an_error() {
        let mut o = obj(json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"}}));
        let err = FieldSpec::new("", "", "", "metadata//name", false)
            .apply(&mut o, &mut set_to("x"))
            .unwrap_err();
        assert!(
            err.message.ends_with("cannot set or create an empty field name"),
            "{err}"
        );
    }
}
