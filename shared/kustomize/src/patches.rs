//! `patches`, `patchesStrategicMerge` and `patchesJson6902`.

use regex::Regex;
use serde_json::Value;

use crate::error::{Context, Error, Result, bail};
use crate::fsys::Loader;
use crate::kustfile::{Patch, Selector};
use crate::replacements::selector::LabelSelector;
use crate::resource::{Object, ResId, ResMap, Resource};
use crate::smp;
use crate::yaml;

/// A parsed patch: strategic-merge documents or JSON 6902 operations.
enum Parsed {
    Strategic(Vec<Resource>),
    Json(json_patch::Patch),
}

/// Runs one `patches` entry (kind PatchTransformer).
pub fn patch(rm: &mut ResMap, p: &Patch, ldr: &Loader) -> Result<()> {
    let (text, source) = patch_text(p, ldr)?;
    let allow_name_change = p.options.get("allowNameChange").copied().unwrap_or(false);
    let allow_kind_change = p.options.get("allowKindChange").copied().unwrap_or(false);
    match parse(&text, ldr).map_err(|e| Error::new(format!("{source}: {}", e.message)))? {
        Parsed::Strategic(patches) => match &p.target {
            Some(target) => {
                if patches.len() > 1 {
                    bail!("{source}: a patch with a target may hold only one strategic-merge document");
                }
                let selected = select(rm, target)?;
                apply_smp(rm, &selected, &patches[0], allow_name_change, allow_kind_change, true)
            }
            None => {
                for patch in &patches {
                    let pos = unique_target(rm, &patch.id()).map_err(|e| {
                        Error::new(format!(
                            "no resource matches strategic merge patch {source}: {}",
                            e.message
                        ))
                    })?;
                    apply_smp(rm, &[pos], patch, allow_name_change, allow_kind_change, false)?;
                }
                Ok(())
            }
        },
        Parsed::Json(ops) => {
            let Some(target) = &p.target else {
                bail!("{source}: a JSON 6902 patch needs a target");
            };
            apply_json_to_selected(rm, target, &ops, &source)
        }
    }
}

/// Runs `patchesStrategicMerge` (kind PatchStrategicMergeTransformer): each entry is a file or
/// inline YAML; each document patches the one resource its id names.
pub fn patches_strategic_merge(rm: &mut ResMap, entries: &[String], ldr: &Loader) -> Result<()> {
    let mut loaded = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let field = format!("patchesStrategicMerge[{i}]");
        let inline = entry.contains('\n') || entry.trim_start().starts_with('{');
        let text = if inline {
            entry.clone()
        } else {
            ldr.read(entry.trim()).in_field(&field)?.1
        };
        let docs = resources_from_text(&text, ldr).in_field(&field)?;
        if docs.is_empty() {
            return Err(Error::new("patch appears to be empty")).in_field(&field);
        }
        loaded.extend(docs.into_iter().map(|d| (field.clone(), d)));
    }
    for (field, patch) in &loaded {
        let pos = unique_target(rm, &patch.id()).in_field(field)?;
        apply_smp(rm, &[pos], patch, false, false, false).in_field(field)?;
    }
    Ok(())
}

/// Runs one `patchesJson6902` entry (kind PatchJson6902Transformer).
pub fn patch_json6902(rm: &mut ResMap, p: &Patch, ldr: &Loader) -> Result<()> {
    let Some(target) = &p.target else {
        bail!("must specify a target");
    };
    if target.name.is_empty() {
        bail!("must specify the target name");
    }
    let (text, source) = patch_text(p, ldr)?;
    let ops = parse_json_patch(&text, ldr).map_err(|e| Error::new(format!("{source}: {}", e.message)))?;
    if ops.0.is_empty() {
        bail!("{source}: patch appears to be empty");
    }
    apply_json_to_selected(rm, target, &ops, &source)
}

fn patch_text(p: &Patch, ldr: &Loader) -> Result<(String, String)> {
    let inline = p.patch.trim();
    match (inline.is_empty(), p.path.is_empty()) {
        (true, true) => bail!("must specify one of patch and path"),
        (false, false) => bail!("patch and path can't be set at the same time"),
        (false, true) => Ok((inline.to_owned(), "inline patch".to_owned())),
        (true, false) => {
            let (display, text) = ldr.read(&p.path)?;
            Ok((text, format!("patch file {display}")))
        }
    }
}

/// Decides, like kustomize, whether text is a strategic-merge patch or JSON 6902 operations.
fn parse(text: &str, ldr: &Loader) -> Result<Parsed> {
    let strategic = resources_from_text(text, ldr);
    let json = parse_json_patch(text, ldr);
    match (strategic, json) {
        (Ok(_), Ok(_)) => bail!("the patch qualifies as both a strategic-merge and a JSON 6902 patch"),
        (Ok(docs), Err(_)) if docs.is_empty() => bail!("the patch is empty"),
        (Ok(docs), Err(_)) => Ok(Parsed::Strategic(docs)),
        (Err(_), Ok(ops)) => Ok(Parsed::Json(ops)),
        (Err(sm), Err(js)) => {
            bail!(
                "not a valid strategic-merge patch ({}) nor JSON 6902 patch ({})",
                sm.message,
                js.message
            )
        }
    }
}

fn resources_from_text(text: &str, ldr: &Loader) -> Result<Vec<Resource>> {
    let docs = yaml::parse_documents(text, ldr.limits())?;
    docs.into_iter()
        .map(|d| match d {
            Value::Object(obj) => Resource::from_object(obj),
            other => bail!("expected a map, found {}", kind_of(&other)),
        })
        .collect()
}

fn parse_json_patch(text: &str, ldr: &Loader) -> Result<json_patch::Patch> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        bail!("empty JSON patch");
    }
    let value: Value = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|e| Error::new(format!("invalid JSON patch: {e}")))?
    } else {
        yaml::parse_document(trimmed, ldr.limits())?
    };
    if !value.is_array() {
        bail!("a JSON 6902 patch is a list of operations");
    }
    serde_json::from_value(value).map_err(|e| Error::new(format!("invalid JSON 6902 operation: {e}")))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// The one resource any of whose ids equals `id`.
fn unique_target(rm: &ResMap, id: &ResId) -> Result<usize> {
    let matches: Vec<usize> = rm
        .iter()
        .enumerate()
        .filter(|(_, r)| r.all_ids().any(|other| other.same_object(id)))
        .map(|(i, _)| i)
        .collect();
    match matches.len() {
        1 => Ok(matches[0]),
        0 => bail!("no resource matches {id}"),
        _ => bail!("several resources match {id}"),
    }
}

/// Positions of the resources a patch target selects: name and namespace match the original or the
/// current value (regular expressions, anchored), group/version/kind are regular expressions too.
pub fn select(rm: &ResMap, s: &Selector) -> Result<Vec<usize>> {
    let re = |field: &str, pattern: &str| -> Result<Option<Regex>> {
        if pattern.is_empty() {
            return Ok(None);
        }
        Regex::new(&format!("^(?:{pattern})$"))
            .map(Some)
            .map_err(|e| Error::new(format!("target.{field}: invalid regular expression: {e}")))
    };
    let (group, version, kind) = (re("group", &s.group)?, re("version", &s.version)?, re("kind", &s.kind)?);
    let (name, namespace) = (re("name", &s.name)?, re("namespace", &s.namespace)?);
    let labels = LabelSelector::parse(&s.label_selector).in_field("target.labelSelector")?;
    let annotations = LabelSelector::parse(&s.annotation_selector).in_field("target.annotationSelector")?;
    let hit = |re: &Option<Regex>, value: &str| re.as_ref().is_none_or(|re| re.is_match(value));
    let mut out = Vec::new();
    for (position, r) in rm.iter().enumerate() {
        let (cur, org) = (r.id(), r.org_id());
        let gvk = &cur.gvk;
        if !(hit(&namespace, org.effective_namespace()) || hit(&namespace, cur.effective_namespace())) {
            continue;
        }
        if !(hit(&name, &org.name) || hit(&name, &cur.name)) {
            continue;
        }
        if !(hit(&group, &gvk.group) && hit(&version, &gvk.version) && hit(&kind, &gvk.kind)) {
            continue;
        }
        if !labels.matches(&r.labels()) || !annotations.matches(&r.annotations()) {
            continue;
        }
        out.push(position);
    }
    Ok(out)
}

/// Applies a strategic-merge patch to the resources at `positions`. The patch never renames,
/// re-kinds or moves a resource unless the options allow it; resources it deletes are removed.
fn apply_smp(
    rm: &mut ResMap,
    positions: &[usize],
    patch: &Resource,
    allow_name_change: bool,
    allow_kind_change: bool,
    targeted: bool,
) -> Result<()> {
    let mut deleted = Vec::new();
    for &pos in positions {
        if !apply_smp_at(rm, pos, patch, allow_name_change, allow_kind_change, targeted)? {
            deleted.push(pos);
        }
    }
    let resources = rm.resources_mut();
    for pos in deleted.into_iter().rev() {
        resources.remove(pos);
    }
    Ok(())
}

/// Patches one resource; `false` when the patch deleted it.
fn apply_smp_at(
    rm: &mut ResMap,
    pos: usize,
    patch: &Resource,
    allow_name_change: bool,
    allow_kind_change: bool,
    targeted: bool,
) -> Result<bool> {
    let mut patch_obj: Object = patch.obj.clone();
    let res = &rm.resources()[pos];
    let gvk = res.gvk();
    let id = res.id();
    if targeted {
        // The target's group and version, the patch's kind.
        let kind = patch.kind().to_owned();
        patch_obj.insert("apiVersion".into(), Value::String(gvk.api_version()));
        patch_obj.insert("kind".into(), Value::String(kind));
    }
    let (name, namespace, kind) = (res.name().to_owned(), res.namespace().to_owned(), res.kind().to_owned());
    let merged =
        smp::apply(&res.obj, &patch_obj, &gvk).map_err(|e| Error::new(format!("patching {id}: {}", e.message)))?;
    let Some(merged) = merged.filter(|m| !m.is_empty()) else {
        return Ok(false);
    };
    let res = &mut rm.resources_mut()[pos];
    let old_id = res.id();
    res.obj = merged;
    if !allow_kind_change {
        res.obj.insert("kind".into(), Value::String(kind));
    }
    if !allow_name_change {
        res.metadata_mut().insert("name".into(), Value::String(name));
    }
    let meta = res.metadata_mut();
    if namespace.is_empty() {
        meta.remove("namespace");
    } else {
        meta.insert("namespace".into(), Value::String(namespace));
    }
    if res.id() != old_id {
        res.previous.push(old_id);
    }
    Ok(true)
}

fn apply_json_to_selected(rm: &mut ResMap, target: &Selector, ops: &json_patch::Patch, source: &str) -> Result<()> {
    let selected = select(rm, target)?;
    let resources = rm.resources_mut();
    for pos in selected {
        let res = &mut resources[pos];
        let id = res.id();
        let mut doc = Value::Object(std::mem::take(&mut res.obj));
        let outcome = json_patch::patch(&mut doc, ops);
        res.obj = match doc {
            Value::Object(obj) => obj,
            _ => bail!("{source} turned {id} into something that is not an object"),
        };
        outcome.map_err(|e| Error::new(format!("{source} failed on {id}: {e}")))?;
        let new_id = res.id();
        if new_id != id {
            res.previous.push(id);
        }
    }
    Ok(())
}
