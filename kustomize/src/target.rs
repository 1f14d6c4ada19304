//! The build: one kustomization, its bases and components, generators and transformers, in
//! the order kustomize runs them.

use std::path::Path;

use serde_json::Value;

use crate::Options;
use crate::builtin::TransformerConfig;
use crate::error::{Context, Error, Result, bail};
use crate::fsys::{self, Loader};
use crate::kustfile::{FILE_NAMES, Kustomization, Label};
use crate::resource::{ResMap, Resource};
use crate::transformers::{
    AnnotationsTransformer, ImageTagTransformer, LabelTransformer, NamespaceMeta, NamespaceTransformer,
    PrefixSuffixTransformer, ReplicaCountTransformer,
};
use crate::vars::VarSet;
use crate::{generators, nameref, patches, plugins, replacements, sort, yaml};

const ORIGIN_ANNOTATION: &str = "config.kubernetes.io/origin";
const LOCAL_CONFIG_ANNOTATION: &str = "config.kubernetes.io/local-config";
const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// What a kustomization has gathered so far: resources, field-spec tables and vars.
#[derive(Default)]
pub(crate) struct Accumulator {
    pub rm: ResMap,
    pub config: Option<TransformerConfig>,
    pub vars: VarSet,
}

impl Accumulator {
    fn config(&mut self) -> &mut TransformerConfig {
        self.config.get_or_insert_with(TransformerConfig::builtin)
    }

    fn merge(&mut self, other: Accumulator) -> Result<()> {
        self.rm.append_all(other.rm)?;
        if let Some(config) = other.config {
            self.config().merge(config)?;
        }
        self.vars.absorb(other.vars)
    }
}

/// How the top-level kustomization asked for its output to be annotated.
#[derive(Clone, Copy, Default)]
struct BuildMetadata {
    origin: bool,
}

pub fn build(dir: &Path, options: &Options) -> Result<ResMap> {
    let root = options.root.as_deref().unwrap_or(dir);
    let ldr = Loader::with_remote(root, dir, &options.limits, options.remote.clone())?;
    let kust = if options.implicit_kustomization && !has_kustomization(&ldr) {
        implicit_kustomization(&ldr)?
    } else {
        load_kustomization(&ldr)?
    };
    let file = kustomization_display(&ldr);
    let meta = BuildMetadata {
        origin: kust.build_metadata.iter().any(|m| m == "originAnnotations"),
    };
    for option in &kust.build_metadata {
        if !["originAnnotations", "transformerAnnotations", "managedByLabel"].contains(&option.as_str()) {
            return Err(Error::new(format!("unknown buildMetadata option '{option}'"))).in_file(file);
        }
    }
    if kust.kind == "Component" {
        return Err(Error::new(
            "a Component can only be used from another kustomization's components",
        ))
        .in_file(file);
    }
    let mut acc = accumulate(&ldr, &kust, Accumulator::default(), meta, "")?;
    let config = acc.config.take().unwrap_or_else(TransformerConfig::builtin);
    generators::add_hash_suffixes(&mut acc.rm).in_file(&file)?;
    nameref::fix_back_references(&mut acc.rm, &config).in_file(&file)?;
    acc.vars.resolve(&mut acc.rm, &config).in_file(&file).in_field("vars")?;
    acc.rm.resources_mut().retain(|r| {
        r.annotations()
            .get(LOCAL_CONFIG_ANNOTATION)
            .is_none_or(|v| v == "false")
    });
    sort::sort(&mut acc.rm, kust.sort_options.as_ref())
        .in_file(&file)
        .in_field("sortOptions")?;
    if kust.build_metadata.iter().any(|m| m == "managedByLabel") {
        let managed = LabelTransformer {
            labels: [(
                MANAGED_BY_LABEL.to_owned(),
                format!("eddy-v{}", env!("CARGO_PKG_VERSION")),
            )]
            .into(),
            field_specs: vec![crate::fieldspec::FieldSpec {
                path: "metadata/labels".into(),
                create: true,
                ..Default::default()
            }],
        };
        managed.transform(&mut acc.rm)?;
    }
    if !meta.origin {
        for r in acc.rm.iter_mut() {
            r.set_annotation(ORIGIN_ANNOTATION, None);
        }
    }
    Ok(acc.rm)
}

fn kustomization_display(ldr: &Loader) -> String {
    FILE_NAMES
        .iter()
        .map(|name| ldr.dir().join(name))
        .find(|p| p.is_file())
        .map(|p| ldr.display(&p))
        .unwrap_or_else(|| ldr.display_dir())
}

fn has_kustomization(ldr: &Loader) -> bool {
    FILE_NAMES.iter().any(|name| ldr.dir().join(name).is_file())
}

/// Flux's rule for a path without a kustomization: every `.yaml`/`.yml` manifest under it, and
/// every subdirectory holding a kustomization as a base, in path order.
fn implicit_kustomization(ldr: &Loader) -> Result<Kustomization> {
    fn walk(ldr: &Loader, dir: &Path, out: &mut Vec<String>) -> Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| Error::new(format!("{}: {e}", ldr.display(dir))))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            let rel = path.strip_prefix(ldr.dir()).unwrap_or(&path).display().to_string();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::new(format!("{rel}: {e}")))?;
            if meta.is_dir() {
                if FILE_NAMES.iter().any(|name| path.join(name).is_file()) {
                    out.push(rel);
                } else {
                    walk(ldr, &path, out)?;
                }
            } else if meta.is_file() && (rel.ends_with(".yaml") || rel.ends_with(".yml")) {
                let (display, text) = ldr.read(&rel)?;
                resources_from_text(&text, ldr)
                    .map_err(|e| Error::new(format!("not a Kubernetes manifest: {}", e.message)).in_file(display))?;
                out.push(rel);
            }
        }
        Ok(())
    }
    let mut resources = Vec::new();
    walk(ldr, ldr.dir(), &mut resources)?;
    Ok(Kustomization {
        resources,
        kind: "Kustomization".into(),
        ..Default::default()
    })
}

/// Reads the one kustomization file in the loader's directory.
fn load_kustomization(ldr: &Loader) -> Result<Kustomization> {
    let found: Vec<&str> = FILE_NAMES
        .iter()
        .copied()
        .filter(|name| ldr.dir().join(name).is_file())
        .collect();
    let name = match found.as_slice() {
        [] => bail!(
            "unable to find one of 'kustomization.yaml', 'kustomization.yml' or 'Kustomization' in directory '{}'",
            ldr.display_dir()
        ),
        [one] => *one,
        _ => bail!(
            "found multiple kustomization files in directory '{}'",
            ldr.display_dir()
        ),
    };
    let (display, text) = ldr.read(name)?;
    Kustomization::parse(&text, ldr.limits()).in_file(display)
}

/// kustomize's accumulateTarget: resources, configurations, generators, components,
/// transformers, vars. `acc` already holds what a parent gathered when this is a component.
fn accumulate(
    ldr: &Loader,
    kust: &Kustomization,
    mut acc: Accumulator,
    meta: BuildMetadata,
    origin: &str,
) -> Result<Accumulator> {
    ldr.check_deadline()?;
    let file = kustomization_display(ldr);
    for (i, entry) in kust.resources.iter().enumerate() {
        accumulate_resource(ldr, entry, &mut acc, meta, origin)
            .in_file(&file)
            .in_field(format!("resources[{i}] '{entry}'"))?;
    }
    if !kust.crds.is_empty() {
        return Err(Error::new(
            "the 'crds' field is not supported; use 'configurations' for custom resource field specs",
        ))
        .in_file(&file);
    }
    let config = TransformerConfig::load(&kust.configurations, ldr)
        .in_file(&file)
        .in_field("configurations")?;
    acc.config().merge(config).in_file(&file).in_field("configurations")?;

    run_generators(ldr, kust, &mut acc).in_file(&file)?;

    for (i, entry) in kust.components.iter().enumerate() {
        let field = format!("components[{i}] '{entry}'");
        let child = ldr.child(entry).in_file(&file).in_field(&field)?;
        let sub = load_kustomization(&child).in_field(&field)?;
        if sub.kind != "Component" {
            return Err(Error::new(format!(
                "expected kind 'Component' for '{entry}' but got '{}'",
                sub.kind
            )))
            .in_file(&file)
            .in_field(&field);
        }
        acc = accumulate(&child, &sub, acc, meta, &join_origin(origin, entry))?;
    }

    run_transformers(ldr, kust, &mut acc).in_file(&file)?;
    if !kust.validators.is_empty() {
        return Err(Error::new("validators are plugins, which Eddy does not run"))
            .in_file(&file)
            .in_field("validators");
    }
    acc.vars
        .merge(&kust.vars, &mut acc.rm)
        .in_file(&file)
        .in_field("vars")?;
    Ok(acc)
}

fn join_origin(origin: &str, entry: &str) -> String {
    if origin.is_empty() {
        entry.to_owned()
    } else {
        fsys::clean(&Path::new(origin).join(entry)).display().to_string()
    }
}

/// One `resources` entry: a file of manifests, a directory with a kustomization, or a remote base.
fn accumulate_resource(
    ldr: &Loader,
    entry: &str,
    acc: &mut Accumulator,
    meta: BuildMetadata,
    origin: &str,
) -> Result<()> {
    let remote = fsys::is_remote(entry);
    if remote || ldr.is_dir(entry) {
        let child = if remote {
            ldr.remote_child(entry)?
        } else {
            ldr.child(entry)?
        };
        let sub = load_kustomization(&child)?;
        if sub.kind == "Component" {
            bail!("'{entry}' is a Component; list it under 'components'");
        }
        let sub_acc = accumulate(&child, &sub, Accumulator::default(), meta, &join_origin(origin, entry))?;
        return acc.merge(sub_acc);
    }
    let (display, text) = ldr.read(entry)?;
    let resources = resources_from_text(&text, ldr).in_file(&display)?;
    for mut r in resources {
        if meta.origin {
            r.set_annotation(
                ORIGIN_ANNOTATION,
                Some(&format!("path: {}\n", join_origin(origin, entry))),
            );
        }
        r.origin = Some(display.clone());
        acc.rm.append(r).in_file(&display)?;
    }
    Ok(())
}

/// Parses a manifest file: documents in order, `*List` kinds expanded after the other documents
/// (kustomize appends list items to the end of the queue).
pub(crate) fn resources_from_text(text: &str, ldr: &Loader) -> Result<Vec<Resource>> {
    let mut queue: std::collections::VecDeque<Value> = yaml::parse_documents(text, ldr.limits())?.into();
    let mut out = Vec::new();
    while let Some(doc) = queue.pop_front() {
        let Value::Object(obj) = doc else {
            bail!("expected a map (a Kubernetes object), found {}", short(&doc));
        };
        if let Some(path) = null_in_list(&Value::Object(obj.clone()), String::new()) {
            bail!("empty item at {path} in object {}", short(&Value::Object(obj)));
        }
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        if kind.ends_with("List") {
            if let Some(items) = obj.get("items") {
                match items {
                    Value::Array(items) => {
                        queue.extend(items.iter().cloned());
                        continue;
                    }
                    Value::Null => continue,
                    _ => bail!("expected a list in {kind}/items"),
                }
            }
        }
        out.push(Resource::from_object(obj)?);
    }
    Ok(out)
}

fn short(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default().chars().take(120).collect()
}

fn null_in_list(v: &Value, path: String) -> Option<String> {
    match v {
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            if item.is_null() {
                Some(format!("{path}[{i}]"))
            } else {
                null_in_list(item, format!("{path}[{i}]"))
            }
        }),
        Value::Object(map) => map.iter().find_map(|(k, v)| null_in_list(v, format!("{path}.{k}"))),
        _ => None,
    }
}

fn run_generators(ldr: &Loader, kust: &Kustomization, acc: &mut Accumulator) -> Result<()> {
    let global = kust.generator_options.as_ref();
    for (i, args) in kust.config_map_generator.iter().enumerate() {
        let field = format!("configMapGenerator[{i}]");
        let cm = generators::config_map(args, global, ldr).in_field(&field)?;
        generators::absorb(&mut acc.rm, cm).in_field(&field)?;
    }
    for (i, args) in kust.secret_generator.iter().enumerate() {
        let field = format!("secretGenerator[{i}]");
        let secret = generators::secret(args, global, ldr).in_field(&field)?;
        generators::absorb(&mut acc.rm, secret).in_field(&field)?;
    }
    for (i, entry) in kust.generators.iter().enumerate() {
        let field = format!("generators[{i}]");
        for config in plugins::load_configs(entry, ldr).in_field(&field)? {
            plugins::generate(&config, &mut acc.rm, ldr).in_field(&field)?;
        }
    }
    Ok(())
}

/// The builtin transformers in kustomize's order, then those listed under `transformers`.
fn run_transformers(ldr: &Loader, kust: &Kustomization, acc: &mut Accumulator) -> Result<()> {
    let config = acc.config().clone();
    let rm = &mut acc.rm;
    if !kust.patches_strategic_merge.is_empty() {
        patches::patches_strategic_merge(rm, &kust.patches_strategic_merge, ldr)?;
    }
    for (i, p) in kust.patches.iter().enumerate() {
        patches::patch(rm, p, ldr).in_field(format!("patches[{i}]"))?;
    }
    if !kust.namespace.is_empty() {
        let t = NamespaceTransformer {
            metadata: NamespaceMeta {
                namespace: kust.namespace.clone(),
            },
            field_specs: config.namespace.clone(),
            ..Default::default()
        };
        t.transform(rm).in_field("namespace")?;
    }
    if !kust.name_prefix.is_empty() {
        let t = PrefixSuffixTransformer {
            prefix: kust.name_prefix.clone(),
            field_specs: config.name_prefix.clone(),
            ..Default::default()
        };
        t.transform(rm).in_field("namePrefix")?;
    }
    if !kust.name_suffix.is_empty() {
        let t = PrefixSuffixTransformer {
            suffix: kust.name_suffix.clone(),
            field_specs: config.name_suffix.clone(),
            ..Default::default()
        };
        t.transform(rm).in_field("nameSuffix")?;
    }
    for (i, label) in kust.labels.iter().enumerate() {
        label_transformer(label, &config)
            .transform(rm)
            .in_field(format!("labels[{i}]"))?;
    }
    if !kust.common_labels.is_empty() {
        let t = LabelTransformer {
            labels: kust.common_labels.clone(),
            field_specs: config.common_labels.clone(),
        };
        t.transform(rm).in_field("commonLabels")?;
    }
    if !kust.common_annotations.is_empty() {
        let t = AnnotationsTransformer {
            annotations: kust.common_annotations.clone(),
            field_specs: config.common_annotations.clone(),
        };
        t.transform(rm).in_field("commonAnnotations")?;
    }
    for (i, p) in kust.patches_json6902.iter().enumerate() {
        patches::patch_json6902(rm, p, ldr).in_field(format!("patchesJson6902[{i}]"))?;
    }
    for (i, replica) in kust.replicas.iter().enumerate() {
        let t = ReplicaCountTransformer {
            replica: replica.clone(),
            field_specs: config.replicas.clone(),
        };
        t.transform(rm).in_field(format!("replicas[{i}]"))?;
    }
    for (i, image) in kust.images.iter().enumerate() {
        let t = ImageTagTransformer {
            image_tag: image.clone(),
            field_specs: config.images.clone(),
        };
        t.transform(rm).in_field(format!("images[{i}]"))?;
    }
    if !kust.replacements.is_empty() {
        let t = replacements::ReplacementTransformer {
            replacements: kust.replacements.clone(),
        };
        t.transform(rm, ldr).in_field("replacements")?;
    }
    for (i, entry) in kust.transformers.iter().enumerate() {
        let field = format!("transformers[{i}]");
        for c in plugins::load_configs(entry, ldr).in_field(&field)? {
            plugins::transform(&c, rm, ldr).in_field(&field)?;
        }
    }
    Ok(())
}

/// The field specs one `labels` entry touches, as kustomize assembles them.
fn label_transformer(label: &Label, config: &TransformerConfig) -> LabelTransformer {
    let mut specs = label.fields.clone();
    let mut add = |more: &[crate::fieldspec::FieldSpec]| {
        for spec in more {
            if !specs.contains(spec) {
                specs.push(spec.clone());
            }
        }
    };
    add(&config.labels);
    if label.include_selectors {
        add(&config.common_labels);
    } else {
        if label.include_templates {
            add(&config.template_labels);
        }
        add(&[crate::fieldspec::FieldSpec {
            path: "metadata/labels".into(),
            create: true,
            ..Default::default()
        }]);
    }
    LabelTransformer {
        labels: label.pairs.clone(),
        field_specs: specs,
    }
}

/// The resources of a directory of plugin configs (a kustomization listed under
/// `transformers` or `generators`), built without the top-level steps.
pub(crate) fn build_configs(ldr: &Loader) -> Result<ResMap> {
    let kust = load_kustomization(ldr)?;
    let acc = accumulate(ldr, &kust, Accumulator::default(), BuildMetadata::default(), "")?;
    Ok(acc.rm)
}
