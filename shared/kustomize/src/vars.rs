//! The legacy `vars`: `$(NAME)` in the fields the var-reference table lists.
//!
//! Each kustomization's vars are tied to the one resource their `objref` names when they are
//! merged (after that kustomization's transformers ran, so a name from any point in the
//! resource's history matches); the values are read and substituted once, at the top, from the
//! final resources.
// OWNER: replacements helper.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::builtin::TransformerConfig;
use crate::error::{Error, Result, bail};
use crate::fieldspec::FieldSpec;
use crate::replacements::fieldpath;
use crate::resource::{Gvk, ResId, ResMap, Resource};

/// The field a var reads when it names none.
const DEFAULT_FIELD_PATH: &str = "metadata.name";

/// One entry of `vars`. Keys match case-insensitively in kustomize (`objRef`, `fieldPath`);
/// the common spellings are accepted.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Var {
    pub name: String,
    #[serde(default, alias = "objRef", alias = "ObjRef")]
    pub objref: ObjRef,
    #[serde(default, alias = "fieldRef", alias = "FieldRef")]
    pub fieldref: FieldRef,
}

/// The object a var reads: by `apiVersion` or group and version, kind, name, namespace.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjRef {
    #[serde(default, alias = "apiversion")]
    pub api_version: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

impl ObjRef {
    /// The group, version and kind; `apiVersion` overrides the separate fields (a bare
    /// version replaces only the version).
    fn gvk(&self) -> Gvk {
        let mut gvk = Gvk::new(&self.group, &self.version, &self.kind);
        let parts: Vec<&str> = self.api_version.split('/').collect();
        match parts[..] {
            [""] => {}
            [version] => version.clone_into(&mut gvk.version),
            [group, version] => {
                group.clone_into(&mut gvk.group);
                version.clone_into(&mut gvk.version);
            }
            _ => {}
        }
        gvk
    }

    /// Whether a resource id is the one referred to. Without a namespace any namespace
    /// matches; an unset namespace is `default`, and a cluster-scoped object has none.
    fn refers_to(&self, id: &ResId) -> bool {
        if self.gvk() != id.gvk || self.name != id.name {
            return false;
        }
        if self.namespace.is_empty() {
            return true;
        }
        let wanted = if self.namespace == "default" {
            "default"
        } else {
            &self.namespace
        };
        id.effective_namespace() == wanted
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRef {
    #[serde(default, rename = "fieldPath", alias = "fieldpath")]
    pub field_path: String,
}

/// Go's `%v` of a var, which kustomize's messages use: `{NAME Kind.version.group {path}}`.
struct Described<'a>(&'a Var, Gvk);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or = |s: &str, placeholder: &str| {
            if s.is_empty() {
                placeholder.to_owned()
            } else {
                s.to_owned()
            }
        };
        write!(
            f,
            "{{{} {}.{}.{} {{{}}}}}",
            self.0.name,
            or(&self.1.kind, "[noKind]"),
            or(&self.1.version, "[noVer]"),
            or(&self.1.group, "[noGrp]"),
            self.0.fieldref.field_path
        )
    }
}

impl Var {
    /// As written, before `apiVersion` is folded in.
    fn as_written(&self) -> Described<'_> {
        Described(
            self,
            Gvk::new(&self.objref.group, &self.objref.version, &self.objref.kind),
        )
    }

    fn described(&self) -> Described<'_> {
        Described(self, self.objref.gvk())
    }

    fn defaulted(&self) -> Var {
        let mut v = self.clone();
        if v.fieldref.field_path.is_empty() {
            DEFAULT_FIELD_PATH.clone_into(&mut v.fieldref.field_path);
        }
        let gvk = v.objref.gvk();
        v.objref.group = gvk.group;
        v.objref.version = gvk.version;
        v
    }
}

/// Where a var's resource was when the var was merged: its id then, and that id's position
/// in the resource's history, so renames later in the build still lead back to it.
#[derive(Clone, Debug, PartialEq)]
struct Binding {
    id: ResId,
    position: usize,
}

impl Binding {
    fn of(r: &Resource) -> Self {
        Self {
            id: r.id(),
            position: r.previous.len(),
        }
    }

    fn find<'a>(&self, rm: &'a ResMap) -> Option<&'a Resource> {
        rm.iter()
            .find(|r| r.all_ids().nth(self.position).as_ref() == Some(&self.id))
            .or_else(|| rm.iter().find(|r| r.all_ids().any(|id| id == self.id)))
    }
}

#[derive(Clone, Debug, PartialEq)]
struct BoundVar {
    var: Var,
    binding: Option<Binding>,
}

/// Vars gathered from a kustomization and its bases, each tied to the resource it reads.
#[derive(Clone, Debug, Default)]
pub struct VarSet {
    vars: BTreeMap<String, BoundVar>,
}

impl VarSet {
    /// Adds a kustomization's vars; a name already defined is an error, and so is an
    /// `objref` that matches more than one resource.
    pub fn merge(&mut self, vars: &[Var], rm: &mut ResMap) -> Result<()> {
        self.merge_all(vars, rm).map_err(|e| {
            let listed: Vec<String> = vars.iter().map(|v| v.as_written().to_string()).collect();
            Error::new(format!("merging vars [{}]: {}", listed.join(" "), e.message))
        })
    }

    fn merge_all(&mut self, vars: &[Var], rm: &ResMap) -> Result<()> {
        let mut bindings = Vec::with_capacity(vars.len());
        for v in vars {
            let matched: Vec<&Resource> = rm
                .iter()
                .filter(|r| r.all_ids().any(|id| v.objref.refers_to(&id)))
                .collect();
            if matched.len() > 1 {
                bail!(
                    "found {} resId matches for var {} (unable to disambiguate)",
                    matched.len(),
                    v.described()
                );
            }
            bindings.push(matched.first().map(|r| Binding::of(r)));
        }
        for (v, binding) in vars.iter().zip(bindings) {
            self.insert(BoundVar {
                var: v.defaulted(),
                binding,
            })?;
        }
        Ok(())
    }

    fn insert(&mut self, bound: BoundVar) -> Result<()> {
        if self.vars.contains_key(&bound.var.name) {
            bail!("var '{}' already encountered", bound.var.name);
        }
        self.vars.insert(bound.var.name.clone(), bound);
        Ok(())
    }

    /// Adds the vars of a base (already tied to resources); a name both define is an error.
    pub fn absorb(&mut self, other: VarSet) -> Result<()> {
        other.vars.into_values().try_for_each(|bound| self.insert(bound))
    }

    /// Replaces `$(NAME)` everywhere the var-reference table allows. An undefined name, or a
    /// var whose value is a map or list, is left as written; `$$` stands for `$`.
    pub fn resolve(&self, rm: &mut ResMap, config: &TransformerConfig) -> Result<()> {
        let values = self.values(rm)?;
        if values.is_empty() {
            return Ok(());
        }
        for r in rm.iter_mut() {
            let gvk = r.gvk();
            let id = r.id();
            for spec in config.var_reference.iter().filter(|s| s.selects(&gvk)) {
                substitute_at(&mut r.obj, spec, &values).map_err(|e| {
                    Error::new(format!(
                        "considering field '{}' of object {}: {}",
                        spec.path,
                        describe_id(&id),
                        e.message
                    ))
                })?;
            }
        }
        Ok(())
    }

    /// Each var's value, read from the final resources in name order.
    fn values(&self, rm: &ResMap) -> Result<BTreeMap<String, Value>> {
        let mut values = BTreeMap::new();
        for bound in self.vars.values() {
            let v = &bound.var;
            let Some(r) = bound.binding.as_ref().and_then(|b| b.find(rm)) else {
                bail!(
                    "var '{}' cannot be mapped to a field in the set of known resources",
                    v.described()
                );
            };
            let path = fieldpath::split_with_slice_indexes(&v.fieldref.field_path);
            let root = Value::Object(r.obj.clone());
            let Ok(Some(value)) = fieldpath::lookup(&root, &path) else {
                bail!(
                    "field specified in var '{}' not found in corresponding resource",
                    v.described()
                );
            };
            let value = match value {
                // kyaml reads a null scalar as its text.
                Value::Null => Value::String("null".into()),
                other => other.clone(),
            };
            values.insert(v.name.clone(), value);
        }
        Ok(values)
    }
}

/// kustomize's spelling of a resource id in messages.
fn describe_id(id: &ResId) -> String {
    let or = |s: &str, placeholder: &str| {
        if s.is_empty() {
            placeholder.to_owned()
        } else {
            s.to_owned()
        }
    };
    format!(
        "{}.{}.{}/{}.{}",
        or(&id.gvk.kind, "[noKind]"),
        or(&id.gvk.version, "[noVer]"),
        or(&id.gvk.group, "[noGrp]"),
        or(&id.name, "[noName]"),
        or(&id.namespace, "[noNs]")
    )
}

/// Walks a var-reference field spec (slash-separated, lists visited element by element,
/// missing fields skipped) and substitutes at the node it reaches.
fn substitute_at(obj: &mut Map<String, Value>, spec: &FieldSpec, values: &BTreeMap<String, Value>) -> Result<()> {
    let path: Vec<String> = split_slash_path(&spec.path);
    let mut root = Value::Object(std::mem::take(obj));
    let result = walk(&mut root, &path, values);
    if let Value::Object(m) = root {
        *obj = m;
    }
    result
}

/// Splits on `/`, where `\/` escapes a slash inside a key.
fn split_slash_path(path: &str) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut pieces = path.split('/').peekable();
    if path.starts_with('/') && path.len() > 1 {
        pieces.next();
    }
    for piece in pieces {
        match parts.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push('/');
                last.push_str(piece);
            }
            _ => parts.push(piece.to_owned()),
        }
    }
    parts
}

fn walk(node: &mut Value, path: &[String], values: &BTreeMap<String, Value>) -> Result<()> {
    let Some((part, rest)) = path.split_first() else {
        return substitute(node, values);
    };
    match node {
        Value::Null => Ok(()),
        Value::Array(items) => items.iter_mut().try_for_each(|item| walk(item, path, values)),
        Value::Object(map) => {
            let name = part.strip_suffix("[]").unwrap_or(part);
            if name.is_empty() {
                bail!("cannot set or create an empty field name");
            }
            match map.get_mut(name) {
                Some(child) => walk(child, rest, values),
                None => Ok(()),
            }
        }
        _ => bail!("expected sequence or mapping node"),
    }
}

/// Substitutes in a string, in the string values of a map, or in a list of strings.
fn substitute(node: &mut Value, values: &BTreeMap<String, Value>) -> Result<()> {
    match node {
        Value::String(s) => *node = expand(s, values),
        Value::Object(map) => {
            for value in map.values_mut() {
                if let Value::String(s) = value {
                    *value = expand(s, values);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                let Value::String(s) = item else {
                    bail!("invalid value type expect a string");
                };
                *item = expand(s, values);
            }
        }
        _ => {}
    }
    Ok(())
}

/// A var's value if it can be substituted (a string, number or bool).
fn primitive<'a>(values: &'a BTreeMap<String, Value>, name: &str) -> Option<&'a Value> {
    values
        .get(name)
        .filter(|v| v.is_string() || v.is_number() || v.is_boolean())
}

/// Expands `$(NAME)` references in `input`. When the whole input is one reference to a
/// number or bool, the result has that type.
fn expand(input: &str, values: &BTreeMap<String, Value>) -> Value {
    if let Some(name) = input.strip_prefix("$(").and_then(|s| s.strip_suffix(')'))
        && !name.contains(')')
        && let Some(value) = primitive(values, name)
    {
        return value.clone();
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let mut chars = after.chars();
        match chars.next() {
            None => {
                out.push('$');
                rest = after;
            }
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('(') => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match primitive(values, name) {
                        Some(value) => out.push_str(&display(value)),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            Some(c) => {
                out.push('$');
                out.push(c);
                rest = chars.as_str();
            }
        }
    }
    out.push_str(rest);
    Value::String(out)
}

/// Go's `%v` of a primitive.
fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => go_float(f),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// Go's `%v` of a float64: shortest form, exponent from 1e21 up or below 1e-4.
fn go_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) => {
                let (sign, digits) = exp.strip_prefix('-').map_or(("+", exp), |d| ("-", d));
                format!("{mantissa}e{sign}{digits:0>2}")
            }
            None => s,
        }
    } else {
        Number::from_f64(f).map_or_else(|| f.to_string(), |n| n.to_string())
    }
}

#[cfg(test)]
mod tests;
