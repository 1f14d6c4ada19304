//! `cargo xtask kustomize-schema`: turns Kubernetes' OpenAPI v2 document into the type table the
//! native kustomize engine compiles in (`shared/kustomize/src/schema/table.rs`).
//!
//! The table keeps only what kustomize's strategic merge (kyaml's merge2 walker) reads: lists whose
//! `x-kubernetes-patch-strategy` includes `merge`, with their merge keys, and the object types on
//! the way to them. Everything else is left out, which the walker treats the same as a field it
//! has no schema for. It also lists the cluster-scoped kinds, found from the document's paths.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde_json::Value;

/// The Kubernetes release whose document the checked-in table comes from.
const KUBERNETES_MODULE: &str = "k8s.io/kubernetes@v1.36.3";

/// Kinds kustomize (kyaml v0.18.1) knows as cluster-scoped from its embedded v1.21.2 schema but
/// that newer documents no longer serve. Kept so old manifests get the same namespace handling.
const LEGACY_CLUSTER_SCOPED: &[(&str, &str, &str)] = &[
    (
        "admissionregistration.k8s.io",
        "v1beta1",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "v1beta1",
        "ValidatingWebhookConfiguration",
    ),
    ("apiextensions.k8s.io", "v1beta1", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "v1beta1", "APIService"),
    ("certificates.k8s.io", "v1beta1", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io", "v1beta1", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "v1beta1", "PriorityLevelConfiguration"),
    ("networking.k8s.io", "v1beta1", "IngressClass"),
    ("node.k8s.io", "v1beta1", "RuntimeClass"),
    ("policy", "v1beta1", "PodSecurityPolicy"),
    ("rbac.authorization.k8s.io", "v1beta1", "ClusterRole"),
    ("rbac.authorization.k8s.io", "v1beta1", "ClusterRoleBinding"),
    ("scheduling.k8s.io", "v1beta1", "PriorityClass"),
    ("storage.k8s.io", "v1beta1", "CSIDriver"),
    ("storage.k8s.io", "v1beta1", "CSINode"),
    ("storage.k8s.io", "v1beta1", "StorageClass"),
    ("storage.k8s.io", "v1beta1", "VolumeAttachment"),
];

pub fn table_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/kustomize/src/schema/table.rs")
}

/// The document in the Go module cache, found through `go env GOMODCACHE`.
pub fn default_document() -> anyhow::Result<PathBuf> {
    let out = Command::new("go")
        .args(["env", "GOMODCACHE"])
        .output()
        .context("running `go env GOMODCACHE` to find Kubernetes' OpenAPI document (pass its path instead)")?;
    if !out.status.success() {
        bail!("`go env GOMODCACHE` failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let cache = String::from_utf8(out.stdout)?.trim().to_owned();
    Ok(Path::new(&cache)
        .join(KUBERNETES_MODULE)
        .join("api/openapi-spec/swagger.json"))
}

pub fn write(document: &Path, table: &Path) -> anyhow::Result<()> {
    let text = generate(document)?;
    if let Some(dir) = table.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(table, text).with_context(|| format!("writing {}", table.display()))?;
    println!("wrote {}", table.display());
    Ok(())
}

pub fn check(document: &Path, table: &Path) -> anyhow::Result<()> {
    let expected = generate(document)?;
    let actual = std::fs::read_to_string(table).with_context(|| format!("reading {}", table.display()))?;
    if actual != expected {
        bail!("{} is out of date; run `cargo xtask kustomize-schema`", table.display());
    }
    println!("{} matches {}", table.display(), document.display());
    Ok(())
}

fn generate(document: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(document).with_context(|| format!("reading {}", document.display()))?;
    let doc: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", document.display()))?;
    let source = document
        .to_string_lossy()
        .split_once("k8s.io/")
        .map_or_else(|| "swagger.json".to_owned(), |(_, rest)| format!("k8s.io/{rest}"));
    rustfmt(&render(&doc, &source)?)
}

/// What one property of a definition holds, as far as strategic merge cares.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Object(String),
    MapOf(String),
    MergeList { keys: Vec<String>, items: Option<String> },
}

/// The definitions that lead to a merge list, with the properties that do.
struct Types {
    fields: BTreeMap<String, Vec<(String, Slot)>>,
}

impl Types {
    /// Drops the types no kind reaches (a type reached only through an atomic list).
    fn keep_reachable<'a>(&mut self, roots: impl Iterator<Item = &'a String>) {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = roots.cloned().collect();
        while let Some(def) = todo.pop() {
            if !seen.insert(def.clone()) {
                continue;
            }
            for (_, slot) in self.fields.get(&def).into_iter().flatten() {
                match slot {
                    Slot::Object(t) | Slot::MapOf(t) | Slot::MergeList { items: Some(t), .. } => todo.push(t.clone()),
                    Slot::MergeList { items: None, .. } => {}
                }
            }
        }
        self.fields.retain(|def, _| seen.contains(def));
    }
}

fn ref_target(schema: &Value) -> Option<&str> {
    schema.get("$ref")?.as_str()?.strip_prefix("#/definitions/")
}

fn slot(property: &Value, kept: &BTreeSet<String>) -> anyhow::Result<Option<Slot>> {
    if let Some(target) = ref_target(property) {
        return Ok(kept.contains(target).then(|| Slot::Object(target.to_owned())));
    }
    match property.get("type").and_then(Value::as_str) {
        Some("array") => {
            let strategy = property.get("x-kubernetes-patch-strategy").and_then(Value::as_str);
            if !strategy.is_some_and(|s| s.split(',').any(|part| part == "merge")) {
                return Ok(None);
            }
            // kyaml prefers the full key list over the single merge key.
            let keys = match property.get("x-kubernetes-list-map-keys").and_then(Value::as_array) {
                Some(list) => list.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                None => property
                    .get("x-kubernetes-patch-merge-key")
                    .and_then(Value::as_str)
                    .map(|k| vec![k.to_owned()])
                    .unwrap_or_default(),
            };
            let items = property
                .get("items")
                .and_then(ref_target)
                .filter(|t| kept.contains(*t))
                .map(str::to_owned);
            Ok(Some(Slot::MergeList { keys, items }))
        }
        Some("object") => match property.get("additionalProperties") {
            Some(value) if value.get("x-kubernetes-patch-strategy").is_some() => {
                bail!("a map of lists with a patch strategy is not supported by the table: {value}")
            }
            Some(value) => Ok(ref_target(value)
                .filter(|t| kept.contains(*t))
                .map(|t| Slot::MapOf(t.to_owned()))),
            None => Ok(None),
        },
        _ => Ok(None),
    }
}

/// Finds the definitions that reach a merge list, growing the set until it stops changing (types
/// may refer to each other in cycles).
fn merge_types(definitions: &serde_json::Map<String, Value>) -> anyhow::Result<Types> {
    let mut kept = BTreeSet::new();
    loop {
        let mut fields = BTreeMap::new();
        for (name, def) in definitions {
            let mut slots = Vec::new();
            if let Some(props) = def.get("properties").and_then(Value::as_object) {
                for (field, property) in props {
                    if let Some(s) = slot(property, &kept)? {
                        slots.push((field.clone(), s));
                    }
                }
            }
            if !slots.is_empty() {
                slots.sort_by(|a, b| a.0.cmp(&b.0));
                fields.insert(name.clone(), slots);
            }
        }
        let now: BTreeSet<String> = fields.keys().cloned().collect();
        if now == kept {
            return Ok(Types { fields });
        }
        kept = now;
    }
}

type Gvk = (String, String, String);

fn gvks(def: &Value) -> Vec<Gvk> {
    def.get("x-kubernetes-group-version-kind")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(gvk).collect())
        .unwrap_or_default()
}

fn gvk(v: &Value) -> Option<Gvk> {
    let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Some((field("group")?, field("version")?, field("kind")?))
}

/// Kinds with no `namespaces/{namespace}` path, judged as kyaml does: by each path's GET.
fn cluster_scoped(paths: &serde_json::Map<String, Value>) -> BTreeSet<Gvk> {
    let mut namespaced: BTreeMap<Gvk, bool> = BTreeMap::new();
    for (path, item) in paths {
        let Some(kind) = item
            .get("get")
            .and_then(|g| g.get("x-kubernetes-group-version-kind"))
            .and_then(gvk)
        else {
            continue;
        };
        let entry = namespaced.entry(kind).or_insert(false);
        *entry |= path.contains("namespaces/{namespace}");
    }
    let mut set: BTreeSet<Gvk> = namespaced.into_iter().filter(|(_, ns)| !ns).map(|(k, _)| k).collect();
    for (g, v, k) in LEGACY_CLUSTER_SCOPED {
        if !namespaced_in(paths, g, v, k) {
            set.insert(((*g).to_owned(), (*v).to_owned(), (*k).to_owned()));
        }
    }
    set
}

fn namespaced_in(paths: &serde_json::Map<String, Value>, group: &str, version: &str, kind: &str) -> bool {
    paths.iter().any(|(path, item)| {
        path.contains("namespaces/{namespace}")
            && item
                .get("get")
                .and_then(|g| g.get("x-kubernetes-group-version-kind"))
                .and_then(gvk)
                == Some((group.to_owned(), version.to_owned(), kind.to_owned()))
    })
}

/// `io.k8s.api.core.v1.PodSpec` becomes `CORE_V1_POD_SPEC`.
fn static_name(definition: &str) -> String {
    let parts: Vec<&str> = definition.split('.').collect();
    let tail = &parts[parts.len().saturating_sub(3)..];
    let mut out = String::new();
    for (i, part) in tail.iter().enumerate() {
        if i > 0 {
            out.push('_');
        }
        let chars: Vec<char> = part.chars().collect();
        for (j, c) in chars.iter().enumerate() {
            let next_lower = chars.get(j + 1).is_some_and(|n| n.is_lowercase());
            let prev_lower = j > 0 && (chars[j - 1].is_lowercase() || chars[j - 1].is_ascii_digit());
            if j > 0 && c.is_uppercase() && (prev_lower || next_lower) {
                out.push('_');
            }
            out.push(if c.is_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            });
        }
    }
    out
}

fn render(doc: &Value, source: &str) -> anyhow::Result<String> {
    let definitions = doc
        .get("definitions")
        .and_then(Value::as_object)
        .context("the document has no definitions")?;
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .context("the document has no paths")?;
    let mut types = merge_types(definitions)?;
    let mut kinds: BTreeMap<Gvk, String> = BTreeMap::new();
    for def in types.fields.keys() {
        for g in gvks(&definitions[def]) {
            if let Some(previous) = kinds.insert(g.clone(), def.clone()) {
                bail!("{g:?} is declared by both {previous} and {def}");
            }
        }
    }
    types.keep_reachable(kinds.values());

    let mut names = BTreeMap::new();
    for def in types.fields.keys() {
        let name = static_name(def);
        if let Some(other) = names.values().find(|n: &&String| **n == name) {
            bail!("{def} and another definition both map to {other}");
        }
        names.insert(def.clone(), name);
    }

    let mut out = String::new();
    writeln!(out, "//! Generated by `cargo xtask kustomize-schema`; do not edit.")?;
    writeln!(out, "//! Source: {source}.")?;
    writeln!(
        out,
        "//! Object types that lead to strategic-merge lists, the built-in kinds that use them, and the"
    )?;
    writeln!(out, "//! cluster-scoped kinds.")?;
    writeln!(out)?;
    writeln!(out, "use super::{{Field, Type, merge_list}};")?;
    writeln!(out)?;
    writeln!(out, "/// Built-in kinds by group, version and kind, sorted.")?;
    writeln!(out, "pub(super) static KINDS: &[(&str, &str, &str, &Type)] = &[")?;
    for ((g, v, k), def) in &kinds {
        writeln!(out, "({g:?}, {v:?}, {k:?}, &{}),", names[def])?;
    }
    writeln!(out, "];")?;
    writeln!(out)?;
    writeln!(
        out,
        "/// Kinds whose objects have no namespace, by group, version and kind, sorted."
    )?;
    writeln!(out, "pub(super) static CLUSTER_SCOPED: &[(&str, &str, &str)] = &[")?;
    for (g, v, k) in cluster_scoped(paths) {
        writeln!(out, "({g:?}, {v:?}, {k:?}),")?;
    }
    writeln!(out, "];")?;
    for (def, fields) in &types.fields {
        writeln!(out)?;
        writeln!(out, "static {}: Type = Type {{ fields: &[", names[def])?;
        for (field, slot) in fields {
            let value = match slot {
                Slot::Object(t) => format!("Field::Object(&{})", names[t]),
                Slot::MapOf(t) => format!("Field::MapOf(&{})", names[t]),
                Slot::MergeList { keys, items } => {
                    let items = items
                        .as_ref()
                        .map_or("None".to_owned(), |t| format!("Some(&{})", names[t]));
                    format!("merge_list(&{keys:?}, {items})")
                }
            };
            writeln!(out, "({field:?}, {value}),")?;
        }
        writeln!(out, "] }};")?;
    }
    Ok(out)
}

/// Formats with the workspace's rustfmt settings, so the table passes `cargo fmt --check`.
fn rustfmt(source: &str) -> anyhow::Result<String> {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rustfmt.toml");
    let mut child = Command::new("rustfmt")
        .arg("--edition=2024")
        .arg("--config-path")
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running rustfmt")?;
    child
        .stdin
        .take()
        .context("rustfmt has no stdin")?
        .write_all(source.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("rustfmt failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}
