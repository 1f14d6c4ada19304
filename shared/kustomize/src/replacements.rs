//! `replacements`: copy a field of one resource into fields of others.
//!
//! Entries come from the kustomization's `replacements` field or a `ReplacementTransformer`
//! config (inline, or from files they name); they run in order over the accumulated resources,
//! each reading its source after the previous one has written.
// OWNER: replacements helper.

pub(crate) mod fieldpath;
pub(crate) mod scalar;
pub(crate) mod selector;

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result, bail};
use crate::fsys::Loader;
use crate::resource::{ResId, ResMap, Resource};
use fieldpath::{Found, NodeKind};
use selector::LabelSelector;

/// The field path a source or target uses when it names none.
const DEFAULT_FIELD_PATH: &str = "metadata.name";

/// One entry of `replacements`: a file with replacements, or one inline.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplacementField {
    #[serde(default)]
    pub path: String,
    #[serde(flatten)]
    pub inline: serde_json::Map<String, Value>,
}

/// kind ReplacementTransformer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplacementTransformer {
    #[serde(default)]
    pub replacements: Vec<ReplacementField>,
}

impl ReplacementTransformer {
    /// Runs every replacement in order; `ldr` reads the files `path` entries name.
    pub fn transform(&self, rm: &mut ResMap, ldr: &Loader) -> Result<()> {
        let replacements = self.load(ldr)?;
        for replacement in &replacements {
            replacement.apply(rm)?;
        }
        Ok(())
    }

    /// Reads the entries: inline ones strictly (unknown fields are errors, as in a
    /// kustomization), files leniently (a list of replacements or a single one).
    fn load(&self, ldr: &Loader) -> Result<Vec<Replacement>> {
        let mut out = Vec::new();
        for (i, field) in self.replacements.iter().enumerate() {
            let context = format!("replacements[{i}]");
            if field.path.is_empty() {
                let inline = Value::Object(field.inline.clone());
                out.push(Replacement::parse(inline, true).map_err(|e| e.in_field(&context))?);
                continue;
            }
            let has_inline = field.inline.get("source").is_some_and(|s| !s.is_null())
                || field
                    .inline
                    .get("targets")
                    .and_then(Value::as_array)
                    .is_some_and(|t| !t.is_empty());
            if has_inline {
                return Err(Error::new("cannot specify both path and inline replacement").in_field(context));
            }
            let (display, text) = ldr.read(&field.path).map_err(|e| e.in_field(&context))?;
            let loaded = load_file(&text, ldr).map_err(|e| e.in_file(&display).in_field(&context))?;
            out.extend(loaded);
        }
        Ok(out)
    }
}

/// A file named by `path`: the first document, a list of replacements or one replacement.
fn load_file(text: &str, ldr: &Loader) -> Result<Vec<Replacement>> {
    let doc = crate::yaml::parse_documents(text, ldr.limits())?
        .into_iter()
        .next()
        .unwrap_or(Value::Null);
    match doc {
        Value::Array(items) => items.into_iter().map(|item| Replacement::parse(item, false)).collect(),
        doc @ Value::Object(_) => Ok(vec![Replacement::parse(doc, false)?]),
        other => {
            // Named after Go's reflect kinds, as kustomize reports them.
            let kind = match other {
                Value::String(_) => "string",
                Value::Number(_) => "float64",
                Value::Bool(_) => "bool",
                _ => "invalid",
            };
            bail!("unsupported replacement type encountered within replacement path: {kind}")
        }
    }
}

/// Options that refine how a source value is read or a target value written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FieldOptions {
    #[serde(default)]
    delimiter: String,
    #[serde(default)]
    index: i64,
    /// Accepted and ignored, as in kustomize.
    #[serde(default)]
    #[allow(dead_code)]
    encoding: String,
    #[serde(default)]
    create: bool,
}

impl fmt::Display for FieldOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.delimiter.is_empty() && !self.create {
            return Ok(());
        }
        write!(f, "{}({}), create={}", self.delimiter, self.index, self.create)
    }
}

/// Group, version, kind, name and namespace; empty parts match anything, and an unset
/// namespace is the same as `default`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdPattern {
    #[serde(default)]
    group: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
}

fn effective_namespace(ns: &str) -> &str {
    if ns.is_empty() { "default" } else { ns }
}

impl IdPattern {
    fn selects(&self, id: &ResId) -> bool {
        (self.name.is_empty() || self.name == id.name)
            && (self.namespace.is_empty() || effective_namespace(&self.namespace) == effective_namespace(&id.namespace))
            && (self.group.is_empty() || self.group == id.gvk.group)
            && (self.version.is_empty() || self.version == id.gvk.version)
            && (self.kind.is_empty() || self.kind == id.gvk.kind)
    }

    fn selects_any(&self, r: &Resource) -> bool {
        r.all_ids().any(|id| self.selects(&id))
    }

    fn is_empty(&self) -> bool {
        [&self.group, &self.version, &self.kind, &self.name, &self.namespace]
            .iter()
            .all(|s| s.is_empty())
    }
}

fn or_placeholder<'a>(s: &'a str, placeholder: &'a str) -> &'a str {
    if s.is_empty() { placeholder } else { s }
}

impl fmt::Display for IdPattern {
    /// kustomize's spelling: `Deployment.v1.apps/web.prod`, `[noVer]`, `[noName]`...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}/{}.{}",
            or_placeholder(&self.kind, "[noKind]"),
            or_placeholder(&self.version, "[noVer]"),
            or_placeholder(&self.group, "[noGrp]"),
            or_placeholder(&self.name, "[noName]"),
            or_placeholder(&self.namespace, "[noNs]")
        )
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Source {
    #[serde(flatten)]
    id: IdPattern,
    #[serde(default)]
    field_path: String,
    #[serde(default)]
    options: Option<FieldOptions>,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)?;
        if !self.field_path.is_empty() {
            write!(f, ":{}", self.field_path)?;
        }
        let options = self.options.as_ref().map(ToString::to_string).unwrap_or_default();
        if !options.is_empty() {
            write!(f, ":{options}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Selector {
    #[serde(flatten)]
    id: IdPattern,
    #[serde(default)]
    label_selector: String,
    #[serde(default)]
    annotation_selector: String,
}

impl Selector {
    /// Whether the label and annotation selectors both hold.
    fn matches_metadata(&self, r: &Resource) -> Result<bool> {
        Ok(
            LabelSelector::parse(&self.annotation_selector)?.matches(&r.annotations())
                && LabelSelector::parse(&self.label_selector)?.matches(&r.labels()),
        )
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    #[serde(default)]
    select: Option<Selector>,
    #[serde(default)]
    reject: Vec<Selector>,
    #[serde(default)]
    field_paths: Vec<String>,
    #[serde(default)]
    options: Option<FieldOptions>,
}

impl Target {
    /// kustomize's selection: `select` by any id the resource has had and by labels and
    /// annotations; a `reject` drops it when its id part matches any id, or its label or
    /// annotation part matches.
    fn selects(&self, select: &Selector, r: &Resource) -> Result<bool> {
        if !select.matches_metadata(r)? {
            return Ok(false);
        }
        for reject in &self.reject {
            let has_metadata = !reject.label_selector.is_empty() || !reject.annotation_selector.is_empty();
            if has_metadata && reject.matches_metadata(r)? {
                return Ok(false);
            }
        }
        if !select.id.selects_any(r) {
            return Ok(false);
        }
        Ok(!self
            .reject
            .iter()
            .any(|reject| !reject.id.is_empty() && reject.id.selects_any(r)))
    }
}

/// One replacement: a source field and the fields it is copied to.
#[derive(Clone, Debug, Default, Deserialize)]
struct Replacement {
    #[serde(default)]
    source: Option<Source>,
    #[serde(default)]
    targets: Option<Vec<Target>>,
}

impl Replacement {
    /// Decodes one replacement. Keys match case-insensitively, as Go's JSON decoding does;
    /// unknown keys are errors when `strict`, dropped otherwise.
    fn parse(mut value: Value, strict: bool) -> Result<Self> {
        canonicalize(&mut value, Shape::Replacement, strict)?;
        serde_json::from_value(value).map_err(|e| Error::new(format!("invalid replacement: {e}")))
    }

    fn apply(&self, rm: &mut ResMap) -> Result<()> {
        let (Some(source), Some(targets)) = (&self.source, &self.targets) else {
            bail!("replacements must specify a source and at least one target");
        };
        let value = source_value(rm, source)?;
        for target in targets {
            let Some(select) = &target.select else {
                bail!("target must specify resources to select");
            };
            for r in rm.iter_mut() {
                if target.selects(select, r)? {
                    copy_to_target(r, &value, target)?;
                }
            }
        }
        Ok(())
    }
}

/// The value a source reads: exactly one resource must match, and the field must be set.
fn source_value(rm: &ResMap, source: &Source) -> Result<Value> {
    let mut matches = rm.iter().filter(|r| source.id.selects_any(r));
    let Some(r) = matches.next() else {
        bail!("nothing selected by {source}");
    };
    if matches.next().is_some() {
        bail!("multiple matches for selector {source}");
    }
    let path = if source.field_path.is_empty() {
        DEFAULT_FIELD_PATH
    } else {
        &source.field_path
    };
    let root = Value::Object(r.obj.clone());
    let found = fieldpath::lookup(&root, &fieldpath::split(path))
        .map_err(|e| Error::new(format!("error looking up replacement source: {}", e.message)))?;
    let value = match found {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) if m.is_empty() => None,
        Some(Value::Array(a)) if a.is_empty() => None,
        Some(v) => Some(v),
    };
    let Some(value) = value else {
        bail!("fieldPath `{path}` is missing for replacement source {}", source.id);
    };
    match &source.options {
        Some(options) if !options.delimiter.is_empty() => {
            if value.is_object() || value.is_array() {
                bail!("delimiter option can only be used with scalar nodes");
            }
            let text = scalar::node_value(value);
            let parts: Vec<&str> = text.split(options.delimiter.as_str()).collect();
            let Some(part) = usize::try_from(options.index).ok().and_then(|i| parts.get(i)) else {
                bail!("options.index {} is out of bounds for value {text}", options.index);
            };
            // The piece keeps the source's type where it still reads as one.
            Ok(scalar::retype(part, value).unwrap_or_else(|_| Value::String((*part).to_owned())))
        }
        _ => Ok(value.clone()),
    }
}

/// Writes `value` into every field path of `target` in `r`.
fn copy_to_target(r: &mut Resource, value: &Value, target: &Target) -> Result<()> {
    let default_paths = [DEFAULT_FIELD_PATH.to_owned()];
    let paths = if target.field_paths.is_empty() {
        &default_paths[..]
    } else {
        &target.field_paths[..]
    };
    let options = target.options.clone().unwrap_or_default();
    let create = options.create.then(|| NodeKind::of(value));
    for path in paths {
        let id = r.id();
        let mut root = Value::Object(std::mem::take(&mut r.obj));
        let mut set_error = None;
        let walked = fieldpath::for_each_match(&mut root, &fieldpath::split(path), create, &mut |node, found| {
            set_field(node, found, value, &options).map_err(|e| {
                set_error = Some(e);
                Error::new("")
            })
        });
        if let Value::Object(obj) = root {
            r.obj = obj;
        }
        let retrieval = if create.is_some() {
            format!("unable to find or create field \"{path}\" in replacement target")
        } else {
            format!("unable to find field \"{path}\" in replacement target")
        };
        if let Some(e) = set_error {
            bail!("replacement target {id}: field \"{path}\": {}", e.message);
        }
        match walked {
            Err(e) => bail!("{retrieval}: {}", e.message),
            Ok(0) => bail!("{retrieval}"),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Sets one target field. A scalar keeps its type and takes the new text (joined into its
/// delimited parts when a delimiter is given); a map or list is replaced whole.
fn set_field(target: &mut Value, found: Found, value: &Value, options: &FieldOptions) -> Result<()> {
    let is_container = target.is_object() || target.is_array();
    let text = if options.delimiter.is_empty() {
        if is_container {
            *target = value.clone();
            return Ok(());
        }
        scalar::node_value(value)
    } else {
        if is_container {
            bail!("delimiter option can only be used with scalar nodes");
        }
        let current = match found {
            Found::Created => String::new(),
            Found::Existing => scalar::node_value(target),
        };
        let mut parts: Vec<&str> = current.split(options.delimiter.as_str()).collect();
        let new = scalar::node_value(value);
        match usize::try_from(options.index) {
            Err(_) => parts.insert(0, &new),
            Ok(i) if i >= parts.len() => parts.push(&new),
            Ok(i) => parts[i] = &new,
        }
        parts.join(&options.delimiter)
    };
    *target = match found {
        Found::Created => scalar::resolve(&text),
        Found::Existing => scalar::retype(&text, target)?,
    };
    Ok(())
}

/// The parts of a replacement, for matching keys the way Go's JSON decoding does.
#[derive(Clone, Copy)]
enum Shape {
    Replacement,
    Source,
    Target,
    Selector,
    Options,
    Leaf,
}

impl Shape {
    /// Known keys and the shape of their values (lists of the shape for `targets`, `reject`).
    fn fields(self) -> &'static [(&'static str, Shape)] {
        const ID: [(&str, Shape); 5] = [
            ("group", Shape::Leaf),
            ("version", Shape::Leaf),
            ("kind", Shape::Leaf),
            ("name", Shape::Leaf),
            ("namespace", Shape::Leaf),
        ];
        match self {
            Shape::Replacement => &[("source", Shape::Source), ("targets", Shape::Target)],
            Shape::Source => &[
                ID[0],
                ID[1],
                ID[2],
                ID[3],
                ID[4],
                ("fieldPath", Shape::Leaf),
                ("options", Shape::Options),
            ],
            Shape::Target => &[
                ("select", Shape::Selector),
                ("reject", Shape::Selector),
                ("fieldPaths", Shape::Leaf),
                ("options", Shape::Options),
            ],
            Shape::Selector => &[
                ID[0],
                ID[1],
                ID[2],
                ID[3],
                ID[4],
                ("labelSelector", Shape::Leaf),
                ("annotationSelector", Shape::Leaf),
            ],
            Shape::Options => &[
                ("delimiter", Shape::Leaf),
                ("index", Shape::Leaf),
                ("encoding", Shape::Leaf),
                ("create", Shape::Leaf),
            ],
            Shape::Leaf => &[],
        }
    }
}

/// Renames keys to their canonical spelling and rejects (or drops) unknown ones.
fn canonicalize(value: &mut Value, shape: Shape, strict: bool) -> Result<()> {
    if matches!(shape, Shape::Leaf) {
        return Ok(());
    }
    match value {
        Value::Array(items) => items.iter_mut().try_for_each(|item| canonicalize(item, shape, strict)),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut v) in entries {
                let known = shape
                    .fields()
                    .iter()
                    .find(|(name, _)| *name == key)
                    .or_else(|| shape.fields().iter().find(|(name, _)| name.eq_ignore_ascii_case(&key)));
                match known {
                    Some((name, child)) => {
                        canonicalize(&mut v, *child, strict)?;
                        map.insert((*name).to_owned(), v);
                    }
                    None if strict => bail!("json: unknown field \"{key}\""),
                    None => {}
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
