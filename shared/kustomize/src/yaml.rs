//! YAML in and out, with limits on what one file may cost.

use serde_json::Value;

use crate::Limits;
use crate::error::{Error, Result};
use crate::resource::Object;

/// Parses every document of a YAML stream. Empty documents are dropped.
pub fn parse_documents(text: &str, limits: &Limits) -> Result<Vec<Value>> {
    if text.len() > limits.max_file_bytes {
        return Err(Error::new(format!(
            "file is larger than the limit of {} bytes",
            limits.max_file_bytes
        )));
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options(limits))
        .map_err(|e| Error::new(format!("invalid YAML: {}", first_line(&e.to_string()))))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Parses one YAML (or JSON) document.
pub fn parse_document(text: &str, limits: &Limits) -> Result<Value> {
    let mut docs = parse_documents(text, limits)?;
    match docs.len() {
        0 => Ok(Value::Null),
        1 => Ok(docs.remove(0)),
        n => Err(Error::new(format!("expected one YAML document, found {n}"))),
    }
}

fn options(limits: &Limits) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = limits.max_depth;
    budget.max_aliases = limits.max_aliases;
    budget.max_anchors = limits.max_aliases;
    budget.max_documents = limits.max_documents;
    budget.max_nodes = limits.max_nodes;
    budget.max_events = limits.max_nodes.saturating_mul(4);
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    // As kustomize's YAML library: only true/false are booleans (`y`, `on`, `yes` are strings).
    options.strict_booleans = true;
    // As go-yaml reads plain scalars: `0755` is octal, `.inf` stays text.
    options.legacy_octal_numbers = true;
    options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::AsString;
    options
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message)
}

/// One object as a YAML document body (no `---`).
pub fn to_yaml(obj: &Object) -> String {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.compact_list_indent = true;
    serde_saphyr::to_string_with_options(obj, options).unwrap_or_default()
}

/// Documents separated by `---`, as `kustomize build` prints them.
pub fn to_yaml_documents<'a>(objs: impl Iterator<Item = &'a Object>) -> String {
    let mut out = String::new();
    for (i, obj) in objs.enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let doc = to_yaml(obj);
        out.push_str(&doc);
        if !doc.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}
