//! Name references: once names changed (prefix, suffix, hash, namespace), every field that
//! named the old object is pointed at the new name.
//!
//! Input is the ResMap after a kustomization's transformers ran, with each resource's
//! `previous` ids, `prefixes` and `suffixes` recorded by the steps that renamed it; the
//! table of referring fields comes from [`TransformerConfig::name_reference`]. Output is the
//! same ResMap with the referring fields rewritten in place. Follows kustomize v5.5.0
//! (`api/filters/nameref` and the accumulator's name-reference transformer).

use serde_json::Value;

use crate::builtin::{GvkSpec, NameBackRefs, TransformerConfig};
use crate::error::{Error, Result};
use crate::fieldspec::FieldSpec;
use crate::resource::{Gvk, Object, ResId, ResMap, Resource};

/// Rewrites every reference to a renamed object, for each referring field listed in
/// `config.name_reference`.
///
/// A reference is rewritten only when exactly one resource can be meant (or all the
/// possible ones carry the same new name); references that match nothing are left as they
/// are. When several different resources remain possible the build fails, naming them.
pub fn fix_back_references(rm: &mut ResMap, config: &TransformerConfig) -> Result<()> {
    if config.name_reference.is_empty() {
        return Ok(());
    }
    let referents: Vec<Referent> = rm.iter().map(Referent::of).collect();
    let lookup = &Index::new(&referents);
    for index in 0..rm.len() {
        let fields = referring_fields(&config.name_reference, &referents[index].org_id().gvk);
        if fields.is_empty() {
            continue;
        }
        let resource = &mut rm.resources_mut()[index];
        let referrer = Referrer {
            id: referents[index].id.clone(),
            prefixes: &referents[index].prefixes,
            suffixes: &referents[index].suffixes,
        };
        let pool = Pool::for_referrer(resource, &referrer.id)?;
        for (spec, target) in fields {
            let update = Update {
                referrer: &referrer,
                target: &target,
                role_ref: role_ref_gvk(resource, &spec.path),
                pool: &pool,
                lookup,
                referents: &referents,
            };
            if let Err(e) = update.apply(&mut resource.obj, &spec.path) {
                let obj = &rm.resources()[index].obj;
                return Err(describe_failure(rm, obj, &referrer.id, &spec.path, &referents, e));
            }
        }
    }
    Ok(())
}

/// The referring fields whose kind filter selects a referrer originally of kind `org_gvk`,
/// each with the kind of object it names, in table order.
fn referring_fields(table: &[NameBackRefs], org_gvk: &Gvk) -> Vec<(FieldSpec, Gvk)> {
    table
        .iter()
        .flat_map(|backrefs| {
            let target = backrefs.gvk.gvk();
            backrefs
                .field_specs
                .iter()
                .filter(|spec| spec.selects(org_gvk))
                .map(move |spec| (spec.clone(), target.clone()))
        })
        .collect()
}

/// What name-reference resolution needs to know about one resource as a possible target.
/// Taken once before any field is rewritten: rewriting never changes names or namespaces.
struct Referent {
    id: ResId,
    /// Earlier ids, oldest first. Like kustomize, they carry the current group and version
    /// with the kind the resource had then.
    previous: Vec<ResId>,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
    cluster_scoped: bool,
}

impl Referent {
    fn of(r: &Resource) -> Self {
        let id = r.id();
        let previous = r
            .previous
            .iter()
            .map(|p| ResId {
                gvk: Gvk::new(&id.gvk.group, &id.gvk.version, &p.gvk.kind),
                name: p.name.clone(),
                namespace: p.namespace.clone(),
            })
            .collect();
        let non_empty = |v: &[String]| v.iter().filter(|s| !s.is_empty()).cloned().collect();
        Self {
            cluster_scoped: !id.gvk.is_namespaced(),
            id,
            previous,
            prefixes: non_empty(&r.prefixes),
            suffixes: non_empty(&r.suffixes),
        }
    }

    fn org_id(&self) -> &ResId {
        self.previous.first().unwrap_or(&self.id)
    }

    fn is_cluster_scoped(&self) -> bool {
        self.cluster_scoped
    }

    /// Namespace the resource started in; `None` for cluster-scoped kinds.
    fn original_namespace(&self) -> Option<&str> {
        let org = self.org_id();
        org.gvk.is_namespaced().then(|| org.effective_namespace())
    }

    /// Namespace the resource is in now; `None` for cluster-scoped kinds.
    fn current_namespace(&self) -> Option<&str> {
        (!self.is_cluster_scoped()).then(|| self.id.effective_namespace())
    }
}

struct Referrer<'a> {
    id: ResId,
    prefixes: &'a [String],
    suffixes: &'a [String],
}

/// The resources one referrer may refer to at all: everything when the referrer is
/// cluster-scoped; otherwise cluster-scoped resources, those in its namespace, and for a
/// RoleBinding those in the namespaces its ServiceAccount subjects name.
struct Pool {
    everything: bool,
    /// The referrer's namespace (`default` when unset).
    namespace: String,
    /// Namespaces its ServiceAccount subjects name, as written.
    subject_namespaces: Vec<String>,
}

impl Pool {
    fn for_referrer(referrer: &Resource, id: &ResId) -> Result<Self> {
        let everything = !id.gvk.is_namespaced();
        let subject_namespaces = if everything {
            Vec::new()
        } else {
            role_binding_subject_namespaces(referrer, id)?
                .into_iter()
                .map(str::to_owned)
                .collect()
        };
        Ok(Self {
            everything,
            namespace: id.effective_namespace().to_owned(),
            subject_namespaces,
        })
    }

    fn contains(&self, r: &Referent) -> bool {
        self.everything
            || r.cluster_scoped
            || r.id.effective_namespace() == self.namespace
            || self.subject_namespaces.contains(&r.id.namespace)
    }

    /// Whether a resource now in `current` (effective) namespace is in the pool.
    fn contains_namespace(&self, current: &str, raw: &str) -> bool {
        self.everything || current == self.namespace || self.subject_namespaces.iter().any(|ns| ns == raw)
    }
}

/// Referents by every earlier name, and which (original, current) namespace pairs exist, so a
/// reference is resolved without scanning every resource.
struct Index {
    by_name: std::collections::HashMap<String, Vec<usize>>,
    namespace_pairs: std::collections::HashSet<(String, String, String)>,
}

impl Index {
    fn new(referents: &[Referent]) -> Self {
        let mut by_name: std::collections::HashMap<String, Vec<usize>> = std::collections::HashMap::new();
        let mut namespace_pairs = std::collections::HashSet::new();
        for (i, r) in referents.iter().enumerate() {
            let mut names: Vec<&str> = r.previous.iter().map(|p| p.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            for name in names {
                by_name.entry(name.to_owned()).or_default().push(i);
            }
            if let Some(original) = r.original_namespace() {
                namespace_pairs.insert((
                    original.to_owned(),
                    r.id.effective_namespace().to_owned(),
                    r.id.namespace.clone(),
                ));
            }
        }
        Self {
            by_name,
            namespace_pairs,
        }
    }

    /// Referents that once had `name`, in build order.
    fn named(&self, name: &str) -> &[usize] {
        self.by_name.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Namespaces named by a RoleBinding's ServiceAccount subjects, as written.
fn role_binding_subject_namespaces<'a>(r: &'a Resource, id: &ResId) -> Result<Vec<&'a str>> {
    if r.kind() != "RoleBinding" {
        return Ok(Vec::new());
    }
    let Some(Value::Array(subjects)) = r.get(&["subjects"]) else {
        return Ok(Vec::new());
    };
    let mut namespaces = Vec::new();
    for subject in subjects.iter().filter_map(Value::as_object) {
        let is_service_account = subject.get("kind").and_then(Value::as_str) == Some("ServiceAccount");
        match subject.get("namespace") {
            Some(Value::String(ns)) if is_service_account => namespaces.push(ns.as_str()),
            Some(_) if is_service_account => {
                return Err(Error::new(format!(
                    "Invalid Input: namespace is blank for resource \"{id}\""
                )));
            }
            _ => {}
        }
    }
    Ok(namespaces)
}

/// For a `roleRef/name` field, the group and kind the roleRef names; a roleRef without
/// them restricts nothing.
fn role_ref_gvk(r: &Resource, path: &str) -> Option<Gvk> {
    if !path.ends_with("roleRef/name") {
        return None;
    }
    let text = |key| match r.get(&["roleRef", key])? {
        Value::Null => None,
        v => Some(scalar_text(v)),
    };
    Some(Gvk::new(&text("apiGroup")?, "", &text("kind")?))
}

/// Why a referring field could not be updated.
#[derive(Debug)]
enum Failure {
    /// Several different resources could be meant (indices into the referents).
    Ambiguous(Vec<usize>),
    Invalid(String),
}

/// A failure with the sequence traversals it happened under, outermost first.
#[derive(Debug)]
struct WalkError {
    trail: String,
    failure: Failure,
}

impl From<Failure> for WalkError {
    fn from(failure: Failure) -> Self {
        Self {
            trail: String::new(),
            failure,
        }
    }
}

/// One referring field of one referrer, and where its target may be found.
struct Update<'a> {
    referrer: &'a Referrer<'a>,
    target: &'a Gvk,
    role_ref: Option<Gvk>,
    pool: &'a Pool,
    lookup: &'a Index,
    referents: &'a [Referent],
}

impl Update<'_> {
    fn apply(&self, obj: &mut Object, path: &str) -> Result<(), WalkError> {
        let segments = split_path(path);
        let Some((first, rest)) = segments.split_first() else {
            return Ok(());
        };
        match obj.get_mut(field_name(first)?) {
            Some(value) => self.walk(value, rest),
            None => Ok(()),
        }
    }

    /// Follows `path` down from `value`; sequences are entered element by element without
    /// consuming a path segment. Missing fields end the walk quietly.
    fn walk(&self, value: &mut Value, path: &[String]) -> Result<(), WalkError> {
        let Some((first, rest)) = path.split_first() else {
            return self.update(value);
        };
        match value {
            Value::Null => Ok(()),
            Value::Array(items) => {
                for item in items {
                    self.walk(item, path).map_err(|mut e| {
                        e.trail = format!("visit traversal on path: [{}]: {}", path.join(" "), e.trail);
                        e
                    })?;
                }
                Ok(())
            }
            Value::Object(map) => match map.get_mut(field_name(first)?) {
                Some(child) => self.walk(child, rest),
                None => Ok(()),
            },
            _ => Err(Failure::Invalid("expected sequence or mapping node".into()).into()),
        }
    }

    /// Updates the value a referring field reached: a name, a map holding `name` (and maybe
    /// `namespace`), or a list of either.
    fn update(&self, value: &mut Value) -> Result<(), WalkError> {
        match value {
            Value::Null => Ok(()),
            Value::Object(map) => self.update_map(map),
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Null => {}
                        Value::Object(map) => self.update_map(map)?,
                        Value::Array(_) => {
                            return Err(Failure::Invalid(
                                "sequence element is expected to be either a string or a map of string".into(),
                            )
                            .into());
                        }
                        scalar => self.update_scalar(scalar)?,
                    }
                }
                Ok(())
            }
            scalar => self.update_scalar(scalar),
        }
    }

    fn update_scalar(&self, value: &mut Value) -> Result<(), WalkError> {
        let old = scalar_text(value);
        let Some(chosen) = self.select(&old, self.candidates(&old), same_name)? else {
            return Ok(());
        };
        let new = &self.referents[chosen].id.name;
        if *new != old {
            *value = Value::String(new.clone());
        }
        Ok(())
    }

    /// A map such as a RoleBinding subject: the target is looked up by name within the
    /// namespace the map names, and both fields are set from it.
    fn update_map(&self, map: &mut Object) -> Result<(), WalkError> {
        let Some(name) = map.get("name") else {
            return Err(Failure::Invalid("path config error; no 'name' field in node".into()).into());
        };
        let old = scalar_text(name);
        let pool = match map.get("namespace") {
            Some(ns) => self.in_namespace(&scalar_text(ns), &old),
            None => self.candidates(&old).collect(),
        };
        let Some(chosen) = self.select(&old, pool.into_iter(), same_name_and_namespace)? else {
            return Ok(());
        };
        let id = &self.referents[chosen].id;
        if id.name == old && id.namespace.is_empty() {
            return Ok(());
        }
        map.insert("name".into(), Value::String(id.name.clone()));
        // An unset namespace on the target is no reason to blank a `default` written here.
        if !id.namespace.is_empty() {
            map.insert("namespace".into(), Value::String(id.namespace.clone()));
        }
        Ok(())
    }

    /// Referents the referrer may see that once were called `name`.
    fn candidates<'b>(&'b self, name: &str) -> impl Iterator<Item = usize> + 'b {
        let named = self.lookup.named(name);
        named
            .iter()
            .copied()
            .filter(|&i| self.pool.contains(&self.referents[i]))
    }

    /// Candidates named `name` in `namespace`: among those that started there if any resource
    /// the referrer may see did (whatever its name), else among those now there.
    fn in_namespace(&self, namespace: &str, name: &str) -> Vec<usize> {
        let by = |ns_of: fn(&Referent) -> Option<&str>| -> Vec<usize> {
            self.candidates(name)
                .filter(|&i| ns_of(&self.referents[i]) == Some(namespace))
                .collect()
        };
        let any_started_there = self
            .lookup
            .namespace_pairs
            .iter()
            .any(|(original, current, raw)| original == namespace && self.pool.contains_namespace(current, raw));
        if any_started_there {
            by(Referent::original_namespace)
        } else {
            by(Referent::current_namespace)
        }
    }

    /// Picks the resource a reference to `old` means, narrowing the candidates step by step
    /// the way kustomize does.
    fn select(
        &self,
        old: &str,
        candidates: impl Iterator<Item = usize>,
        equivalent: fn(&Referent, &Referent) -> bool,
    ) -> Result<Option<usize>, Failure> {
        let mut left: Vec<usize> = candidates
            .filter(|&i| {
                let r = &self.referents[i];
                r.previous.iter().any(|p| p.name == old)
                    && r.previous.iter().any(|p| gvk_selects(self.target, &p.gvk))
                    && self
                        .role_ref
                        .as_ref()
                        .is_none_or(|want| r.previous.iter().any(|p| gvk_selects(want, &p.gvk)))
                    && self.namespace_allows(r)
            })
            .collect();
        if left.len() == 1 {
            return Ok(Some(left[0]));
        }
        left.retain(|&i| self.same_name_context(&self.referents[i], true));
        if left.len() > 1 {
            left.retain(|&i| self.same_name_context(&self.referents[i], false));
        }
        match left.as_slice() {
            [] => Ok(None),
            [only] => Ok(Some(*only)),
            [first, rest @ ..] => {
                let head = &self.referents[*first];
                if rest.iter().all(|&i| equivalent(head, &self.referents[i])) {
                    Ok(Some(*first))
                } else {
                    Err(Failure::Ambiguous(left))
                }
            }
        }
    }

    /// A namespaced referrer sees cluster-scoped targets, ServiceAccounts anywhere (a
    /// RoleBinding may bind one from another namespace) and anything in its own namespace.
    fn namespace_allows(&self, r: &Referent) -> bool {
        let id = &self.referrer.id;
        !id.gvk.is_namespaced()
            || r.is_cluster_scoped()
            || r.id.gvk.kind == "ServiceAccount"
            || r.id.effective_namespace() == id.effective_namespace()
    }

    /// Whether the candidate's name was built in the same context as the referrer's: its
    /// prefixes (and suffixes) end with the referrer's, or the other way round. With
    /// `allow_empty`, a side without any prefix (or suffix) matches everything.
    fn same_name_context(&self, r: &Referent, allow_empty: bool) -> bool {
        let fits = |mine: &[String], theirs: &[String]| {
            (allow_empty && (mine.is_empty() || theirs.is_empty())) || same_ending(mine, theirs)
        };
        fits(&r.prefixes, self.referrer.prefixes) && fits(&r.suffixes, self.referrer.suffixes)
    }
}

/// Whether the shorter list is the tail of the longer one; an empty list only matches an
/// empty list.
fn same_ending(a: &[String], b: &[String]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.is_empty() {
        long.is_empty()
    } else {
        long.ends_with(short)
    }
}

fn same_name(a: &Referent, b: &Referent) -> bool {
    a.id.name == b.id.name
}

fn same_name_and_namespace(a: &Referent, b: &Referent) -> bool {
    a.id.name == b.id.name && a.id.namespace == b.id.namespace
}

/// kustomize's selector match: empty parts of `selector` match anything.
fn gvk_selects(selector: &Gvk, gvk: &Gvk) -> bool {
    (selector.group.is_empty() || selector.group == gvk.group)
        && (selector.version.is_empty() || selector.version == gvk.version)
        && (selector.kind.is_empty() || selector.kind == gvk.kind)
}

/// A scalar as YAML would spell it; null reads as empty.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn field_name(segment: &str) -> Result<&str, WalkError> {
    let name = segment.strip_suffix("[]").unwrap_or(segment);
    if name.is_empty() {
        return Err(Failure::Invalid("cannot set or create an empty field name".into()).into());
    }
    Ok(name)
}

/// Splits a field-spec path on `/`; `\/` keeps a slash inside a segment (annotation keys),
/// and one leading `/` is ignored.
fn split_path(path: &str) -> Vec<String> {
    let mut parts: Vec<&str> = path.split('/').collect();
    if parts.len() > 1 && parts[0].is_empty() {
        parts.remove(0);
    }
    let mut segments: Vec<String> = Vec::new();
    for part in parts {
        match segments.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push('/');
                last.push_str(part);
            }
            _ => segments.push(part.to_owned()),
        }
    }
    segments
}

fn describe_failure(
    rm: &ResMap,
    referrer: &Object,
    id: &ResId,
    path: &str,
    referents: &[Referent],
    e: WalkError,
) -> Error {
    let cause = match e.failure {
        Failure::Invalid(message) => message,
        Failure::Ambiguous(candidates) => {
            let ids: Vec<String> = candidates.iter().map(|&i| referents[i].id.to_string()).collect();
            let mut message = format!(
                "found multiple possible referrals: {}\n\n**** Too many possible referral targets to referrer:\n{}\n",
                ids.join(", "),
                crate::yaml::to_yaml(referrer)
            );
            for (n, &i) in candidates.iter().enumerate() {
                message.push_str(&format!(
                    "--- possible referral {n}:\n{}\n",
                    crate::yaml::to_yaml(&rm.resources()[i].obj)
                ));
            }
            message
        }
    };
    Error::new(format!(
        "updating name reference in '{path}' field of '{id}': considering field '{path}' of object {id}: {}{cause}",
        e.trail
    ))
}

/// kustomize's built-in table of fields that refer to other objects by name.
pub fn default_name_references() -> Vec<NameBackRefs> {
    const RBAC: &str = "rbac.authorization.k8s.io";
    const WEBHOOKS: &str = "admissionregistration.k8s.io";
    let scaled = |kind| {
        backrefs(
            "",
            "",
            kind,
            vec![spec("", "", "HorizontalPodAutoscaler", "spec/scaleTargetRef/name")],
        )
    };
    let mut table = vec![
        scaled("Deployment"),
        scaled("ReplicationController"),
        scaled("ReplicaSet"),
        scaled("StatefulSet"),
    ];

    let mut config_map = pod_spec_refs(&[
        "volumes/configMap/name",
        "containers/env/valueFrom/configMapKeyRef/name",
        "initContainers/env/valueFrom/configMapKeyRef/name",
        "containers/envFrom/configMapRef/name",
        "initContainers/envFrom/configMapRef/name",
        "volumes/projected/sources/configMap/name",
    ]);
    config_map.extend([
        spec("", "", "Node", "spec/configSource/configMap"),
        spec("", "", "Role", "rules/resourceNames"),
        spec("", "", "ClusterRole", "rules/resourceNames"),
        spec(
            "",
            "",
            "Ingress",
            r"metadata/annotations/nginx.ingress.kubernetes.io\/fastcgi-params-configmap",
        ),
    ]);
    table.push(backrefs("", "v1", "ConfigMap", config_map));

    let mut secret = pod_spec_refs(&[
        "volumes/secret/secretName",
        "containers/env/valueFrom/secretKeyRef/name",
        "initContainers/env/valueFrom/secretKeyRef/name",
        "containers/envFrom/secretRef/name",
        "initContainers/envFrom/secretRef/name",
        "imagePullSecrets/name",
        "volumes/projected/sources/secret/name",
    ]);
    secret.extend([
        spec("", "", "Ingress", "spec/tls/secretName"),
        spec(
            "",
            "",
            "Ingress",
            r"metadata/annotations/ingress.kubernetes.io\/auth-secret",
        ),
        spec(
            "",
            "",
            "Ingress",
            r"metadata/annotations/nginx.ingress.kubernetes.io\/auth-secret",
        ),
        spec(
            "",
            "",
            "Ingress",
            r"metadata/annotations/nginx.ingress.kubernetes.io\/auth-tls-secret",
        ),
        // kustomize lists this one twice; the second pass finds nothing left to rename.
        spec("", "", "Ingress", "spec/tls/secretName"),
        spec("", "", "ServiceAccount", "imagePullSecrets/name"),
        spec("", "", "StorageClass", "parameters/secretName"),
        spec("", "", "StorageClass", "parameters/adminSecretName"),
        spec("", "", "StorageClass", "parameters/userSecretName"),
        spec("", "", "StorageClass", "parameters/secretRef"),
        spec("", "", "Role", "rules/resourceNames"),
        spec("", "", "ClusterRole", "rules/resourceNames"),
        spec(
            "serving.knative.dev",
            "v1",
            "Service",
            "spec/template/spec/containers/env/valueFrom/secretKeyRef/name",
        ),
        spec("", "", "PersistentVolume", "spec/azureFile/secretName"),
    ]);
    table.push(backrefs("", "v1", "Secret", secret));

    table.push(backrefs(
        "",
        "v1",
        "Service",
        vec![
            spec("apps", "", "StatefulSet", "spec/serviceName"),
            spec("", "", "Ingress", "spec/rules/http/paths/backend/serviceName"),
            spec("", "", "Ingress", "spec/backend/serviceName"),
            spec("", "", "Ingress", "spec/rules/http/paths/backend/service/name"),
            spec("", "", "Ingress", "spec/defaultBackend/service/name"),
            spec("apiregistration.k8s.io", "", "APIService", "spec/service/name"),
            spec(
                WEBHOOKS,
                "",
                "ValidatingWebhookConfiguration",
                "webhooks/clientConfig/service",
            ),
            spec(
                WEBHOOKS,
                "",
                "MutatingWebhookConfiguration",
                "webhooks/clientConfig/service",
            ),
        ],
    ));
    table.push(backrefs(
        RBAC,
        "",
        "Role",
        vec![spec(RBAC, "", "RoleBinding", "roleRef/name")],
    ));
    table.push(backrefs(
        RBAC,
        "",
        "ClusterRole",
        vec![
            spec(RBAC, "", "RoleBinding", "roleRef/name"),
            spec(RBAC, "", "ClusterRoleBinding", "roleRef/name"),
        ],
    ));

    let mut service_account = vec![
        spec(RBAC, "", "RoleBinding", "subjects"),
        spec(RBAC, "", "ClusterRoleBinding", "subjects"),
    ];
    service_account.extend(workload_refs("serviceAccountName"));
    table.push(backrefs("", "v1", "ServiceAccount", service_account));
    table.push(backrefs(
        "",
        "v1",
        "PersistentVolumeClaim",
        workload_refs("volumes/persistentVolumeClaim/claimName"),
    ));
    table.push(backrefs(
        "",
        "v1",
        "PersistentVolume",
        vec![
            spec("", "", "PersistentVolumeClaim", "spec/volumeName"),
            spec("", "", "ClusterRole", "rules/resourceNames"),
        ],
    ));
    table.push(backrefs(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        vec![
            spec("", "", "PersistentVolume", "spec/storageClassName"),
            spec("", "", "PersistentVolumeClaim", "spec/storageClassName"),
            spec("", "", "StatefulSet", "spec/volumeClaimTemplates/spec/storageClassName"),
        ],
    ));
    table.push(backrefs(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        workload_refs("priorityClassName"),
    ));
    // kustomize spells this group with its version, so real IngressClasses never match and
    // `ingressClassName` is left alone; kept as is to render the same output.
    table.push(backrefs(
        "networking.k8s.io/v1",
        "v1",
        "IngressClass",
        vec![spec("", "", "Ingress", "spec/ingressClassName")],
    ));
    table.push(backrefs(
        WEBHOOKS,
        "",
        "ValidatingAdmissionPolicy",
        vec![spec(
            WEBHOOKS,
            "",
            "ValidatingAdmissionPolicyBinding",
            "spec/policyName",
        )],
    ));
    table
}

/// `fields` (relative to a pod spec) in Pods, PodTemplates, the workload kinds that embed a
/// pod template, and CronJobs. ConfigMaps and Secrets are named from these kinds; Pod
/// entries are pinned to `v1`.
fn pod_spec_refs(fields: &[&str]) -> Vec<FieldSpec> {
    let holders: [(&str, &str, &str); 8] = [
        ("Pod", "v1", "spec/"),
        ("PodTemplate", "", "template/spec/"),
        ("Deployment", "", "spec/template/spec/"),
        ("ReplicaSet", "", "spec/template/spec/"),
        ("DaemonSet", "", "spec/template/spec/"),
        ("StatefulSet", "", "spec/template/spec/"),
        ("Job", "", "spec/template/spec/"),
        ("CronJob", "", "spec/jobTemplate/spec/template/spec/"),
    ];
    holders
        .iter()
        .flat_map(|(kind, version, prefix)| {
            fields
                .iter()
                .map(move |field| spec("", version, kind, &format!("{prefix}{field}")))
        })
        .collect()
}

/// `field` (relative to a pod spec) in the kinds kustomize lists for ServiceAccounts, PVCs
/// and PriorityClasses (no ReplicaSet or PodTemplate there, but ReplicationController).
fn workload_refs(field: &str) -> Vec<FieldSpec> {
    [
        ("Pod", "spec/"),
        ("StatefulSet", "spec/template/spec/"),
        ("Deployment", "spec/template/spec/"),
        ("ReplicationController", "spec/template/spec/"),
        ("CronJob", "spec/jobTemplate/spec/template/spec/"),
        ("Job", "spec/template/spec/"),
        ("DaemonSet", "spec/template/spec/"),
    ]
    .iter()
    .map(|(kind, prefix)| spec("", "", kind, &format!("{prefix}{field}")))
    .collect()
}

fn backrefs(group: &str, version: &str, kind: &str, field_specs: Vec<FieldSpec>) -> NameBackRefs {
    NameBackRefs {
        gvk: GvkSpec {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
        },
        field_specs,
    }
}

fn spec(group: &str, version: &str, kind: &str, path: &str) -> FieldSpec {
    FieldSpec {
        group: group.to_owned(),
        version: version.to_owned(),
        kind: kind.to_owned(),
        path: path.to_owned(),
        ..FieldSpec::default()
    }
}

#[cfg(test)]
mod tests;
