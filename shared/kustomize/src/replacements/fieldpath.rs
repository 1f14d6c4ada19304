//! kyaml's dotted field paths (`spec.containers.[name=app].image`): splitting, the read-only
//! lookup replacement sources and vars use, and the matcher that finds (and creates) targets.

use regex::Regex;
use serde_json::{Map, Value};

use super::scalar;
use crate::error::{Error, Result, bail};

/// Splits a dotted path the way kyaml's SmarterPathSplitter does: `\.` escapes a dot, a
/// bracketed part spanning dots stays whole (`[a.b/c]` becomes the key `a.b/c`, while
/// `[name=a.b]` keeps its brackets as a list-entry matcher).
pub(crate) fn split(path: &str) -> Vec<String> {
    let raw = split_escaped(path, '.');
    let mut parts = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let elem = &raw[i];
        if elem.starts_with('[') && !elem.ends_with(']') {
            let mut joined = elem.clone();
            while i + 1 < raw.len() {
                i += 1;
                joined.push('.');
                joined.push_str(&raw[i]);
                if raw[i].ends_with(']') {
                    break;
                }
            }
            if joined.contains('=') {
                parts.push(joined);
            } else {
                parts.push(joined.trim_matches(|c| c == '[' || c == ']').to_owned());
            }
        } else {
            parts.push(elem.clone());
        }
        i += 1;
    }
    parts
}

/// Splits on `delimiter`, joining parts whose delimiter was escaped with a backslash. A
/// leading delimiter is dropped.
fn split_escaped(path: &str, delimiter: char) -> Vec<String> {
    let mut pieces: Vec<&str> = path.split(delimiter).collect();
    if pieces.len() > 1 && pieces[0].is_empty() {
        pieces.remove(0);
    }
    let mut out: Vec<String> = Vec::with_capacity(pieces.len());
    for piece in pieces {
        match out.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push(delimiter);
                last.push_str(piece);
            }
            _ => out.push(piece.to_owned()),
        }
    }
    out
}

/// kyaml's `ports[0]` spelling (used by var field paths) turned into `ports`, `0`.
pub(crate) fn split_with_slice_indexes(path: &str) -> Vec<String> {
    let indexed = Regex::new(r"^(.*)\[(\d+)\]$").expect("valid regex");
    let mut out = Vec::new();
    for part in split(path) {
        match indexed.captures(&part) {
            Some(caps) if part.ends_with(']') => {
                if !caps[1].is_empty() {
                    out.push(caps[1].to_owned());
                }
                out.push(caps[2].to_owned());
            }
            _ => out.push(part),
        }
    }
    out
}

fn is_list_entry(part: &str) -> bool {
    part.starts_with('[') && part.ends_with(']')
}

fn index_number(part: &str) -> Option<usize> {
    part.parse::<i64>().ok().and_then(|i| usize::try_from(i).ok())
}

/// `[name=app]` into (`name`, `app`); `[=-jar]` into (``, `-jar`).
fn split_list_entry(part: &str) -> Result<(&str, &str)> {
    let inner = part.strip_suffix(']').unwrap_or(part);
    let inner = inner.strip_prefix('[').unwrap_or(inner);
    inner
        .split_once('=')
        .ok_or_else(|| Error::new("list path element must contain fieldName=fieldValue for element to match"))
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "MappingNode",
        Value::Array(_) => "SequenceNode",
        _ => "ScalarNode",
    }
}

fn wrong_kind(expected: &str, got: &Value) -> Error {
    Error::new(format!(
        "wrong node kind: expected {expected} but got {}",
        kind_name(got)
    ))
}

/// Reads the value at `path` (kyaml's PathGetter): fields, list indexes (`0`, `-` for the
/// last), and exact list-entry matches (`[name=app]`). A missing part gives `None`; a part
/// that does not fit the node's kind is an error.
pub(crate) fn lookup<'a>(node: &'a Value, path: &[String]) -> Result<Option<&'a Value>> {
    let mut current = node;
    for part in path.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let next = if let Ok(idx) = part.parse::<i64>() {
            if idx < 0 {
                bail!("array index {idx} cannot be negative");
            }
            match current {
                Value::Array(items) => usize::try_from(idx).ok().and_then(|i| items.get(i)),
                Value::Null => None,
                other => return Err(wrong_kind("SequenceNode", other)),
            }
        } else if part == "-" {
            match current {
                Value::Array(items) => items.last(),
                Value::Null => None,
                other => return Err(wrong_kind("SequenceNode", other)),
            }
        } else if part == "*" {
            bail!("wildcard is not supported in PathGetter");
        } else if is_list_entry(part) {
            let (key, value) = split_list_entry(part)?;
            match current {
                Value::Array(items) if key.is_empty() => items.iter().find(|item| scalar::node_value(item) == value),
                Value::Array(items) => items.iter().find(|item| {
                    item.as_object()
                        .and_then(|m| m.get(key))
                        .is_some_and(|field| !field.is_null() && scalar::node_value(field) == value)
                }),
                Value::Null => None,
                other => return Err(wrong_kind("SequenceNode", other)),
            }
        } else {
            match current {
                Value::Object(map) => map.get(part),
                Value::Null => None,
                other => return Err(wrong_kind("MappingNode", other)),
            }
        };
        match next {
            Some(v) => current = v,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

/// The kind of node to create at the end of a path, taken from the value that will go there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Scalar,
    Map,
    Seq,
}

impl NodeKind {
    pub(crate) fn of(v: &Value) -> Self {
        match v {
            Value::Object(_) => NodeKind::Map,
            Value::Array(_) => NodeKind::Seq,
            _ => NodeKind::Scalar,
        }
    }

    fn empty(self) -> Value {
        match self {
            NodeKind::Scalar => Value::Null,
            NodeKind::Map => Value::Object(Map::new()),
            NodeKind::Seq => Value::Array(Vec::new()),
        }
    }
}

/// What a target field is when the setter sees it: one that was there, or one the matcher
/// just created (a created scalar has no type yet and takes the one its new text implies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    Existing,
    Created,
}

/// The node to create for `part` given the part after it.
fn kind_for_next(next: Option<&String>, leaf: NodeKind) -> NodeKind {
    match next {
        None => leaf,
        Some(n) if is_list_entry(n) || index_number(n).is_some() => NodeKind::Seq,
        Some(_) => NodeKind::Map,
    }
}

/// Calls `set` on every node `path` matches in `node` (kyaml's PathMatcher): fields, list
/// indexes, `*` for every element, and `[field=regex]` / `[=regex]` list-entry matches, where
/// the regular expression is not anchored. With `create`, missing parts are created, ending
/// with a node of that kind. Returns how many nodes matched.
pub(crate) fn for_each_match(
    node: &mut Value,
    path: &[String],
    create: Option<NodeKind>,
    set: &mut dyn FnMut(&mut Value, Found) -> Result<()>,
) -> Result<usize> {
    walk(node, path, create, Found::Existing, set)
}

fn walk(
    node: &mut Value,
    path: &[String],
    create: Option<NodeKind>,
    found: Found,
    set: &mut dyn FnMut(&mut Value, Found) -> Result<()>,
) -> Result<usize> {
    let Some((part, rest)) = path.split_first() else {
        set(node, found)?;
        return Ok(1);
    };
    if let Some(idx) = index_number(part) {
        walk_index(node, idx, rest, create, set)
    } else if is_list_entry(part) {
        walk_entries(node, part, rest, create, set)
    } else if part == "*" {
        let items = sequence_items(node)?;
        let mut count = 0;
        for item in items {
            count += walk(item, rest, create, Found::Existing, set)?;
        }
        Ok(count)
    } else {
        walk_field(node, part, rest, create, set)
    }
}

/// The elements of a sequence; a null node has none.
fn sequence_items(node: &mut Value) -> Result<&mut [Value]> {
    match node {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(&mut []),
        other => Err(wrong_kind("SequenceNode", other)),
    }
}

/// A sequence that may be appended to: a null node becomes an empty one.
fn sequence_for_append(node: &mut Value) -> Result<&mut Vec<Value>> {
    if node.is_null() {
        *node = Value::Array(Vec::new());
    }
    match node {
        Value::Array(items) => Ok(items),
        other => Err(wrong_kind("SequenceNode", other)),
    }
}

fn walk_field(
    node: &mut Value,
    name: &str,
    rest: &[String],
    create: Option<NodeKind>,
    set: &mut dyn FnMut(&mut Value, Found) -> Result<()>,
) -> Result<usize> {
    let map = match node {
        Value::Object(map) => map,
        Value::Null if create.is_some() => {
            *node = Value::Object(Map::new());
            node.as_object_mut().expect("just made a map")
        }
        Value::Null => return Ok(0),
        other => return Err(wrong_kind("MappingNode", other)),
    };
    if let Some(child) = map.get_mut(name) {
        return walk(child, rest, create, Found::Existing, set);
    }
    let Some(leaf) = create else {
        return Ok(0);
    };
    let kind = kind_for_next(rest.first(), leaf);
    let child = map.entry(name.to_owned()).or_insert_with(|| kind.empty());
    walk(child, rest, create, Found::Created, set)
}

fn walk_index(
    node: &mut Value,
    idx: usize,
    rest: &[String],
    create: Option<NodeKind>,
    set: &mut dyn FnMut(&mut Value, Found) -> Result<()>,
) -> Result<usize> {
    let len = sequence_items(node)?.len();
    let mut found = Found::Existing;
    if len == idx
        && let Some(leaf) = create
    {
        let items = sequence_for_append(node)?;
        items.push(kind_for_next(rest.first(), leaf).empty());
        found = Found::Created;
    }
    let items = sequence_items(node)?;
    let count = items.len();
    let Some(item) = items.get_mut(idx) else {
        bail!("index {idx} specified but only {count} elements found");
    };
    walk(item, rest, create, found, set)
}

fn walk_entries(
    node: &mut Value,
    part: &str,
    rest: &[String],
    create: Option<NodeKind>,
    set: &mut dyn FnMut(&mut Value, Found) -> Result<()>,
) -> Result<usize> {
    let (field, pattern) = split_list_entry(part)?;
    let re = Regex::new(pattern).map_err(|e| Error::new(format!("invalid list-entry pattern {part}: {e}")))?;
    let mut count = 0;
    let mut matched_any = false;
    for item in sequence_items(node)? {
        let text = if field.is_empty() {
            scalar::yaml_text(item)
        } else {
            match item.as_object().and_then(|m| m.get(field)) {
                Some(v) if !v.is_null() => scalar::yaml_text(v),
                _ => continue,
            }
        };
        if !re.is_match(text.trim()) {
            continue;
        }
        matched_any = true;
        if field.is_empty() {
            set(item, Found::Existing)?;
            count += 1;
        } else {
            count += walk(item, rest, create, Found::Existing, set)?;
        }
    }
    if matched_any || create.is_none() {
        return Ok(count);
    }
    // Nothing matched: append an element holding the pattern as its value, then descend into it.
    let items = sequence_for_append(node)?;
    if field.is_empty() {
        items.push(scalar::resolve(pattern));
        let item = items.last_mut().expect("just pushed");
        set(item, Found::Created)?;
        return Ok(1);
    }
    let mut entry = Map::new();
    entry.insert(field.to_owned(), scalar::resolve(pattern));
    items.push(Value::Object(entry));
    let item = items.last_mut().expect("just pushed");
    walk(item, rest, create, Found::Existing, set)
}
