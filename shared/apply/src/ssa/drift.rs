//! Drift detection: a server-side dry-run apply compared with the live object, field by field,
//! once metadata the server maintains and `status` are set aside; each drifted field comes with
//! the managers that own its live value, from managedFields.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DynamicObject, Patch};
use serde_json::Value;

use super::error::{immutable_fields, object_message};
use super::{Applier, ApplyOptions, Error, Policy, Prepared, fields};
use crate::inventory::ObjectRef;
use eddy_api::apply::DriftReport;

/// One field that differs between the live object and what an apply would make of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDrift {
    /// JSON Pointer of the field, e.g. `/spec/replicas`.
    pub path: String,
    /// The field managers that own the live value, e.g. `kubectl-edit`; empty when nobody does
    /// (a field removed from the live object).
    pub managers: Vec<String>,
}

/// The result of [`Applier::diff`]: how the live object differs from the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    /// The object.
    pub object: ObjectRef,
    /// Whether the object exists; an apply would create it when not.
    pub exists: bool,
    /// Whether a policy annotation leaves the object alone, so it is not compared.
    pub skipped: bool,
    /// The differing fields, in document order. Values are never included.
    pub fields: Vec<FieldDrift>,
}

impl Drift {
    /// Whether an apply would change the object.
    pub fn is_drifted(&self) -> bool {
        !self.skipped && (!self.exists || !self.fields.is_empty())
    }

    /// Every manager owning a drifted field, sorted, without duplicates.
    pub fn managers(&self) -> Vec<String> {
        let mut managers: Vec<String> = self.fields.iter().flat_map(|f| f.managers.iter().cloned()).collect();
        managers.sort();
        managers.dedup();
        managers
    }

    /// The drift as apply-controller records it in `status.drift`.
    pub fn to_report(&self, corrected: bool, detected_at: Time) -> DriftReport {
        DriftReport {
            object: self.object.to_string(),
            fields: self.fields.iter().map(|f| f.path.clone()).collect(),
            managers: self.managers(),
            corrected,
            detected_at,
        }
    }
}

impl Applier {
    /// How the live object differs from what applying `object` would make of it: a
    /// server-side dry-run apply compared with the live object, ignoring metadata the server
    /// maintains and `status`, limited to fields this engine's manager owns (or would own), each
    /// with the managers that own its live value (the "who changed it" of a drift report). One
    /// GET and one dry-run per call.
    pub async fn diff(&self, object: DynamicObject, options: &ApplyOptions) -> Result<Drift, Error> {
        let Prepared { object, desired, api } = self.prepare(object, options, false).await?;
        let live = self.get(&api, &object).await?;
        let policy = Policy::of(&desired, live.as_ref().map(|l| &l.metadata));
        let mut drift = Drift {
            object: object.clone(),
            exists: live.is_some(),
            skipped: policy.skips(live.is_some()),
            fields: Vec::new(),
        };
        let Some(live) = live.filter(|_| !drift.skipped) else {
            return Ok(drift);
        };
        let live_value = serde_json::to_value(&live).unwrap_or_default();
        let managed = live.metadata.managed_fields.as_deref().unwrap_or_default();
        let params = self.apply_params(policy).dry_run();
        let paths: Vec<String> = match api.patch(&object.name, &params, &Patch::Apply(&desired)).await {
            Ok(dry_run) => {
                // Only fields this manager owns (would own, or owned) are drift: what others
                // write meanwhile, such as a controller's annotations, is theirs.
                let ours = |object: &DynamicObject| -> Vec<_> {
                    let entries = object.metadata.managed_fields.iter().flatten();
                    entries
                        .filter(|e| e.manager.as_deref() == Some(self.field_manager()))
                        .cloned()
                        .collect()
                };
                let (ours_after, ours_before) = (ours(&dry_run), ours(&live));
                let dry_run = serde_json::to_value(&dry_run).unwrap_or_default();
                changed_paths(&dry_run, &live_value)
                    .into_iter()
                    .filter(|path| {
                        !fields::owners(&dry_run, &ours_after, path).is_empty()
                            || !fields::owners(&live_value, &ours_before, path).is_empty()
                    })
                    .collect()
            }
            Err(err) => match immutable_fields(&err) {
                // An apply with force would recreate the object: the immutable fields drifted.
                Some(fields) if options.force || policy.force => {
                    fields.iter().map(|f| format!("/{}", f.replace('.', "/"))).collect()
                }
                Some(fields) => {
                    return Err(Error::Immutable {
                        message: object_message(&object, &err),
                        object,
                        fields,
                    });
                }
                None => return Err(self.apply_error(&object, err, true)),
            },
        };
        drift.fields = paths
            .into_iter()
            .map(|path| FieldDrift {
                managers: fields::owners(&live_value, managed, &path),
                path,
            })
            .collect();
        Ok(drift)
    }
}

/// Metadata fields the apiserver maintains; a difference there is not drift.
const METADATA_NOISE: [&str; 8] = [
    "managedFields",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "uid",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// `object` without `status` and without the metadata fields the apiserver maintains.
pub fn normalized(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in METADATA_NOISE {
                metadata.remove(field);
            }
        }
    }
    object
}

/// JSON Pointers of every place where `desired` and `live` differ, after [`normalized`], in
/// document order. Lists of different lengths are reported as the list itself.
pub fn changed_paths(desired: &Value, live: &Value) -> Vec<String> {
    let mut paths = Vec::new();
    compare(&normalized(desired), &normalized(live), &mut String::new(), &mut paths);
    paths
}

fn compare(desired: &Value, live: &Value, path: &mut String, out: &mut Vec<String>) {
    match (desired, live) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))).collect();
            keys.sort();
            for key in keys {
                let len = path.len();
                path.push('/');
                path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                compare(
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                    path,
                    out,
                );
                path.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                compare(x, y, path, out);
                path.truncate(len);
            }
        }
        (a, b) if a == b => {}
        _ => out.push(path.clone()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_real_differences_are_drift() {
        let live = json!({
            "metadata": {"name": "web", "resourceVersion": "7", "generation": 3, "labels": {"app": "web", "x/y": "1"},
                         "managedFields": [{"manager": "kubectl-edit"}]},
            "spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:edited"}]}}},
            "status": {"replicas": 5},
        });
        let dry_run = json!({
            "metadata": {"name": "web", "resourceVersion": "7", "generation": 4, "labels": {"app": "web", "x/y": "2"},
                         "managedFields": [{"manager": "eddy-apply"}]},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
            "status": {"replicas": 2},
        });
        assert_eq!(
            changed_paths(&dry_run, &live),
            [
                "/metadata/labels/x~1y",
                "/spec/replicas",
                "/spec/template/spec/containers/0/image"
            ]
        );
        assert!(changed_paths(&live, &live).is_empty());
    }

    #[test]
    fn lists_of_different_length_are_one_change() {
        let a = json!({"spec": {"ports": [1, 2]}});
        let b = json!({"spec": {"ports": [1]}});
        assert_eq!(changed_paths(&a, &b), ["/spec/ports"]);
        let c = json!({"data": {"k": "v"}});
        assert_eq!(changed_paths(&c, &json!({})), ["/data"]);
    }
}
