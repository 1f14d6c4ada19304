//! Tests of [`super`]: transformers.rs holds the logic, this file what pins it.

//! Expected outputs were produced by `kubectl kustomize` (kustomize v5.5.0) on the same
//! inputs, and are compared as data, in input order.

use super::images::split_image;
use super::*;
use crate::resource::ResId;

fn resources(yaml: &str) -> ResMap {
    let docs = crate::yaml::parse_documents(yaml, &crate::Limits::default()).unwrap();
    let mut rm = ResMap::new();
    for doc in docs {
        let Value::Object(obj) = doc else { panic!("not a map") };
        rm.append(Resource::from_object(obj).unwrap()).unwrap();
    }
    rm
}

#[track_caller]
fn assert_output(rm: &ResMap, expected: &str) {
    let expected = crate::yaml::parse_documents(expected, &crate::Limits::default()).unwrap();
    let actual = rm.to_values();
    for (a, e) in actual.iter().zip(&expected) {
        assert_eq!(
            a,
            e,
            "\nactual:\n{}\nexpected:\n{}",
            serde_json::to_string_pretty(a).unwrap(),
            serde_json::to_string_pretty(e).unwrap()
        );
    }
    assert_eq!(actual.len(), expected.len());
}

// What the pipeline builds from a kustomization's fields.
impl NamespaceTransformer {
    /// The transformer for a kustomization's `namespace` field.
    fn for_kustomization(namespace: &str, config: &TransformerConfig) -> Self {
        Self {
            metadata: NamespaceMeta {
                namespace: namespace.to_owned(),
            },
            field_specs: config.namespace.clone(),
            unset_only: false,
            set_role_binding_subjects: String::new(),
        }
    }
}

impl PrefixSuffixTransformer {
    /// The transformer for a kustomization's `namePrefix`.
    fn for_prefix(prefix: &str, config: &TransformerConfig) -> Self {
        Self {
            prefix: prefix.to_owned(),
            suffix: String::new(),
            field_specs: config.name_prefix.clone(),
        }
    }
}

impl PrefixSuffixTransformer {
    /// The transformer for a kustomization's `nameSuffix`.
    fn for_suffix(suffix: &str, config: &TransformerConfig) -> Self {
        Self {
            prefix: String::new(),
            suffix: suffix.to_owned(),
            field_specs: config.name_suffix.clone(),
        }
    }
}

impl LabelTransformer {
    /// The transformer for a kustomization's `commonLabels`: selectors, templates and metadata.
    fn for_common_labels(labels: &BTreeMap<String, String>, config: &TransformerConfig) -> Self {
        Self {
            labels: labels.clone(),
            field_specs: config.common_labels.clone(),
        }
    }
}

impl AnnotationsTransformer {
    /// The transformer for a kustomization's `commonAnnotations`.
    fn for_common_annotations(annotations: &BTreeMap<String, String>, config: &TransformerConfig) -> Self {
        Self {
            annotations: annotations.clone(),
            field_specs: config.common_annotations.clone(),
        }
    }
}

impl ImageTagTransformer {
    /// The transformer for one entry of a kustomization's `images`.
    fn for_image(image: &Image, config: &TransformerConfig) -> Self {
        Self {
            image_tag: image.clone(),
            field_specs: config.images.clone(),
        }
    }
}

impl ReplicaCountTransformer {
    /// The transformer for one entry of a kustomization's `replicas`.
    fn for_replica(replica: &Replica, config: &TransformerConfig) -> Self {
        Self {
            replica: replica.clone(),
            field_specs: config.replicas.clone(),
        }
    }
}

fn config() -> TransformerConfig {
    TransformerConfig::builtin()
}

fn builtin<T: for<'de> Deserialize<'de>>(yaml: &str) -> T {
    let value = crate::yaml::parse_document(yaml, &crate::Limits::default()).unwrap();
    serde_json::from_value(value).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn id(kind: &str, name: &str, namespace: &str) -> ResId {
    let gvk = match kind {
        "Namespace" | "ConfigMap" => Gvk::new("", "v1", kind),
        _ => Gvk::new("apps", "v1", kind),
    };
    ResId {
        gvk,
        name: name.to_owned(),
        namespace: namespace.to_owned(),
    }
}

const NAMESPACE_INPUT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: elsewhere}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: cr, namespace: foo}
---
apiVersion: v1
kind: Namespace
metadata: {name: oldns}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rb}
subjects:
- {kind: ServiceAccount, name: default, namespace: old}
- {kind: ServiceAccount, name: sa, namespace: old}
- {kind: User, name: default}
- {kind: ServiceAccount, name: nons}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: crb}
subjects:
- {kind: ServiceAccount, name: default}
- {kind: ServiceAccount, name: sa, namespace: default}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1.foo.io}
spec: {group: foo.io}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: foos.foo.io}
spec:
  conversion:
    strategy: Webhook
    webhook: {clientConfig: {service: {name: conv, namespace: x}}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: vwc}
webhooks:
- name: a.b.c
  clientConfig: {service: {name: svc, namespace: x}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm, namespace: null}
data: {a: null}
"#;

fn namespaced(rm: &mut ResMap) {
    NamespaceTransformer::for_kustomization("prod", &config())
        .transform(rm)
        .unwrap();
}

#[test]
fn namespace_moves_namespaced_objects_and_leaves_cluster_scoped_ones_alone() {
    let mut rm = resources(NAMESPACE_INPUT);
    namespaced(&mut rm);
    let namespaces: Vec<(&str, &str)> = rm.iter().map(|r| (r.kind(), r.namespace())).collect();
    assert_eq!(
        namespaces,
        [
            ("Deployment", "prod"),
            ("Service", "prod"),
            ("ClusterRole", "foo"),
            ("Namespace", ""),
            ("RoleBinding", "prod"),
            ("ClusterRoleBinding", ""),
            ("APIService", ""),
            ("CustomResourceDefinition", ""),
            ("ValidatingWebhookConfiguration", ""),
            ("ConfigMap", "prod"),
        ]
    );
    assert_eq!(rm.resources()[1].previous, [id_of("Service", "other", "elsewhere")]);
}

fn id_of(kind: &str, name: &str, namespace: &str) -> ResId {
    ResId {
        gvk: Gvk::new("", "v1", kind),
        name: name.to_owned(),
        namespace: namespace.to_owned(),
    }
}

#[test]
fn namespace_renames_v1_namespace_objects_through_set_name() {
    let mut rm = resources(NAMESPACE_INPUT);
    namespaced(&mut rm);
    let ns = &rm.resources()[3];
    assert_eq!(ns.name(), "prod");
    assert_eq!(ns.previous, [id("Namespace", "oldns", "")]);
}

#[test]
fn namespace_sets_role_binding_subjects_named_default_only() {
    let mut rm = resources(NAMESPACE_INPUT);
    namespaced(&mut rm);
    assert_output(
        &ResMap::from_iter(rm.resources()[4..6].iter().cloned()),
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rb, namespace: prod}
subjects:
- {kind: ServiceAccount, name: default, namespace: prod}
- {kind: ServiceAccount, name: sa, namespace: old}
- {kind: User, name: default, namespace: prod}
- {kind: ServiceAccount, name: nons}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: crb}
subjects:
- {kind: ServiceAccount, name: default, namespace: prod}
- {kind: ServiceAccount, name: sa, namespace: default}
"#,
    );
}

#[test]
fn namespace_fills_api_service_and_crd_webhook_but_not_admission_webhooks() {
    let mut rm = resources(NAMESPACE_INPUT);
    namespaced(&mut rm);
    assert_output(
        &ResMap::from_iter(rm.resources()[6..].iter().cloned()),
        r#"
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1.foo.io}
spec: {group: foo.io, service: {namespace: prod}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: foos.foo.io}
spec:
  conversion:
    strategy: Webhook
    webhook: {clientConfig: {service: {name: conv, namespace: prod}}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: vwc}
webhooks:
- name: a.b.c
  clientConfig: {service: {name: svc, namespace: x}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm, namespace: prod}
data: {a: null}
"#,
    );
}

const NAMESPACE_PLUGIN_INPUT: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: keep, namespace: mine}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: fill}
---
apiVersion: v1
kind: Namespace
metadata: {name: oldns}
---
apiVersion: example.com/v1
kind: Thing
metadata: {name: t}
spec: {ref: other}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rb}
subjects:
- {kind: ServiceAccount, name: default, namespace: old}
- {kind: ServiceAccount, name: sa}
- {kind: User, name: default}
- {kind: Group, name: g}
"#;

#[test]
fn namespace_builtin_config_with_unset_only_and_all_service_accounts() {
    let t: NamespaceTransformer = builtin(
        r#"
apiVersion: builtin
kind: NamespaceTransformer
metadata: {name: x, namespace: prod}
unsetOnly: true
setRoleBindingSubjects: allServiceAccounts
fieldSpecs:
- {path: metadata/name, kind: Namespace, create: true}
- {path: spec/targetNamespace, kind: Thing, create: true}
"#,
    );
    let mut rm = resources(NAMESPACE_PLUGIN_INPUT);
    t.transform(&mut rm).unwrap();
    assert_output(
        &rm,
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: keep, namespace: mine}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: fill, namespace: prod}
---
apiVersion: v1
kind: Namespace
metadata: {name: oldns}
---
apiVersion: example.com/v1
kind: Thing
metadata: {name: t, namespace: prod}
spec: {ref: other, targetNamespace: prod}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rb, namespace: prod}
subjects:
- {kind: ServiceAccount, name: default, namespace: old}
- {kind: ServiceAccount, name: sa, namespace: prod}
- {kind: User, name: default}
- {kind: Group, name: g}
"#,
    );
}

#[test]
fn namespace_that_merges_two_objects_is_an_id_conflict() {
    let mut rm = resources(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: a}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: b}\n",
    );
    let err = NamespaceTransformer::for_kustomization("prod", &config())
        .transform(&mut rm)
        .unwrap_err();
    assert!(
        err.message.starts_with("namespace transformation produces ID conflict"),
        "{err}"
    );
}

#[test]
fn namespace_rejects_an_unknown_role_binding_subject_mode() {
    let t: NamespaceTransformer =
        builtin("kind: NamespaceTransformer\nmetadata: {name: x, namespace: prod}\nsetRoleBindingSubjects: bogus\n");
    let err = t.transform(&mut resources(NAMESPACE_PLUGIN_INPUT)).unwrap_err();
    assert_eq!(
        err.message,
        "invalid value \"bogus\" for setRoleBindingSubjects: must be one of \"defaultOnly\", \"none\" or \"allServiceAccounts\""
    );
}

#[test]
fn prefix_and_suffix_skip_crds_api_services_and_namespaces() {
    let mut rm = resources(NAMESPACE_INPUT);
    PrefixSuffixTransformer::for_prefix("p-", &config())
        .transform(&mut rm)
        .unwrap();
    PrefixSuffixTransformer::for_suffix("-s", &config())
        .transform(&mut rm)
        .unwrap();
    let names: Vec<&str> = rm.iter().map(Resource::name).collect();
    assert_eq!(
        names,
        [
            "p-web-s",
            "p-other-s",
            "p-cr-s",
            "oldns",
            "p-rb-s",
            "p-crb-s",
            "v1.foo.io",
            "foos.foo.io",
            "p-vwc-s",
            "p-cm-s"
        ]
    );
    let web = &rm.resources()[0];
    assert_eq!(web.prefixes, ["p-"]);
    assert_eq!(web.suffixes, ["-s"]);
    let previous: Vec<&str> = web.previous.iter().map(|id| id.name.as_str()).collect();
    assert_eq!(previous, ["web", "p-web"]);
    assert!(rm.resources()[3].prefixes.is_empty());
}

#[test]
fn prefix_suffix_builtin_config_renames_extra_fields_of_selected_kinds() {
    let t: PrefixSuffixTransformer = builtin(
        r#"
apiVersion: builtin
kind: PrefixSuffixTransformer
metadata: {name: y}
prefix: a-
suffix: -z
fieldSpecs:
- path: metadata/name
- {path: spec/ref, kind: Thing}
"#,
    );
    let mut rm = resources(NAMESPACE_PLUGIN_INPUT);
    t.transform(&mut rm).unwrap();
    let names: Vec<&str> = rm.iter().map(Resource::name).collect();
    assert_eq!(names, ["a-keep-z", "a-fill-z", "oldns", "a-t-z", "a-rb-z"]);
    assert_eq!(rm.resources()[3].obj["spec"]["ref"], "a-other-z");
}

const LABEL_INPUT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {x: "y"}}
            topologyKey: k
          - topologyKey: k2
      containers:
      - {name: c, image: nginx}
---
apiVersion: v1
kind: Service
metadata: {name: svc}
---
apiVersion: batch/v1
kind: Job
metadata: {name: job}
spec:
  template:
    spec: {containers: []}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: cj}
spec:
  jobTemplate:
    spec:
      selector: {matchLabels: {a: b}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ss}
spec:
  volumeClaimTemplates:
  - metadata: {name: data}
  - spec: {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec:
  podSelector: {}
  ingress:
  - from:
    - podSelector: {matchLabels: {a: b}}
    - namespaceSelector: {}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pdb}
spec:
  selector: {matchLabels: {}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm, labels: null}
"#;

#[test]
fn common_labels_reach_selectors_templates_and_existing_affinity_terms() {
    let mut rm = resources(LABEL_INPUT);
    LabelTransformer::for_common_labels(&labels(&[("app", "web"), ("num", "1")]), &config())
        .transform(&mut rm)
        .unwrap();
    assert_output(
        &rm,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {labels: {app: web, num: "1"}, name: web}
spec:
  selector: {matchLabels: {app: web, num: "1"}}
  template:
    metadata: {labels: {app: web, num: "1"}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: web, num: "1", x: "y"}}
            topologyKey: k
          - topologyKey: k2
      containers:
      - {image: nginx, name: c}
---
apiVersion: v1
kind: Service
metadata: {labels: {app: web, num: "1"}, name: svc}
spec:
  selector: {app: web, num: "1"}
---
apiVersion: batch/v1
kind: Job
metadata: {labels: {app: web, num: "1"}, name: job}
spec:
  template:
    metadata: {labels: {app: web, num: "1"}}
    spec: {containers: []}
---
apiVersion: batch/v1
kind: CronJob
metadata: {labels: {app: web, num: "1"}, name: cj}
spec:
  jobTemplate:
    metadata: {labels: {app: web, num: "1"}}
    spec:
      selector: {matchLabels: {a: b, app: web, num: "1"}}
      template:
        metadata: {labels: {app: web, num: "1"}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {labels: {app: web, num: "1"}, name: ss}
spec:
  selector: {matchLabels: {app: web, num: "1"}}
  template:
    metadata: {labels: {app: web, num: "1"}}
  volumeClaimTemplates:
  - metadata: {labels: {app: web, num: "1"}, name: data}
  - metadata: {labels: {app: web, num: "1"}}
    spec: {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {labels: {app: web, num: "1"}, name: np}
spec:
  ingress:
  - from:
    - podSelector: {matchLabels: {a: b, app: web, num: "1"}}
    - namespaceSelector: {}
  podSelector: {}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {labels: {app: web, num: "1"}, name: pdb}
spec:
  selector: {matchLabels: {app: web, num: "1"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {labels: {app: web, num: "1"}, name: cm}
"#,
    );
}

fn label_entry(yaml: &str) -> LabelTransformer {
    let label: Label = builtin(yaml);
    LabelTransformer::for_label_entry(&label, &config()).unwrap()
}

#[test]
fn labels_entries_choose_metadata_templates_selectors_or_their_own_fields() {
    let mut rm = resources(LABEL_INPUT);
    for entry in [
        "pairs: {plain: a}",
        "pairs: {tmpl: b}\nincludeTemplates: true",
        "pairs: {sel: c}\nincludeSelectors: true\nincludeTemplates: false",
        "pairs: {custom: d}\nfields:\n- {path: spec/podSelector/matchLabels, kind: NetworkPolicy, create: true}\n\
             - {path: spec/foo, kind: Service, create: true}",
    ] {
        label_entry(entry).transform(&mut rm).unwrap();
    }
    let all = "{custom: d, plain: a, sel: c, tmpl: b}";
    let expected = format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{labels: {all}, name: web}}
spec:
  selector: {{matchLabels: {{sel: c}}}}
  template:
    metadata: {{labels: {{sel: c, tmpl: b}}}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {{matchLabels: {{sel: c, x: "y"}}}}
            topologyKey: k
          - topologyKey: k2
      containers:
      - {{image: nginx, name: c}}
---
apiVersion: v1
kind: Service
metadata: {{labels: {all}, name: svc}}
spec:
  foo: {{custom: d}}
  selector: {{sel: c}}
"#
    );
    assert_output(&ResMap::from_iter(rm.resources()[..2].iter().cloned()), &expected);
    let np = &rm.resources()[5].obj;
    assert_eq!(
        np["spec"]["podSelector"],
        serde_json::json!({"matchLabels": {"custom": "d"}})
    );
    let ss = &rm.resources()[4].obj;
    assert_eq!(
        ss["spec"]["volumeClaimTemplates"][1]["metadata"]["labels"],
        serde_json::json!({"sel": "c", "tmpl": "b"})
    );
}

#[test]
fn labels_entry_with_a_kind_specific_metadata_field_labels_only_that_kind() {
    // kustomize's merge treats the entry's `metadata/labels` for Foo as covering the
    // default metadata spec, so the ConfigMap stays unlabelled.
    let mut rm = resources(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n---\n\
             apiVersion: example.com/v1\nkind: Foo\nmetadata: {name: f}\n",
    );
    label_entry("pairs: {team: a}\nfields:\n- {path: metadata/labels, kind: Foo, create: true}")
        .transform(&mut rm)
        .unwrap();
    assert_output(
        &rm,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n---\n\
             apiVersion: example.com/v1\nkind: Foo\nmetadata: {labels: {team: a}, name: f}\n",
    );
}

#[test]
fn labels_entry_whose_field_conflicts_with_the_metadata_default_is_an_error() {
    let label: Label = builtin("pairs: {team: a}\nfields:\n- {path: metadata/labels, create: false}");
    let err = LabelTransformer::for_label_entry(&label, &config()).unwrap_err();
    assert_eq!(err.message, "failed to merge labels: conflicting fieldspecs");
}

#[test]
fn label_transformer_config_stringifies_values_and_skips_null_fields() {
    let t: LabelTransformer = builtin(
        r#"
apiVersion: builtin
kind: LabelTransformer
metadata: {name: x}
labels: {a: 1, b: true, "bad key!": v}
fieldSpecs:
- {path: metadata/labels, create: true}
- {path: spec/nul}
- {path: spec/missing/deep}
"#,
    );
    let mut rm =
        resources("apiVersion: v1\nkind: Thing\nmetadata: {name: t}\nspec: {str: hello, list: [x], nul: null}\n");
    t.transform(&mut rm).unwrap();
    assert_output(
        &rm,
        r#"
apiVersion: v1
kind: Thing
metadata:
  labels: {a: "1", b: "true", "bad key!": v}
  name: t
spec: {list: [x], nul: null, str: hello}
"#,
    );
}

#[test]
fn labels_on_a_scalar_field_are_an_error() {
    let t = LabelTransformer {
        labels: labels(&[("a", "b")]),
        field_specs: vec![FieldSpec::new("", "", "", "spec/str", true)],
    };
    let mut rm = resources("apiVersion: v1\nkind: Thing\nmetadata: {name: t}\nspec: {str: hello}\n");
    let err = t.transform(&mut rm).unwrap_err();
    assert_eq!(
        err.message,
        "considering field 'spec/str' of object Thing.v1.[noGrp]/t.[noNs]: wrong node kind: expected MappingNode but got ScalarNode"
    );
}

#[test]
fn common_annotations_reach_pod_and_job_templates() {
    let mut rm = resources(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {replicas: 1}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs, annotations: {}}
spec:
  template: {metadata: {}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: cj}
spec: {}
"#,
    );
    AnnotationsTransformer::for_common_annotations(&labels(&[("note", "hi"), ("num", "2")]), &config())
        .transform(&mut rm)
        .unwrap();
    let anns = r#"{note: hi, num: "2"}"#;
    assert_output(
        &rm,
        &format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{annotations: {anns}, name: web}}
spec:
  replicas: 1
  template: {{metadata: {{annotations: {anns}}}}}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {{annotations: {anns}, name: rs}}
spec:
  template: {{metadata: {{annotations: {anns}}}}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {{annotations: {anns}, name: cj}}
spec:
  jobTemplate:
    metadata: {{annotations: {anns}}}
    spec:
      template: {{metadata: {{annotations: {anns}}}}}
"#
        ),
    );
}

const IMAGE_INPUT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers:
      - {name: i, image: "busybox:1.36"}
      containers:
      - {name: a, image: nginx}
      - {name: b, image: "nginx:1.1@sha256:000"}
      - {name: c, image: "localhost:5000/app:3"}
      - {name: d, image: "redis:7"}
      - {name: e, image: "my.reg/x@sha256:111"}
      - {name: f, image: docker.io/nginx}
      - {name: g, image: nginxy}
      - {name: h, image: myXreg/x}
      - {name: i, image: redis}
---
apiVersion: v1
kind: Pod
metadata: {name: pod}
spec:
  containers:
  - {name: a, image: "postgres:15"}
  ephemeralContainers:
  - {name: x, image: nginx}
---
apiVersion: example.com/v1
kind: Thing
metadata: {name: thing}
spec:
  deep:
    nest:
      containers:
      - {image: nginx}
      initContainers:
      - {image: postgres}
    image: nginx
  image: nginx
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.example.com}
spec:
  x:
    containers:
    - {image: nginx}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds}
spec:
  template:
    spec:
      initContainers: null
      containers:
      - {name: a, image: nginx}
"#;

#[test]
fn images_rewrite_names_tags_and_digests_like_kustomize() {
    let mut rm = resources(IMAGE_INPUT);
    for image in [
        "{name: nginx, newTag: '1.25'}",
        "{name: 'localhost:5000/app', newName: registry.io/app2}",
        "{name: busybox, digest: 'sha256:abc'}",
        "{name: redis, tagSuffix: -alpine}",
        "{name: my.reg/x, newName: other/x, newTag: v2, digest: 'sha256:def'}",
        "{name: postgres, newTag: 16}",
    ] {
        let image: Image = builtin(image);
        ImageTagTransformer::for_image(&image, &config())
            .transform(&mut rm)
            .unwrap();
    }
    assert_output(
        &rm,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - {image: "nginx:1.25", name: a}
      - {image: "nginx:1.25", name: b}
      - {image: "registry.io/app2:3", name: c}
      - {image: "redis:7-alpine-alpine", name: d}
      - {image: "other/x:v2@sha256:def", name: e}
      - {image: docker.io/nginx, name: f}
      - {image: nginxy, name: g}
      - {image: "other/x:v2@sha256:def", name: h}
      - {image: "redis:-alpine-alpine", name: i}
      initContainers:
      - {image: "busybox@sha256:abc", name: i}
---
apiVersion: v1
kind: Pod
metadata: {name: pod}
spec:
  containers:
  - {image: "postgres:16", name: a}
  ephemeralContainers:
  - {image: nginx, name: x}
---
apiVersion: example.com/v1
kind: Thing
metadata: {name: thing}
spec:
  deep:
    image: nginx
    nest:
      containers:
      - {image: "nginx:1.25"}
      initContainers:
      - {image: "postgres:16"}
  image: nginx
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.example.com}
spec:
  x:
    containers:
    - {image: nginx}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds}
spec:
  template:
    spec:
      containers:
      - {image: "nginx:1.25", name: a}
      initContainers: []
"#,
    );
}

#[test]
fn image_references_split_at_the_port_tag_and_digest() {
    assert_eq!(split_image("nginx"), ("nginx", String::new(), String::new()));
    assert_eq!(
        split_image("localhost:5000/app:3"),
        ("localhost:5000/app", "3".to_owned(), String::new())
    );
    assert_eq!(
        split_image("nginx@sha256:abc"),
        ("nginx", String::new(), "sha256:abc".to_owned())
    );
    assert_eq!(
        split_image("a/b:1@sha256:abc"),
        ("a/b", "1".to_owned(), "sha256:abc".to_owned())
    );
}

#[test]
fn image_tag_transformer_config_reads_image_tag() {
    let t: ImageTagTransformer = builtin(
        r#"
apiVersion: builtin
kind: ImageTagTransformer
metadata: {name: x}
imageTag: {name: nginx, newName: my/nginx, newTag: v1}
fieldSpecs:
- {path: spec/image, kind: Thing}
"#,
    );
    let mut rm = resources(IMAGE_INPUT);
    t.transform(&mut rm).unwrap();
    let thing = &rm.resources()[2].obj["spec"];
    assert_eq!(thing["image"], "my/nginx:v1");
    assert_eq!(thing["deep"]["image"], "nginx");
    assert_eq!(thing["deep"]["nest"]["containers"][0]["image"], "my/nginx:v1");
}

const REPLICA_INPUT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {replicas: 1}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ss}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: web}
spec: {}
"#;

#[test]
fn replicas_match_current_and_previous_names_of_workload_kinds() {
    let mut rm = resources(REPLICA_INPUT);
    PrefixSuffixTransformer::for_prefix("p-", &config())
        .transform(&mut rm)
        .unwrap();
    for (name, count) in [("web", 3), ("p-ss", 2), ("rs", 0)] {
        let replica = Replica {
            name: name.to_owned(),
            count,
        };
        ReplicaCountTransformer::for_replica(&replica, &config())
            .transform(&mut rm)
            .unwrap();
    }
    assert_output(
        &rm,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: p-web}
spec: {replicas: 3}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: p-ss}
spec: {replicas: 2}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: p-rs}
spec: {replicas: 0}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: p-web}
spec: {}
"#,
    );
}

#[test]
fn replica_matching_nothing_names_the_kinds_it_tried() {
    let replica = Replica {
        name: "rsx".to_owned(),
        count: 1,
    };
    let err = ReplicaCountTransformer::for_replica(&replica, &config())
        .transform(&mut resources(REPLICA_INPUT))
        .unwrap_err();
    assert_eq!(
        err.message,
        "resource with name rsx does not match a config with the following GVK \
             [Deployment.[noVer].[noGrp] StatefulSet.[noVer].[noGrp] ReplicaSet.[noVer].[noGrp] ReplicationController.[noVer].[noGrp]]"
    );
}

#[test]
fn replica_count_transformer_config_reads_replica() {
    let t: ReplicaCountTransformer = builtin(
        r#"
apiVersion: builtin
kind: ReplicaCountTransformer
metadata: {name: x}
replica: {name: web, count: 5}
fieldSpecs:
- {path: spec/size, kind: CronJob, create: true}
"#,
    );
    let mut rm = resources(REPLICA_INPUT);
    t.transform(&mut rm).unwrap();
    assert_eq!(rm.resources()[3].obj["spec"], serde_json::json!({"size": 5}));
    assert_eq!(rm.resources()[0].obj["spec"], serde_json::json!({"replicas": 1}));
}
