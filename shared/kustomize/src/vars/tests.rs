//! Expectations confirmed with `kubectl kustomize` (kustomize v5.5.0) on the same inputs.

use serde_json::json;

use super::*;
use crate::Limits;

const BASE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: db
spec:
  ports:
  - port: 5432
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    note: "svc $(SVC) port $(PORT) undefined $(NOPE) esc $$(SVC) $"
spec:
  replicas: 1
  template:
    spec:
      containers:
      - name: app
        image: nginx
        command: ["run", "$(SVC)", "$(PORT)"]
        args: ["$(REPL)", "--x=$(REPL)", "$(SVC)"]
        env:
        - name: A
          value: $(PORT)
        - name: B
          value: "$(SVC):$(PORT)"
        - name: C
          value: $(MAP)
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

fn vars(yaml: &str) -> Vec<Var> {
    let value = crate::yaml::parse_document(yaml, &Limits::default()).unwrap();
    serde_json::from_value(value).unwrap()
}

fn spec(kind: &str, path: &str) -> FieldSpec {
    FieldSpec {
        kind: kind.to_owned(),
        path: path.to_owned(),
        ..FieldSpec::default()
    }
}

/// A slice of kustomize's var-reference table.
fn config() -> TransformerConfig {
    TransformerConfig {
        var_reference: vec![
            spec("", "metadata/annotations"),
            spec("Deployment", "spec/template/spec/containers/args"),
            spec("Deployment", "spec/template/spec/containers/command"),
            spec("Deployment", "spec/template/spec/containers/env/value"),
        ],
        ..TransformerConfig::default()
    }
}

fn base_vars() -> Vec<Var> {
    vars(
        r#"
- name: SVC
  objref: {kind: Service, name: db, apiVersion: v1}
- name: PORT
  objref: {kind: Service, name: db, apiVersion: v1}
  fieldref:
    fieldpath: spec.ports[0].port
"#,
    )
}

fn add_prefix(rm: &mut ResMap, prefix: &str) {
    for r in rm.iter_mut() {
        let name = format!("{prefix}{}", r.name());
        r.set_name(&name);
    }
}

fn resolve_error(rm: &mut ResMap, set: &VarSet) -> String {
    set.resolve(rm, &config()).unwrap_err().message
}

#[test]
fn vars_from_bases_resolve_to_final_typed_values() {
    let mut rm = resources(BASE);
    let mut base = VarSet::default();
    base.merge(&base_vars(), &mut rm).unwrap();

    // The overlay adds a prefix, then its own vars name the resources by their original names.
    add_prefix(&mut rm, "p-");
    let mut top = VarSet::default();
    top.absorb(base).unwrap();
    let overlay = vars(
        r#"
- name: REPL
  objref: {kind: Deployment, name: web, apiVersion: apps/v1}
  fieldref: {fieldpath: spec.replicas}
- name: MAP
  objRef: {kind: Deployment, name: web, apiVersion: apps/v1}
  fieldRef: {fieldPath: spec.template}
- name: UNUSED
  objref: {kind: Deployment, name: web, apiVersion: apps/v1}
"#,
    );
    top.merge(&overlay, &mut rm).unwrap();
    top.resolve(&mut rm, &config()).unwrap();

    let web = rm.iter().find(|r| r.name() == "p-web").unwrap();
    assert_eq!(
        web.obj["metadata"]["annotations"]["note"],
        "svc p-db port 5432 undefined $(NOPE) esc $(SVC) $"
    );
    let container = &web.obj["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"], json!(["run", "p-db", 5432]));
    assert_eq!(container["args"], json!([1, "--x=1", "p-db"]));
    assert_eq!(
        container["env"],
        json!([
            {"name": "A", "value": 5432},
            {"name": "B", "value": "p-db:5432"},
            {"name": "C", "value": "$(MAP)"}
        ])
    );
}

#[test]
fn duplicate_var_names_are_errors() {
    let mut rm = resources(BASE);
    let twice = vars(
        r#"
- name: SVC
  objref: {kind: Service, name: db, apiVersion: v1}
- name: SVC
  objref: {kind: Service, name: db, apiVersion: v1}
"#,
    );
    assert_eq!(
        VarSet::default().merge(&twice, &mut rm).unwrap_err().message,
        "merging vars [{SVC Service.[noVer].[noGrp] {}} {SVC Service.[noVer].[noGrp] {}}]: \
         var 'SVC' already encountered"
    );

    let mut base = VarSet::default();
    base.merge(&base_vars(), &mut rm).unwrap();
    let mut other = VarSet::default();
    other.merge(&base_vars()[..1], &mut rm).unwrap();
    base.absorb(other.clone()).unwrap_err();
    let mut top = VarSet::default();
    top.absorb(other).unwrap();
    assert_eq!(top.absorb(base).unwrap_err().message, "var 'SVC' already encountered");
}

#[test]
fn objref_that_matches_nothing_fails_at_resolve() {
    let mut rm = resources(BASE);
    let mut set = VarSet::default();
    set.merge(
        &vars("- name: SVC\n  objref: {kind: Service, name: nope, apiVersion: v1}\n"),
        &mut rm,
    )
    .unwrap();
    assert_eq!(
        resolve_error(&mut rm, &set),
        "var '{SVC Service.v1.[noGrp] {metadata.name}}' cannot be mapped to a field in the set of known resources"
    );

    // Without apiVersion the version must match too, so nothing does.
    let mut set = VarSet::default();
    set.merge(&vars("- name: SVC\n  objref: {kind: Service, name: db}\n"), &mut rm)
        .unwrap();
    assert_eq!(
        resolve_error(&mut rm, &set),
        "var '{SVC Service.[noVer].[noGrp] {metadata.name}}' cannot be mapped to a field in the set of known resources"
    );

    let mut set = VarSet::default();
    let elsewhere = "- name: SVC\n  objref: {kind: Service, name: db, version: v1, namespace: other}\n";
    set.merge(&vars(elsewhere), &mut rm).unwrap();
    assert_eq!(
        resolve_error(&mut rm, &set),
        "var '{SVC Service.v1.[noGrp] {metadata.name}}' cannot be mapped to a field in the set of known resources"
    );
}

#[test]
fn missing_var_field_is_an_error() {
    let mut rm = resources(BASE);
    let mut set = VarSet::default();
    let missing =
        "- name: SVC\n  objref: {kind: Service, name: db, apiVersion: v1}\n  fieldref: {fieldpath: spec.nope}\n";
    set.merge(&vars(missing), &mut rm).unwrap();
    assert_eq!(
        resolve_error(&mut rm, &set),
        "field specified in var '{SVC Service.v1.[noGrp] {spec.nope}}' not found in corresponding resource"
    );
}

#[test]
fn default_namespace_matches_an_unset_one_and_values_are_read_at_the_end() {
    let mut rm = resources(BASE);
    let mut set = VarSet::default();
    let namespaced = "- name: SVC\n  objref: {kind: Service, name: db, version: v1, namespace: default}\n  fieldref: {fieldpath: metadata.namespace}\n";
    set.merge(&vars(namespaced), &mut rm).unwrap();
    for r in rm.iter_mut() {
        r.set_namespace("prod");
    }
    set.resolve(&mut rm, &config()).unwrap();
    let web = rm.iter().find(|r| r.name() == "web").unwrap();
    assert_eq!(
        web.obj["metadata"]["annotations"]["note"],
        "svc prod port $(PORT) undefined $(NOPE) esc $(SVC) $"
    );
    assert_eq!(
        web.obj["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"],
        "prod:$(PORT)"
    );
}

#[test]
fn ambiguous_objref_is_an_error() {
    let mut rm = resources(
        "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: a}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: b}\n",
    );
    let ambiguous = "- name: SVC\n  objref: {kind: Service, name: db, apiVersion: v1}\n  fieldref: {fieldpath: metadata.namespace}\n";
    assert_eq!(
        VarSet::default().merge(&vars(ambiguous), &mut rm).unwrap_err().message,
        "merging vars [{SVC Service.[noVer].[noGrp] {metadata.namespace}}]: found 2 resId matches \
         for var {SVC Service.v1.[noGrp] {metadata.namespace}} (unable to disambiguate)"
    );
}

#[test]
fn expansion_follows_kustomize_syntax() {
    let values: BTreeMap<String, Value> = [
        ("A".to_owned(), json!("x")),
        ("N".to_owned(), json!(3)),
        ("F".to_owned(), json!(1.5)),
        ("M".to_owned(), json!({"k": "v"})),
    ]
    .into_iter()
    .collect();
    assert_eq!(expand("$(A)", &values), json!("x"));
    assert_eq!(expand("$(N)", &values), json!(3));
    assert_eq!(expand("$(F)", &values), json!(1.5));
    assert_eq!(expand("n=$(N) f=$(F)", &values), json!("n=3 f=1.5"));
    assert_eq!(expand("$(M)", &values), json!("$(M)"));
    assert_eq!(expand("$$(A) $x $( $", &values), json!("$(A) $x $( $"));
    assert_eq!(expand("$(A", &values), json!("$(A"));
}

#[test]
fn var_entries_reject_unknown_fields() {
    let value = json!([{"name": "X", "objref": {"kind": "Service", "bogus": 1}}]);
    assert!(serde_json::from_value::<Vec<Var>>(value).is_err());
}
