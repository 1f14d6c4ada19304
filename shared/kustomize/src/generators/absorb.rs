//! How a generated ConfigMap or Secret joins the resources accumulated so far: created anew,
//! or merged into / replacing the object of the same id that a base or an earlier generator
//! produced (kustomize's `appendReplaceOrMerge`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Result, bail};
use crate::resource::{Behavior, Generated, Object, ResMap, Resource};

/// Adds a generated resource to `rm` according to its behavior.
///
/// The existing object is found by any id it has had (so an overlay generator still finds a
/// base's ConfigMap after `namePrefix` renamed it). `create` needs no such object; `merge` and
/// `replace` need exactly one, and the result takes its place, name, namespace and history.
pub fn absorb(rm: &mut ResMap, generated: Resource) -> Result<()> {
    let id = generated.id();
    let behavior = generated.generated.as_ref().map(|g| g.behavior).unwrap_or_default();
    let matches: Vec<usize> = rm
        .iter()
        .enumerate()
        .filter(|(_, r)| r.all_ids().any(|old| old.same_object(&id)))
        .map(|(i, _)| i)
        .collect();
    let subject = format!("{} '{}'", generated.kind(), generated.name());
    match (matches.as_slice(), behavior) {
        ([], Behavior::Create) => rm.append(generated),
        ([], _) => bail!(
            "{subject} has behavior {}, but no object {id} exists to {0} with",
            behavior_name(behavior)
        ),
        ([_], Behavior::Create) => {
            bail!("{subject} has behavior create, but {id} already exists; use behavior merge or replace")
        }
        ([i], _) => {
            let old = &mut rm.resources_mut()[*i];
            *old = combine(old, generated, behavior);
            Ok(())
        }
        (many, _) => {
            let ids: Vec<String> = many.iter().map(|i| rm.resources()[*i].id().to_string()).collect();
            bail!(
                "{subject} has behavior {}, but several objects match {id}: {}",
                behavior_name(behavior),
                ids.join(", ")
            )
        }
    }
}

fn behavior_name(behavior: Behavior) -> &'static str {
    match behavior {
        Behavior::Create => "create",
        Behavior::Merge => "merge",
        Behavior::Replace => "replace",
    }
}

/// The generated object, carrying over the old one's metadata (and with `merge`, its data).
///
/// Labels and annotations are the old ones overridden by the new. The result keeps the old
/// name, namespace, previous ids, prefixes and suffixes. It stays marked as generated only if
/// the old object was, and gets a hash suffix only if both asked for one: merging into a plain
/// ConfigMap from `resources` never renames it.
fn combine(old: &Resource, mut new: Resource, behavior: Behavior) -> Resource {
    let labels = merged_strings(old.labels(), new.labels());
    let annotations = merged_strings(old.annotations(), new.annotations());
    {
        let meta = new.metadata_mut();
        set_or_remove(meta, "labels", labels);
        set_or_remove(meta, "annotations", annotations);
        meta.insert("name".into(), Value::String(old.name().to_owned()));
        if old.namespace().is_empty() {
            meta.remove("namespace");
        } else {
            meta.insert("namespace".into(), Value::String(old.namespace().to_owned()));
        }
    }
    if behavior == Behavior::Merge {
        for field in ["data", "binaryData"] {
            let merged = merged_strings(data_strings(old, field), data_strings(&new, field));
            set_or_remove(&mut new.obj, field, merged);
        }
    }
    let wanted_hash = new.generated.as_ref().is_some_and(|g| g.hash_suffix);
    new.generated = old.generated.as_ref().map(|g| Generated {
        behavior: g.behavior,
        hash_suffix: g.hash_suffix && wanted_hash,
    });
    new.previous = old.previous.clone();
    new.prefixes = old.prefixes.clone();
    new.suffixes = old.suffixes.clone();
    new.origin = old.origin.clone();
    new
}

fn merged_strings(base: BTreeMap<String, String>, over: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut merged = base;
    merged.extend(over);
    merged
}

/// A data map with every value as text, the way kustomize reads it before merging: scalars as
/// their text, anything else as empty.
fn data_strings(r: &Resource, field: &str) -> BTreeMap<String, String> {
    let Some(Value::Object(map)) = r.obj.get(field) else {
        return BTreeMap::new();
    };
    map.iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Bool(_) | Value::Number(_) => v.to_string(),
                Value::Null | Value::Array(_) | Value::Object(_) => String::new(),
            };
            (k.clone(), text)
        })
        .collect()
}

fn set_or_remove(map: &mut Object, field: &str, values: BTreeMap<String, String>) {
    if values.is_empty() {
        map.remove(field);
    } else {
        let values = values.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        map.insert(field.to_owned(), Value::Object(values));
    }
}
