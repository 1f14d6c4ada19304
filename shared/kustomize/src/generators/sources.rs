//! A generator's key/value sources (env files, then literals, then files), parsed the way
//! kustomize's kv loader parses them and read through the kustomization's [`Loader`].

use std::collections::BTreeSet;

use super::{ConfigMapArgs, Subject};
use crate::error::{Error, Result, bail};
use crate::fsys::Loader;

/// kustomize reads env files with Go's `bufio.Scanner`, whose longest line is 64 KiB minus the
/// newline; at a longer line it silently stops reading the file.
const MAX_ENV_LINE: usize = 64 * 1024;

/// Every key and value the generator's sources name, checked for repeated keys. Values are
/// bytes: a file may hold anything.
pub(super) fn load(subject: Subject<'_>, args: &ConfigMapArgs, ldr: &Loader) -> Result<Vec<(String, Vec<u8>)>> {
    let mut pairs = Vec::new();
    let envs = args.envs.iter().enumerate().map(|(i, p)| (format!("envs[{i}]"), p));
    let legacy = (!args.env.is_empty()).then(|| ("env".to_owned(), &args.env));
    for (field, path) in envs.chain(legacy) {
        let (display, bytes) = ldr.read_bytes(path).map_err(|e| in_source(subject, &field, e))?;
        let parsed = env_pairs(&bytes)
            .map_err(|message| Error::new(format!("{subject}: {field}: env file {display}: {message}")))?;
        pairs.extend(parsed.into_iter().map(|(k, v)| (k, v.into_bytes())));
    }
    for (i, literal) in args.literals.iter().enumerate() {
        let Some((key, value)) = parse_literal(literal) else {
            bail!("{subject}: literals[{i}]: '{literal}' is not of the form key=value");
        };
        pairs.push((key.to_owned(), value.as_bytes().to_vec()));
    }
    for (i, source) in args.files.iter().enumerate() {
        let field = format!("files[{i}]");
        let (key, path) = parse_file_source(source)
            .map_err(|message| Error::new(format!("{subject}: {field}: '{source}': {message}")))?;
        let (_, bytes) = ldr.read_bytes(path).map_err(|e| in_source(subject, &field, e))?;
        pairs.push((key.to_owned(), bytes));
    }
    let mut seen = BTreeSet::new();
    for (key, _) in &pairs {
        if !seen.insert(key.as_str()) {
            bail!("{subject} repeats the key '{key}'");
        }
    }
    Ok(pairs)
}

fn in_source(subject: Subject<'_>, field: &str, e: Error) -> Error {
    Error {
        message: format!("{subject}: {field}: {}", e.message),
        ..e
    }
}

/// `key=value`; the value loses one pair of matching surrounding quotes (`"` or `'`).
fn parse_literal(source: &str) -> Option<(&str, &str)> {
    let (key, value) = source.split_once('=')?;
    if key.is_empty() {
        return None;
    }
    let bytes = value.as_bytes();
    let quoted = bytes.len() >= 2 && bytes[0] == bytes[bytes.len() - 1] && matches!(bytes[0], b'"' | b'\'');
    Some((key, if quoted { &value[1..value.len() - 1] } else { value }))
}

/// `path` (the key is the file's base name) or `key=path`.
fn parse_file_source(source: &str) -> std::result::Result<(&str, &str), &'static str> {
    match source.split('=').collect::<Vec<_>>().as_slice() {
        [path] => Ok((go_base_name(path), path)),
        ["", _] => Err("missing key name before '='"),
        [_, ""] => Err("missing file path after '='"),
        [key, path] => Ok((key, path)),
        _ => Err("key name or file path contains '='"),
    }
}

/// Go's `path.Base`: the last slash-separated element, trailing slashes ignored.
fn go_base_name(path: &str) -> &str {
    if path.is_empty() {
        return ".";
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// Parses an env file: one `KEY=VALUE` a line, the value taken verbatim (quotes and trailing
/// spaces kept). Leading whitespace is ignored, blank lines and `#` comments are skipped, a
/// UTF-8 byte-order mark on the first line is dropped, and so is a line whose key is empty.
/// A bare `KEY` gets an empty value.
fn env_pairs(bytes: &[u8]) -> std::result::Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for (n, raw) in scan_lines(bytes).enumerate() {
        let number = n + 1;
        if raw.len() >= MAX_ENV_LINE {
            // kustomize would drop this line and the rest of the file without a word.
            return Err(format!(
                "line {number} is longer than {} bytes, which kustomize cannot read",
                MAX_ENV_LINE - 1
            ));
        }
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|_| format!("line {number} is not UTF-8"))?;
        let line = if n == 0 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        if !key.is_empty() {
            pairs.push((key.to_owned(), value.to_owned()));
        }
    }
    Ok(pairs)
}

/// Lines split on `\n`; a final newline does not start another line.
fn scan_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    body.split(|b| *b == b'\n').filter(move |_| !bytes.is_empty())
}
