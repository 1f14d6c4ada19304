//! Scalar text and types as kyaml sees them: a replaced scalar keeps its YAML tag and takes
//! only the new text, so the text must still read as that type when kustomize prints it.

use serde_json::{Number, Value};

use crate::error::{Error, Result};

/// The text of a scalar node (`8080`, `true`, `db`); collections have none.
pub(crate) fn node_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        Value::Object(_) | Value::Array(_) => String::new(),
    }
}

/// The node as YAML would print it, which is what kyaml matches `[name=regex]` against:
/// strings that would read as another type are quoted.
pub(crate) fn yaml_text(v: &Value) -> String {
    match v {
        Value::String(s) if needs_quotes(s) => Value::String(s.clone()).to_string(),
        Value::Object(_) | Value::Array(_) => v.to_string(),
        other => node_value(other),
    }
}

fn needs_quotes(s: &str) -> bool {
    s.is_empty()
        || !resolve(s).is_string()
        || matches!(s, "y" | "Y" | "yes" | "Yes" | "YES" | "n" | "N" | "no" | "No" | "NO")
        || matches!(s, "on" | "On" | "ON" | "off" | "Off" | "OFF")
        || s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`".contains(c) || c.is_whitespace())
        || s.ends_with(char::is_whitespace)
        || s.contains(": ")
        || s.contains(" #")
        || s.contains('\n')
}

/// YAML's tag for a value, as kustomize's error messages spell it.
pub(crate) fn tag(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "!!str",
        Value::Number(n) if n.is_f64() => "!!float",
        Value::Number(_) => "!!int",
        Value::Bool(_) => "!!bool",
        Value::Null => "!!null",
        Value::Object(_) => "!!map",
        Value::Array(_) => "!!seq",
    }
}

/// The value an untagged plain scalar with this text has (YAML 1.2 core schema, as go-yaml v3
/// reads it, with its 1.1-style `0755` octals).
pub(crate) fn resolve(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if !text.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) {
        return Value::String(text.to_owned());
    }
    let plain = text.replace('_', "");
    if let Some(i) = parse_int(&plain) {
        return Value::Number(Number::from(i));
    }
    if let Ok(u) = plain.strip_prefix('+').unwrap_or(&plain).parse::<u64>() {
        return Value::Number(Number::from(u));
    }
    if is_yaml_float(&plain)
        && let Ok(f) = plain.parse::<f64>()
    {
        return float_value(f).unwrap_or_else(|| Value::String(text.to_owned()));
    }
    Value::String(text.to_owned())
}

/// A float as JSON holds it; whole numbers print without a fraction, as kustomize prints them.
fn float_value(f: f64) -> Option<Value> {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        return Some(Value::Number(Number::from(f as i64)));
    }
    Number::from_f64(f).map(Value::Number)
}

/// Go's `strconv.ParseInt(s, 0, 64)`: decimal, `0x`, `0o`, `0b`, and a leading `0` for octal.
fn parse_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(body, radix).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// go-yaml's float syntax: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn is_yaml_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// `text` as a value of the same YAML type as `like`. Strings take any text; other types must
/// read back as themselves (an int may become a float), else kustomize fails to decode the
/// resource when it prints it, with this message.
pub(crate) fn retype(text: &str, like: &Value) -> Result<Value> {
    if like.is_string() {
        return Ok(Value::String(text.to_owned()));
    }
    let resolved = resolve(text);
    let fits = match (like, &resolved) {
        (Value::Number(l), Value::Number(r)) => l.is_f64() || !r.is_f64(),
        (Value::Bool(_), Value::Bool(_)) | (Value::Null, Value::Null) => true,
        _ => false,
    };
    if fits {
        Ok(resolved)
    } else {
        Err(Error::new(format!(
            "cannot decode {} `{text}` as a {}",
            tag(&resolved),
            tag(like)
        )))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn plain_scalars_resolve_like_go_yaml() {
        assert_eq!(resolve("8080"), json!(8080));
        assert_eq!(resolve("0755"), json!(493));
        assert_eq!(resolve("1_000"), json!(1000));
        assert_eq!(resolve("2.5"), json!(2.5));
        assert_eq!(resolve("1e3"), json!(1000));
        assert_eq!(resolve("true"), json!(true));
        assert_eq!(resolve("yes"), json!("yes"));
        assert_eq!(resolve("~"), Value::Null);
        assert_eq!(resolve("1.2.3"), json!("1.2.3"));
        assert_eq!(resolve("-"), json!("-"));
    }

    #[test]
    fn retype_keeps_the_target_type_or_fails_like_kustomize() {
        assert_eq!(retype("7", &json!(3)).unwrap(), json!(7));
        assert_eq!(retype("7", &json!("3")).unwrap(), json!("7"));
        assert_eq!(retype("8080", &json!(2.5)).unwrap(), json!(8080));
        assert_eq!(retype("true", &json!(false)).unwrap(), json!(true));
        assert_eq!(
            retype("db.example.com:5432", &json!(3)).unwrap_err().message,
            "cannot decode !!str `db.example.com:5432` as a !!int"
        );
        assert_eq!(
            retype("8080", &Value::Null).unwrap_err().message,
            "cannot decode !!int `8080` as a !!null"
        );
    }

    #[test]
    fn yaml_text_quotes_strings_that_read_as_other_types() {
        assert_eq!(yaml_text(&json!("80")), "\"80\"");
        assert_eq!(yaml_text(&json!("app")), "app");
        assert_eq!(yaml_text(&json!(80)), "80");
    }
}
