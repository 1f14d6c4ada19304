//! Building blocks shared by every Eddy API group: durations, object references and the source
//! Artifact. Field names follow Flux's `apis/meta` so that manifests migrate by changing apiVersion.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The annotation that asks a controller to reconcile an object now; the handled value is echoed
/// into `status.lastHandledReconcileAt`.
pub const RECONCILE_REQUESTED_AT: &str = "reconcile.eddy.dev/requestedAt";

/// The pattern every duration field is validated against by the apiserver (Go duration syntax
/// without negative values, as Flux accepts).
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

/// A Go-style duration such as `30s`, `1m30s` or `1.5h`, kept as the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Duration(String);

/// Why a string is not a duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct ParseDurationError {
    input: String,
    reason: &'static str,
}

impl Duration {
    /// Parses and keeps `text` if it matches [`DURATION_PATTERN`].
    pub fn parse(text: &str) -> Result<Self, ParseDurationError> {
        parse_go_duration(text)?;
        Ok(Self(text.to_owned()))
    }

    /// The duration as written, for status messages.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The duration as a [`std::time::Duration`]. Values that reached the controller passed the
    /// schema pattern, so an error here means the object bypassed validation.
    pub fn to_std(&self) -> Result<std::time::Duration, ParseDurationError> {
        parse_go_duration(&self.0)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
        })
    }
}

/// Schema of a field whose object is passed on as written (another API's structure, e.g. an
/// Istio traffic policy): any object, kept whole by the API server.
pub fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

fn parse_go_duration(text: &str) -> Result<std::time::Duration, ParseDurationError> {
    let fail = |reason| ParseDurationError {
        input: text.to_owned(),
        reason,
    };
    if text.is_empty() {
        return Err(fail("empty"));
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| fail("missing unit (ms, s, m or h)"))?;
        let number = &rest[..number_len];
        if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
            return Err(fail("expected a number before the unit"));
        }
        if number.matches('.').count() > 1 {
            return Err(fail("a number has more than one decimal point"));
        }
        let value: f64 = number.parse().map_err(|_| fail("not a number"))?;
        rest = &rest[number_len..];
        let (seconds_per_unit, unit_len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else {
            return Err(fail("unknown unit; use ms, s, m or h"));
        };
        total += value * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    std::time::Duration::try_from_secs_f64(total).map_err(|_| fail("out of range"))
}

/// A reference to an object in the same namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LocalObjectReference {
    /// Name of the referent.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A reference to one key of a Secret in the same namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeyReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// A reference to an object of any kind, optionally in another namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedObjectKindReference {
    /// API version of the referent, e.g. `apps/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the referent.
    #[schemars(length(min = 1))]
    pub kind: String,
    /// Name of the referent.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the referent; defaults to the namespace of the object that refers to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A reference to another object of the same kind that must be Ready first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DependencyReference {
    /// Name of the dependency.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the dependency; defaults to the dependant's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Labels and annotations to stamp on objects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Metadata {
    /// Labels to add.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations to add.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A packaged source revision in source-controller's storage, served over HTTP (DESIGN.md 3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Path relative to the storage root: `<kind>/<namespace>/<name>/<file>`.
    pub path: String,
    /// Where consumers download it.
    pub url: String,
    /// The source revision: `<ref>@sha1:<commit>` for Git, `<tag>@sha256:<digest>` for OCI.
    pub revision: String,
    /// Digest of the tarball, `sha256:<hex>`.
    #[schemars(pattern(r"^[a-z0-9]+:[a-f0-9]+$"))]
    pub digest: String,
    /// When the artifact was last written.
    pub last_update_time: Time,
    /// Size of the tarball in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// Upstream information such as OCI annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        let secs = |s: &str| Duration::parse(s).unwrap().to_std().unwrap().as_secs_f64();
        assert_eq!(secs("30s"), 30.0);
        assert_eq!(secs("1m30s"), 90.0);
        assert_eq!(secs("1.5h"), 5400.0);
        assert_eq!(secs("250ms"), 0.25);
        assert_eq!(secs("1h2m3s4ms"), 3723.004);
    }

    #[test]
    fn malformed_durations_are_refused_with_a_reason() {
        for bad in ["", "abc", "10", "s", "1.s", "1..5s", "-1s", "5d", "1m 2s"] {
            let err = Duration::parse(bad).unwrap_err();
            assert!(err.to_string().contains("invalid duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn duration_schema_carries_the_go_pattern() {
        let schema = schemars::schema_for!(Duration);
        assert_eq!(schema.get("pattern").unwrap(), DURATION_PATTERN);
    }
}
