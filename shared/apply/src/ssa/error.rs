//! The engine's errors, each naming its object, and the reading of apiserver rejections
//! (immutable fields, conflicts) without leaking Secret values into messages.

use super::{FORCE_ANNOTATION, SSA_ANNOTATION};
use crate::inventory::ObjectRef;
use crate::ssa::ChangeSet;
use crate::status::WaitError;

/// Why the engine could not act on an object. Every variant names the object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest cannot be applied as written.
    #[error("{object}: {reason}")]
    InvalidObject {
        /// The object.
        object: ObjectRef,
        /// What is wrong.
        reason: String,
    },
    /// A manifest or inventory entry without a usable identity.
    #[error(transparent)]
    Identity(#[from] crate::inventory::IdentityError),
    /// The cluster does not serve the kind.
    #[error("{object}: {} {} is not served by the cluster (is its CRD installed?)", .object.api_version(), .object.kind)]
    UnknownKind {
        /// The object.
        object: ObjectRef,
    },
    /// Discovery of the kind failed.
    #[error("{object}: discovering its API failed: {message}")]
    Discovery {
        /// The object.
        object: ObjectRef,
        /// The apiserver's message.
        message: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// Reading the live object failed.
    #[error("{object}: get failed: {message}")]
    Get {
        /// The object.
        object: ObjectRef,
        /// The apiserver's message.
        message: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// Removing kubectl's field managers failed.
    #[error("{object}: taking over fields from {} failed: {message}", .managers.join(", "))]
    Takeover {
        /// The object.
        object: ObjectRef,
        /// The managers whose entries were being removed.
        managers: Vec<String>,
        /// The apiserver's message.
        message: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// An immutable field changed and neither `force` nor the force annotation allow
    /// recreating the object.
    #[error(
        "{object}: immutable field {} cannot be changed ({message}); set force, or annotate the object with {FORCE_ANNOTATION}: enabled, to recreate it",
        .fields.join(", ")
    )]
    Immutable {
        /// The object.
        object: ObjectRef,
        /// The immutable fields, e.g. `spec.selector`.
        fields: Vec<String>,
        /// The apiserver's message.
        message: String,
    },
    /// Another manager owns fields of an object applied with the `Merge` policy.
    #[error("{object}: fields are owned by other managers and {SSA_ANNOTATION}: Merge does not take them: {message}")]
    Conflict {
        /// The object.
        object: ObjectRef,
        /// The apiserver's message, naming the fields and managers.
        message: String,
    },
    /// The apply (or the dry-run of [`Applier::diff`](super::Applier::diff)) was rejected.
    #[error("{object}: {} failed: {message}", if *.dry_run { "dry-run apply" } else { "apply" })]
    Apply {
        /// The object.
        object: ObjectRef,
        /// Whether it was a dry-run.
        dry_run: bool,
        /// The apiserver's message.
        message: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// Deleting and creating again after an immutable-field change failed.
    #[error("{object}: recreating it to change an immutable field failed: {message}")]
    Recreate {
        /// The object.
        object: ObjectRef,
        /// What went wrong.
        message: String,
    },
    /// Deleting the object failed.
    #[error("{object}: delete failed: {message}")]
    Delete {
        /// The object.
        object: ObjectRef,
        /// The apiserver's message.
        message: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// Cluster definitions or classes did not become ready.
    #[error("waiting for {stage} failed: {source}")]
    Wait {
        /// The stage waited for.
        stage: &'static str,
        /// Which objects are not ready, and why.
        #[source]
        source: WaitError,
    },
}

impl Error {
    /// The apiserver refused the request for lack of permission (403): the identity may not do
    /// it, which retrying does not change.
    pub fn is_forbidden(&self) -> bool {
        let source = match self {
            Error::Discovery { source, .. }
            | Error::Get { source, .. }
            | Error::Takeover { source, .. }
            | Error::Apply { source, .. }
            | Error::Delete { source, .. } => source,
            _ => return false,
        };
        matches!(source, kube::Error::Api(status) if status.code == 403)
    }
}

/// A set that did not apply completely: what was applied before the failure, and every error
/// of the stage that failed (later stages are not applied).
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.errors))]
pub struct ApplyError {
    /// What was applied.
    pub change_set: ChangeSet,
    /// One error per failed object (or wait).
    pub errors: Vec<Error>,
}

fn describe(errors: &[Error]) -> String {
    match errors {
        [one] => one.to_string(),
        many => format!(
            "{} objects failed: {}",
            many.len(),
            many.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        ),
    }
}

/// The apiserver's message of a client error, without kube's debug dump.
pub fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        kube::Error::Api(status) => format!("{} ({})", status.reason, status.code),
        other => other.to_string(),
    }
}

/// The message of an error about `object`; for Secrets only the rejected fields and reasons,
/// so that no value can reach a log, event or status.
pub(super) fn object_message(object: &ObjectRef, err: &kube::Error) -> String {
    let is_secret = object.group.is_empty() && object.kind == "Secret";
    match err {
        kube::Error::Api(status) if is_secret => {
            let causes: Vec<String> = status
                .details
                .iter()
                .flat_map(|d| d.causes.iter())
                .map(|c| format!("{}: {}", c.field, c.reason))
                .collect();
            if causes.is_empty() {
                format!("{} ({})", status.reason, status.code)
            } else {
                format!("{} ({})", status.reason, causes.join(", "))
            }
        }
        other => api_message(other),
    }
}

pub(super) fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.is_not_found())
}

/// An immutable-field rejection: 422 Invalid naming an immutable field, or the StatefulSet
/// wording "Forbidden: updates to statefulset spec ...". Other invalid manifests are not
/// recreated: deleting an object whose replacement will be rejected too would lose it.
pub(super) fn immutable_fields(err: &kube::Error) -> Option<Vec<String>> {
    let kube::Error::Api(status) = err else {
        return None;
    };
    let immutable = |text: &str| text.contains("immutable") || text.contains("Forbidden: updates to");
    if status.code != 422 || !immutable(&status.message) {
        return None;
    }
    let causes: Vec<_> = status.details.iter().flat_map(|d| d.causes.iter()).collect();
    let mut fields: Vec<String> = causes
        .iter()
        .filter(|c| immutable(&c.message) || c.message.contains("Forbidden"))
        .map(|c| c.field.clone())
        .filter(|f| !f.is_empty())
        .collect();
    if fields.is_empty() {
        fields = causes
            .iter()
            .map(|c| c.field.clone())
            .filter(|f| !f.is_empty())
            .collect();
    }
    if fields.is_empty() {
        fields.push("(unnamed)".into());
    }
    Some(fields)
}

pub(super) fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.is_conflict())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn immutable_errors_name_their_fields() {
        let status: kube::core::Status = serde_json::from_value(json!({
            "status": "Failure", "code": 422, "reason": "Invalid",
            "message": "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: {}: field is immutable",
            "details": {"causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: {}: field is immutable", "field": "spec.selector"}]}
        }))
        .unwrap();
        let err = kube::Error::Api(Box::new(status));
        assert_eq!(immutable_fields(&err), Some(vec!["spec.selector".to_owned()]));
        let invalid: kube::core::Status = serde_json::from_value(json!({
            "status": "Failure", "code": 422, "reason": "Invalid", "message": "spec.replicas: Invalid value: -1"
        }))
        .unwrap();
        assert_eq!(immutable_fields(&kube::Error::Api(Box::new(invalid))), None);
    }

    #[test]
    fn secret_errors_carry_no_message() {
        let status: kube::core::Status = serde_json::from_value(json!({
            "status": "Failure", "code": 422, "reason": "Invalid", "message": "Secret \"s\" is invalid: data[k]: Invalid value: \"hunter2\"",
            "details": {"causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: \"hunter2\"", "field": "data[k]"}]}
        }))
        .unwrap();
        let err = kube::Error::Api(Box::new(status));
        let secret = ObjectRef::new("v1", "Secret", "ns", "s");
        let message = object_message(&secret, &err);
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("data[k]"), "{message}");
    }
}
