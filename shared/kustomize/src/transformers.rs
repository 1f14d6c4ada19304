//! The builtin transformers that walk field specs: namespace, name prefix and suffix, labels,
//! annotations, images and replicas. Each config deserializes from both what the pipeline
//! builds from a kustomization (the `for_*` constructors, fed from the merged
//! [`TransformerConfig`]) and the builtin config kind (`kind: PrefixSuffixTransformer` in
//! `transformers:`). Names and namespaces change only through `Resource::set_name` and
//! `Resource::set_namespace`, so name references can follow them. One transformer per module;
//! this one holds what they share (scalar parsing, field edits, GVK filters).

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::builtin::{TransformerConfig, merge_specs};
use crate::error::{Error, Result, bail};
use crate::fieldspec::{CreateKind, FieldSpec, object_gvk, scalar_text, wrong_node_kind};
use crate::kustfile::Label;
use crate::resource::{Gvk, Object, ResMap, Resource};

mod images;
mod labels;
mod namespace;
mod prefix_suffix;
mod replicas;

pub use images::{Image, ImageTagTransformer};
pub use labels::{AnnotationsTransformer, LabelTransformer};
pub use namespace::{NamespaceMeta, NamespaceTransformer};
pub use prefix_suffix::PrefixSuffixTransformer;
pub use replicas::{Replica, ReplicaCountTransformer};

/// kustomize reads these fields through YAML-to-JSON conversion, which turns `1` or `true`
/// into the string `"1"` / `"true"`; a null becomes empty.
fn scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let value = Value::deserialize(d)?;
    scalar_text(&value).ok_or_else(|| serde::de::Error::custom(format!("expected a string, found {value}")))
}

fn scalar_string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map = Option::<BTreeMap<String, Value>>::deserialize(d)?.unwrap_or_default();
    map.into_iter()
        .map(|(k, v)| match scalar_text(&v) {
            Some(text) => Ok((k, text)),
            None => Err(serde::de::Error::custom(format!(
                "value of '{k}' must be a string, found {v}"
            ))),
        })
        .collect()
}

/// Runs `edit` on the object, then replays a changed `metadata.name` or `metadata.namespace`
/// through the resource's setters so the id it had before is recorded.
fn edit_tracking_id(r: &mut Resource, edit: impl FnOnce(&mut Object) -> Result<()>) -> Result<()> {
    fn meta(obj: &Object, key: &str) -> Option<Value> {
        obj.get("metadata").and_then(|m| m.get(key)).cloned()
    }
    let (old_name, old_ns) = (meta(&r.obj, "name"), meta(&r.obj, "namespace"));
    edit(&mut r.obj)?;
    let (new_name, new_ns) = (meta(&r.obj, "name"), meta(&r.obj, "namespace"));
    if new_name == old_name && new_ns == old_ns {
        return Ok(());
    }
    let metadata = r.metadata_mut();
    for (key, old) in [("name", &old_name), ("namespace", &old_ns)] {
        match old {
            Some(v) => metadata.insert(key.to_owned(), v.clone()),
            None => metadata.remove(key),
        };
    }
    let text = |v: &Option<Value>| v.as_ref().and_then(scalar_text).unwrap_or_default();
    if new_ns != old_ns {
        r.set_namespace(&text(&new_ns));
    }
    if new_name != old_name {
        r.set_name(&text(&new_name));
    }
    Ok(())
}

/// Sets a field that must hold a scalar (a name, a namespace, a count).
fn set_scalar(node: &mut Value, value: Value) -> Result<()> {
    if scalar_text(node).is_none() {
        return Err(wrong_node_kind("ScalarNode", node));
    }
    *node = value;
    Ok(())
}

/// Sets one entry of a map (a label, an annotation). A null map is left alone, as in
/// kustomize; a create spec has already turned a missing or null one into a map.
fn set_entry(node: &mut Value, key: &str, value: &str) -> Result<()> {
    match node {
        Value::Object(map) => {
            map.insert(key.to_owned(), Value::String(value.to_owned()));
            Ok(())
        }
        Value::Null => Ok(()),
        other => Err(wrong_node_kind("MappingNode", other)),
    }
}

/// kyaml's spelling of a kind filter in messages: `Deployment.[noVer].[noGrp]`.
fn gvk_filter_string(gvk: &Gvk) -> String {
    let or = |s: &str, empty: &'static str| if s.is_empty() { empty.to_owned() } else { s.to_owned() };
    format!(
        "{}.{}.{}",
        or(&gvk.kind, "[noKind]"),
        or(&gvk.version, "[noVer]"),
        or(&gvk.group, "[noGrp]")
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SubjectMode {
    NamedDefault,
    AllServiceAccounts,
    None,
}

#[cfg(test)]
mod tests;
