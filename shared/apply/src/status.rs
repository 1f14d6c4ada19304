//! Health of arbitrary objects with kstatus semantics: [`assess`] reads one live object and says
//! whether it is Current, InProgress or Failed. Pure: waiting for a set of objects, which reads
//! them, is the engine's (`crate::ssa::wait`); its options and error ([`WaitOptions`],
//! [`WaitError`], naming only the objects that are not healthy) are defined here.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

pub use crate::inventory::ObjectRef;

/// The kstatus status of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// The object is fully reconciled and healthy.
    Current,
    /// Work is in progress; it may still become Current.
    InProgress,
    /// The object failed and will not become Current without a change.
    Failed,
    /// The object is being deleted.
    Terminating,
    /// The object does not exist.
    NotFound,
    /// The status could not be read (e.g. the GET failed).
    Unknown,
}

impl State {
    /// kstatus's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Current => "Current",
            State::InProgress => "InProgress",
            State::Failed => "Failed",
            State::Terminating => "Terminating",
            State::NotFound => "NotFound",
            State::Unknown => "Unknown",
        }
    }
}

/// The health of one object: its state and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// The state.
    pub state: State,
    /// Why, e.g. `0 of 2 replicas available`.
    pub message: String,
}

impl Health {
    /// Current, with a message.
    pub fn current(message: impl Into<String>) -> Self {
        Self {
            state: State::Current,
            message: message.into(),
        }
    }

    /// InProgress, with a message.
    pub fn in_progress(message: impl Into<String>) -> Self {
        Self {
            state: State::InProgress,
            message: message.into(),
        }
    }

    fn failed(message: impl Into<String>) -> Self {
        Self {
            state: State::Failed,
            message: message.into(),
        }
    }
}

/// The health of a live object, from its kind's rules or, for any other kind, from its
/// `Ready`/`Stalled`/`Reconciling` conditions and `observedGeneration`.
pub fn assess(object: &Value) -> Health {
    if object.pointer("/metadata/deletionTimestamp").is_some() {
        return Health {
            state: State::Terminating,
            message: "being deleted".into(),
        };
    }
    if let Some(health) = generic_in_progress(object) {
        return health;
    }
    let group = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.split_once('/'))
        .map_or("", |(group, _)| group);
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
    match (group, kind) {
        ("apps", "Deployment") => deployment(object),
        ("apps", "StatefulSet") => stateful_set(object),
        ("apps", "DaemonSet") => daemon_set(object),
        ("apps", "ReplicaSet") => replica_set(object),
        ("", "Pod") => pod(object),
        ("batch", "Job") => job(object),
        ("", "PersistentVolumeClaim") => pvc(object),
        ("", "Service") => service(object),
        ("", "Namespace") => namespace(object),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(object),
        _ => conditions(object),
    }
}

fn int(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

fn string<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

fn condition_is(object: &Value, type_: &str, status: &str) -> bool {
    condition(object, type_)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some(status)
}

fn condition_text(object: &Value, type_: &str) -> String {
    let Some(c) = condition(object, type_) else {
        return String::new();
    };
    let message = c.get("message").and_then(Value::as_str).unwrap_or_default();
    let reason = c.get("reason").and_then(Value::as_str).unwrap_or_default();
    if message.is_empty() {
        reason.to_owned()
    } else {
        message.to_owned()
    }
}

/// Rules kstatus applies to every kind first: a controller that has not seen the latest spec, and
/// the standard abnormal-true conditions.
fn generic_in_progress(object: &Value) -> Option<Health> {
    if let (Some(generation), Some(observed)) = (
        int(object, "/metadata/generation"),
        int(object, "/status/observedGeneration"),
    ) && observed < generation
    {
        return Some(Health::in_progress(format!(
            "generation {generation} not yet observed (observed {observed})"
        )));
    }
    if condition_is(object, "Stalled", "True") {
        return Some(Health::failed(condition_text(object, "Stalled")));
    }
    if condition_is(object, "Reconciling", "True") {
        return Some(Health::in_progress(condition_text(object, "Reconciling")));
    }
    None
}

fn conditions(object: &Value) -> Health {
    if condition_is(object, "Ready", "False") || condition_is(object, "Ready", "Unknown") {
        let text = condition_text(object, "Ready");
        return Health::in_progress(if text.is_empty() { "not ready".into() } else { text });
    }
    Health::current("")
}

fn spec_replicas(object: &Value) -> i64 {
    int(object, "/spec/replicas").unwrap_or(1)
}

fn deployment(object: &Value) -> Health {
    if condition_is(object, "Progressing", "False")
        && condition(object, "Progressing")
            .and_then(|c| c.get("reason"))
            .and_then(Value::as_str)
            == Some("ProgressDeadlineExceeded")
    {
        return Health::failed(format!(
            "progress deadline exceeded: {}",
            condition_text(object, "Progressing")
        ));
    }
    let wanted = spec_replicas(object);
    let replicas = int(object, "/status/replicas").unwrap_or(0);
    let updated = int(object, "/status/updatedReplicas").unwrap_or(0);
    let ready = int(object, "/status/readyReplicas").unwrap_or(0);
    let available = int(object, "/status/availableReplicas").unwrap_or(0);
    if updated < wanted {
        return Health::in_progress(format!("{updated} of {wanted} replicas updated"));
    }
    if replicas > updated {
        return Health::in_progress(format!("{} old replicas pending termination", replicas - updated));
    }
    if available < wanted {
        return Health::in_progress(format!("{available} of {wanted} replicas available"));
    }
    if ready < wanted {
        return Health::in_progress(format!("{ready} of {wanted} replicas ready"));
    }
    if condition_is(object, "Available", "False") {
        return Health::in_progress(condition_text(object, "Available"));
    }
    Health::current(format!("{available} of {wanted} replicas available"))
}

fn stateful_set(object: &Value) -> Health {
    let wanted = spec_replicas(object);
    let ready = int(object, "/status/readyReplicas").unwrap_or(0);
    let current = int(object, "/status/currentReplicas").unwrap_or(0);
    let updated = int(object, "/status/updatedReplicas").unwrap_or(0);
    if ready < wanted {
        return Health::in_progress(format!("{ready} of {wanted} replicas ready"));
    }
    let rolling = string(object, "/spec/updateStrategy/type").unwrap_or("RollingUpdate") == "RollingUpdate";
    let partition = int(object, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0);
    if rolling && partition == 0 {
        if updated < wanted && current < wanted {
            return Health::in_progress(format!("{updated} of {wanted} replicas updated"));
        }
        let current_revision = string(object, "/status/currentRevision");
        let update_revision = string(object, "/status/updateRevision");
        if update_revision.is_some() && current_revision != update_revision {
            return Health::in_progress("waiting for the rolling update to finish");
        }
    }
    Health::current(format!("{ready} of {wanted} replicas ready"))
}

fn daemon_set(object: &Value) -> Health {
    let Some(desired) = int(object, "/status/desiredNumberScheduled") else {
        return Health::in_progress("no pods scheduled yet");
    };
    for (field, what) in [
        ("currentNumberScheduled", "scheduled"),
        ("updatedNumberScheduled", "updated"),
        ("numberAvailable", "available"),
        ("numberReady", "ready"),
    ] {
        let have = int(object, &format!("/status/{field}")).unwrap_or(0);
        if have < desired {
            return Health::in_progress(format!("{have} of {desired} pods {what}"));
        }
    }
    Health::current(format!("{desired} pods ready"))
}

fn replica_set(object: &Value) -> Health {
    if condition_is(object, "ReplicaFailure", "True") {
        return Health::in_progress(format!("replica failure: {}", condition_text(object, "ReplicaFailure")));
    }
    let wanted = spec_replicas(object);
    let replicas = int(object, "/status/replicas").unwrap_or(0);
    let available = int(object, "/status/availableReplicas").unwrap_or(0);
    let ready = int(object, "/status/readyReplicas").unwrap_or(0);
    if available < wanted {
        return Health::in_progress(format!("{available} of {wanted} replicas available"));
    }
    if ready < wanted {
        return Health::in_progress(format!("{ready} of {wanted} replicas ready"));
    }
    if replicas > wanted {
        return Health::in_progress(format!("{} replicas pending termination", replicas - wanted));
    }
    Health::current(format!("{available} of {wanted} replicas available"))
}

fn pod(object: &Value) -> Health {
    match string(object, "/status/phase").unwrap_or("Pending") {
        "Succeeded" => Health::current("pod succeeded"),
        "Failed" => Health::failed(format!(
            "pod failed: {}",
            string(object, "/status/message").unwrap_or_default()
        )),
        "Running" => {
            if let Some(reason) = crash_looping(object) {
                return Health::failed(reason);
            }
            if condition_is(object, "Ready", "True") {
                Health::current("pod is ready")
            } else {
                Health::in_progress("pod is running but not ready")
            }
        }
        phase => {
            if condition_is(object, "PodScheduled", "False") {
                return Health::in_progress(format!(
                    "pod is not scheduled: {}",
                    condition_text(object, "PodScheduled")
                ));
            }
            Health::in_progress(format!("pod is {phase}"))
        }
    }
}

fn crash_looping(object: &Value) -> Option<String> {
    object
        .pointer("/status/containerStatuses")?
        .as_array()?
        .iter()
        .find_map(|c| {
            let reason = c.pointer("/state/waiting/reason").and_then(Value::as_str)?;
            (reason == "CrashLoopBackOff").then(|| {
                format!(
                    "container {} is in CrashLoopBackOff",
                    c.get("name").and_then(Value::as_str).unwrap_or_default()
                )
            })
        })
}

fn job(object: &Value) -> Health {
    if condition_is(object, "Failed", "True") {
        return Health::failed(format!("job failed: {}", condition_text(object, "Failed")));
    }
    if condition_is(object, "Complete", "True") {
        return Health::current("job completed");
    }
    let succeeded = int(object, "/status/succeeded").unwrap_or(0);
    let active = int(object, "/status/active").unwrap_or(0);
    Health::in_progress(format!("job running: {active} active, {succeeded} succeeded"))
}

fn pvc(object: &Value) -> Health {
    match string(object, "/status/phase").unwrap_or("Pending") {
        "Bound" => Health::current("bound"),
        "Lost" => Health::failed("the bound volume is lost"),
        phase => Health::in_progress(format!("not bound (phase {phase})")),
    }
}

fn service(object: &Value) -> Health {
    if string(object, "/spec/type") == Some("LoadBalancer") {
        let ingress = object
            .pointer("/status/loadBalancer/ingress")
            .and_then(Value::as_array)
            .is_some_and(|i| !i.is_empty());
        if !ingress {
            return Health::in_progress("waiting for a load balancer ingress");
        }
    }
    Health::current("")
}

fn namespace(object: &Value) -> Health {
    match string(object, "/status/phase") {
        Some("Terminating") => Health {
            state: State::Terminating,
            message: "namespace is terminating".into(),
        },
        _ => Health::current(""),
    }
}

fn crd(object: &Value) -> Health {
    if condition_is(object, "NamesAccepted", "False") {
        return Health::failed(format!(
            "names not accepted: {}",
            condition_text(object, "NamesAccepted")
        ));
    }
    if condition_is(object, "Established", "True") {
        Health::current("established")
    } else {
        Health::in_progress("not yet established")
    }
}

/// How [`wait`] polls.
#[derive(Clone, Debug)]
pub struct WaitOptions {
    /// Give up after this long.
    pub timeout: Duration,
    /// Time between two rounds of GETs.
    pub interval: Duration,
    /// Stop as soon as every object is either Current or Failed (Flux's fail-fast); when false,
    /// a Failed object is waited for until the timeout.
    pub fail_fast: bool,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            interval: Duration::from_secs(2),
            fail_fast: true,
        }
    }
}

/// An object and its last observed health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectHealth {
    /// The object.
    pub object: ObjectRef,
    /// Its health at the last poll.
    pub health: Health,
}

impl fmt::Display for ObjectHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.health.message.is_empty() {
            write!(f, "{}: {}", self.object, self.health.state.as_str())
        } else {
            write!(f, "{}: {}", self.object, self.health.message)
        }
    }
}

/// Why [`wait`] did not see every object healthy. Both variants list only the objects that are
/// not Current.
#[derive(Clone, Debug, thiserror::Error)]
pub enum WaitError {
    /// Time ran out while some objects were still in progress.
    #[error("timeout after {timeout:?} waiting for {}: {}", count(.unhealthy.len()), list(.unhealthy))]
    Timeout {
        /// The timeout.
        timeout: Duration,
        /// The objects that were not Current at the last poll.
        unhealthy: Vec<ObjectHealth>,
    },
    /// Every object settled and some failed (fail-fast).
    #[error("health check failed for {}: {}", count(.failed.len()), list(.failed))]
    Failed {
        /// The failed objects.
        failed: Vec<ObjectHealth>,
    },
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 object".into()
    } else {
        format!("{n} objects")
    }
}

fn list(objects: &[ObjectHealth]) -> String {
    objects.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(spec_replicas: i64, status: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": spec_replicas},
            "status": status,
        })
    }

    #[test]
    fn deployment_is_current_when_all_replicas_are_available() {
        let d = deployment(
            2,
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                   "conditions": [{"type": "Available", "status": "True"}]}),
        );
        assert_eq!(assess(&d).state, State::Current);
    }

    #[test]
    fn deployment_in_progress_says_how_many_replicas_are_available() {
        let d = deployment(
            2,
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "unavailableReplicas": 2}),
        );
        assert_eq!(assess(&d), Health::in_progress("0 of 2 replicas available"));
        let stale = deployment(2, json!({"observedGeneration": 1}));
        assert_eq!(assess(&stale).state, State::InProgress);
    }

    #[test]
    fn deployment_past_its_progress_deadline_failed() {
        let d = deployment(
            1,
            json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False",
                   "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet web-1 has timed out progressing."}]}),
        );
        assert_eq!(assess(&d).state, State::Failed);
    }

    #[test]
    fn custom_resources_follow_their_conditions() {
        let cr = |conditions: Value, observed: i64| {
            json!({"apiVersion": "apply.eddy.dev/v1alpha1", "kind": "Kustomization",
                   "metadata": {"generation": 3}, "status": {"observedGeneration": observed, "conditions": conditions}})
        };
        let ready = json!([{"type": "Ready", "status": "True"}]);
        assert_eq!(assess(&cr(ready.clone(), 3)).state, State::Current);
        assert_eq!(assess(&cr(ready, 2)).state, State::InProgress);
        let stalled =
            json!([{"type": "Ready", "status": "False"}, {"type": "Stalled", "status": "True", "message": "bad path"}]);
        assert_eq!(assess(&cr(stalled, 3)), Health::failed("bad path"));
        let not_ready = json!([{"type": "Ready", "status": "False", "message": "building"}]);
        assert_eq!(assess(&cr(not_ready, 3)), Health::in_progress("building"));
        assert_eq!(
            assess(&json!({"apiVersion": "v1", "kind": "ConfigMap"})).state,
            State::Current
        );
    }

    #[test]
    fn kinds_with_their_own_rules() {
        let lb = json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {}}});
        assert_eq!(assess(&lb).state, State::InProgress);
        let cluster_ip = json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "ClusterIP"}});
        assert_eq!(assess(&cluster_ip).state, State::Current);
        let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}});
        assert_eq!(assess(&pvc).state, State::InProgress);
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}});
        assert_eq!(assess(&job).state, State::Failed);
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                         "status": {"conditions": [{"type": "Established", "status": "True"}]}});
        assert_eq!(assess(&crd).state, State::Current);
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Running",
                         "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(assess(&pod).state, State::Failed);
        let terminating =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}});
        assert_eq!(assess(&terminating).state, State::Terminating);
    }

    #[test]
    fn wait_errors_list_only_unhealthy_objects() {
        let err = WaitError::Timeout {
            timeout: Duration::from_secs(5),
            unhealthy: vec![ObjectHealth {
                object: ObjectRef::new("apps/v1", "Deployment", "ns", "web"),
                health: Health::in_progress("0 of 2 replicas available"),
            }],
        };
        assert_eq!(
            err.to_string(),
            "timeout after 5s waiting for 1 object: Deployment/ns/web: 0 of 2 replicas available"
        );
    }
}
