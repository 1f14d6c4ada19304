//! kustomize's built-in field-spec tables (what `namePrefix`, `commonLabels`, `images`... touch,
//! and where objects refer to each other by name), and `configurations` files that extend them.
//! The tables are kustomize v5.5's defaults; the pipeline merges them with each
//! kustomization's `configurations` and with its bases' configs.

use std::cmp::Ordering;

use serde::Deserialize;

use crate::error::{Context, Error, Result};
use crate::fieldspec::FieldSpec;
use crate::fsys::Loader;
use crate::resource::Gvk;

/// One referenced kind and the fields of other kinds that name it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NameBackRefs {
    #[serde(flatten)]
    pub gvk: GvkSpec,
    #[serde(default)]
    pub field_specs: Vec<FieldSpec>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct GvkSpec {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

impl GvkSpec {
    pub fn gvk(&self) -> Gvk {
        Gvk::new(&self.group, &self.version, &self.kind)
    }
}

/// The field-spec tables every transformer reads.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransformerConfig {
    #[serde(default)]
    pub name_prefix: Vec<FieldSpec>,
    #[serde(default)]
    pub name_suffix: Vec<FieldSpec>,
    #[serde(default)]
    pub namespace: Vec<FieldSpec>,
    #[serde(default)]
    pub common_labels: Vec<FieldSpec>,
    #[serde(default)]
    pub template_labels: Vec<FieldSpec>,
    #[serde(default)]
    pub labels: Vec<FieldSpec>,
    #[serde(default)]
    pub common_annotations: Vec<FieldSpec>,
    #[serde(default)]
    pub name_reference: Vec<NameBackRefs>,
    #[serde(default)]
    pub var_reference: Vec<FieldSpec>,
    #[serde(default)]
    pub images: Vec<FieldSpec>,
    #[serde(default)]
    pub replicas: Vec<FieldSpec>,
}

impl TransformerConfig {
    /// kustomize's defaults.
    pub fn builtin() -> Self {
        let mut config = Self {
            name_prefix: vec![FieldSpec::new("", "", "", "metadata/name", false)],
            name_suffix: vec![FieldSpec::new("", "", "", "metadata/name", false)],
            namespace: table(NAMESPACE),
            common_labels: table(COMMON_LABEL_SELECTORS)
                .into_iter()
                .chain(table(METADATA_LABELS))
                .collect(),
            template_labels: table(METADATA_LABELS),
            labels: Vec::new(),
            common_annotations: table(COMMON_ANNOTATIONS),
            name_reference: crate::nameref::default_name_references(),
            var_reference: var_reference_table(),
            images: table(IMAGES),
            replicas: table(REPLICAS),
        };
        config.sort();
        config
    }

    pub fn for_kustomization(files: &[String], ldr: &Loader) -> Result<Self> {
        let mut config = Self::builtin();
        if !files.is_empty() {
            config.merge(Self::load(files, ldr)?)?;
        }
        Ok(config)
    }

    /// Adds another config's specs (from `configurations`, a base or CRDs). A spec already
    /// present for the same path and kinds is dropped; one that differs only in `create` is
    /// an error, as in kustomize. Each table ends up in kustomize's kind order.
    pub fn merge(&mut self, other: TransformerConfig) -> Result<()> {
        let tables = [
            (&mut self.name_prefix, other.name_prefix, "NamePrefix"),
            (&mut self.name_suffix, other.name_suffix, "NameSuffix"),
            (&mut self.namespace, other.namespace, "NameSpace"),
            (
                &mut self.common_annotations,
                other.common_annotations,
                "CommonAnnotations",
            ),
            (&mut self.common_labels, other.common_labels, "CommonLabels"),
            (&mut self.labels, other.labels, "Labels"),
            (&mut self.template_labels, other.template_labels, "TemplateLabels"),
            (&mut self.var_reference, other.var_reference, "VarReference"),
        ];
        for (into, incoming, table) in tables {
            merge_specs(into, incoming).map_err(|e| in_table(e, table))?;
        }
        for incoming in other.name_reference {
            let target = incoming.gvk.gvk();
            match self.name_reference.iter_mut().find(|r| r.gvk.gvk() == target) {
                Some(existing) => merge_specs(&mut existing.field_specs, incoming.field_specs)
                    .map_err(|e| in_table(e, "NameReference"))?,
                None => self.name_reference.push(incoming),
            }
        }
        merge_specs(&mut self.images, other.images).map_err(|e| in_table(e, "Images"))?;
        merge_specs(&mut self.replicas, other.replicas).map_err(|e| in_table(e, "Replicas"))?;
        self.sort();
        Ok(())
    }

    /// Reads the files listed under `configurations`, merged in order (without the defaults).
    pub fn load(files: &[String], ldr: &Loader) -> Result<Self> {
        let mut result = Self::default();
        for (i, file) in files.iter().enumerate() {
            let field = format!("configurations[{i}]");
            let (display, text) = ldr.read(file).in_field(field.clone())?;
            let config = Self::parse(&text, ldr.limits()).in_file(display).in_field(field)?;
            result.merge(config)?;
        }
        Ok(result)
    }

    /// Parses one `configurations` file; unknown fields are errors.
    pub fn parse(text: &str, limits: &crate::Limits) -> Result<Self> {
        let value = crate::yaml::parse_document(text, limits)?;
        let mut config: Self = if value.is_null() {
            Self::default()
        } else {
            serde_json::from_value(value).map_err(|e| Error::new(format!("invalid transformer configuration: {e}")))?
        };
        config.sort();
        Ok(config)
    }

    fn sort(&mut self) {
        for specs in [
            &mut self.name_prefix,
            &mut self.name_suffix,
            &mut self.namespace,
            &mut self.common_labels,
            &mut self.labels,
            &mut self.template_labels,
            &mut self.common_annotations,
            &mut self.var_reference,
            &mut self.images,
            &mut self.replicas,
        ] {
            specs.sort_by(|a, b| gvk_order(&a.gvk(), &b.gvk()));
        }
        self.name_reference
            .sort_by(|a, b| gvk_order(&a.gvk.gvk(), &b.gvk.gvk()));
    }
}

/// kustomize's MergeAll: adds each incoming spec unless one for the same field is present;
/// one that differs only in `create` is a "conflicting fieldspecs" error.
pub fn merge_specs(into: &mut Vec<FieldSpec>, incoming: Vec<FieldSpec>) -> Result<()> {
    for spec in incoming {
        match into.iter().find(|existing| existing.same_field_as(&spec)) {
            Some(existing) if existing.create != spec.create => {
                return Err(Error::new("conflicting fieldspecs"));
            }
            Some(_) => {}
            None => into.push(spec),
        }
    }
    Ok(())
}

fn in_table(e: Error, table: &str) -> Error {
    Error {
        message: format!("failed to merge {table} fieldSpec: {}", e.message),
        ..e
    }
}

/// kustomize's ordering of kinds in its tables: a few well-known kinds first and last, then by
/// group, version and kind. The sort is stable, so equal kinds keep their table order.
fn gvk_order(a: &Gvk, b: &Gvk) -> Ordering {
    kind_rank(&a.kind)
        .cmp(&kind_rank(&b.kind))
        .then_with(|| sort_key(a).cmp(&sort_key(b)))
}

fn kind_rank(kind: &str) -> i32 {
    use crate::sort::{ORDER_FIRST as FIRST, ORDER_LAST as LAST};
    if let Some(i) = FIRST.iter().position(|k| *k == kind) {
        i as i32 - FIRST.len() as i32
    } else if let Some(i) = LAST.iter().position(|k| *k == kind) {
        i as i32 + 1
    } else {
        0
    }
}

fn sort_key(gvk: &Gvk) -> String {
    let or = |s: &str, empty: &str| if s.is_empty() { empty.to_owned() } else { s.to_owned() };
    format!(
        "{}_{}_{}",
        or(&gvk.group, "~G"),
        or(&gvk.version, "~V"),
        or(&gvk.kind, "~K")
    )
}

/// A table row: group, version, kind, path, create.
type Row = (&'static str, &'static str, &'static str, &'static str, bool);

fn table(rows: &[Row]) -> Vec<FieldSpec> {
    rows.iter()
        .map(|(g, v, k, path, create)| FieldSpec::new(g, v, k, path, *create))
        .collect()
}

const NAMESPACE: &[Row] = &[
    ("", "", "Namespace", "metadata/name", true),
    (
        "apiregistration.k8s.io",
        "",
        "APIService",
        "spec/service/namespace",
        true,
    ),
    (
        "apiextensions.k8s.io",
        "",
        "CustomResourceDefinition",
        "spec/conversion/webhook/clientConfig/service/namespace",
        false,
    ),
];

/// Selectors `commonLabels` (and `labels` with `includeSelectors`) write to; the metadata
/// and template tables follow them.
const COMMON_LABEL_SELECTORS: &[Row] = &[
    ("", "v1", "Service", "spec/selector", true),
    ("", "v1", "ReplicationController", "spec/selector", true),
    ("", "", "Deployment", "spec/selector/matchLabels", true),
    ("apps", "", "Deployment", AFFINITY_PREFERRED, false),
    ("apps", "", "Deployment", AFFINITY_REQUIRED, false),
    ("apps", "", "Deployment", ANTI_AFFINITY_PREFERRED, false),
    ("apps", "", "Deployment", ANTI_AFFINITY_REQUIRED, false),
    ("apps", "", "Deployment", TOPOLOGY_SPREAD, false),
    ("", "", "ReplicaSet", "spec/selector/matchLabels", true),
    ("", "", "DaemonSet", "spec/selector/matchLabels", true),
    ("apps", "", "StatefulSet", "spec/selector/matchLabels", true),
    ("apps", "", "StatefulSet", AFFINITY_PREFERRED, false),
    ("apps", "", "StatefulSet", AFFINITY_REQUIRED, false),
    ("apps", "", "StatefulSet", ANTI_AFFINITY_PREFERRED, false),
    ("apps", "", "StatefulSet", ANTI_AFFINITY_REQUIRED, false),
    ("apps", "", "StatefulSet", TOPOLOGY_SPREAD, false),
    ("batch", "", "Job", "spec/selector/matchLabels", false),
    (
        "batch",
        "",
        "CronJob",
        "spec/jobTemplate/spec/selector/matchLabels",
        false,
    ),
    ("policy", "", "PodDisruptionBudget", "spec/selector/matchLabels", false),
    (
        "networking.k8s.io",
        "",
        "NetworkPolicy",
        "spec/podSelector/matchLabels",
        false,
    ),
    (
        "networking.k8s.io",
        "",
        "NetworkPolicy",
        "spec/ingress/from/podSelector/matchLabels",
        false,
    ),
    (
        "networking.k8s.io",
        "",
        "NetworkPolicy",
        "spec/egress/to/podSelector/matchLabels",
        false,
    ),
];

const AFFINITY_PREFERRED: &str = "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels";
const AFFINITY_REQUIRED: &str =
    "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels";
const ANTI_AFFINITY_PREFERRED: &str = "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels";
const ANTI_AFFINITY_REQUIRED: &str = "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels";
const TOPOLOGY_SPREAD: &str = "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels";

/// Object and pod-template labels: `templateLabels`, and the tail of `commonLabels`.
const METADATA_LABELS: &[Row] = &[
    ("", "", "", "metadata/labels", true),
    ("", "v1", "ReplicationController", "spec/template/metadata/labels", true),
    ("", "", "Deployment", "spec/template/metadata/labels", true),
    ("", "", "ReplicaSet", "spec/template/metadata/labels", true),
    ("", "", "DaemonSet", "spec/template/metadata/labels", true),
    ("apps", "", "StatefulSet", "spec/template/metadata/labels", true),
    (
        "apps",
        "",
        "StatefulSet",
        "spec/volumeClaimTemplates[]/metadata/labels",
        true,
    ),
    ("batch", "", "Job", "spec/template/metadata/labels", true),
    ("batch", "", "CronJob", "spec/jobTemplate/metadata/labels", true),
    (
        "batch",
        "",
        "CronJob",
        "spec/jobTemplate/spec/template/metadata/labels",
        true,
    ),
];

const COMMON_ANNOTATIONS: &[Row] = &[
    ("", "", "", "metadata/annotations", true),
    (
        "",
        "v1",
        "ReplicationController",
        "spec/template/metadata/annotations",
        true,
    ),
    ("", "", "Deployment", "spec/template/metadata/annotations", true),
    ("", "", "ReplicaSet", "spec/template/metadata/annotations", true),
    ("", "", "DaemonSet", "spec/template/metadata/annotations", true),
    ("", "", "StatefulSet", "spec/template/metadata/annotations", true),
    ("batch", "", "Job", "spec/template/metadata/annotations", true),
    ("batch", "", "CronJob", "spec/jobTemplate/metadata/annotations", true),
    (
        "batch",
        "",
        "CronJob",
        "spec/jobTemplate/spec/template/metadata/annotations",
        true,
    ),
];

const IMAGES: &[Row] = &[
    ("", "", "", "spec/containers[]/image", true),
    ("", "", "", "spec/initContainers[]/image", true),
    ("", "", "", "spec/template/spec/containers[]/image", true),
    ("", "", "", "spec/template/spec/initContainers[]/image", true),
];

const REPLICAS: &[Row] = &[
    ("", "", "Deployment", "spec/replicas", true),
    ("", "", "ReplicationController", "spec/replicas", true),
    ("", "", "ReplicaSet", "spec/replicas", true),
    ("", "", "StatefulSet", "spec/replicas", true),
];

/// Where `$(VAR)` references are expanded. Workload kinds share the container fields under
/// their pod spec; kustomize's table has a few irregular rows, kept as they are.
fn var_reference_table() -> Vec<FieldSpec> {
    const CONTAINER_FIELDS: [&str; 4] = ["args", "command", "env/value", "volumeMounts/mountPath"];
    let pod_fields = |kind: &str, pod_spec: &str, nfs: &str| {
        let mut specs = Vec::new();
        for list in ["containers", "initContainers"] {
            for field in CONTAINER_FIELDS {
                let path = format!("{pod_spec}/{list}/{field}");
                specs.push(FieldSpec::new("", "", kind, &path, false));
            }
        }
        specs.push(FieldSpec::new("", "", kind, nfs, false));
        specs
    };
    let mut specs = Vec::new();
    specs.extend(pod_fields(
        "CronJob",
        "spec/jobTemplate/spec/template/spec",
        // Sic: kustomize's table lacks the pod `spec/` here.
        "spec/jobTemplate/spec/template/volumes/nfs/server",
    ));
    specs.extend(pod_fields(
        "DaemonSet",
        "spec/template/spec",
        "spec/template/spec/volumes/nfs/server",
    ));
    specs.extend(pod_fields(
        "Deployment",
        "spec/template/spec",
        "spec/template/spec/volumes/nfs/server",
    ));
    specs.push(FieldSpec::new(
        "",
        "",
        "Deployment",
        "spec/template/metadata/annotations",
        false,
    ));
    for path in ["spec/rules/host", "spec/tls/hosts", "spec/tls/secretName"] {
        specs.push(FieldSpec::new("", "", "Ingress", path, false));
    }
    specs.extend(pod_fields(
        "Job",
        "spec/template/spec",
        "spec/template/spec/volumes/nfs/server",
    ));
    specs.extend(pod_fields("Pod", "spec", "spec/volumes/nfs/server"));
    specs.extend(pod_fields(
        "ReplicaSet",
        "spec/template/spec",
        "spec/template/spec/volumes/nfs/server",
    ));
    for path in ["spec/ports/port", "spec/ports/targetPort"] {
        specs.push(FieldSpec::new("", "", "Service", path, false));
    }
    specs.extend(pod_fields(
        "StatefulSet",
        "spec/template/spec",
        "spec/volumeClaimTemplates/spec/nfs/server",
    ));
    specs.push(FieldSpec::new("", "", "PersistentVolume", "spec/nfs/server", false));
    specs.push(FieldSpec::new("", "", "", "metadata/labels", false));
    specs.push(FieldSpec::new("", "", "", "metadata/annotations", false));
    specs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(specs: &[FieldSpec]) -> Vec<String> {
        specs
            .iter()
            .map(|s| format!("{}:{}:{}", s.kind, s.create, s.path))
            .collect()
    }

    #[test]
    fn defaults_have_kustomizes_table_sizes() {
        let c = TransformerConfig::builtin();
        assert_eq!(c.common_labels.len(), 32);
        assert_eq!(c.template_labels.len(), 10);
        assert_eq!(c.common_annotations.len(), 9);
        assert_eq!(c.namespace.len(), 3);
        assert_eq!(c.var_reference.len(), 72);
        assert_eq!(c.images.len(), 4);
    }

    #[test]
    fn replicas_table_is_in_kustomizes_kind_order() {
        // Order visible in the error for a replica that matches nothing.
        let c = TransformerConfig::builtin();
        let kinds: Vec<&str> = c.replicas.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"]
        );
    }

    #[test]
    fn merging_a_duplicate_is_a_no_op_and_a_new_kind_is_added() {
        let mut c = TransformerConfig::builtin();
        let before = c.common_labels.len();
        let extra: TransformerConfig = serde_json::from_value(serde_json::json!({
            "commonLabels": [
                {"path": "metadata/labels", "create": true},
                {"path": "spec/selector/matchLabels", "kind": "Thing", "create": true},
                {"path": "spec/selector/matchLabels", "kind": "Thing", "create": true}
            ]
        }))
        .unwrap();
        c.merge(extra).unwrap();
        assert_eq!(c.common_labels.len(), before + 1);
        assert!(paths(&c.common_labels).contains(&"Thing:true:spec/selector/matchLabels".to_owned()));
    }

    #[test]
    fn merging_a_spec_that_only_differs_in_create_is_a_conflict() {
        // kubectl kustomize: "failed to merge CommonLabels fieldSpec: conflicting fieldspecs"
        let mut c = TransformerConfig::builtin();
        let extra: TransformerConfig = serde_json::from_value(serde_json::json!({
            "commonLabels": [{"path": "spec/selector/matchLabels", "create": false}]
        }))
        .unwrap();
        let err = c.merge(extra).unwrap_err();
        assert_eq!(
            err.message,
            "failed to merge CommonLabels fieldSpec: conflicting fieldspecs"
        );
    }

    #[test]
    fn a_narrower_spec_is_kept_until_merged_again_where_it_conflicts() {
        // The first merge keeps `apps` Deployment apart from the group-less default; merging
        // that config into another (as for a base) finds the pair and fails, as kustomize does.
        let mut c = TransformerConfig::builtin();
        let extra: TransformerConfig = serde_json::from_value(serde_json::json!({
            "commonLabels": [{"path": "spec/selector/matchLabels", "kind": "Deployment",
                              "group": "apps", "create": false}]
        }))
        .unwrap();
        c.merge(extra).unwrap();
        let mut outer = TransformerConfig::default();
        assert!(outer.merge(c).is_err());
    }

    #[test]
    fn configuration_files_reject_unknown_fields() {
        let limits = crate::Limits::default();
        assert!(TransformerConfig::parse("bogus: 1\n", &limits).is_err());
        let c = TransformerConfig::parse("namePrefix:\n- path: spec/ref\n  kind: Thing\n", &limits).unwrap();
        assert_eq!(paths(&c.name_prefix), ["Thing:false:spec/ref"]);
    }

    #[test]
    fn configurations_merged_into_an_empty_accumulator_find_kind_specific_conflicts() {
        // kubectl kustomize with `commonLabels: [{path: metadata/labels, kind: Thing,
        // create: false}]` in a configurations file fails with "conflicting fieldspecs".
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cfg.yaml"),
            "commonLabels:\n- path: metadata/labels\n  kind: Thing\n  create: false\n",
        )
        .unwrap();
        let ldr = Loader::new(dir.path(), dir.path(), &crate::Limits::default()).unwrap();
        let own = TransformerConfig::for_kustomization(&["cfg.yaml".to_owned()], &ldr).unwrap();
        let err = TransformerConfig::default().merge(own).unwrap_err();
        assert_eq!(
            err.message,
            "failed to merge CommonLabels fieldSpec: conflicting fieldspecs"
        );
    }

    #[test]
    fn name_references_for_the_same_kind_are_merged() {
        let mut c = TransformerConfig::default();
        let a: TransformerConfig = serde_json::from_value(serde_json::json!({
            "nameReference": [{"kind": "Secret", "version": "v1",
                               "fieldSpecs": [{"path": "spec/a", "kind": "Thing"}]}]
        }))
        .unwrap();
        let b: TransformerConfig = serde_json::from_value(serde_json::json!({
            "nameReference": [{"kind": "Secret", "version": "v1",
                               "fieldSpecs": [{"path": "spec/b", "kind": "Thing"}]}]
        }))
        .unwrap();
        c.merge(a).unwrap();
        c.merge(b).unwrap();
        assert_eq!(c.name_reference.len(), 1);
        assert_eq!(c.name_reference[0].field_specs.len(), 2);
    }
}
