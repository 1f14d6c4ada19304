//! Harnesses for the fuzz targets in `notify-controller/fuzz`: the event endpoint's decoding and
//! what follows it (duplicate key, matching), and each Receiver type's verification. Each must
//! never panic on any input.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use eddy_api::notify::{AlertSpec, ReceiverType};

use crate::event::Event;
use crate::matching::Selector;

/// An event body as the endpoint gets it: decoded, keyed and matched against a wide Alert.
pub fn event(data: &[u8]) {
    let Ok(event) = Event::from_json(data) else {
        return;
    };
    let _ = crate::dedup::key(&event);
    let _ = event.commit();
    let _ = event.title();
    let spec: AlertSpec = serde_json::from_value(serde_json::json!({
        "providerRef": {"name": "p"},
        "eventSources": [{"kind": "Kustomization", "name": "*", "matchLabels": {"a": "b"}},
                          {"kind": "GitRepository", "name": "app"}],
        "inclusionList": [".*"],
        "exclusionList": ["^skip"],
    }))
    .expect("constant Alert");
    let selector = Selector::compile(&event.object.namespace, &spec, true).expect("constant Alert compiles");
    let _ = selector.select(&event, None);
    let _ = selector.select(&event, Some(&BTreeMap::from([("a".to_owned(), "b".to_owned())])));
}

/// A webhook request to a Receiver of `receiver_type`: the input's first NUL-separated part is
/// header lines (`Name: value`), the rest the body.
pub fn receiver(receiver_type: ReceiverType, data: &[u8]) {
    let (head, body) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&[][..], data),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let events = ["push".to_owned(), "Push Hook".to_owned()];
    let _ = crate::receiver::verify::verify(receiver_type, "fuzz-token", &events, &headers, body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harnesses_take_seeds_and_garbage() {
        event(br#"{"involvedObject":{"kind":"Kustomization","namespace":"n","name":"a","apiVersion":"apply.eddy.dev/v1alpha1"},"severity":"error","timestamp":"t","message":"m","reason":"R","reportingController":"c"}"#);
        event(b"\xff\xfe");
        for kind in [
            ReceiverType::Github,
            ReceiverType::Gitlab,
            ReceiverType::Bitbucket,
            ReceiverType::Generic,
            ReceiverType::GenericHmac,
        ] {
            receiver(kind, b"X-Hub-Signature-256: sha256=zz\nX-GitHub-Event: push\n\0{}");
            receiver(kind, b"\0\0\0");
        }
    }
}
