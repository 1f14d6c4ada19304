//! Expectations confirmed with `kubectl kustomize` (kustomize v5.5.0) on the same inputs.

use serde_json::{Value, json};

use super::*;
use crate::Limits;

const RESOURCES: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm
  namespace: ns1
  labels:
    app: web
  annotations:
    a.b/c: anno
data:
  host: db.example.com:5432
  port: "8080"
  num: "7"
  list: a,b,c
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    tier: front
spec:
  replicas: 3
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: nginx:1.0
        args: ["--port", "80"]
        env:
        - name: HOST
          value: x
        - name: PORT
          value: "1"
      - name: myapp-sidecar
        image: busybox:1.2
      - name: sidecar
        image: envoy:3
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: other
  labels:
    tier: back
spec:
  replicas: 1
  template:
    spec:
      containers:
      - name: app
        image: redis:6
"#;

fn resources(text: &str) -> ResMap {
    crate::yaml::parse_documents(text, &Limits::default())
        .unwrap()
        .into_iter()
        .map(|v| match v {
            Value::Object(obj) => Resource::from_object(obj).unwrap(),
            other => panic!("not an object: {other}"),
        })
        .collect()
}

/// Runs a kustomization's `replacements:` (given as YAML) over `rm`, with `files` next to it.
fn run_on(rm: &mut ResMap, replacements: &str, files: &[(&str, &str)]) -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let ldr = Loader::new(dir.path(), dir.path(), &Limits::default()).unwrap();
    let value = crate::yaml::parse_document(replacements, &Limits::default()).unwrap();
    let transformer: ReplacementTransformer = serde_json::from_value(json!({ "replacements": value })).unwrap();
    transformer.transform(rm, &ldr)
}

fn run(replacements: &str) -> Result<ResMap> {
    let mut rm = resources(RESOURCES);
    run_on(&mut rm, replacements, &[]).map(|()| rm)
}

fn error(replacements: &str) -> String {
    run(replacements).unwrap_err().message
}

fn field(rm: &ResMap, kind: &str, name: &str, path: &str) -> Value {
    let r = rm
        .iter()
        .find(|r| r.kind() == kind && r.name() == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"));
    fieldpath::lookup(&Value::Object(r.obj.clone()), &fieldpath::split(path))
        .unwrap()
        .unwrap_or_else(|| panic!("no {path} in {kind} {name}"))
        .clone()
}

#[test]
fn list_entry_paths_match_names_by_unanchored_regex() {
    let rm = run(r#"
- source: {kind: ConfigMap, name: cm, fieldPath: data.host}
  targets:
  - select: {kind: Deployment}
    fieldPaths:
    - spec.template.spec.containers.[name=app].image
"#)
    .unwrap();
    let web = "spec.template.spec.containers";
    assert_eq!(
        field(&rm, "Deployment", "web", &format!("{web}.0.image")),
        "db.example.com:5432"
    );
    assert_eq!(
        field(&rm, "Deployment", "web", &format!("{web}.1.image")),
        "db.example.com:5432"
    );
    assert_eq!(field(&rm, "Deployment", "web", &format!("{web}.2.image")), "envoy:3");
    assert_eq!(
        field(&rm, "Deployment", "other", &format!("{web}.0.image")),
        "db.example.com:5432"
    );
}

#[test]
fn delimiter_picks_a_source_part_and_replaces_prepends_or_appends_a_target_part() {
    let rm = run(r#"
- source: {kind: ConfigMap, name: cm, fieldPath: data.host, options: {delimiter: ':', index: 0}}
  targets:
  - select: {kind: Deployment, name: web}
    fieldPaths: [spec.template.spec.containers.0.image]
    options: {delimiter: ':', index: 1}
  - select: {kind: Deployment, name: other}
    fieldPaths: [spec.template.spec.containers.0.image]
    options: {delimiter: ':', index: -1}
  - select: {kind: ConfigMap}
    fieldPaths: [data.list]
    options: {delimiter: ',', index: 5}
"#)
    .unwrap();
    let image = "spec.template.spec.containers.0.image";
    assert_eq!(field(&rm, "Deployment", "web", image), "nginx:db.example.com");
    assert_eq!(field(&rm, "Deployment", "other", image), "db.example.com:redis:6");
    assert_eq!(field(&rm, "ConfigMap", "cm", "data.list"), "a,b,c,db.example.com");

    let rm = run(r#"
- source: {kind: Deployment, name: web}
  targets:
  - select: {kind: ConfigMap}
    fieldPaths: [data.list]
    options: {delimiter: ',', index: -3}
  - select: {kind: ConfigMap}
    fieldPaths: [data.host]
    options: {delimiter: ':', index: 1}
"#)
    .unwrap();
    assert_eq!(field(&rm, "ConfigMap", "cm", "data.list"), "web,a,b,c");
    assert_eq!(field(&rm, "ConfigMap", "cm", "data.host"), "db.example.com:web");
}

#[test]
fn scalar_targets_keep_their_type() {
    let rm = run(r#"
- source: {kind: ConfigMap, name: cm, fieldPath: data.num}
  targets:
  - select: {kind: Deployment}
    fieldPaths: [spec.replicas]
- source: {kind: Deployment, name: web, fieldPath: spec.replicas}
  targets:
  - select: {kind: ConfigMap}
    fieldPaths: [data.port]
"#)
    .unwrap();
    assert_eq!(field(&rm, "Deployment", "web", "spec.replicas"), json!(7));
    assert_eq!(field(&rm, "Deployment", "other", "spec.replicas"), json!(7));
    assert_eq!(field(&rm, "ConfigMap", "cm", "data.port"), json!("7"));
}

#[test]
fn text_that_does_not_fit_the_target_type_is_an_error() {
    let message = error(
        r#"
- source: {kind: ConfigMap, name: cm, fieldPath: data.host}
  targets:
  - select: {kind: Deployment}
    fieldPaths: [spec.replicas]
"#,
    );
    assert!(
        message.ends_with("cannot decode !!str `db.example.com:5432` as a !!int"),
        "{message}"
    );
    let message = error(
        r#"
- source: {kind: Deployment, name: web, fieldPath: metadata.name}
  targets:
  - select: {kind: Deployment, name: other}
    fieldPaths: [spec.replicas]
    options: {delimiter: '0', index: 1}
"#,
    );
    assert!(message.ends_with("cannot decode !!str `10web` as a !!int"), "{message}");
}

#[test]
fn missing_target_field_without_create_is_an_error() {
    assert_eq!(
        error(
            r#"
- source: {kind: ConfigMap, name: cm, fieldPath: data.host}
  targets:
  - select: {kind: Deployment}
    fieldPaths: [spec.template.spec.serviceAccountName]
"#
        ),
        "unable to find field \"spec.template.spec.serviceAccountName\" in replacement target"
    );
}

#[test]
fn create_adds_fields_list_entries_and_indexed_elements() {
    let rm = run(r#"
- source: {kind: ConfigMap, name: cm, fieldPath: data.host}
  targets:
  - select: {kind: Deployment}
    fieldPaths:
    - spec.template.spec.serviceAccountName
    - metadata.annotations.[x.y/z]
    - spec.template.spec.containers.[name=new].image
    - spec.template.spec.volumes.0.name
    options: {create: true}
"#)
    .unwrap();
    for name in ["web", "other"] {
        let spec = field(&rm, "Deployment", name, "spec.template.spec");
        assert_eq!(spec["serviceAccountName"], "db.example.com:5432");
        assert_eq!(spec["volumes"], json!([{"name": "db.example.com:5432"}]));
        let containers = spec["containers"].as_array().unwrap();
        assert_eq!(
            containers.last().unwrap(),
            &json!({"name": "new", "image": "db.example.com:5432"})
        );
        assert_eq!(
            field(&rm, "Deployment", name, "metadata.annotations"),
            json!({"x.y/z": "db.example.com:5432"})
        );
    }
    assert_eq!(
        field(&rm, "Deployment", "web", "spec.template.spec.containers")
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn create_appends_only_at_the_end_of_a_list() {
    assert_eq!(
        error(
            r#"
- source: {kind: ConfigMap, name: cm, fieldPath: data.host}
  targets:
  - select: {kind: Deployment}
    fieldPaths:
    - spec.template.spec.containers.[name=app].args.2
    options: {create: true}
"#
        ),
        "unable to find or create field \"spec.template.spec.containers.[name=app].args.2\" in \
         replacement target: index 2 specified but only 0 elements found"
    );
}

#[test]
fn created_scalars_take_the_type_their_text_implies() {
    let mut rm = resources(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: t}
data: {s: "8080", w: hello, b: "true", q: "yes"}
spec: {i: 3, bo: false, fl: 2.5, str: abc, nu: null}
"#,
    );
    run_on(
        &mut rm,
        r#"
- source: {kind: ConfigMap, name: t, fieldPath: data.s}
  targets:
  - select: {kind: ConfigMap}
    fieldPaths: [spec.new1, spec.fl]
    options: {create: true}
- source: {kind: ConfigMap, name: t, fieldPath: data.b}
  targets:
  - select: {kind: ConfigMap}
    fieldPaths: [spec.new2, spec.bo]
    options: {create: true}
- source: {kind: ConfigMap, name: t, fieldPath: spec.i}
  targets:
  - select: {kind: ConfigMap}
    fieldPaths: [spec.new3, spec.str]
    options: {create: true}
- source: {kind: ConfigMap, name: t, fieldPath: data.w}
  targets:
  - select: {kind: ConfigMap}
    fieldPaths: [spec.new4]
    options: {create: true}
- source: {kind: ConfigMap, name: t, fieldPath: data.q}
  targets:
  - select: {kind: ConfigMap}
    fieldPaths: [spec.new5]
    options: {create: true}
"#,
        &[],
    )
    .unwrap();
    assert_eq!(
        field(&rm, "ConfigMap", "t", "spec"),
        json!({
            "bo": true, "fl": 8080, "i": 3, "new1": 8080, "new2": true, "new3": 3,
            "new4": "hello", "new5": "yes", "nu": null, "str": "3"
        })
    );
    let message = run_on(
        &mut rm,
        r#"
- source: {kind: ConfigMap, name: t, fieldPath: data.s}
  targets:
  - select: {kind: ConfigMap}
    fieldPaths: [spec.nu]
    options: {create: true}
"#,
        &[],
    )
    .unwrap_err()
    .message;
    assert!(message.ends_with("cannot decode !!int `8080` as a !!null"), "{message}");
}

#[test]
fn select_and_reject_by_id_labels_and_exact_names() {
    let rm = run(r#"
- source:
    kind: ConfigMap
    name: cm
    fieldPath: metadata.annotations.[a.b/c]
  targets:
  - select: {kind: Deployment}
    reject: [{name: web}]
    fieldPaths: [metadata.labels.tier]
  - select: {labelSelector: "tier=front"}
    fieldPaths: [metadata.labels.x]
    options: {create: true}
  - select: {name: "o.*"}
    fieldPaths: [metadata.labels.regex]
    options: {create: true}
  - select: {kind: Deployment}
    reject: [{labelSelector: "tier in (front)"}]
    fieldPaths: [metadata.labels.rej]
    options: {create: true}
"#)
    .unwrap();
    assert_eq!(
        field(&rm, "Deployment", "other", "metadata.labels"),
        json!({"rej": "anno", "tier": "anno"})
    );
    assert_eq!(
        field(&rm, "Deployment", "web", "metadata.labels"),
        json!({"tier": "front", "x": "anno"})
    );
    assert_eq!(field(&rm, "ConfigMap", "cm", "metadata.labels"), json!({"app": "web"}));
}

#[test]
fn source_must_match_exactly_one_resource() {
    assert_eq!(
        error(
            r#"
- source: {kind: Secret, name: cm}
  targets:
  - select: {kind: Deployment}
    fieldPaths: [metadata.labels.tier]
"#
        ),
        "nothing selected by Secret.[noVer].[noGrp]/cm.[noNs]"
    );
    assert_eq!(
        error(
            r#"
- source: {kind: Deployment, fieldPath: spec.replicas, options: {delimiter: "x"}}
  targets:
  - select: {kind: ConfigMap}
    fieldPaths: [data.num]
"#
        ),
        "multiple matches for selector Deployment.[noVer].[noGrp]/[noName].[noNs]:spec.replicas:x(0), create=false"
    );
}

#[test]
fn missing_or_unsupported_source_fields_are_errors() {
    assert_eq!(
        error(
            r#"
- source: {kind: Deployment, name: web, namespace: default, fieldPath: spec.nope}
  targets:
  - select: {kind: ConfigMap}
    fieldPaths: [data.num]
"#
        ),
        "fieldPath `spec.nope` is missing for replacement source Deployment.[noVer].[noGrp]/web.default"
    );
    assert_eq!(
        error(
            r#"
- source: {kind: Deployment, name: web, fieldPath: spec.template.spec.containers.*.image}
  targets:
  - select: {kind: ConfigMap}
    fieldPaths: [data.x]
"#
        ),
        "error looking up replacement source: wildcard is not supported in PathGetter"
    );
}

#[test]
fn maps_and_lists_replace_whole_values() {
    let rm = run(r#"
- source:
    kind: Deployment
    name: web
    fieldPath: spec.template.spec.containers.[name=app].env
  targets:
  - select: {kind: Deployment, name: other}
    fieldPaths: [spec.template.spec.containers.0.env]
    options: {create: true}
- source: {kind: Deployment, name: web, fieldPath: spec.template.metadata.labels}
  targets:
  - select: {kind: Deployment, name: other}
    fieldPaths: [metadata.labels]
- source: {kind: Deployment, name: web, fieldPath: spec.template.metadata.labels}
  targets:
  - select: {kind: ConfigMap}
    fieldPaths: [data.num]
"#)
    .unwrap();
    assert_eq!(
        field(&rm, "Deployment", "other", "spec.template.spec.containers.0.env"),
        json!([{"name": "HOST", "value": "x"}, {"name": "PORT", "value": "1"}])
    );
    assert_eq!(
        field(&rm, "Deployment", "other", "metadata.labels"),
        json!({"app": "web"})
    );
    assert_eq!(field(&rm, "ConfigMap", "cm", "data.num"), json!(""));
}

#[test]
fn wildcards_and_primitive_entries_match_every_element() {
    let rm = run(r#"
- source: {kind: ConfigMap, name: cm, fieldPath: data.port}
  targets:
  - select: {kind: Deployment}
    fieldPaths:
    - spec.template.spec.containers.*.name
  - select: {name: web}
    fieldPaths:
    - spec.template.spec.containers.[name=8080].env.*.value
    - spec.template.spec.containers.0.args.[=80]
    - metadata.name
"#)
    .unwrap();
    let web = field(&rm, "Deployment", "8080", "spec.template.spec.containers");
    assert_eq!(web[0]["args"], json!(["--port", "8080"]));
    assert_eq!(
        web[0]["env"],
        json!([{"name": "HOST", "value": "8080"}, {"name": "PORT", "value": "8080"}])
    );
    assert!(web.as_array().unwrap().iter().all(|c| c["name"] == "8080"));
    assert_eq!(
        field(&rm, "Deployment", "other", "spec.template.spec.containers.0.name"),
        "8080"
    );

    assert_eq!(
        error(
            r#"
- source: {kind: ConfigMap, name: cm, fieldPath: data.port}
  targets:
  - select: {kind: Deployment}
    fieldPaths:
    - spec.template.spec.containers.[name=app].env.*.value
"#
        ),
        "unable to find field \"spec.template.spec.containers.[name=app].env.*.value\" in replacement target"
    );
}

#[test]
fn sources_and_targets_match_original_and_current_names() {
    let mut rm = resources(RESOURCES);
    for r in rm.iter_mut() {
        let name = format!("p-{}", r.name());
        r.set_name(&name);
    }
    run_on(
        &mut rm,
        r#"
- path: repl.yaml
- source: {kind: Deployment, name: p-web}
  targets:
  - select: {kind: ConfigMap, name: cm, namespace: ns1}
    fieldPaths: [data.cur]
    options: {create: true}
  - select: {kind: Deployment, namespace: default}
    reject: [{name: p-other}]
    fieldPaths: [metadata.labels.cur]
    options: {create: true}
"#,
        &[(
            "repl.yaml",
            "source: {kind: Deployment, name: web}\ntargets:\n- select: {kind: ConfigMap, name: cm}\n  \
             fieldPaths: [data.orig]\n  options: {create: true}\n",
        )],
    )
    .unwrap();
    assert_eq!(field(&rm, "ConfigMap", "p-cm", "data.orig"), "p-web");
    assert_eq!(field(&rm, "ConfigMap", "p-cm", "data.cur"), "p-web");
    assert_eq!(field(&rm, "Deployment", "p-web", "metadata.labels.cur"), "p-web");
    assert!(
        field(&rm, "Deployment", "p-other", "metadata.labels")
            .get("cur")
            .is_none()
    );
}

#[test]
fn path_files_may_hold_a_list_and_nothing_else() {
    let mut rm = resources(RESOURCES);
    let list = "- source: {kind: Deployment, name: web}\n  targets:\n  - select: {kind: ConfigMap}\n    \
                fieldPaths: [data.num]\n    unknown: ignored\n";
    run_on(&mut rm, "- path: list.yaml", &[("list.yaml", list)]).unwrap();
    assert_eq!(field(&rm, "ConfigMap", "cm", "data.num"), "web");

    let message = run_on(&mut rm, "- path: bad.yaml", &[("bad.yaml", "hello\n")])
        .unwrap_err()
        .message;
    assert_eq!(
        message,
        "unsupported replacement type encountered within replacement path: string"
    );
}

#[test]
fn malformed_replacements_are_errors() {
    let mut rm = resources(RESOURCES);
    let both = "- path: repl.yaml\n  source: {kind: Deployment, name: web}\n";
    assert_eq!(
        run_on(&mut rm, both, &[("repl.yaml", "[]")]).unwrap_err().message,
        "cannot specify both path and inline replacement"
    );
    assert_eq!(
        error("- source: {kind: Deployment, name: web}\n  targets:\n  - fieldPaths: [data.x]\n"),
        "target must specify resources to select"
    );
    assert_eq!(
        error("- source: {kind: Deployment, name: web}\n"),
        "replacements must specify a source and at least one target"
    );
    assert_eq!(
        error("- source: {kind: Deployment, name: web, bogus: 1}\n  targets: []\n"),
        "json: unknown field \"bogus\""
    );
}

#[test]
fn field_paths_split_like_kyaml() {
    assert_eq!(
        fieldpath::split("spec.containers.[name=a.b].image"),
        ["spec", "containers", "[name=a.b]", "image"]
    );
    assert_eq!(
        fieldpath::split("metadata.annotations.[a.b/c]"),
        ["metadata", "annotations", "a.b/c"]
    );
    assert_eq!(fieldpath::split(r"data.a\.b"), ["data", "a.b"]);
    assert_eq!(
        fieldpath::split_with_slice_indexes("spec.ports[0].port"),
        ["spec", "ports", "0", "port"]
    );
}
