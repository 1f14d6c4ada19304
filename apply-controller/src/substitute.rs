//! `spec.postBuild`: variable substitution on the rendered objects, between the build and the
//! apply. The variables come from `postBuild.substitute` and the ConfigMaps and Secrets of
//! `postBuild.substituteFrom`, gathered by the caller into [`Variables`].
//!
//! # Syntax
//!
//! - `${VAR}` is the variable's value. A variable that is not defined is an error; every
//!   undefined variable of every object is named in one [`SubstituteError::Undefined`]. (Flux
//!   substitutes the empty string unless its `StrictPostBuildSubstitutions` feature gate is on;
//!   Eddy is always strict.)
//! - `${VAR:=default}` and `${VAR:-default}` (and `${VAR=default}`) are the default when `VAR` is
//!   not defined *or is empty*. Flux evaluates all three alike (its envsubst maps each to the same
//!   "default when empty" function), so this is the behaviour Flux users already rely on, even
//!   though a shell distinguishes them. The default may itself hold `${OTHER}`; it is expanded only
//!   when it is used, so an undefined variable inside an unused default is not an error.
//! - `$${VAR}` is the literal text `${VAR}`. More generally, in a run of `$` followed by `{`,
//!   each `$$` is one literal `$`, as in Flux; a run of `$` not followed by `{` is left as it is,
//!   so `$$` (a shell's PID) in a script survives, where Flux would turn it into `$`.
//! - `$VAR` without braces is not a variable and is left untouched, so shell scripts in
//!   ConfigMaps keep their `$HOME`. This is what Flux's documentation promises too (its fork of
//!   envsubst only expands `${…}`), unlike drone/envsubst and the shell.
//! - Anything else in braces (`${1}`, `${VAR^^}`, `${VAR:0:3}`, an unclosed `${`) is an error
//!   naming the object and the field; write `$${` to keep such text literally. Flux implements
//!   some of these bash operators; Eddy does not.
//!
//! # Where values go
//!
//! Substitution is done in each string of the object (map keys included), not in the object's
//! YAML text as Flux does. Text substitution lets a value rewrite the document: a value with a
//! newline adds keys, `#ff0000` becomes a comment (so `null`), `1.10` becomes the number `1.1`,
//! a `"` or `\` inside a quoted scalar is reinterpreted, and a value with `: ` fails to parse
//! with an error that quotes it. Here a value is always inserted as the characters it holds, so a
//! multi-line certificate or a value with `: ` is fine, and no error ever quotes a value. (Flux
//! strips newlines from every value to limit the damage; Eddy keeps them.)
//!
//! A string that is exactly one expression (`replicas: ${REPLICAS}`) takes the type its value
//! would have as a plain YAML scalar, but only where that is lossless: a canonical integer
//! (`3`, `-1`, no leading zero, within 64 bits) becomes a number, `true` and `false` become
//! booleans, everything else stays a string (`1.10`, `0755`, `null`, `yes`, the empty string,
//! `[a, b]`). A value never becomes a list or a map. Fields whose API type is a string keep
//! strings whatever the value: `metadata.labels` and `metadata.annotations` values (at any depth,
//! pod templates included), ConfigMap and Secret `data`/`stringData`/`binaryData` entries, and
//! `env[].value`. Eddy's kustomize engine does not keep the quoting style of the source
//! files, so the `"${PORT}"` that keeps a string a string in Flux cannot be seen here; these
//! fields are where that matters.
//!
//! Objects labelled or annotated `apply.eddy.dev/substitute: disabled` (or Flux's
//! `kustomize.toolkit.fluxcd.io/substitute: disabled`) are left untouched.
//!
//! Values are never rescanned (a value holding `${X}` is inserted as is), so the work is linear
//! in the size of the objects and the values inserted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use eddy_apply::inventory::ObjectRef;
use serde_json::{Map, Value};

/// Label or annotation keys that turn substitution off for an object, with the value `disabled`.
pub const DISABLE_KEYS: [&str; 2] = ["apply.eddy.dev/substitute", "kustomize.toolkit.fluxcd.io/substitute"];

/// How deep defaults may nest (`${A:=${B:=${C}}}` is two levels).
const MAX_NESTING: usize = 16;

/// Why substitution failed. Messages name variables, objects (`Kind/namespace/name`, as written
/// before substitution) and fields, never a variable's value or the substituted text. Those of
/// [`substitute`] start with `postBuild: `; [`Variables::insert`]'s leave the caller to say
/// where the name came from.
#[derive(Debug, thiserror::Error)]
pub enum SubstituteError {
    /// A variable name (a key of `substitute`, or of a ConfigMap's or Secret's data) that is not
    /// `^[_a-zA-Z][_a-zA-Z0-9]*$`.
    #[error("invalid variable name '{name}': names must match ^[_a-zA-Z][_a-zA-Z0-9]*$")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// Variables used without a default and not defined, per object.
    #[error("postBuild: {}", undefined_message(.0))]
    Undefined(Vec<UndefinedVariables>),
    /// A `${…}` that is not one of the supported forms.
    #[error("postBuild: {object}: {field}: {problem}")]
    InvalidExpression {
        /// The object.
        object: String,
        /// JSON Pointer of the string holding the expression.
        field: String,
        /// What is wrong, quoting the expression as written in the manifest.
        problem: String,
    },
    /// Two keys of one map became equal.
    #[error("postBuild: {object}: {field}: two keys of this map are equal after substitution")]
    DuplicateKey {
        /// The object.
        object: String,
        /// JSON Pointer of the map.
        field: String,
    },
}

/// The undefined variables of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UndefinedVariables {
    /// The object, `Kind/namespace/name`.
    pub object: String,
    /// The variable names, sorted.
    pub names: Vec<String>,
}

fn undefined_message(undefined: &[UndefinedVariables]) -> String {
    let per_object: Vec<String> = undefined
        .iter()
        .map(|u| {
            let names: Vec<String> = u.names.iter().map(|n| format!("'{n}'")).collect();
            let noun = if names.len() == 1 { "variable" } else { "variables" };
            format!("{}: undefined {noun} {}", u.object, names.join(", "))
        })
        .collect();
    per_object.join("; ")
}

/// The variables of a Kustomization, each remembering whether its value came from a Secret.
/// `Debug` shows the names and the values that are not secret. `Hash` covers names and values,
/// for change detection; a hash of a low-entropy secret can be guessed offline, so keep hashes
/// that cover variables out of status, events and logs.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Variables {
    values: BTreeMap<String, String>,
    secret: BTreeSet<String>,
}

impl Variables {
    /// No variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a variable; a later value replaces an earlier one, and whether the variable is secret
    /// follows the value that is kept. The caller inserts ConfigMaps and Secrets in
    /// `substituteFrom` order, then the inline `substitute` map, as Flux gives them precedence.
    pub fn insert(&mut self, name: &str, value: impl Into<String>, secret: bool) -> Result<(), SubstituteError> {
        if !is_variable_name(name) {
            return Err(SubstituteError::InvalidName { name: name.to_owned() });
        }
        self.values.insert(name.to_owned(), value.into());
        if secret {
            self.secret.insert(name.to_owned());
        } else {
            self.secret.remove(name);
        }
        Ok(())
    }

    /// How many variables there are.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

impl fmt::Debug for Variables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted;
        impl fmt::Debug for Redacted {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<secret>")
            }
        }
        let mut map = f.debug_map();
        for (name, value) in &self.values {
            if self.secret.contains(name) {
                map.entry(name, &Redacted);
            } else {
                map.entry(name, value);
            }
        }
        map.finish()
    }
}

/// `^[_a-zA-Z][_a-zA-Z0-9]*$`.
fn is_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b == b'_' || b.is_ascii_alphabetic())
        && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

/// Substitutes `vars` into every object not opted out (see the module documentation). On error
/// the objects are left as they were.
///
/// When to call it is the caller's choice: Flux substitutes only when `postBuild` yields at least
/// one variable, so that without variables a `${VAR}` in a manifest is left as written.
pub fn substitute(objects: &mut [Value], vars: &Variables) -> Result<(), SubstituteError> {
    let mut replaced = Vec::new();
    let mut undefined = Vec::new();
    for (position, object) in objects.iter().enumerate() {
        if is_disabled(object) {
            continue;
        }
        let mut walk = Walk {
            vars,
            object: object_name(object),
            string_maps: StringMaps::of(object),
            path: Vec::new(),
            undefined: BTreeSet::new(),
        };
        let result = walk.value(object)?;
        if !walk.undefined.is_empty() {
            undefined.push(UndefinedVariables {
                object: walk.object,
                names: walk.undefined.into_iter().collect(),
            });
        } else if let Some(value) = result {
            replaced.push((position, value));
        }
    }
    if !undefined.is_empty() {
        return Err(SubstituteError::Undefined(undefined));
    }
    for (position, value) in replaced {
        objects[position] = value;
    }
    Ok(())
}

fn is_disabled(object: &Value) -> bool {
    ["/metadata/labels", "/metadata/annotations"].iter().any(|map| {
        DISABLE_KEYS.iter().any(|key| {
            object
                .pointer(map)
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .is_some_and(|v| v == "disabled")
        })
    })
}

fn object_name(object: &Value) -> String {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    ObjectRef::new(
        text("/apiVersion"),
        text("/kind"),
        text("/metadata/namespace"),
        text("/metadata/name"),
    )
    .to_string()
}

/// Which top-level maps of the object hold only strings, by the object's kind.
struct StringMaps(&'static [&'static str]);

impl StringMaps {
    fn of(object: &Value) -> Self {
        let core = object.get("apiVersion").and_then(Value::as_str) == Some("v1");
        match object.get("kind").and_then(Value::as_str) {
            Some("ConfigMap") if core => Self(&["data", "binaryData"]),
            Some("Secret") if core => Self(&["data", "stringData"]),
            _ => Self(&[]),
        }
    }
}

#[derive(Clone, Copy)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// One object's substitution: where in it we are, and what was missing.
struct Walk<'v, 'o> {
    vars: &'v Variables,
    object: String,
    string_maps: StringMaps,
    path: Vec<Segment<'o>>,
    undefined: BTreeSet<String>,
}

impl<'o> Walk<'_, 'o> {
    /// The substituted value, or `None` when nothing in it changed.
    fn value(&mut self, value: &'o Value) -> Result<Option<Value>, SubstituteError> {
        match value {
            Value::String(text) if text.contains('$') => {
                let expanded = self.expand(text)?;
                if expanded.text == *text {
                    return Ok(None);
                }
                Ok(Some(if expanded.whole && !self.string_typed() {
                    typed(expanded.text)
                } else {
                    Value::String(expanded.text)
                }))
            }
            Value::Array(items) => {
                let mut results = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    self.path.push(Segment::Index(i));
                    let result = self.value(item);
                    self.path.pop();
                    results.push(result?);
                }
                if results.iter().all(Option::is_none) {
                    return Ok(None);
                }
                let items = items
                    .iter()
                    .zip(results)
                    .map(|(old, new)| new.unwrap_or_else(|| old.clone()))
                    .collect();
                Ok(Some(Value::Array(items)))
            }
            Value::Object(map) => self.map(map),
            _ => Ok(None),
        }
    }

    /// Keys and values are substituted first and the map rebuilt only when one changed, so
    /// each unchanged value is copied at most once, by its nearest changed parent.
    fn map(&mut self, map: &'o Map<String, Value>) -> Result<Option<Value>, SubstituteError> {
        let mut results = Vec::with_capacity(map.len());
        for (key, value) in map {
            let new_key = if key.contains('$') {
                Some(self.expand(key)?.text).filter(|k| k != key)
            } else {
                None
            };
            self.path.push(Segment::Key(key));
            let result = self.value(value);
            self.path.pop();
            results.push((new_key, result?));
        }
        if results.iter().all(|(k, v)| k.is_none() && v.is_none()) {
            return Ok(None);
        }
        let mut out = Map::new();
        for ((key, value), (new_key, new_value)) in map.iter().zip(results) {
            let key = new_key.unwrap_or_else(|| key.clone());
            let value = new_value.unwrap_or_else(|| value.clone());
            if out.insert(key, value).is_some() {
                return Err(SubstituteError::DuplicateKey {
                    object: self.object.clone(),
                    field: self.pointer(),
                });
            }
        }
        Ok(Some(Value::Object(out)))
    }

    /// Whether the current field's API type is a string whatever its value looks like.
    fn string_typed(&self) -> bool {
        let key = |s: &Segment<'_>, want: &[&str]| matches!(s, Segment::Key(k) if want.contains(k));
        match self.path.as_slice() {
            [.., parent, map, _] if key(parent, &["metadata"]) && key(map, &["labels", "annotations"]) => true,
            [.., env, Segment::Index(_), value] if key(env, &["env"]) && key(value, &["value"]) => true,
            [map, _] => key(map, self.string_maps.0),
            _ => false,
        }
    }

    /// JSON Pointer of the current field.
    fn pointer(&self) -> String {
        let mut out = String::new();
        for segment in &self.path {
            out.push('/');
            match segment {
                Segment::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
                Segment::Index(i) => out.push_str(&i.to_string()),
            }
        }
        out
    }

    fn invalid(&self, problem: String) -> SubstituteError {
        SubstituteError::InvalidExpression {
            object: self.object.clone(),
            field: self.pointer(),
            problem,
        }
    }

    fn expand(&mut self, text: &str) -> Result<Expanded, SubstituteError> {
        let mut scanner = Scanner {
            text,
            out: String::with_capacity(text.len()),
            vars: self.vars,
            undefined: &mut self.undefined,
        };
        match scanner.scan(0, Context::Top, true, 0) {
            Ok((_, whole)) => Ok(Expanded {
                text: scanner.out,
                whole,
            }),
            Err(problem) => Err(self.invalid(problem)),
        }
    }
}

struct Expanded {
    text: String,
    /// Whether the source string was exactly one `${…}`.
    whole: bool,
}

/// A string that was one expression, as the YAML scalar its value spells when that is lossless.
fn typed(text: String) -> Value {
    match text.as_str() {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix('-').unwrap_or(&text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    match text.parse::<i64>() {
        Ok(n) if canonical => Value::from(n),
        _ => Value::String(text),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    /// A whole string.
    Top,
    /// A default, ended by `}`.
    Default,
}

/// Expands one string into `out`, noting the undefined variables it uses.
struct Scanner<'t, 'u> {
    text: &'t str,
    out: String,
    vars: &'t Variables,
    undefined: &'u mut BTreeSet<String>,
}

impl Scanner<'_, '_> {
    /// Expands from `start` to the end of the text (`Top`), or to the `}` that ends a default
    /// (`Default`); returns the position after what it read, and for `Top` whether the text is
    /// exactly one expression. Writes, and notes undefined variables, only when `emit`.
    fn scan(&mut self, start: usize, context: Context, emit: bool, depth: usize) -> Result<(usize, bool), String> {
        let text = self.text;
        let bytes = text.as_bytes();
        let mut i = start;
        let mut whole = false;
        loop {
            let stop = text[i..]
                .find(|c| c == '$' || (context == Context::Default && c == '}'))
                .map_or(text.len(), |n| i + n);
            if emit {
                self.out.push_str(&text[i..stop]);
            }
            i = stop;
            if i == text.len() {
                return match context {
                    Context::Top => Ok((i, whole)),
                    Context::Default => Err("a default is not closed with '}'".to_owned()),
                };
            }
            if bytes[i] == b'}' {
                return Ok((i + 1, false));
            }
            let run = bytes[i..].iter().take_while(|&&b| b == b'$').count();
            let after = i + run;
            if bytes.get(after) != Some(&b'{') {
                if emit {
                    self.out.push_str(&text[i..after]);
                }
                i = after;
                continue;
            }
            if emit {
                self.out.extend(std::iter::repeat_n('$', run / 2));
            }
            if run % 2 == 0 {
                // An escaped `${`: literal, and inside a default its `}` is literal too.
                let literal_end = match context {
                    Context::Default => text[after..].find('}').map_or(text.len(), |n| after + n + 1),
                    Context::Top => after + 1,
                };
                if emit {
                    self.out.push_str(&text[after..literal_end]);
                }
                i = literal_end;
                continue;
            }
            let end = self.expression(after - 1, emit, depth)?;
            whole = context == Context::Top && i == 0 && run == 1 && end == text.len();
            i = end;
        }
    }

    /// Expands the expression at `dollar` (`${…}`), returning the position after it.
    fn expression(&mut self, dollar: usize, emit: bool, depth: usize) -> Result<usize, String> {
        let text = self.text;
        let name_start = dollar + 2;
        let name_len = text[name_start..]
            .bytes()
            .take_while(|b| *b == b'_' || b.is_ascii_alphanumeric())
            .count();
        let name = &text[name_start..name_start + name_len];
        let rest = &text[name_start + name_len..];
        let default_at = if rest.starts_with(":=") || rest.starts_with(":-") {
            Some(2)
        } else if rest.starts_with('=') {
            Some(1)
        } else {
            None
        };
        if !is_variable_name(name) || !(rest.starts_with('}') || default_at.is_some()) {
            return Err(self.unsupported(dollar));
        }
        let value = self.vars.get(name);
        let Some(skip) = default_at else {
            match value {
                Some(value) if emit => self.out.push_str(value),
                None if emit => {
                    self.undefined.insert(name.to_owned());
                }
                _ => {}
            }
            return Ok(name_start + name_len + 1);
        };
        if depth >= MAX_NESTING {
            return Err(format!("defaults are nested more than {MAX_NESTING} deep"));
        }
        let use_default = value.is_none_or(str::is_empty);
        if emit && !use_default {
            self.out.push_str(value.unwrap_or_default());
        }
        let default_start = name_start + name_len + skip;
        let (end, _) = self.scan(default_start, Context::Default, emit && use_default, depth + 1)?;
        Ok(end)
    }

    fn unsupported(&self, dollar: usize) -> String {
        let rest = &self.text[dollar..];
        let shown: String = match rest.find('}') {
            Some(close) if close < 64 => rest[..=close].to_owned(),
            _ => rest.chars().take(16).chain("…".chars()).collect(),
        };
        format!(
            "unsupported substitution '{shown}': expected ${{NAME}}, ${{NAME:=default}} or ${{NAME:-default}} \
             with NAME matching ^[_a-zA-Z][_a-zA-Z0-9]*$ (write $${{ for a literal '${{')"
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Variables {
        let mut vars = Variables::new();
        for (name, value) in pairs {
            vars.insert(name, *value, false).unwrap();
        }
        vars
    }

    fn configmap(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "apps"}, "data": data})
    }

    fn deployment(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "apps"}, "spec": spec})
    }

    /// Substitutes into `spec` of a Deployment and returns it.
    fn spec_after(spec: Value, vars: &Variables) -> Value {
        let mut objects = [deployment(spec)];
        substitute(&mut objects, vars).unwrap();
        objects[0]["spec"].clone()
    }

    fn error(objects: &mut [Value], vars: &Variables) -> String {
        substitute(objects, vars).unwrap_err().to_string()
    }

    #[test]
    fn a_whole_expression_takes_the_type_of_a_lossless_scalar() {
        let v = vars(&[("REPLICAS", "3"), ("ON", "true"), ("NEG", "-2"), ("VERSION", "1.10")]);
        let spec = json!({
            "replicas": "${REPLICAS}",
            "paused": "${ON}",
            "offset": "${NEG}",
            "version": "${VERSION}",
            "image": "nginx:${REPLICAS}",
            "twice": "${REPLICAS}${REPLICAS}"
        });
        assert_eq!(
            spec_after(spec, &v),
            json!({
                "replicas": 3,
                "paused": true,
                "offset": -2,
                "version": "1.10",
                "image": "nginx:3",
                "twice": "33"
            })
        );
    }

    #[test]
    fn values_that_are_not_canonical_integers_stay_strings() {
        for value in [
            "0755",
            "-0",
            "+1",
            "1e3",
            "99999999999999999999",
            "",
            "null",
            "yes",
            "True",
            "[1, 2]",
        ] {
            let v = vars(&[("V", value)]);
            assert_eq!(spec_after(json!({"x": "${V}"}), &v), json!({"x": value}), "{value:?}");
        }
    }

    #[test]
    fn string_typed_fields_keep_strings() {
        let v = vars(&[("N", "8080"), ("B", "true")]);
        let mut objects = [
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"version": "${N}"}, "annotations": {"flag": "${B}"}},
                "spec": {
                    "replicas": "${N}",
                    "template": {
                        "metadata": {"labels": {"port": "${N}"}},
                        "spec": {"containers": [{"name": "web", "env": [{"name": "PORT", "value": "${N}"}]}]}
                    }
                }
            }),
            configmap(json!({"port": "${N}"})),
        ];
        substitute(&mut objects, &v).unwrap();
        let d = &objects[0];
        assert_eq!(d["metadata"]["labels"]["version"], "8080");
        assert_eq!(d["metadata"]["annotations"]["flag"], "true");
        assert_eq!(d["spec"]["replicas"], 8080);
        assert_eq!(d["spec"]["template"]["metadata"]["labels"]["port"], "8080");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
            "8080"
        );
        assert_eq!(objects[1]["data"]["port"], "8080");
    }

    #[test]
    fn values_that_look_like_yaml_are_inserted_as_text() {
        let tricky = "a: b\nextra: injected\n# comment \"quoted\" \\n 'single' &anchor *alias !tag {flow} [list]";
        let v = vars(&[("V", tricky), ("COLOR", "#ff0000")]);
        let spec = spec_after(json!({"value": "${V}", "color": "${COLOR}", "label": "x-${V}"}), &v);
        assert_eq!(spec["value"], tricky);
        assert_eq!(spec["color"], "#ff0000");
        assert_eq!(spec["label"], format!("x-{tricky}"));
        assert_eq!(spec.as_object().unwrap().len(), 3, "no key was injected");
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let v = vars(&[("SET", "given"), ("EMPTY", "")]);
        let spec = json!({
            "a": "${SET:=fallback}",
            "b": "${UNSET:=fallback}",
            "c": "${EMPTY:=fallback}",
            "d": "${UNSET:-fallback}",
            "e": "${EMPTY:-fallback}",
            "f": "${UNSET=fallback}",
            "g": "${UNSET:=}",
            "h": "${UNSET:=2}",
            "i": "${UNSET:=nginx:1.2-${SET}}",
            "j": "${SET:=${UNDEFINED}}",
            "k": "${EMPTY}"
        });
        assert_eq!(
            spec_after(spec, &v),
            json!({
                "a": "given",
                "b": "fallback",
                "c": "fallback",
                "d": "fallback",
                "e": "fallback",
                "f": "fallback",
                "g": "",
                "h": 2,
                "i": "nginx:1.2-given",
                "j": "given",
                "k": ""
            })
        );
    }

    #[test]
    fn escapes_and_bare_dollars() {
        let v = vars(&[("HOME", "/root"), ("X", "x")]);
        let script = "echo $HOME $$ $1 ${X} $${X} $$$${X} $$${X} cost: 5$ ${X}$";
        assert_eq!(
            spec_after(json!({"script": script}), &v)["script"],
            "echo $HOME $$ $1 x ${X} $${X} $x cost: 5$ x$"
        );
        assert_eq!(
            spec_after(json!({"d": "${UNSET:=a $${B} c}"}), &v)["d"],
            "a ${B} c",
            "an escaped expression inside a default is literal, braces included"
        );
        assert_eq!(
            spec_after(json!({"e": "$${X}"}), &v)["e"],
            "${X}",
            "an escape is never retyped"
        );
    }

    #[test]
    fn keys_are_substituted_and_may_not_collide() {
        let v = vars(&[("K", "region"), ("L", "zone")]);
        let mut objects = [configmap(json!({"${K}": "1", "other": "2"}))];
        substitute(&mut objects, &v).unwrap();
        assert_eq!(objects[0]["data"], json!({"region": "1", "other": "2"}));

        let v = vars(&[("K", "other")]);
        let mut objects = [configmap(json!({"${K}": "1", "other": "2"}))];
        let err = error(&mut objects, &v);
        assert_eq!(
            err,
            "postBuild: ConfigMap/apps/c: /data: two keys of this map are equal after substitution"
        );
    }

    #[test]
    fn every_undefined_variable_of_every_object_is_named_at_once() {
        let v = vars(&[("TAG", "1")]);
        let mut objects = [
            deployment(json!({"replicas": "${REPLICAS}", "image": "${REGISTRY}/web:${TAG}", "again": "${REPLICAS}"})),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}, "x": "${ZONE}"}),
            configmap(json!({"fine": "${TAG}"})),
        ];
        let before = objects.clone();
        let err = substitute(&mut objects, &v).unwrap_err();
        assert_eq!(
            err.to_string(),
            "postBuild: Deployment/apps/web: undefined variables 'REGISTRY', 'REPLICAS'; \
             Namespace/apps: undefined variable 'ZONE'"
        );
        let SubstituteError::Undefined(undefined) = err else {
            panic!("{err:?}")
        };
        assert_eq!(undefined.len(), 2);
        assert_eq!(objects, before, "nothing is substituted when anything fails");
    }

    #[test]
    fn an_undefined_variable_in_an_unused_default_is_not_an_error() {
        let v = vars(&[("A", "a")]);
        assert_eq!(spec_after(json!({"x": "${A:=${B}}"}), &v)["x"], "a");
        let mut objects = [deployment(json!({"x": "${C:=${B}}"}))];
        assert_eq!(
            error(&mut objects, &v),
            "postBuild: Deployment/apps/web: undefined variable 'B'"
        );
    }

    #[test]
    fn unsupported_expressions_name_object_and_field() {
        for (text, shown) in [
            ("${1}", "'${1}'"),
            ("${VAR^^}", "'${VAR^^}'"),
            ("${VAR:0:3}", "'${VAR:0:3}'"),
            ("${}", "'${}'"),
            ("${ VAR }", "'${ VAR }'"),
            ("${VAR-x}", "'${VAR-x}'"),
            ("unclosed ${VAR", "'${VAR…'"),
        ] {
            let mut objects = [deployment(json!({"template": {"args": ["ok", text]}}))];
            let err = error(&mut objects, &Variables::new());
            assert!(
                err.starts_with(&format!(
                    "postBuild: Deployment/apps/web: /spec/template/args/1: unsupported substitution {shown}"
                )),
                "{text}: {err}"
            );
        }
        let mut objects = [deployment(json!({"x": "${A:=unclosed"}))];
        assert!(error(&mut objects, &Variables::new()).ends_with("/spec/x: a default is not closed with '}'"));
    }

    #[test]
    fn deeply_nested_defaults_are_an_error_not_a_stack_overflow() {
        let text = format!("{}x{}", "${A:=".repeat(10_000), "}".repeat(10_000));
        let mut objects = [deployment(json!({"x": text}))];
        assert!(error(&mut objects, &Variables::new()).contains("nested more than"));
    }

    #[test]
    fn disabled_objects_are_left_untouched() {
        let mut objects = [
            json!({"kind": "ConfigMap", "metadata": {"name": "a", "annotations": {"apply.eddy.dev/substitute": "disabled"}}, "data": {"x": "${UNDEFINED}"}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "b", "labels": {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}}, "data": {"x": "${UNDEFINED}"}}),
        ];
        let before = objects.clone();
        substitute(&mut objects, &Variables::new()).unwrap();
        assert_eq!(objects, before);
    }

    #[test]
    fn objects_without_expressions_are_unchanged() {
        let mut objects = [deployment(
            json!({"replicas": 2, "cost": "5$", "nested": [{"a": null}]}),
        )];
        let before = objects.clone();
        substitute(&mut objects, &vars(&[("A", "1")])).unwrap();
        assert_eq!(objects, before);
    }

    #[test]
    fn invalid_variable_names_are_rejected_by_name() {
        let mut v = Variables::new();
        for good in ["A", "_a", "a_1", "_"] {
            v.insert(good, "x", false).unwrap();
        }
        for bad in ["", "1A", "a-b", "a.b", "a b", "é"] {
            let err = v.insert(bad, "x", true).unwrap_err().to_string();
            assert!(err.contains(&format!("'{bad}'")), "{err}");
        }
        assert_eq!(v.len(), 4);
    }

    #[test]
    fn secret_values_appear_in_no_error_and_no_debug_output() {
        let secret = "s3cr3t: {\"unbalanced\n  - [";
        let mut v = Variables::new();
        v.insert("TOKEN", secret, true).unwrap();
        v.insert("REGION", "eu-west-1", false).unwrap();
        let debug = format!("{v:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("TOKEN") && debug.contains("eu-west-1"), "{debug}");

        // A value that would break a YAML document is inserted as text, not parsed.
        let mut objects = [json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "apps"},
            "stringData": {"token": "${TOKEN}", "key_${TOKEN}": "x"}
        })];
        substitute(&mut objects, &v).unwrap();
        assert_eq!(objects[0]["stringData"]["token"], secret);

        // Failures around a secret name the variables and the object only.
        for spec in [
            json!({"a": "${TOKEN}", "b": "${MISSING}"}),
            json!({"a": "${TOKEN}", "b": "${TOKEN^^}"}),
            json!({"${TOKEN}": 1, "s3cr3t: {\"unbalanced\n  - [": 2}),
        ] {
            let mut objects = [deployment(spec)];
            let err = substitute(&mut objects, &v).unwrap_err();
            for shown in [err.to_string(), format!("{err:?}")] {
                assert!(!shown.contains("s3cr3t"), "{shown}");
            }
        }
    }

    #[test]
    fn a_secret_replaced_by_a_plain_value_is_no_longer_redacted() {
        let mut v = Variables::new();
        v.insert("A", "from-secret", true).unwrap();
        v.insert("A", "inline", false).unwrap();
        assert_eq!(format!("{v:?}"), r#"{"A": "inline"}"#);
        v.insert("A", "again-secret", true).unwrap();
        assert_eq!(format!("{v:?}"), r#"{"A": <secret>}"#);
    }

    #[test]
    fn large_inputs_take_linear_time() {
        let v = vars(&[("A", "a")]);
        let big = "${A} $x $$ ".repeat(200_000);
        let start = std::time::Instant::now();
        let spec = spec_after(json!({"x": big}), &v);
        assert_eq!(spec["x"].as_str().unwrap(), "a $x $$ ".repeat(200_000));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
