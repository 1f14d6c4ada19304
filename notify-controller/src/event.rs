//! Events as notify-controller receives them: Flux's event JSON (the shape every Eddy controller
//! forwards, see `eddy_runtime::events`), decoded, checked and with its metadata cleaned the way
//! Flux's notification-controller cleans it, so that events from Eddy's and Flux's controllers
//! read the same to Alerts and Providers.

use std::collections::BTreeMap;

use eddy_runtime::events::ForwardedEvent;

pub use eddy_api::notify::EventSeverity;
pub use eddy_runtime::events::InvolvedObject;

/// The largest request body the event endpoint reads. Flux caps messages at 39,000 characters;
/// this leaves room for metadata and the envelope.
pub const MAX_EVENT_BODY: usize = 256 * 1024;

/// Metadata keys with this prefix come from annotations on the emitting object, in Flux's and
/// in Eddy's spelling.
const ANNOTATION_PREFIXES: [&str; 2] = ["event.toolkit.fluxcd.io/", "event.eddy.dev/"];

/// Keys that change on every event without changing what it says (Flux drops them too).
const VOLATILE_KEYS: [&str; 1] = ["checksum"];

/// A checked event, ready for matching and sending.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The object the event is about.
    pub object: InvolvedObject,
    /// info or error.
    pub severity: EventSeverity,
    /// When it happened (RFC 3339, as sent).
    pub timestamp: String,
    /// What happened.
    pub message: String,
    /// Why, as a CamelCase reason.
    pub reason: String,
    /// Facts such as `revision`, with the emitter's group prefix removed.
    pub metadata: BTreeMap<String, String>,
    /// The controller that emitted it.
    pub reporting_controller: String,
}

/// Why an event body was refused; the text is the 400 answer.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InvalidEvent {
    /// The body is not the event JSON.
    #[error("the body is not an event: {0}")]
    Malformed(String),
    /// A required field is empty.
    #[error("the event has no {0}")]
    Missing(&'static str),
}

impl Event {
    /// Decodes and checks a request body.
    pub fn from_json(body: &[u8]) -> Result<Self, InvalidEvent> {
        let raw: ForwardedEvent =
            serde_json::from_slice(body).map_err(|err| InvalidEvent::Malformed(err.to_string()))?;
        Self::from_forwarded(raw)
    }

    /// Checks a decoded event and cleans its metadata.
    pub fn from_forwarded(raw: ForwardedEvent) -> Result<Self, InvalidEvent> {
        let object = raw.involved_object;
        for (value, field) in [
            (&object.kind, "involvedObject.kind"),
            (&object.name, "involvedObject.name"),
            (&object.namespace, "involvedObject.namespace"),
            (&raw.reason, "reason"),
            (&raw.reporting_controller, "reportingController"),
        ] {
            if value.trim().is_empty() {
                return Err(InvalidEvent::Missing(field));
            }
        }
        // These reach API paths (label lookups): only what Kubernetes names can be.
        if !is_api_version(&object.api_version) {
            return Err(InvalidEvent::Malformed(format!(
                "involvedObject.apiVersion {:?} is not <group>/<version>",
                object.api_version
            )));
        }
        for (value, field) in [
            (&object.kind, "involvedObject.kind"),
            (&object.namespace, "involvedObject.namespace"),
            (&object.name, "involvedObject.name"),
        ] {
            if !is_object_name(value) {
                return Err(InvalidEvent::Malformed(format!(
                    "{field} {value:?} is not a Kubernetes name"
                )));
            }
        }
        let metadata = clean_metadata(&object.api_version, raw.metadata);
        Ok(Self {
            object,
            severity: raw.severity,
            timestamp: raw.timestamp,
            message: raw.message,
            reason: raw.reason,
            metadata,
            reporting_controller: raw.reporting_controller,
        })
    }

    /// `Kind/namespace/name`, how errors and logs name the object.
    pub fn subject(&self) -> String {
        format!("{}/{}/{}", self.object.kind, self.object.namespace, self.object.name)
    }

    /// `kind/name.namespace`, how chat messages name the object (as Flux's do).
    pub fn title(&self) -> String {
        format!(
            "{}/{}.{}",
            self.object.kind.to_lowercase(),
            self.object.name,
            self.object.namespace
        )
    }

    /// The API group of the involved object (empty for the core group).
    pub fn group(&self) -> &str {
        group_of(&self.object.api_version)
    }

    /// The source revision the event is about: `revision`, else `originRevision`.
    pub fn revision(&self) -> Option<&str> {
        self.metadata
            .get("revision")
            .or_else(|| self.metadata.get("originRevision"))
            .map(String::as_str)
    }

    /// The commit SHA in the event's revision (`main@sha1:<sha>`, `sha1:<sha>` or a bare SHA),
    /// for commit statuses. `commit` metadata wins, as in Flux.
    pub fn commit(&self) -> Option<&str> {
        let candidates = [
            self.metadata.get("commit"),
            self.metadata.get("originRevision"),
            self.metadata.get("revision"),
        ];
        candidates.into_iter().flatten().find_map(|value| commit_of(value))
    }
}

/// `[group/]version`, each a lower-case DNS label sequence.
fn is_api_version(value: &str) -> bool {
    let valid = |part: &str| {
        !part.is_empty()
            && part.len() <= 253
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    match value.split_once('/') {
        Some((group, version)) => valid(group) && valid(version),
        None => valid(value),
    }
}

/// A name, namespace or kind: at most 253 characters of letters, digits, `-`, `.` and `_`.
fn is_object_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        && value != "."
        && value != ".."
}

/// The group part of an apiVersion (`apply.eddy.dev/v1alpha1` -> `apply.eddy.dev`).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(group, _)| group).unwrap_or("")
}

/// The commit in a revision string, if it names one.
fn commit_of(revision: &str) -> Option<&str> {
    let sha = match revision.rsplit_once("sha1:") {
        Some((_, sha)) => sha,
        None => revision.rsplit_once('@').map(|(_, sha)| sha).unwrap_or(revision),
    };
    let hex = sha.len() >= 7 && sha.len() <= 64 && sha.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then_some(sha)
}

/// Keeps the keys an emitter owns (prefixed with its object's API group) and those copied from
/// its annotations, without their prefix; drops everything else, so that a sender cannot
/// pose as another group's metadata.
fn clean_metadata(api_version: &str, raw: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let group = group_of(api_version);
    let own_prefix = format!("{group}/");
    raw.into_iter()
        .filter_map(|(key, value)| {
            let short = ANNOTATION_PREFIXES
                .iter()
                .find_map(|prefix| key.strip_prefix(prefix))
                .or_else(|| (!group.is_empty()).then(|| key.strip_prefix(&own_prefix)).flatten())?;
            (!short.is_empty() && !VOLATILE_KEYS.contains(&short)).then(|| (short.to_owned(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(metadata: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "involvedObject": {"kind": "Kustomization", "namespace": "flux-system", "name": "apps",
                "uid": "u", "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "resourceVersion": "1"},
            "severity": "info",
            "timestamp": "2026-12-03T10:00:00Z",
            "message": "Deployment/shop/web configured",
            "reason": "ReconciliationSucceeded",
            "metadata": metadata,
            "reportingController": "kustomize-controller",
            "reportingInstance": "kustomize-controller-7d9f"
        }))
        .unwrap()
    }

    #[test]
    fn flux_events_are_read_with_their_own_group_metadata_unprefixed() {
        let event = Event::from_json(&body(serde_json::json!({
            "kustomize.toolkit.fluxcd.io/revision": "main@sha1:0123456789abcdef0123456789abcdef01234567",
            "kustomize.toolkit.fluxcd.io/checksum": "changes-every-time",
            "event.toolkit.fluxcd.io/team": "shop",
            "source.toolkit.fluxcd.io/revision": "posing as another group",
            "unprefixed": "dropped"
        })))
        .unwrap();
        assert_eq!(event.subject(), "Kustomization/flux-system/apps");
        assert_eq!(event.title(), "kustomization/apps.flux-system");
        assert_eq!(
            event.metadata,
            BTreeMap::from([
                (
                    "revision".to_owned(),
                    "main@sha1:0123456789abcdef0123456789abcdef01234567".to_owned()
                ),
                ("team".to_owned(), "shop".to_owned()),
            ])
        );
        assert_eq!(event.commit(), Some("0123456789abcdef0123456789abcdef01234567"));
    }

    #[test]
    fn malformed_bodies_are_refused_with_the_reason() {
        for (bad, says) in [
            (&b"not json"[..], "not an event"),
            (br#"{"severity":"info"}"#, "not an event"),
            (
                br#"{"involvedObject":{"kind":"K","namespace":"n","name":"a","apiVersion":"v1"},"severity":"loud","timestamp":"t","message":"m","reason":"R","reportingController":"c"}"#,
                "unknown variant",
            ),
            (
                br#"{"involvedObject":{"kind":"K","namespace":"n","name":" ","apiVersion":"v1"},"severity":"info","timestamp":"t","message":"m","reason":"R","reportingController":"c"}"#,
                "involvedObject.name",
            ),
            (
                br#"{"involvedObject":{"kind":"K","namespace":"n","name":"a/../../secrets?x","apiVersion":"v1"},"severity":"info","timestamp":"t","message":"m","reason":"R","reportingController":"c"}"#,
                "is not a Kubernetes name",
            ),
            (
                br#"{"involvedObject":{"kind":"K","namespace":"n","name":"a","apiVersion":"apps/v1/../x"},"severity":"info","timestamp":"t","message":"m","reason":"R","reportingController":"c"}"#,
                "is not <group>/<version>",
            ),
        ] {
            let err = Event::from_json(bad).unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
    }

    #[test]
    fn commits_are_found_in_every_revision_spelling() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        for revision in [
            format!("main@sha1:{sha}"),
            format!("sha1:{sha}"),
            format!("refs/heads/main@sha1:{sha}"),
            sha.to_owned(),
        ] {
            assert_eq!(commit_of(&revision), Some(sha), "{revision}");
        }
        assert_eq!(commit_of("v1.2.3@sha256:not-a-commit-because-of-dashes"), None);
        assert_eq!(commit_of("latest"), None);
    }
}
