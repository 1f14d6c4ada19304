//! The build: one kustomization, its bases and components, generators and transformers, in
//! the order kustomize runs them.

use std::path::Path;

use serde_json::Value;

use crate::builtin::TransformerConfig;
use crate::error::{Context, Error, Result, bail};
use crate::fsys::{self, Loader};
use crate::kustfile::{FILE_NAMES, Kustomization};
use crate::resource::{ResMap, Resource};
use crate::transformers::{
    AnnotationsTransformer, ImageTagTransformer, LabelTransformer, NamespaceMeta, NamespaceTransformer,
    PrefixSuffixTransformer, ReplicaCountTransformer,
};
use crate::vars::VarSet;
use crate::{Options, Overlay};
use crate::{generators, nameref, patches, plugins, replacements, sort, yaml};

const ORIGIN_ANNOTATION: &str = "config.kubernetes.io/origin";
const TRANSFORMATIONS_ANNOTATION: &str = "alpha.config.kubernetes.io/transformations";
const LOCAL_CONFIG_ANNOTATION: &str = "config.kubernetes.io/local-config";
const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value `kubectl kustomize` writes; kept identical so selectors on it keep working.
const MANAGED_BY_VALUE: &str = "kustomize-(devel)";

/// What a kustomization has gathered so far: resources, field-spec tables and vars.
#[derive(Default)]
pub(crate) struct Accumulator {
    pub rm: ResMap,
    /// Starts empty; each kustomization merges the defaults plus its `configurations`.
    pub config: TransformerConfig,
    pub vars: VarSet,
}

impl Accumulator {
    fn merge(&mut self, other: Accumulator) -> Result<()> {
        self.rm.append_all(other.rm)?;
        self.config.merge(other.config)?;
        self.vars.absorb(other.vars)
    }
}

/// How the top-level kustomization asked for its output to be annotated. Any `buildMetadata`
/// turns on origin tracking for the whole build, bases included.
#[derive(Clone, Copy, Default)]
struct BuildMetadata {
    track: bool,
    origin: bool,
    transformations: bool,
}

/// Where a kustomization sits in the build, for `buildMetadata`.
struct Here<'a> {
    meta: BuildMetadata,
    /// Its directory relative to the top kustomization (empty at the top).
    origin: &'a str,
    /// Its file relative to the top kustomization.
    configured_in: String,
}

impl Here<'_> {
    /// Records a builtin step configured by this kustomization.
    fn record(&self, rm: &mut ResMap, kind: &str) {
        let by = ConfiguredBy {
            configured_in: self.configured_in.clone(),
            api_version: "builtin",
            kind,
            name: "",
        };
        record(rm, self.meta, &by);
    }

    /// The origin of a generator or transformer configured in a file of its own (or inline).
    fn plugin<'c>(&self, entry: &str, config: &'c Resource) -> ConfiguredBy<'c> {
        let configured_in = if entry.contains('\n') {
            self.configured_in.clone()
        } else {
            join_origin(self.origin, entry)
        };
        ConfiguredBy {
            configured_in,
            api_version: config.api_version(),
            kind: config.kind(),
            name: config.name(),
        }
    }
}

/// kustomize's Origin of a generated or transformed resource.
struct ConfiguredBy<'a> {
    configured_in: String,
    api_version: &'a str,
    kind: &'a str,
    name: &'a str,
}

impl ConfiguredBy<'_> {
    /// As YAML: `first` before the first line, `indent` before the others.
    fn to_yaml(&self, first: &str, indent: &str) -> String {
        let mut out = format!("{first}configuredIn: {}\n{indent}configuredBy:\n", self.configured_in);
        out.push_str(&format!(
            "{indent}  apiVersion: {}\n{indent}  kind: {}\n",
            self.api_version, self.kind
        ));
        if !self.name.is_empty() {
            out.push_str(&format!("{indent}  name: {}\n", self.name));
        }
        out
    }
}

/// Records that a generator made, or a transformer ran over, every resource in `rm`: a resource
/// without an origin gets this one, the others get it appended to their transformations.
fn record(rm: &mut ResMap, meta: BuildMetadata, by: &ConfiguredBy<'_>) {
    if !meta.track {
        return;
    }
    for r in rm.iter_mut() {
        let annotations = r.annotations();
        if annotations.contains_key(ORIGIN_ANNOTATION) {
            let mut list = annotations.get(TRANSFORMATIONS_ANNOTATION).cloned().unwrap_or_default();
            list.push_str(&by.to_yaml("- ", "  "));
            r.set_annotation(TRANSFORMATIONS_ANNOTATION, Some(&list));
        } else {
            r.set_annotation(ORIGIN_ANNOTATION, Some(&by.to_yaml("", "")));
        }
    }
}

pub fn build(dir: &Path, options: &Options) -> Result<ResMap> {
    let root = options.root.as_deref().unwrap_or(dir);
    let ldr = Loader::with_remote(root, dir, &options.limits, options.remote.clone())?;
    let mut kust = if options.implicit_kustomization && !has_kustomization(&ldr) {
        implicit_kustomization(&ldr)?
    } else {
        load_kustomization(&ldr)?
    };
    if let Some(overlay) = &options.overlay {
        amend(&mut kust, overlay);
    }
    let file = kustomization_display(&ldr);
    let has = |option: &str| kust.build_metadata.iter().any(|m| m == option);
    let meta = BuildMetadata {
        track: !kust.build_metadata.is_empty(),
        origin: has("originAnnotations"),
        transformations: has("transformerAnnotations"),
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
    let config = std::mem::take(&mut acc.config);
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
    if has("managedByLabel") {
        let managed = LabelTransformer {
            labels: [(MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned())].into(),
            field_specs: vec![crate::fieldspec::FieldSpec {
                path: "metadata/labels".into(),
                create: true,
                ..Default::default()
            }],
        };
        managed.transform(&mut acc.rm)?;
    }
    for r in acc.rm.iter_mut() {
        if !meta.origin {
            r.set_annotation(ORIGIN_ANNOTATION, None);
        }
        if !meta.transformations {
            r.set_annotation(TRANSFORMATIONS_ANNOTATION, None);
        }
    }
    Ok(acc.rm)
}

/// Applies a caller's [`Overlay`] to the top-level kustomization.
fn amend(kust: &mut Kustomization, overlay: &Overlay) {
    let set = |field: &mut String, value: &Option<String>| {
        if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
            field.clone_from(value);
        }
    };
    set(&mut kust.namespace, &overlay.namespace);
    set(&mut kust.name_prefix, &overlay.name_prefix);
    set(&mut kust.name_suffix, &overlay.name_suffix);
    kust.patches
        .extend(overlay.patches.iter().map(|p| crate::kustfile::Patch {
            patch: p.patch.clone(),
            target: p.target.clone(),
            ..Default::default()
        }));
    kust.images
        .extend(overlay.images.iter().map(|i| crate::transformers::Image {
            name: i.name.clone(),
            new_name: i.new_name.clone().unwrap_or_default(),
            new_tag: i.new_tag.clone().unwrap_or_default(),
            digest: i.digest.clone().unwrap_or_default(),
            ..Default::default()
        }));
    kust.components.extend(overlay.components.iter().cloned());
}

/// The resources of a directory of plugin configs (a kustomization listed under
/// `transformers` or `generators`), built without the top-level steps.
pub(crate) fn build_configs(ldr: &Loader) -> Result<ResMap> {
    let kust = load_kustomization(ldr)?;
    let acc = accumulate(ldr, &kust, Accumulator::default(), BuildMetadata::default(), "")?;
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
    let config = TransformerConfig::for_kustomization(&kust.configurations, ldr)
        .in_file(&file)
        .in_field("configurations")?;
    acc.config.merge(config).in_file(&file).in_field("configurations")?;

    let here = Here {
        meta,
        origin,
        configured_in: join_origin(origin, file_name(&file)),
    };
    run_generators(ldr, kust, &mut acc, &here).in_file(&file)?;

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

    run_transformers(ldr, kust, &mut acc, &here).in_file(&file)?;
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

fn file_name(display: &str) -> &str {
    display.rsplit('/').next().unwrap_or(display)
}

/// Go's `filepath.Join`: lexically cleaned, keeping leading `..` (origins are relative to the
/// top kustomization, which a base may sit above).
fn join_origin(origin: &str, entry: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in origin.split('/').chain(entry.split('/')) {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|last| *last != "..") => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
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
        if meta.track {
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
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        if kind.ends_with("List")
            && let Some(items) = obj.get("items")
        {
            match items {
                Value::Array(items) => {
                    queue.extend(items.iter().cloned());
                    continue;
                }
                Value::Null => continue,
                _ => bail!("expected a list in {kind}/items"),
            }
        }
        out.push(Resource::from_object(obj)?);
    }
    Ok(out)
}

fn short(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default().chars().take(120).collect()
}

fn run_generators(ldr: &Loader, kust: &Kustomization, acc: &mut Accumulator, here: &Here<'_>) -> Result<()> {
    let global = kust.generator_options.as_ref();
    let absorb = |acc: &mut Accumulator, r: Resource, kind: &str| {
        let mut made: ResMap = std::iter::once(r).collect();
        here.record(&mut made, kind);
        made.into_iter().try_for_each(|r| generators::absorb(&mut acc.rm, r))
    };
    for (i, args) in kust.config_map_generator.iter().enumerate() {
        let field = format!("configMapGenerator[{i}]");
        let cm = generators::config_map(args, global, ldr).in_field(&field)?;
        absorb(acc, cm, "ConfigMapGenerator").in_field(&field)?;
    }
    for (i, args) in kust.secret_generator.iter().enumerate() {
        let field = format!("secretGenerator[{i}]");
        let secret = generators::secret(args, global, ldr).in_field(&field)?;
        absorb(acc, secret, "SecretGenerator").in_field(&field)?;
    }
    for (i, entry) in kust.generators.iter().enumerate() {
        let field = format!("generators[{i}]");
        for config in plugins::load_configs(entry, ldr).in_field(&field)? {
            let mut made = ResMap::new();
            plugins::generate(&config, &mut made, ldr).in_field(&field)?;
            record(&mut made, here.meta, &here.plugin(entry, &config));
            made.into_iter()
                .try_for_each(|r| generators::absorb(&mut acc.rm, r))
                .in_field(&field)?;
        }
    }
    Ok(())
}

/// The builtin transformers in kustomize's order, then those listed under `transformers`. With
/// `buildMetadata`, each step is recorded on every resource, as kustomize records it.
fn run_transformers(ldr: &Loader, kust: &Kustomization, acc: &mut Accumulator, here: &Here<'_>) -> Result<()> {
    let config = acc.config.clone();
    let rm = &mut acc.rm;
    if !kust.patches_strategic_merge.is_empty() {
        patches::patches_strategic_merge(rm, &kust.patches_strategic_merge, ldr)?;
        here.record(rm, "PatchStrategicMergeTransformer");
    }
    for (i, p) in kust.patches.iter().enumerate() {
        patches::patch(rm, p, ldr).in_field(format!("patches[{i}]"))?;
        here.record(rm, "PatchTransformer");
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
        here.record(rm, "NamespaceTransformer");
    }
    if !kust.name_prefix.is_empty() {
        let t = PrefixSuffixTransformer {
            prefix: kust.name_prefix.clone(),
            field_specs: config.name_prefix.clone(),
            ..Default::default()
        };
        t.transform(rm).in_field("namePrefix")?;
        here.record(rm, "PrefixTransformer");
    }
    if !kust.name_suffix.is_empty() {
        let t = PrefixSuffixTransformer {
            suffix: kust.name_suffix.clone(),
            field_specs: config.name_suffix.clone(),
            ..Default::default()
        };
        t.transform(rm).in_field("nameSuffix")?;
        here.record(rm, "SuffixTransformer");
    }
    if !kust.labels.is_empty() || !kust.common_labels.is_empty() {
        for (i, label) in kust.labels.iter().enumerate() {
            let field = format!("labels[{i}]");
            LabelTransformer::for_label_entry(label, &config)
                .in_field(&field)?
                .transform(rm)
                .in_field(&field)?;
            here.record(rm, "LabelTransformer");
        }
        let t = LabelTransformer {
            labels: kust.common_labels.clone(),
            field_specs: config.common_labels.clone(),
        };
        t.transform(rm).in_field("commonLabels")?;
        here.record(rm, "LabelTransformer");
    }
    if !kust.common_annotations.is_empty() {
        let t = AnnotationsTransformer {
            annotations: kust.common_annotations.clone(),
            field_specs: config.common_annotations.clone(),
        };
        t.transform(rm).in_field("commonAnnotations")?;
        here.record(rm, "AnnotationsTransformer");
    }
    for (i, p) in kust.patches_json6902.iter().enumerate() {
        patches::patch_json6902(rm, p, ldr).in_field(format!("patchesJson6902[{i}]"))?;
        here.record(rm, "PatchJson6902Transformer");
    }
    for (i, replica) in kust.replicas.iter().enumerate() {
        let t = ReplicaCountTransformer {
            replica: replica.clone(),
            field_specs: config.replicas.clone(),
        };
        t.transform(rm).in_field(format!("replicas[{i}]"))?;
        here.record(rm, "ReplicaCountTransformer");
    }
    for (i, image) in kust.images.iter().enumerate() {
        let t = ImageTagTransformer {
            image_tag: image.clone(),
            field_specs: config.images.clone(),
        };
        t.transform(rm).in_field(format!("images[{i}]"))?;
        here.record(rm, "ImageTagTransformer");
    }
    if !kust.replacements.is_empty() {
        let t = replacements::ReplacementTransformer {
            replacements: kust.replacements.clone(),
        };
        t.transform(rm, ldr).in_field("replacements")?;
        here.record(rm, "ReplacementTransformer");
    }
    for (i, entry) in kust.transformers.iter().enumerate() {
        let field = format!("transformers[{i}]");
        for c in plugins::load_configs(entry, ldr).in_field(&field)? {
            plugins::transform(&c, rm, ldr).in_field(&field)?;
            record(rm, here.meta, &here.plugin(entry, &c));
        }
    }
    Ok(())
}
