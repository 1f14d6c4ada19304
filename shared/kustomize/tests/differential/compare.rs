//! Semantic comparison of two builds: the same documents, in the same order, with the same
//! values. Findings are rendered as one compact line per disagreement.

use serde_json::Value;

/// What one side made of a case.
#[derive(Debug)]
pub enum Outcome {
    Built(Vec<Value>),
    Failed(String),
}

/// Compares the oracle's outcome with the engine's. `None` means they agree; otherwise the
/// text explains the first disagreement.
pub fn disagreement(oracle: &Outcome, engine: &Outcome) -> Option<String> {
    match (oracle, engine) {
        (Outcome::Failed(_), Outcome::Failed(_)) => None,
        (Outcome::Failed(message), Outcome::Built(docs)) => Some(format!(
            "kubectl failed but eddy built {} document(s) [{}]\n    kubectl: {}",
            docs.len(),
            identities(docs),
            indent(message)
        )),
        (Outcome::Built(docs), Outcome::Failed(message)) => Some(format!(
            "eddy failed but kubectl built {} document(s) [{}]\n    eddy: {}",
            docs.len(),
            identities(docs),
            indent(message)
        )),
        (Outcome::Built(want), Outcome::Built(got)) => documents_disagreement(want, got),
    }
}

fn documents_disagreement(want: &[Value], got: &[Value]) -> Option<String> {
    if want.len() != got.len() {
        return Some(format!(
            "kubectl built {} document(s), eddy {}\n    kubectl: [{}]\n    eddy:    [{}]",
            want.len(),
            got.len(),
            identities(want),
            identities(got)
        ));
    }
    let index = want.iter().zip(got).position(|(w, g)| !semantically_equal(w, g))?;
    let same_set = want.iter().all(|w| {
        got.iter().filter(|g| semantically_equal(w, g)).count()
            == want.iter().filter(|o| semantically_equal(w, o)).count()
    });
    if same_set {
        return Some(format!(
            "same documents in a different order\n    kubectl: [{}]\n    eddy:    [{}]",
            identities(want),
            identities(got)
        ));
    }
    let (pointer, w, g) = first_difference(&want[index], &got[index]);
    Some(format!(
        "document {} of {} ({}) differs at {}\n    kubectl: {}\n    eddy:    {}",
        index + 1,
        want.len(),
        identity(&want[index]),
        if pointer.is_empty() { "/" } else { &pointer },
        compact(w),
        compact(g)
    ))
}

/// JSON equality, except that numbers compare by value: `1` and `1.0` are the same number to
/// the API server, and kustomize itself rewrites one into the other when it round-trips JSON.
pub fn semantically_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q)
        }
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| semantically_equal(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .all(|(k, x)| ys.get(k).is_some_and(|y| semantically_equal(x, y)))
        }
        _ => a == b,
    }
}

/// The JSON pointer of the first difference and the values on each side (`None` where a side
/// has no value there).
pub fn first_difference<'a>(a: &'a Value, b: &'a Value) -> (String, Option<&'a Value>, Option<&'a Value>) {
    match (a, b) {
        (Value::Object(xs), Value::Object(ys)) => {
            let mut keys: Vec<&String> = xs.keys().chain(ys.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                match (xs.get(key), ys.get(key)) {
                    (Some(x), Some(y)) if semantically_equal(x, y) => {}
                    (Some(x), Some(y)) => {
                        let (rest, p, q) = first_difference(x, y);
                        return (format!("/{}{rest}", escape(key)), p, q);
                    }
                    (x, y) => return (format!("/{}", escape(key)), x, y),
                }
            }
            (String::new(), Some(a), Some(b))
        }
        (Value::Array(xs), Value::Array(ys)) => {
            for i in 0..xs.len().max(ys.len()) {
                match (xs.get(i), ys.get(i)) {
                    (Some(x), Some(y)) if semantically_equal(x, y) => {}
                    (Some(x), Some(y)) => {
                        let (rest, p, q) = first_difference(x, y);
                        return (format!("/{i}{rest}"), p, q);
                    }
                    (x, y) => return (format!("/{i}"), x, y),
                }
            }
            (String::new(), Some(a), Some(b))
        }
        _ => (String::new(), Some(a), Some(b)),
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// `Kind/namespace/name` of a document, for messages.
pub fn identity(doc: &Value) -> String {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?");
    match doc.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

fn identities(docs: &[Value]) -> String {
    docs.iter().map(identity).collect::<Vec<_>>().join(", ")
}

const MAX_VALUE_CHARS: usize = 400;

fn compact(value: Option<&Value>) -> String {
    let Some(value) = value else {
        return "(absent)".to_string();
    };
    let text = value.to_string();
    if text.chars().count() <= MAX_VALUE_CHARS {
        return text;
    }
    let cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
    format!("{cut}…")
}

fn indent(message: &str) -> String {
    message.trim_end().replace('\n', "\n      ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_difference_names_the_json_pointer_of_the_first_differing_leaf() {
        let a = json!({"metadata": {"name": "a", "labels": {"x/y": "1"}}, "spec": [1, 2]});
        let b = json!({"metadata": {"name": "a", "labels": {"x/y": 1}}, "spec": [1, 2]});
        let (pointer, x, y) = first_difference(&a, &b);
        assert_eq!(pointer, "/metadata/labels/x~1y");
        assert_eq!((x, y), (Some(&json!("1")), Some(&json!(1))));
    }

    #[test]
    fn numbers_compare_by_value_but_strings_do_not_equal_numbers() {
        assert!(semantically_equal(&json!({"a": 1}), &json!({"a": 1.0})));
        assert!(!semantically_equal(&json!({"a": "1"}), &json!({"a": 1})));
    }

    #[test]
    fn reordered_documents_are_reported_as_an_ordering_difference() {
        let want = vec![json!({"kind": "A"}), json!({"kind": "B"})];
        let got = vec![json!({"kind": "B"}), json!({"kind": "A"})];
        let text = documents_disagreement(&want, &got).unwrap();
        assert!(text.starts_with("same documents in a different order"), "{text}");
    }
}
