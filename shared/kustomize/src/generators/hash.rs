//! kustomize's content hash, appended to the names of generated ConfigMaps and Secrets once
//! every transformer has run, so that a change of content rolls the workloads that use them.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Result, bail};
use crate::resource::{Object, ResMap};

/// Appends `-<hash>` to the name of every generated resource that asks for it, hashing its
/// current content. The old id is remembered so name references can follow.
pub fn add_hash_suffixes(rm: &mut ResMap) -> Result<()> {
    for r in rm.iter_mut() {
        if r.generated.as_ref().is_some_and(|g| g.hash_suffix) {
            let hash = content_hash(&r.obj)?;
            let name = format!("{}-{hash}", r.name());
            r.set_name(&name);
        }
    }
    Ok(())
}

/// The ten-character hash kustomize computes for a ConfigMap or Secret.
///
/// The hashed text is the JSON (as Go's `encoding/json` writes it) of the kind and the data:
/// `data` and `binaryData` for a ConfigMap, `type`, `data` and `stringData` for a Secret.
/// Labels, annotations and namespace do not count, and neither does the name: kustomize means
/// to include it but looks it up as a top-level field literally called `metadata/name`, which
/// objects do not have, so it always hashes an empty name. We do the same lookup.
pub(super) fn content_hash(obj: &Object) -> Result<String> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let field = |path: &[&str]| hashed_field(lookup(obj, path));
    let mut hashed = Object::new();
    hashed.insert("kind".into(), Value::String(kind.to_owned()));
    hashed.insert("name".into(), field(&["metadata/name"]));
    hashed.insert("data".into(), field(&["data"]));
    let optional = match kind {
        "ConfigMap" => "binaryData",
        "Secret" => {
            hashed.insert("type".into(), field(&["type"]));
            "stringData"
        }
        other => bail!("cannot compute a name suffix hash for kind '{other}'"),
    };
    // Included only when it is a collection, so that generators that never set it agree with
    // objects that do not have it.
    if let Some(v @ (Value::Object(_) | Value::Array(_))) = lookup(obj, &[optional]) {
        hashed.insert(optional.into(), hashed_field(Some(v)));
    }
    let mut json = String::new();
    write_go_json(&Value::Object(hashed), &mut json);
    Ok(encode(&Sha256::digest(json.as_bytes())))
}

fn lookup<'a>(obj: &'a Object, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter().try_fold(obj.get(*first)?, |v, k| v.get(k))
}

/// A field as kustomize reads it for hashing: a scalar as its text, a map as itself, absent as
/// the empty string, and a list (which it fails to read as a map) as null.
fn hashed_field(value: Option<&Value>) -> Value {
    match value {
        None | Some(Value::Null) => Value::String(String::new()),
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(v @ (Value::Bool(_) | Value::Number(_))) => Value::String(v.to_string()),
        Some(Value::Object(m)) => Value::Object(m.clone()),
        Some(Value::Array(_)) => Value::Null,
    }
}

/// The first ten hex digits of the digest, with the characters that could spell words or be
/// mistaken for one another replaced.
fn encode(digest: &[u8]) -> String {
    digest
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .take(10)
        .map(|nibble| match nibble {
            0x0 => 'g',
            0x1 => 'h',
            0x3 => 'k',
            0xa => 'm',
            0xe => 't',
            n => char::from_digit(u32::from(n), 16).expect("a nibble is a hex digit"),
        })
        .collect()
}

/// JSON exactly as Go's `json.Marshal` writes it: map keys sorted bytewise (serde_json's map
/// already is), `<`, `>`, `&`, U+2028 and U+2029 escaped, numbers as float64.
fn write_go_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_float(n.as_f64().unwrap_or_default())),
        Value::String(s) => write_go_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(k, out);
                out.push(':');
                write_go_json(v, out);
            }
            out.push('}');
        }
    }
}

fn write_go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's float64 formatting in `encoding/json`: shortest round-trip digits, plain notation
/// between 1e-6 and 1e21, otherwise exponent notation with a signed exponent.
fn go_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => s,
        }
    } else {
        format!("{f}")
    }
}
