//! configMapGenerator and secretGenerator: the ConfigMaps and Secrets a kustomization describes
//! (inputs read through its [`Loader`]), how they combine with objects from bases ([`absorb`]),
//! and kustomize's content-hash name suffix ([`add_hash_suffixes`], run once at the end).
// OWNER: generators helper.

mod absorb;
mod hash;
mod sources;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Result, bail};
use crate::fsys::Loader;
use crate::resource::{Behavior, Generated, Object, Resource};

pub use absorb::absorb;
pub use hash::add_hash_suffixes;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeneratorOptions {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub disable_name_suffix_hash: bool,
    #[serde(default)]
    pub immutable: bool,
}

impl GeneratorOptions {
    /// A generator's own options with the kustomization's `generatorOptions` folded in: local
    /// labels and annotations win over global ones with the same key, and either side can turn
    /// on `disableNameSuffixHash` and `immutable` (neither can turn them off).
    pub fn with_global(local: Option<&Self>, global: Option<&Self>) -> Self {
        let mut merged = local.cloned().unwrap_or_default();
        if let Some(global) = global {
            for (k, v) in &global.labels {
                merged.labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for (k, v) in &global.annotations {
                merged.annotations.entry(k.clone()).or_insert_with(|| v.clone());
            }
            merged.disable_name_suffix_hash |= global.disable_name_suffix_hash;
            merged.immutable |= global.immutable;
        }
        merged
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMapArgs {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub behavior: Behavior,
    #[serde(default)]
    pub literals: Vec<String>,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub envs: Vec<String>,
    /// The legacy singular `envs`; read after every entry of `envs`.
    #[serde(default)]
    pub env: String,
    #[serde(default)]
    pub options: Option<GeneratorOptions>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretArgs {
    #[serde(flatten)]
    pub args: ConfigMapArgs,
    #[serde(default, rename = "type")]
    pub kind: String,
}

/// The object a generator makes, for messages: `ConfigMap 'settings'`.
#[derive(Clone, Copy, Debug)]
struct Subject<'a> {
    kind: &'static str,
    name: &'a str,
}

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} '{}'", self.kind, self.name)
    }
}

/// Makes the ConfigMap one `configMapGenerator` entry describes. `global` is the
/// kustomization's `generatorOptions`.
///
/// Values that are UTF-8 go to `data`, others to `binaryData` (base64). An `envs` line without
/// `=` gives the key an empty value: the process environment is never read, so nothing of the
/// controller's environment can leak into output (kustomize v5.5 behaves the same way).
pub fn config_map(args: &ConfigMapArgs, global: Option<&GeneratorOptions>, ldr: &Loader) -> Result<Resource> {
    let subject = Subject {
        kind: "ConfigMap",
        name: &args.name,
    };
    let options = GeneratorOptions::with_global(args.options.as_ref(), global);
    check_encodable(subject, args, &options, "")?;
    let mut obj = base_object(subject, &args.namespace)?;
    let mut data = Object::new();
    let mut binary = Object::new();
    for (key, value) in sources::load(subject, args, ldr)? {
        match String::from_utf8(value) {
            Ok(text) => data.insert(key, Value::String(text)),
            Err(e) => binary.insert(key, Value::String(base64_lines(e.as_bytes()))),
        };
    }
    if !data.is_empty() {
        obj.insert("data".into(), Value::Object(data));
    }
    if !binary.is_empty() {
        obj.insert("binaryData".into(), Value::Object(binary));
    }
    finish(obj, args.behavior, &options)
}

/// Makes the Secret one `secretGenerator` entry describes: every value base64-encoded in
/// `data`, `type` defaulting to `Opaque`. `global` is the kustomization's `generatorOptions`.
pub fn secret(args: &SecretArgs, global: Option<&GeneratorOptions>, ldr: &Loader) -> Result<Resource> {
    let subject = Subject {
        kind: "Secret",
        name: &args.args.name,
    };
    let options = GeneratorOptions::with_global(args.args.options.as_ref(), global);
    check_encodable(subject, &args.args, &options, &args.kind)?;
    let mut obj = base_object(subject, &args.args.namespace)?;
    let kind = if args.kind.is_empty() { "Opaque" } else { &args.kind };
    obj.insert("type".into(), Value::String(kind.to_owned()));
    let data: Object = sources::load(subject, &args.args, ldr)?
        .into_iter()
        .map(|(key, value)| (key, Value::String(base64_lines(&value))))
        .collect();
    // Unlike a ConfigMap, a Secret always carries `data`, even when empty.
    obj.insert("data".into(), Value::Object(data));
    finish(obj, args.args.behavior, &options)
}

fn base_object(subject: Subject<'_>, namespace: &str) -> Result<Object> {
    if subject.name.is_empty() {
        bail!("a generated {} must have a name", subject.kind);
    }
    let mut meta = Object::new();
    meta.insert("name".into(), Value::String(subject.name.to_owned()));
    if !namespace.is_empty() {
        meta.insert("namespace".into(), Value::String(namespace.to_owned()));
    }
    let mut obj = Object::new();
    obj.insert("apiVersion".into(), Value::String("v1".into()));
    obj.insert("kind".into(), Value::String(subject.kind.into()));
    obj.insert("metadata".into(), Value::Object(meta));
    Ok(obj)
}

/// Applies labels, annotations and `immutable`, and marks the result as generated.
fn finish(mut obj: Object, behavior: Behavior, options: &GeneratorOptions) -> Result<Resource> {
    let meta = obj
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .expect("base_object made metadata");
    for (field, map) in [("labels", &options.labels), ("annotations", &options.annotations)] {
        if !map.is_empty() {
            let map = map.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            meta.insert(field.into(), Value::Object(map));
        }
    }
    if options.immutable {
        obj.insert("immutable".into(), Value::Bool(true));
    }
    let mut resource = Resource::from_object(obj)?;
    resource.generated = Some(Generated {
        behavior,
        hash_suffix: !options.disable_name_suffix_hash,
    });
    Ok(resource)
}

/// kustomize hands a generator its arguments as YAML, and its YAML library fails the build on
/// DEL, the C1 controls, U+FFFE and U+FFFF, except NEL (U+0085), which it reads back as a line
/// break and so turns into a space. We refuse all of them, NEL included, rather than render
/// something kustomize cannot or silently change a value.
fn check_encodable(subject: Subject<'_>, args: &ConfigMapArgs, options: &GeneratorOptions, kind: &str) -> Result<()> {
    let mut fields: Vec<(String, &str)> = vec![
        ("name".into(), &args.name),
        ("namespace".into(), &args.namespace),
        ("env".into(), &args.env),
        ("type".into(), kind),
    ];
    for (list, items) in [
        ("literals", &args.literals),
        ("files", &args.files),
        ("envs", &args.envs),
    ] {
        fields.extend(
            items
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("{list}[{i}]"), s.as_str())),
        );
    }
    for (map_name, map) in [("labels", &options.labels), ("annotations", &options.annotations)] {
        for (k, v) in map {
            fields.push((format!("options.{map_name}"), k));
            fields.push((format!("options.{map_name}.{k}"), v));
        }
    }
    let refused = |c: &char| matches!(c, '\u{7f}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}');
    for (field, text) in fields {
        if let Some(c) = text.chars().find(refused) {
            bail!(
                "{subject}: {field} contains the character U+{:04X}, which kustomize cannot pass on unchanged",
                u32::from(c)
            );
        }
    }
    Ok(())
}

/// Standard base64, broken into lines of 70 characters each ending in a newline once the
/// encoding reaches 70 characters, exactly as kustomize writes Secret data and binaryData.
fn base64_lines(bytes: &[u8]) -> String {
    const LINE: usize = 70;
    let encoded = base64(bytes);
    if encoded.len() < LINE {
        return encoded;
    }
    let mut out = String::with_capacity(encoded.len() + encoded.len() / LINE + 1);
    for chunk in encoded.as_bytes().chunks(LINE) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
