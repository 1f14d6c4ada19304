//! Tests of [`super`]: nameref.rs holds the logic, this file what pins it.

//! Expectations were taken from `kubectl kustomize` (kustomize v5.5.0) on equivalent
//! kustomizations; the renames its transformers make are replayed by hand.

use super::*;
use crate::Limits;

fn resources(yaml: &str) -> Vec<Resource> {
    crate::yaml::parse_documents(yaml, &Limits::default())
        .unwrap()
        .into_iter()
        .map(|v| match v {
            Value::Object(obj) => Resource::from_object(obj).unwrap(),
            other => panic!("not a map: {other}"),
        })
        .collect()
}

fn prefix(r: &mut Resource, p: &str) {
    let name = format!("{p}{}", r.name());
    r.set_name(&name);
    r.prefixes.push(p.to_owned());
}

fn suffix(r: &mut Resource, s: &str) {
    let name = format!("{}{s}", r.name());
    r.set_name(&name);
    r.suffixes.push(s.to_owned());
}

fn hash(r: &mut Resource, h: &str) {
    let name = format!("{}-{h}", r.name());
    r.set_name(&name);
}

fn config() -> TransformerConfig {
    TransformerConfig {
        name_reference: default_name_references(),
        ..TransformerConfig::default()
    }
}

fn fixed(rs: Vec<Resource>) -> ResMap {
    let mut rm: ResMap = rs.into_iter().collect();
    fix_back_references(&mut rm, &config()).unwrap();
    rm
}

fn failure(rs: Vec<Resource>) -> String {
    let mut rm: ResMap = rs.into_iter().collect();
    fix_back_references(&mut rm, &config()).unwrap_err().message
}

/// The value at a JSON pointer in the resource of `kind` currently named `name`.
fn value(rm: &ResMap, kind: &str, name: &str, pointer: &str) -> Value {
    let r = rm
        .iter()
        .find(|r| r.kind() == kind && r.name() == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"));
    Value::Object(r.obj.clone())
        .pointer(pointer)
        .cloned()
        .unwrap_or_else(|| panic!("nothing at {pointer} in {kind} {name}"))
}

fn text(rm: &ResMap, kind: &str, name: &str, pointer: &str) -> String {
    scalar_text(&value(rm, kind, name, pointer))
}

const POD_WITH_CONFIG: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      imagePullSecrets:
      - name: sec
      - name: other
      volumes:
      - name: v1
        configMap:
          name: cfg
      - name: v2
        projected:
          sources:
          - configMap:
              name: cfg
          - secret:
              name: sec
      - name: v3
        secret:
          secretName: sec
      containers:
      - name: c
        env:
        - name: X
          valueFrom:
            configMapKeyRef:
              name: cfg
              key: a
        - name: Y
          valueFrom:
            secretKeyRef:
              name: sec
              key: a
        envFrom:
        - configMapRef:
            name: cfg
        - secretRef:
            name: sec
        - configMapRef:
            name: unknown
"#;

/// namePrefix p-, namespace prod, generated ConfigMap and Secret with hash suffixes.
fn prefixed_generated_config() -> ResMap {
    let mut rs = resources(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata:\n  name: sec\n---\n{POD_WITH_CONFIG}"
    ));
    for r in &mut rs {
        prefix(r, "p-");
        r.set_namespace("prod");
    }
    hash(&mut rs[0], "4h2mbtbbt6");
    hash(&mut rs[1], "k695gkmbtk");
    fixed(rs)
}

#[test]
fn config_map_references_in_volumes_env_env_from_and_projections_follow_renames() {
    let rm = prefixed_generated_config();
    let new = "p-cfg-4h2mbtbbt6";
    let spec = "/spec/template/spec";
    for pointer in [
        "/volumes/0/configMap/name",
        "/volumes/1/projected/sources/0/configMap/name",
        "/containers/0/env/0/valueFrom/configMapKeyRef/name",
        "/containers/0/envFrom/0/configMapRef/name",
    ] {
        assert_eq!(
            text(&rm, "Deployment", "p-web", &format!("{spec}{pointer}")),
            new,
            "{pointer}"
        );
    }
}

#[test]
fn secret_references_including_image_pull_secrets_follow_renames() {
    let rm = prefixed_generated_config();
    let new = "p-sec-k695gkmbtk";
    let spec = "/spec/template/spec";
    for pointer in [
        "/imagePullSecrets/0/name",
        "/volumes/1/projected/sources/1/secret/name",
        "/volumes/2/secret/secretName",
        "/containers/0/env/1/valueFrom/secretKeyRef/name",
        "/containers/0/envFrom/1/secretRef/name",
    ] {
        assert_eq!(
            text(&rm, "Deployment", "p-web", &format!("{spec}{pointer}")),
            new,
            "{pointer}"
        );
    }
}

#[test]
fn references_to_names_no_resource_had_are_left_alone() {
    let rm = prefixed_generated_config();
    let spec = "/spec/template/spec";
    assert_eq!(
        text(&rm, "Deployment", "p-web", &format!("{spec}/imagePullSecrets/1/name")),
        "other"
    );
    assert_eq!(
        text(
            &rm,
            "Deployment",
            "p-web",
            &format!("{spec}/containers/0/envFrom/2/configMapRef/name")
        ),
        "unknown"
    );
}

const RBAC: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata:
  name: sa
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      serviceAccountName: sa
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: reader
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: role
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: rb
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: reader
subjects:
- kind: ServiceAccount
  name: sa
- kind: ServiceAccount
  name: sa
  namespace: default
- kind: ServiceAccount
  name: sa
  namespace: elsewhere
- kind: User
  name: alice
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: rb2
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: reader
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: crb
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: reader
subjects:
- kind: ServiceAccount
  name: sa
  namespace: default
"#;

/// namePrefix p-, namespace prod.
fn prefixed_rbac() -> ResMap {
    let mut rs = resources(RBAC);
    for r in &mut rs {
        prefix(r, "p-");
        if r.gvk().is_namespaced() {
            r.set_namespace("prod");
        }
    }
    fixed(rs)
}

#[test]
fn service_account_name_in_a_deployment_follows_the_rename() {
    let rm = prefixed_rbac();
    assert_eq!(
        text(&rm, "Deployment", "p-web", "/spec/template/spec/serviceAccountName"),
        "p-sa"
    );
}

#[test]
fn role_binding_subjects_take_the_service_accounts_new_name_and_namespace() {
    let rm = prefixed_rbac();
    let subjects = value(&rm, "RoleBinding", "p-rb", "/subjects");
    let expected: Value = serde_json::json!([
        {"kind": "ServiceAccount", "name": "p-sa", "namespace": "prod"},
        {"kind": "ServiceAccount", "name": "p-sa", "namespace": "prod"},
        {"kind": "ServiceAccount", "name": "sa", "namespace": "elsewhere"},
        {"kind": "User", "name": "alice"},
    ]);
    assert_eq!(subjects, expected);
    let crb = value(&rm, "ClusterRoleBinding", "p-crb", "/subjects/0");
    assert_eq!(
        crb,
        serde_json::json!({"kind": "ServiceAccount", "name": "p-sa", "namespace": "prod"})
    );
}

#[test]
fn role_ref_follows_only_the_kind_it_names() {
    let rm = prefixed_rbac();
    assert_eq!(text(&rm, "RoleBinding", "p-rb", "/roleRef/name"), "p-reader");
    assert_eq!(text(&rm, "ClusterRoleBinding", "p-crb", "/roleRef/name"), "p-reader");
    // Only a ClusterRole was called `reader`; a roleRef to a Role of that name stays.
    assert_eq!(text(&rm, "RoleBinding", "p-rb2", "/roleRef/name"), "reader");
}

const NETWORK_AND_STORAGE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: svc
  namespace: web
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ing
  namespace: web
  annotations:
    nginx.ingress.kubernetes.io/auth-secret: tls
spec:
  ingressClassName: nginx
  defaultBackend:
    service:
      name: svc
  tls:
  - secretName: tls
  rules:
  - http:
      paths:
      - path: /
        backend:
          service:
            name: svc
      - path: /x
        backend:
          service:
            name: other
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: web
spec:
  template:
    spec:
      priorityClassName: high
      volumes:
      - name: d
        persistentVolumeClaim:
          claimName: data
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: hpa
  namespace: web
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: app
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: web
spec:
  serviceName: svc
  volumeClaimTemplates:
  - metadata:
      name: x
    spec:
      storageClassName: fast
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: web
spec:
  storageClassName: fast
  volumeName: pv
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv
spec:
  storageClassName: fast
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: high
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: vwh
webhooks:
- name: a
  clientConfig:
    service:
      name: svc
      namespace: web
- name: b
  clientConfig:
    service:
      name: svc
      namespace: other
---
apiVersion: v1
kind: Secret
metadata:
  name: tls
  namespace: web
"#;

/// nameSuffix -s.
fn suffixed_network_and_storage() -> ResMap {
    let mut rs = resources(NETWORK_AND_STORAGE);
    rs.iter_mut().for_each(|r| suffix(r, "-s"));
    fixed(rs)
}

#[test]
fn ingress_backends_tls_and_annotations_follow_renames() {
    let rm = suffixed_network_and_storage();
    assert_eq!(
        text(&rm, "Ingress", "ing-s", "/spec/defaultBackend/service/name"),
        "svc-s"
    );
    assert_eq!(
        text(
            &rm,
            "Ingress",
            "ing-s",
            "/spec/rules/0/http/paths/0/backend/service/name"
        ),
        "svc-s"
    );
    assert_eq!(
        text(
            &rm,
            "Ingress",
            "ing-s",
            "/spec/rules/0/http/paths/1/backend/service/name"
        ),
        "other"
    );
    assert_eq!(text(&rm, "Ingress", "ing-s", "/spec/tls/0/secretName"), "tls-s");
    assert_eq!(
        text(
            &rm,
            "Ingress",
            "ing-s",
            "/metadata/annotations/nginx.ingress.kubernetes.io~1auth-secret"
        ),
        "tls-s"
    );
}

#[test]
fn ingress_class_name_is_left_alone_as_kustomize_does() {
    let rm = suffixed_network_and_storage();
    assert_eq!(text(&rm, "Ingress", "ing-s", "/spec/ingressClassName"), "nginx");
}

#[test]
fn hpa_scale_target_follows_the_deployment() {
    let rm = suffixed_network_and_storage();
    assert_eq!(
        text(&rm, "HorizontalPodAutoscaler", "hpa-s", "/spec/scaleTargetRef/name"),
        "app-s"
    );
}

#[test]
fn stateful_set_service_name_and_claim_template_storage_class_follow_renames() {
    let rm = suffixed_network_and_storage();
    assert_eq!(text(&rm, "StatefulSet", "db-s", "/spec/serviceName"), "svc-s");
    assert_eq!(
        text(
            &rm,
            "StatefulSet",
            "db-s",
            "/spec/volumeClaimTemplates/0/spec/storageClassName"
        ),
        "fast-s"
    );
}

#[test]
fn volumes_claims_and_cluster_scoped_classes_follow_renames() {
    let rm = suffixed_network_and_storage();
    let volumes = "/spec/template/spec/volumes/0/persistentVolumeClaim/claimName";
    assert_eq!(text(&rm, "Deployment", "app-s", volumes), "data-s");
    assert_eq!(
        text(&rm, "Deployment", "app-s", "/spec/template/spec/priorityClassName"),
        "high-s"
    );
    assert_eq!(text(&rm, "PersistentVolumeClaim", "data-s", "/spec/volumeName"), "pv-s");
    assert_eq!(
        text(&rm, "PersistentVolumeClaim", "data-s", "/spec/storageClassName"),
        "fast-s"
    );
    assert_eq!(
        text(&rm, "PersistentVolume", "pv-s", "/spec/storageClassName"),
        "fast-s"
    );
}

#[test]
fn webhook_service_follows_only_within_the_namespace_it_names() {
    let rm = suffixed_network_and_storage();
    let a = value(
        &rm,
        "ValidatingWebhookConfiguration",
        "vwh-s",
        "/webhooks/0/clientConfig/service",
    );
    assert_eq!(a, serde_json::json!({"name": "svc-s", "namespace": "web"}));
    let b = value(
        &rm,
        "ValidatingWebhookConfiguration",
        "vwh-s",
        "/webhooks/1/clientConfig/service",
    );
    assert_eq!(b, serde_json::json!({"name": "svc", "namespace": "other"}));
}

const CONFIG_IN_TWO_NAMESPACES: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  namespace: a
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  namespace: b
---
apiVersion: v1
kind: Pod
metadata:
  name: pa
  namespace: a
spec:
  volumes:
  - name: v
    configMap:
      name: cfg
---
apiVersion: v1
kind: Pod
metadata:
  name: pb
  namespace: b
spec:
  volumes:
  - name: v
    configMap:
      name: cfg
---
apiVersion: v1
kind: Pod
metadata:
  name: pc
  namespace: c
spec:
  volumes:
  - name: v
    configMap:
      name: cfg
"#;

const CLUSTER_ROLE_NAMING_CFG: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: cr
rules:
- resourceNames: [cfg]
"#;

/// namePrefix p- over two generated ConfigMaps `cfg`, in namespaces a and b.
fn two_namespaces(extra: &str) -> Vec<Resource> {
    let mut rs = resources(&format!("{CONFIG_IN_TWO_NAMESPACES}---\n{extra}"));
    rs.iter_mut().for_each(|r| prefix(r, "p-"));
    hash(&mut rs[0], "hmg6f82fh6");
    hash(&mut rs[1], "d5gm26dhhd");
    rs
}

#[test]
fn same_name_in_two_namespaces_resolves_to_the_referrers_namespace() {
    let rm = fixed(two_namespaces(""));
    let volume = "/spec/volumes/0/configMap/name";
    assert_eq!(text(&rm, "Pod", "p-pa", volume), "p-cfg-hmg6f82fh6");
    assert_eq!(text(&rm, "Pod", "p-pb", volume), "p-cfg-d5gm26dhhd");
    assert_eq!(text(&rm, "Pod", "p-pc", volume), "cfg");
}

#[test]
fn cluster_scoped_referrer_seeing_two_different_targets_fails_naming_both() {
    let message = failure(two_namespaces(CLUSTER_ROLE_NAMING_CFG));
    let first = message.lines().next().unwrap();
    assert_eq!(
        first,
        "updating name reference in 'rules/resourceNames' field of \
             'ClusterRole.v1.rbac.authorization.k8s.io/p-cr.[noNs]': considering field \
             'rules/resourceNames' of object ClusterRole.v1.rbac.authorization.k8s.io/p-cr.[noNs]: \
             visit traversal on path: [resourceNames]: found multiple possible referrals: \
             ConfigMap.v1.[noGrp]/p-cfg-hmg6f82fh6.a, ConfigMap.v1.[noGrp]/p-cfg-d5gm26dhhd.b"
    );
    assert!(message.contains("--- possible referral 1:"), "{message}");
}

#[test]
fn several_targets_with_the_same_new_name_are_not_ambiguous() {
    let mut rs = two_namespaces(CLUSTER_ROLE_NAMING_CFG);
    // Same content in both namespaces gives the same hash.
    rs[1].obj = rs[0].obj.clone();
    rs[1].set_namespace("b");
    let rm = fixed(rs);
    assert_eq!(
        text(&rm, "ClusterRole", "p-cr", "/rules/0/resourceNames/0"),
        "p-cfg-hmg6f82fh6"
    );
}

const BASE: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
---
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  volumes:
  - name: v
    configMap:
      name: cfg
"#;

const TOP_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: top
spec:
  volumes:
  - name: v
    configMap:
      name: cfg
"#;

/// A base built with `namePrefix`, its own references already fixed.
fn base(p: &str) -> Vec<Resource> {
    let mut rs = resources(BASE);
    rs.iter_mut().for_each(|r| prefix(r, p));
    fixed(rs).into_iter().collect()
}

#[test]
fn overlay_prefix_keeps_each_base_pointing_at_its_own_config() {
    let mut rs = base("b1-");
    rs.extend(base("b2-"));
    rs.iter_mut().for_each(|r| prefix(r, "o-"));
    let rm = fixed(rs);
    let volume = "/spec/volumes/0/configMap/name";
    assert_eq!(text(&rm, "Pod", "o-b1-web", volume), "o-b1-cfg");
    assert_eq!(text(&rm, "Pod", "o-b2-web", volume), "o-b2-cfg");
}

#[test]
fn overlay_reference_matching_configs_of_two_prefixed_bases_is_ambiguous() {
    let mut rs = base("b1-");
    rs.extend(base("b2-"));
    rs.extend(resources(TOP_POD));
    rs.iter_mut().for_each(|r| prefix(r, "o-"));
    let message = failure(rs);
    assert!(
        message.lines().next().unwrap().ends_with(
            "visit traversal on path: [configMap name]: found multiple possible referrals: \
                 ConfigMap.v1.[noGrp]/o-b1-cfg.[noNs], ConfigMap.v1.[noGrp]/o-b2-cfg.[noNs]"
        ),
        "{message}"
    );
}

#[test]
fn unprefixed_reference_prefers_the_unprefixed_config_over_a_prefixed_base() {
    let mut rs = base("b1-");
    let mut generated = resources("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n");
    hash(&mut generated[0], "4h2mbtbbt6");
    rs.extend(generated);
    rs.extend(resources(TOP_POD));
    let rm = fixed(rs);
    let volume = "/spec/volumes/0/configMap/name";
    assert_eq!(text(&rm, "Pod", "top", volume), "cfg-4h2mbtbbt6");
    assert_eq!(text(&rm, "Pod", "b1-web", volume), "b1-cfg");
}

const ACCOUNTS_ACROSS_NAMESPACES: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata:
  name: sa
  namespace: b
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: sa
  namespace: c
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: rb
  namespace: a
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: r
subjects:
- kind: ServiceAccount
  name: sa
  namespace: b
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: rb2
  namespace: a
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: r
subjects:
- kind: ServiceAccount
  name: sa
"#;

const CLUSTER_BINDING_WITHOUT_NAMESPACE: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: crb
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: r
subjects:
- kind: ServiceAccount
  name: sa
"#;

#[test]
fn role_binding_reaches_a_service_account_in_the_namespace_its_subject_names() {
    let mut rs = resources(ACCOUNTS_ACROSS_NAMESPACES);
    rs.iter_mut().for_each(|r| suffix(r, "-x"));
    let rm = fixed(rs);
    let rb = value(&rm, "RoleBinding", "rb-x", "/subjects/0");
    assert_eq!(
        rb,
        serde_json::json!({"kind": "ServiceAccount", "name": "sa-x", "namespace": "b"})
    );
    // No namespace on the subject: only the binding's own namespace is searched.
    let rb2 = value(&rm, "RoleBinding", "rb2-x", "/subjects/0");
    assert_eq!(rb2, serde_json::json!({"kind": "ServiceAccount", "name": "sa"}));
}

#[test]
fn cluster_binding_subject_without_namespace_matching_two_accounts_fails() {
    let mut rs = resources(&format!(
        "{ACCOUNTS_ACROSS_NAMESPACES}---\n{CLUSTER_BINDING_WITHOUT_NAMESPACE}"
    ));
    rs.iter_mut().for_each(|r| suffix(r, "-x"));
    let message = failure(rs);
    assert_eq!(
        message.lines().next().unwrap(),
        "updating name reference in 'subjects' field of \
             'ClusterRoleBinding.v1.rbac.authorization.k8s.io/crb-x.[noNs]': considering field \
             'subjects' of object ClusterRoleBinding.v1.rbac.authorization.k8s.io/crb-x.[noNs]: \
             found multiple possible referrals: ServiceAccount.v1.[noGrp]/sa-x.b, \
             ServiceAccount.v1.[noGrp]/sa-x.c"
    );
}

#[test]
fn subject_without_name_is_a_configuration_error() {
    let mut rs = resources(&CLUSTER_BINDING_WITHOUT_NAMESPACE.replace("  name: sa\n", ""));
    suffix(&mut rs[0], "-x");
    let message = failure(rs);
    assert!(
        message.ends_with("path config error; no 'name' field in node"),
        "{message}"
    );
}

#[test]
fn paths_split_on_unescaped_slashes_only() {
    assert_eq!(
        split_path(r"metadata/annotations/nginx.ingress.kubernetes.io\/auth-secret"),
        ["metadata", "annotations", "nginx.ingress.kubernetes.io/auth-secret"]
    );
    assert_eq!(split_path("/spec/serviceName"), ["spec", "serviceName"]);
}

#[test]
fn name_context_compares_the_ends_of_prefix_lists() {
    let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(same_ending(&list(&["b1-", "o-"]), &list(&["o-"])));
    assert!(!same_ending(&list(&["b1-", "o-"]), &list(&["b1-"])));
    assert!(same_ending(&list(&[]), &list(&[])));
    assert!(!same_ending(&list(&[]), &list(&["o-"])));
}

#[test]
fn default_table_lists_every_referring_field_of_kustomize() {
    let table = default_name_references();
    let count = |kind: &str| -> usize {
        table
            .iter()
            .filter(|b| b.gvk.kind == kind)
            .map(|b| b.field_specs.len())
            .sum()
    };
    let counts: Vec<(&str, usize)> = [
        "Deployment",
        "ReplicationController",
        "ReplicaSet",
        "StatefulSet",
        "ConfigMap",
        "Secret",
        "Service",
        "Role",
        "ClusterRole",
        "ServiceAccount",
        "PersistentVolumeClaim",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "ValidatingAdmissionPolicy",
    ]
    .into_iter()
    .map(|k| (k, count(k)))
    .collect();
    assert_eq!(
        counts,
        [
            ("Deployment", 1),
            ("ReplicationController", 1),
            ("ReplicaSet", 1),
            ("StatefulSet", 1),
            ("ConfigMap", 52),
            ("Secret", 70),
            ("Service", 8),
            ("Role", 1),
            ("ClusterRole", 2),
            ("ServiceAccount", 9),
            ("PersistentVolumeClaim", 7),
            ("PersistentVolume", 2),
            ("StorageClass", 3),
            ("PriorityClass", 7),
            ("IngressClass", 1),
            ("ValidatingAdmissionPolicy", 1),
        ]
    );
    assert_eq!(table.len(), 16);
}
