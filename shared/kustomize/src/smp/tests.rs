//! Tests of [`super`]: smp.rs holds the logic, this file what pins it.

//! Expected outputs were produced by `kubectl kustomize` (kustomize v5.5.0) with the same
//! target and an inline `patches:` entry.

use super::*;

fn object(yaml: &str) -> Object {
    match serde_saphyr::from_str::<Value>(yaml).expect("test YAML parses") {
        Value::Object(map) => map,
        other => panic!("test YAML is not a map: {other}"),
    }
}

fn gvk_of(obj: &Object) -> Gvk {
    let text = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    Gvk::from_api_version(&text("apiVersion"), &text("kind"))
}

fn patched(target: &str, patch: &str) -> Option<Object> {
    let target = object(target);
    apply(&target, &object(patch), &gvk_of(&target)).expect("patch applies")
}

fn assert_patched(target: &str, patch: &str, expected: &str) {
    assert_eq!(patched(target, patch), Some(object(expected)));
}

fn patch_error(target: &str, patch: &str) -> String {
    let target = object(target);
    apply(&target, &object(patch), &gvk_of(&target))
        .expect_err("patch is refused")
        .to_string()
}

const WEB: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
      - name: a
        image: a:1
        ports:
        - containerPort: 80
        - containerPort: 443
          protocol: TCP
        env:
        - {name: X, value: '1'}
        - {name: Y, value: '2'}
      - name: b
        image: b:1
      tolerations:
      - {key: k1, operator: Exists}
";

#[test]
fn containers_merge_by_name_with_patch_elements_first() {
    let patch = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - {name: b, image: 'b:2'}
      - {name: c, image: 'c:1'}
      - name: a
        env:
        - {name: Z, value: '3'}
        - {name: X, value: '9'}
";
    let expected = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - {name: b, image: 'b:2'}
      - {name: c, image: 'c:1'}
      - name: a
        image: a:1
        ports:
        - containerPort: 80
        - {containerPort: 443, protocol: TCP}
        env:
        - {name: Z, value: '3'}
        - {name: X, value: '9'}
        - {name: Y, value: '2'}
      tolerations:
      - {key: k1, operator: Exists}
";
    assert_patched(WEB, patch, expected);
}

#[test]
fn ports_merge_by_port_and_protocol_keeping_target_order() {
    let patch = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - name: a
        ports:
        - containerPort: 8080
        - {containerPort: 443, name: https}
";
    let expected = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - name: a
        image: a:1
        ports:
        - containerPort: 8080
        - containerPort: 80
        - {containerPort: 443, protocol: TCP}
        env:
        - {name: X, value: '1'}
        - {name: Y, value: '2'}
      - {name: b, image: 'b:1'}
      tolerations:
      - {key: k1, operator: Exists}
";
    assert_patched(WEB, patch, expected);
}

#[test]
fn tolerations_have_no_merge_key_so_the_patch_replaces_them() {
    let patch = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      tolerations:
      - {key: k2, operator: Exists}
";
    let result = patched(WEB, patch).expect("object kept");
    let spec = &result["spec"]["template"]["spec"];
    assert_eq!(
        spec["tolerations"],
        serde_json::json!([{"key": "k2", "operator": "Exists"}])
    );
    assert_eq!(spec["containers"].as_array().map(Vec::len), Some(2));
}

const APP: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  creationTimestamp: null
  labels: {app: web, tier: front}
spec:
  replicas: 1
  template:
    spec:
      containers:
      - name: app
        image: app:1
        args: [--a, --b]
        volumeMounts:
        - {name: data, mountPath: /data}
        resources:
          limits: {cpu: '1', memory: 1Gi}
      volumes:
      - name: data
        emptyDir: {}
      - name: cfg
        configMap: {name: cfg}
";

#[test]
fn args_replace_nulls_delete_and_volumes_merge_by_name() {
    let patch = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {tier: null, env: prod}
spec:
  template:
    spec:
      containers:
      - name: app
        args: [--c]
        volumeMounts:
        - {name: cache, mountPath: /cache}
        - {name: data2, mountPath: /data, readOnly: true}
        resources:
          limits: {memory: null}
      volumes:
      - name: cache
        emptyDir: {medium: Memory}
      - name: cfg
        configMap: {name: cfg2}
      nodeSelector: {disk: ssd}
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}
";
    let expected = "
apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels: {app: web, env: prod}
  name: web
spec:
  replicas: 1
  template:
    spec:
      containers:
      - args: [--c]
        image: app:1
        name: app
        resources:
          limits: {cpu: '1'}
        volumeMounts:
        - {mountPath: /cache, name: cache}
        - {mountPath: /data, name: data2, readOnly: true}
      nodeSelector: {disk: ssd}
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}
      volumes:
      - emptyDir: {medium: Memory}
        name: cache
      - configMap: {name: cfg2}
        name: cfg
      - emptyDir: {}
        name: data
";
    assert_patched(APP, patch, expected);
}

#[test]
fn deleting_the_only_container_leaves_an_empty_list() {
    let patch = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - {name: app, $patch: delete}
";
    let result = patched(APP, patch).expect("object kept");
    let spec = &result["spec"]["template"]["spec"];
    assert_eq!(spec["containers"], serde_json::json!([]));
    assert_eq!(spec["volumes"].as_array().map(Vec::len), Some(2));
    assert_eq!(result["metadata"]["creationTimestamp"], Value::Null);
}

const TWO_FINALIZERS: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  finalizers: [a, b]
spec:
  template:
    spec:
      containers:
      - {name: a, image: 'a:1', args: [x]}
      - {name: b, image: 'b:1'}
      - {name: d, image: 'd:1'}
      tolerations:
      - key: k1
";

#[test]
fn element_delete_works_but_element_replace_is_ignored_as_in_kustomize() {
    let patch = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  finalizers: [c, a]
spec:
  template:
    spec:
      containers:
      - {name: a, $patch: replace, image: 'a:2'}
      - {name: b, $patch: delete}
      tolerations:
      - $patch: replace
      - key: k3
";
    let expected = "
apiVersion: apps/v1
kind: Deployment
metadata:
  finalizers: [c, a, b]
  name: web
spec:
  template:
    spec:
      containers:
      - {args: [x], image: 'a:1', name: a}
      - {image: 'd:1', name: d}
      tolerations:
      - $patch: replace
      - key: k3
";
    assert_patched(TWO_FINALIZERS, patch, expected);
}

#[test]
fn list_replace_map_replace_map_delete_and_directives_kyaml_ignores() {
    let target = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {a: b}
  annotations: {old: '1'}
spec:
  replicas: 2
  selector: {matchLabels: {a: b}}
  template:
    spec:
      containers:
      - {name: a, image: 'a:1'}
      volumes:
      - name: v
        emptyDir: {}
";
    let patch = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: null
  annotations: {$patch: replace, new: '1'}
spec:
  replicas: null
  selector: {$patch: delete}
  template:
    spec:
      $setElementOrder/containers: [{name: d}, {name: a}]
      $retainKeys: [containers]
      $deleteFromPrimitiveList/finalizers: [a]
      containers:
      - $patch: replace
      - name: z
        image: z:1
        foo: null
        bar: {x: null, y: 1}
      volumes:
      - $patch: delete
";
    let expected = "
apiVersion: apps/v1
kind: Deployment
metadata:
  annotations: {new: '1'}
  name: web
spec:
  template:
    spec:
      $deleteFromPrimitiveList/finalizers: [a]
      $retainKeys: [containers]
      $setElementOrder/containers: [{name: d}, {name: a}]
      containers:
      - bar: {y: 1}
        image: z:1
        name: z
";
    assert_patched(target, patch, expected);
}

#[test]
fn custom_resource_lists_are_replaced_but_embedded_workloads_merge() {
    let target = "
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec:
  items:
  - {name: a, v: 1}
  - {name: b, v: 2}
  template:
    apiVersion: apps/v1
    kind: Deployment
    spec:
      template:
        spec:
          containers:
          - {name: a, image: 'a:1'}
";
    let patch = "
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec:
  items:
  - {name: b, w: 3}
  template:
    spec:
      template:
        spec:
          containers:
          - {name: b, image: 'b:1'}
";
    let expected = "
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec:
  items:
  - {name: b, w: 3}
  template:
    apiVersion: apps/v1
    kind: Deployment
    spec:
      template:
        spec:
          containers:
          - {image: 'b:1', name: b}
          - {image: 'a:1', name: a}
";
    assert_patched(target, patch, expected);
}

#[test]
fn service_ports_merge_by_port_and_protocol() {
    let target = "
apiVersion: v1
kind: Service
metadata: {name: svc}
spec:
  ports:
  - {port: 80, targetPort: 8080, name: http}
  - {port: 53, protocol: UDP, name: dns}
";
    let patch = "
apiVersion: v1
kind: Service
metadata: {name: svc}
spec:
  ports:
  - {port: 443, name: https}
  - {port: 53, protocol: UDP, targetPort: 5353}
";
    let expected = "
apiVersion: v1
kind: Service
metadata: {name: svc}
spec:
  ports:
  - {name: https, port: 443}
  - {name: http, port: 80, targetPort: 8080}
  - {name: dns, port: 53, protocol: UDP, targetPort: 5353}
";
    assert_patched(target, patch, expected);
}

#[test]
fn delete_at_the_top_removes_the_object() {
    let patch = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
$patch: delete
";
    assert_eq!(patched(WEB, patch), None);
}

#[test]
fn replace_at_the_top_leaves_the_target_as_kustomize_does() {
    let patch = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
$patch: replace
spec: {paused: true}
";
    assert_eq!(patched(WEB, patch), Some(object(WEB)));
}

#[test]
fn a_new_list_from_the_patch_is_added_whole() {
    let patch = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers:
      - {name: init, image: 'i:1', env: [{name: A, value: '1'}]}
";
    let result = patched(WEB, patch).expect("object kept");
    assert_eq!(
        result["spec"]["template"]["spec"]["initContainers"],
        serde_json::json!([{"name": "init", "image": "i:1", "env": [{"name": "A", "value": "1"}]}])
    );
}

#[test]
fn list_element_without_its_merge_key_is_an_error() {
    let patch = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - image: 'x:1'
";
    let message = patch_error(WEB, patch);
    assert!(message.contains("spec.template.spec.containers"), "{message}");
    assert!(message.contains("no merge key `name`"), "{message}");
}

#[test]
fn list_directive_for_a_list_the_target_lacks_is_an_error() {
    let patch = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers:
      - $patch: replace
      - {name: i, image: 'i:1'}
";
    let message = patch_error(WEB, patch);
    assert!(message.contains("spec.template.spec.initContainers"), "{message}");
    assert!(message.contains("$patch"), "{message}");
}

#[test]
fn unknown_patch_directive_is_an_error() {
    let patch = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template: {$patch: squash}
";
    let message = patch_error(WEB, patch);
    assert!(message.contains("spec.template"), "{message}");
    assert!(message.contains("\"squash\""), "{message}");
}

#[test]
fn merging_a_map_into_a_list_is_an_error() {
    let patch = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers: {name: a}
";
    let message = patch_error(WEB, patch);
    assert!(
        message.contains("cannot merge a map in the patch into a list"),
        "{message}"
    );
}

#[test]
fn deep_documents_are_refused_not_overflowed() {
    let mut deep = Value::Null;
    for _ in 0..(MAX_DEPTH + 10) {
        let mut map = Object::new();
        map.insert("a".to_owned(), deep);
        deep = Value::Object(map);
    }
    let Value::Object(deep) = deep else { unreachable!() };
    let result = apply(&object(WEB), &deep, &Gvk::new("apps", "v1", "Deployment"));
    assert!(result.is_err());
}
