//! Generated cases: random but reproducible kustomizations over a fixed pool of workloads
//! and the objects they refer to. A seeded SplitMix64 decides which objects a case holds and
//! which kustomization features it uses, and whether it is one directory or a base with an
//! overlay; the case is written as YAML files under a temporary directory.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

pub struct GeneratedCase {
    /// `gen-NNN-` followed by the features it uses, so `EDDY_CASE` can select by feature.
    pub name: String,
    pub root: PathBuf,
    pub build_dir: PathBuf,
}

/// Writes `count` cases under `dir`; the same seed always writes the same files.
pub fn write_cases(dir: &Path, count: usize, seed: u64) -> Vec<GeneratedCase> {
    (0..count)
        .map(|i| {
            let mut rng = SplitMix64(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let plan = Plan::random(&mut rng);
            let name = format!("gen-{i:03}-{}", plan.features.join("-"));
            let root = dir.join(&name);
            let build_dir = plan.write(&root);
            GeneratedCase { name, root, build_dir }
        })
        .collect()
}

/// SplitMix64 (Steele, Lea and Flood): tiny, fast, and good enough to pick test inputs.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Groups of objects that belong together; a case holds a random subset.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Deployment `web` and Service `web`; the Deployment reads ConfigMap `app-config`,
    /// Secret `app-secret` and runs as ServiceAccount `runner`.
    Web,
    Settings,
    Creds,
    Runner,
    /// StatefulSet `db` with its headless Service `db-headless`.
    Db,
    Ingress,
    /// Role `reader` and the RoleBinding that grants it to `runner`.
    Rbac,
    Report,
    Hpa,
    ClusterBinding,
}

const UNITS: [Unit; 10] = [
    Unit::Web,
    Unit::Settings,
    Unit::Creds,
    Unit::Runner,
    Unit::Db,
    Unit::Ingress,
    Unit::Rbac,
    Unit::Report,
    Unit::Hpa,
    Unit::ClusterBinding,
];

impl Unit {
    fn file(self) -> &'static str {
        match self {
            Unit::Web => "web.yaml",
            Unit::Settings => "settings.yaml",
            Unit::Creds => "creds.yaml",
            Unit::Runner => "runner.yaml",
            Unit::Db => "db.yaml",
            Unit::Ingress => "ingress.yaml",
            Unit::Rbac => "rbac.yaml",
            Unit::Report => "report.yaml",
            Unit::Hpa => "hpa.yaml",
            Unit::ClusterBinding => "cluster-binding.yaml",
        }
    }

    fn objects(self) -> Vec<Value> {
        match self {
            Unit::Web => vec![
                json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web", "labels": {"app": "web"}},
                    "spec": {
                        "replicas": 2,
                        "selector": {"matchLabels": {"app": "web"}},
                        "template": {
                            "metadata": {"labels": {"app": "web"}},
                            "spec": {
                                "serviceAccountName": "runner",
                                "containers": [{
                                    "name": "web", "image": "nginx:1.25",
                                    "ports": [{"containerPort": 80}],
                                    "env": [
                                        {"name": "MODE", "value": "prod"},
                                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "password"}}}
                                    ],
                                    "envFrom": [{"configMapRef": {"name": "app-config"}}],
                                    "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}]
                                }, {
                                    "name": "sidecar", "image": "busybox:1.36", "args": ["sleep", "infinity"]
                                }],
                                "volumes": [
                                    {"name": "config", "configMap": {"name": "app-config"}},
                                    {"name": "tls", "secret": {"secretName": "creds"}}
                                ]
                            }
                        }
                    }
                }),
                json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "web", "labels": {"app": "web"}},
                    "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 80}]}
                }),
            ],
            Unit::Settings => vec![json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings"},
                "data": {"level": "debug", "retries": "3"}
            })],
            Unit::Creds => vec![json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "creds"},
                "type": "Opaque",
                "data": {"token": "c2VjcmV0"}
            })],
            Unit::Runner => vec![json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "runner"},
                "imagePullSecrets": [{"name": "creds"}]
            })],
            Unit::Db => vec![
                json!({
                    "apiVersion": "apps/v1", "kind": "StatefulSet",
                    "metadata": {"name": "db"},
                    "spec": {
                        "serviceName": "db-headless",
                        "replicas": 1,
                        "selector": {"matchLabels": {"app": "db"}},
                        "template": {
                            "metadata": {"labels": {"app": "db"}},
                            "spec": {"containers": [{
                                "name": "postgres", "image": "postgres:16",
                                "env": [{"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}],
                                "envFrom": [{"configMapRef": {"name": "settings"}}]
                            }]}
                        },
                        "volumeClaimTemplates": [{
                            "metadata": {"name": "data"},
                            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
                        }]
                    }
                }),
                json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "db-headless"},
                    "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}
                }),
            ],
            Unit::Ingress => vec![json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "web"},
                "spec": {
                    "tls": [{"hosts": ["shop.example.com"], "secretName": "creds"}],
                    "rules": [{"host": "shop.example.com", "http": {"paths": [{
                        "path": "/", "pathType": "Prefix",
                        "backend": {"service": {"name": "web", "port": {"number": 80}}}
                    }]}}]
                }
            })],
            Unit::Rbac => vec![
                json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": "reader"},
                    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]
                }),
                json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": "runner-reader"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                    "subjects": [{"kind": "ServiceAccount", "name": "runner"}]
                }),
            ],
            Unit::Report => vec![json!({
                "apiVersion": "batch/v1", "kind": "CronJob",
                "metadata": {"name": "report"},
                "spec": {
                    "schedule": "0 * * * *",
                    "jobTemplate": {"spec": {"template": {"spec": {
                        "restartPolicy": "OnFailure",
                        "serviceAccountName": "runner",
                        "containers": [{
                            "name": "report", "image": "busybox:1.36",
                            "envFrom": [{"configMapRef": {"name": "app-config"}}, {"secretRef": {"name": "app-secret"}}]
                        }]
                    }}}}
                }
            })],
            Unit::Hpa => vec![json!({
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "web"},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": 1, "maxReplicas": 5
                }
            })],
            Unit::ClusterBinding => vec![json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "runner-view"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "default"}]
            })],
        }
    }
}

/// Which kustomization a feature goes into when the case has a base and an overlay.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Base,
    Overlay,
}

/// One generated case: the kustomization fields of the base and, optionally, of an overlay.
struct Plan {
    base_units: Vec<Unit>,
    /// Units the overlay adds as its own resources.
    overlay_units: Vec<Unit>,
    base: Map<String, Value>,
    overlay: Option<Map<String, Value>>,
    /// Patch files to write next to the kustomization that names them.
    files: Vec<(Level, String, String)>,
    features: Vec<&'static str>,
}

impl Plan {
    fn random(rng: &mut SplitMix64) -> Self {
        let with_overlay = rng.chance(40);
        let mut units: Vec<Unit> = UNITS.iter().copied().filter(|_| rng.chance(45)).collect();
        if units.is_empty() {
            units.push(*rng.pick(&UNITS));
        }
        let (base_units, overlay_units) = if with_overlay && units.len() > 1 && rng.chance(50) {
            let last = units.pop().unwrap();
            (units, vec![last])
        } else {
            (units, Vec::new())
        };
        let mut plan = Plan {
            base_units,
            overlay_units,
            base: Map::new(),
            overlay: with_overlay.then(Map::new),
            files: Vec::new(),
            features: Vec::new(),
        };
        if with_overlay {
            plan.features.push("overlay");
        }
        plan.add_names(rng);
        plan.add_metadata(rng);
        plan.add_images_and_replicas(rng);
        plan.add_generators(rng);
        plan.add_patches(rng);
        plan
    }

    fn has(&self, unit: Unit) -> bool {
        self.base_units.contains(&unit) || self.overlay_units.contains(&unit)
    }

    fn level(&self, rng: &mut SplitMix64) -> Level {
        if self.overlay.is_some() && rng.chance(50) {
            Level::Overlay
        } else {
            Level::Base
        }
    }

    fn fields(&mut self, level: Level) -> &mut Map<String, Value> {
        match level {
            Level::Base => &mut self.base,
            Level::Overlay => self.overlay.as_mut().expect("an overlay"),
        }
    }

    fn set(&mut self, level: Level, field: &str, value: Value) {
        self.fields(level).insert(field.to_string(), value);
    }

    /// Appends to a list field of the kustomization at `level`.
    fn push(&mut self, level: Level, field: &str, value: Value) {
        let list = self.fields(level).entry(field.to_string()).or_insert_with(|| json!([]));
        list.as_array_mut().expect("a list field").push(value);
    }

    fn add_names(&mut self, rng: &mut SplitMix64) {
        if rng.chance(50) {
            let level = self.level(rng);
            self.set(level, "namePrefix", json!(rng.pick(&["dev-", "team-a-", "x-"])));
            self.features.push("prefix");
        }
        if rng.chance(40) {
            let level = self.level(rng);
            self.set(level, "nameSuffix", json!(rng.pick(&["-v2", "-prod"])));
            self.features.push("suffix");
        }
        if rng.chance(50) {
            let level = self.level(rng);
            self.set(level, "namespace", json!(rng.pick(&["staging", "apps"])));
            self.features.push("ns");
        }
    }

    fn add_metadata(&mut self, rng: &mut SplitMix64) {
        if rng.chance(35) {
            let level = self.level(rng);
            self.set(level, "commonLabels", json!({"team": rng.pick(&["blue", "green"])}));
            self.features.push("commonlabels");
        }
        if rng.chance(30) {
            let level = self.level(rng);
            let mut entry = json!({"pairs": {"app.kubernetes.io/part-of": "shop"}});
            if rng.chance(50) {
                entry["includeSelectors"] = json!(true);
            }
            if rng.chance(50) {
                entry["includeTemplates"] = json!(true);
            }
            self.push(level, "labels", entry);
            self.features.push("labels");
        }
        if rng.chance(35) {
            let level = self.level(rng);
            self.set(
                level,
                "commonAnnotations",
                json!({"owner": "platform", "note": "generated: yes"}),
            );
            self.features.push("annotations");
        }
    }

    fn add_images_and_replicas(&mut self, rng: &mut SplitMix64) {
        if rng.chance(50) {
            let level = self.level(rng);
            let mut images = Vec::new();
            for name in ["nginx", "postgres", "busybox"] {
                if !rng.chance(60) {
                    continue;
                }
                let image = match rng.below(4) {
                    0 => json!({"name": name, "newTag": "2.0"}),
                    1 => json!({"name": name, "newName": format!("registry.example.com/{name}")}),
                    2 => json!({"name": name, "newName": format!("mirror.example.com/lib/{name}"), "newTag": "stable"}),
                    _ => {
                        json!({"name": name, "digest": "sha256:24a0c4b4a4c0eb97a1aabb8e29f18e917d05abfe1b7a7c07857230879ce7d3d3"})
                    }
                };
                images.push(image);
            }
            if !images.is_empty() {
                self.set(level, "images", Value::Array(images));
                self.features.push("images");
            }
        }
        if rng.chance(30) {
            let mut replicas = Vec::new();
            if self.has(Unit::Web) {
                replicas.push(json!({"name": "web", "count": rng.below(5) + 1}));
            }
            if self.has(Unit::Db) {
                replicas.push(json!({"name": "db", "count": 3}));
            }
            if !replicas.is_empty() {
                let level = self.level(rng);
                self.set(level, "replicas", Value::Array(replicas));
                self.features.push("replicas");
            }
        }
    }

    fn add_generators(&mut self, rng: &mut SplitMix64) {
        if rng.chance(55) {
            let level = self.level(rng);
            let mut generator = json!({
                "name": "app-config",
                "literals": [format!("MODE={}", rng.pick(&["fast", "safe"])), "RETRIES=3", "ENABLED=true"]
            });
            if rng.chance(25) {
                generator["options"] = json!({"disableNameSuffixHash": true});
            } else if rng.chance(25) {
                generator["options"] = json!({"labels": {"generated": "yes"}, "annotations": {"source": "literals"}});
            }
            self.push(level, "configMapGenerator", generator);
            self.features.push("configmapgen");
            if level == Level::Base && self.overlay.is_some() && rng.chance(40) {
                self.push(
                    Level::Overlay,
                    "configMapGenerator",
                    json!({"name": "app-config", "behavior": "merge", "literals": ["MODE=overlay", "EXTRA=1"]}),
                );
                self.features.push("merge");
            }
        }
        if rng.chance(40) {
            let level = self.level(rng);
            self.push(
                level,
                "secretGenerator",
                json!({"name": "app-secret", "literals": ["password=hunter2", "user=admin"], "type": "Opaque"}),
            );
            self.features.push("secretgen");
        }
        if rng.chance(15) {
            let level = self.level(rng);
            self.set(level, "generatorOptions", json!({"labels": {"kind": "generated"}}));
            self.features.push("genopts");
        }
    }

    fn add_patches(&mut self, rng: &mut SplitMix64) {
        if rng.chance(40) {
            let candidates = self.smp_candidates();
            if !candidates.is_empty() {
                let patch = rng.pick(&candidates).clone();
                self.add_patch(rng, "smp", patch, None);
                self.features.push("smp");
            }
        }
        if rng.chance(40) {
            let candidates = self.json6902_candidates();
            if !candidates.is_empty() {
                let (target, ops) = rng.pick(&candidates).clone();
                self.add_patch(rng, "json6902", ops, Some(target));
                self.features.push("json6902");
            }
        }
    }

    /// Writes the patch inline or as a file, at a random level.
    fn add_patch(&mut self, rng: &mut SplitMix64, stem: &str, patch: Value, target: Option<Value>) {
        let level = self.level(rng);
        let mut entry = Map::new();
        if rng.chance(50) {
            let file = format!("{stem}-patch.yaml");
            self.files.push((level, file.clone(), to_yaml(&patch)));
            entry.insert("path".into(), json!(file));
        } else {
            entry.insert("patch".into(), json!(to_yaml(&patch)));
        }
        if let Some(target) = target {
            entry.insert("target".into(), target);
        }
        self.push(level, "patches", Value::Object(entry));
    }

    fn smp_candidates(&self) -> Vec<Value> {
        let mut patches = Vec::new();
        if self.has(Unit::Web) {
            patches.push(json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"template": {"spec": {"containers": [{
                    "name": "web",
                    "env": [{"name": "MODE", "value": "debug"}, {"name": "TRACE", "value": "1"}],
                    "resources": {"limits": {"memory": "256Mi"}}
                }]}}}
            }));
            patches.push(json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}
            }));
            patches.push(json!({
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}
            }));
        }
        if self.has(Unit::Db) {
            patches.push(json!({
                "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
                "spec": {"template": {"spec": {"volumes": [{"name": "extra", "configMap": {"name": "app-config"}}]}}}
            }));
        }
        if self.has(Unit::Runner) {
            patches.push(json!({
                "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner", "annotations": {"iam": "role/runner"}}
            }));
        }
        patches
    }

    fn json6902_candidates(&self) -> Vec<(Value, Value)> {
        let mut patches = Vec::new();
        if self.has(Unit::Web) {
            patches.push((
                json!({"kind": "Deployment", "name": "web"}),
                json!([
                    {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "EXTRA", "value": "on"}},
                    {"op": "replace", "path": "/spec/replicas", "value": 4}
                ]),
            ));
            patches.push((
                json!({"group": "apps", "version": "v1", "kind": "Deployment"}),
                json!([
                    {"op": "test", "path": "/spec/template/spec/containers/1/name", "value": "sidecar"},
                    {"op": "remove", "path": "/spec/template/spec/containers/1"}
                ]),
            ));
            patches.push((
                json!({"kind": "Service", "name": "web"}),
                json!([{"op": "replace", "path": "/spec/ports/0/port", "value": 8080}]),
            ));
        }
        if self.has(Unit::Ingress) {
            patches.push((
                json!({"kind": "Ingress"}),
                json!([{"op": "add", "path": "/spec/ingressClassName", "value": "nginx"}]),
            ));
        }
        if self.has(Unit::Settings) {
            patches.push((
                json!({"version": "v1", "kind": "ConfigMap", "name": "settings"}),
                json!([
                    {"op": "copy", "from": "/data/level", "path": "/data/copied"},
                    {"op": "move", "from": "/data/retries", "path": "/data/attempts"}
                ]),
            ));
        }
        patches
    }

    /// Writes the case under `root` and returns the directory to build.
    fn write(&self, root: &Path) -> PathBuf {
        let base_dir = if self.overlay.is_some() {
            root.join("base")
        } else {
            root.to_path_buf()
        };
        let mut base = self.base.clone();
        write_units(&base_dir, &self.base_units, &mut base);
        write_kustomization(&base_dir, &base);
        let Some(overlay_fields) = &self.overlay else {
            self.write_files(Level::Base, &base_dir);
            return base_dir;
        };
        self.write_files(Level::Base, &base_dir);
        let overlay_dir = root.join("overlay");
        let mut overlay = Map::new();
        overlay.insert("resources".into(), json!(["../base"]));
        write_units(&overlay_dir, &self.overlay_units, &mut overlay);
        overlay.extend(overlay_fields.clone());
        write_kustomization(&overlay_dir, &overlay);
        self.write_files(Level::Overlay, &overlay_dir);
        overlay_dir
    }

    fn write_files(&self, level: Level, dir: &Path) {
        for (_, name, text) in self.files.iter().filter(|(l, _, _)| *l == level) {
            write(&dir.join(name), text);
        }
    }
}

/// Writes each unit's objects to its own file and lists it under `resources`.
fn write_units(dir: &Path, units: &[Unit], kustomization: &mut Map<String, Value>) {
    let resources = kustomization.entry("resources").or_insert_with(|| json!([]));
    for unit in units {
        let text: Vec<String> = unit.objects().iter().map(to_yaml).collect();
        write(&dir.join(unit.file()), &text.join("---\n"));
        resources.as_array_mut().unwrap().push(json!(unit.file()));
    }
}

fn write_kustomization(dir: &Path, fields: &Map<String, Value>) {
    let mut document = Map::new();
    document.insert("apiVersion".into(), json!("kustomize.config.k8s.io/v1beta1"));
    document.insert("kind".into(), json!("Kustomization"));
    document.extend(fields.clone());
    write(&dir.join("kustomization.yaml"), &to_yaml(&Value::Object(document)));
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Block-style YAML with every string double-quoted, so no scalar is retyped on reading.
/// JSON string escapes are all valid in YAML double-quoted scalars.
fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    emit(value, 0, &mut out);
    out
}

fn emit(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, item) in map {
                out.push_str(&format!("{pad}{}:", Value::String(key.clone())));
                emit_nested(item, indent, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                if is_block(item) {
                    let mut nested = String::new();
                    emit(item, indent + 2, &mut nested);
                    out.push_str(&format!("{pad}- {}", &nested[indent + 2..]));
                } else {
                    out.push_str(&format!("{pad}- {}\n", scalar(item)));
                }
            }
        }
        _ => out.push_str(&format!("{pad}{}\n", scalar(value))),
    }
}

/// The value after `key:`: inline when it is a scalar, on the following lines otherwise.
fn emit_nested(value: &Value, indent: usize, out: &mut String) {
    if is_block(value) {
        out.push('\n');
        emit(value, indent + 2, out);
    } else {
        out.push_str(&format!(" {}\n", scalar(value)));
    }
}

fn is_block(value: &Value) -> bool {
    match value {
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => false,
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Object(_) => "{}".to_string(),
        Value::Array(_) => "[]".to_string(),
        other => other.to_string(),
    }
}
