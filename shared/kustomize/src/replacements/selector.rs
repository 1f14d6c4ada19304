//! Kubernetes label-selector expressions (`app=web,tier in (a,b),!legacy`) matched against a
//! resource's labels or annotations, as replacement targets select them.

use std::collections::BTreeMap;

use crate::error::{Result, bail};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Exists(String),
    Absent(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::GreaterThan(k, n) => number(labels, k).is_some_and(|l| l > *n),
            Requirement::LessThan(k, n) => number(labels, k).is_some_and(|l| l < *n),
        }
    }
}

fn number(labels: &BTreeMap<String, String>, key: &str) -> Option<i64> {
    labels.get(key).and_then(|v| v.parse().ok())
}

/// A parsed selector; every requirement must hold. The empty selector matches everything.
/// Also used outside the engine (apply-controller's object selectors), hence public.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses `app=web,tier in (a,b),!legacy`; an error names the selector and the requirement.
    pub fn parse(text: &str) -> Result<Self> {
        let requirements = split_top_level(text)
            .into_iter()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| parse_requirement(r).map_err(|e| e.in_field(format!("selector '{text}'"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { requirements })
    }

    /// Whether every requirement holds for `labels` (or annotations).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn check_key(key: &str) -> Result<String> {
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if !valid {
        bail!("unable to parse requirement: invalid label key \"{key}\"");
    }
    Ok(key.to_owned())
}

fn parse_set(rest: &str) -> Result<Vec<String>> {
    let rest = rest.trim();
    let Some(inner) = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) else {
        bail!("unable to parse requirement: expected a parenthesised set of values, found '{rest}'");
    };
    Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

fn parse_requirement(req: &str) -> Result<Requirement> {
    if let Some(key) = req.strip_prefix('!') {
        return Ok(Requirement::Absent(check_key(key.trim())?));
    }
    let key_end = req
        .find(|c: char| c.is_whitespace() || matches!(c, '=' | '!' | '<' | '>' | '('))
        .unwrap_or(req.len());
    let key = check_key(&req[..key_end])?;
    let rest = req[key_end..].trim_start();
    if rest.is_empty() {
        return Ok(Requirement::Exists(key));
    }
    if let Some(v) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        return Ok(Requirement::Equals(key, v.trim().to_owned()));
    }
    if let Some(v) = rest.strip_prefix("!=") {
        return Ok(Requirement::NotEquals(key, v.trim().to_owned()));
    }
    if let Some(v) = rest.strip_prefix("notin") {
        return Ok(Requirement::NotIn(key, parse_set(v)?));
    }
    if let Some(v) = rest.strip_prefix("in") {
        return Ok(Requirement::In(key, parse_set(v)?));
    }
    for (op, greater) in [(">", true), ("<", false)] {
        if let Some(v) = rest.strip_prefix(op) {
            let Ok(n) = v.trim().parse::<i64>() else {
                bail!("unable to parse requirement: for '{op}' operator, the value must be an integer");
            };
            return Ok(if greater {
                Requirement::GreaterThan(key, n)
            } else {
                Requirement::LessThan(key, n)
            });
        }
    }
    bail!("unable to parse requirement: unexpected '{rest}' after key \"{key}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn selector_expressions_match_like_kubernetes() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
        let yes = ["", "app", "app=web", "app==web", "app!=db", "tier in (front, back)"];
        let yes2 = [
            "tier notin (back)",
            "!legacy",
            "n>3",
            "n<9",
            "app=web,tier=front",
            "x!=y",
        ];
        for s in yes.iter().chain(yes2.iter()) {
            assert!(LabelSelector::parse(s).unwrap().matches(&l), "{s}");
        }
        for s in [
            "app=db",
            "legacy",
            "!app",
            "tier in (back)",
            "tier notin (front)",
            "n>5",
        ] {
            assert!(!LabelSelector::parse(s).unwrap().matches(&l), "{s}");
        }
    }

    #[test]
    fn malformed_selectors_are_errors() {
        for s in ["app in front", "=x", "n>x"] {
            assert!(LabelSelector::parse(s).is_err(), "{s}");
        }
    }
}
