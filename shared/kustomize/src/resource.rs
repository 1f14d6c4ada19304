//! Resources, their ids, and the ordered map kustomize passes from step to step.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::error::{Result, bail};

pub type Object = Map<String, Value>;

/// Group, version, kind. An empty group is the core group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn new(group: &str, version: &str, kind: &str) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
        }
    }

    /// Splits an `apiVersion` such as `apps/v1` or `v1`.
    pub fn from_api_version(api_version: &str, kind: &str) -> Self {
        match api_version.split_once('/') {
            Some((group, version)) => Self::new(group, version, kind),
            None => Self::new("", api_version, kind),
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether objects of this kind live in a namespace. Unknown kinds (custom resources) do.
    pub fn is_namespaced(&self) -> bool {
        !crate::schema::is_cluster_scoped(self)
    }
}

impl fmt::Display for Gvk {
    /// kustomize's spelling: `Deployment.v1.apps`, `Service.v1.[noGrp]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.group.is_empty() { "[noGrp]" } else { &self.group };
        let version = if self.version.is_empty() {
            "[noVer]"
        } else {
            &self.version
        };
        write!(f, "{}.{}.{}", self.kind, version, group)
    }
}

/// The identity of a resource: kind, name and namespace (empty when unset).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResId {
    pub gvk: Gvk,
    pub name: String,
    pub namespace: String,
}

impl ResId {
    /// The namespace the apiserver would put the object in: `default` when unset, none for
    /// cluster-scoped kinds.
    pub fn effective_namespace(&self) -> &str {
        if !self.gvk.is_namespaced() {
            ""
        } else if self.namespace.is_empty() {
            "default"
        } else {
            &self.namespace
        }
    }

    /// Same object as far as the apiserver is concerned.
    pub fn same_object(&self, other: &ResId) -> bool {
        self.gvk == other.gvk && self.name == other.name && self.effective_namespace() == other.effective_namespace()
    }
}

impl fmt::Display for ResId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = if self.namespace.is_empty() {
            "[noNs]"
        } else {
            &self.namespace
        };
        write!(f, "{}/{}.{}", self.gvk, self.name, ns)
    }
}

/// How a generated ConfigMap or Secret combines with one of the same id from a base.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Behavior {
    #[default]
    #[serde(alias = "")]
    Create,
    Merge,
    Replace,
}

/// Marks a resource made by a generator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Generated {
    pub behavior: Behavior,
    /// Append kustomize's content hash to the name at the end of the build.
    pub hash_suffix: bool,
}

/// One object and what the build knows about its history.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub obj: Object,
    /// Ids this resource had before it was renamed, moved or re-kinded, oldest first.
    pub previous: Vec<ResId>,
    /// Prefixes and suffixes added to the name, innermost first.
    pub prefixes: Vec<String>,
    pub suffixes: Vec<String>,
    pub generated: Option<Generated>,
    /// File the resource was read from, relative to the confinement root.
    pub origin: Option<String>,
}

impl Resource {
    /// Wraps an object read from a file; it must have a kind and a name.
    pub fn from_object(obj: Object) -> Result<Self> {
        let r = Self {
            obj,
            previous: Vec::new(),
            prefixes: Vec::new(),
            suffixes: Vec::new(),
            generated: None,
            origin: None,
        };
        if r.kind().is_empty() {
            bail!("missing kind in object {}", r.describe());
        }
        if r.name().is_empty() && !r.kind().ends_with("List") {
            bail!("missing metadata.name in object {}", r.describe());
        }
        Ok(r)
    }

    fn describe(&self) -> String {
        serde_json::to_string(&self.obj)
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect()
    }

    fn str_at(&self, path: &[&str]) -> &str {
        self.get(path).and_then(Value::as_str).unwrap_or("")
    }

    pub fn api_version(&self) -> &str {
        self.str_at(&["apiVersion"])
    }

    pub fn kind(&self) -> &str {
        self.str_at(&["kind"])
    }

    pub fn name(&self) -> &str {
        self.str_at(&["metadata", "name"])
    }

    pub fn namespace(&self) -> &str {
        self.str_at(&["metadata", "namespace"])
    }

    pub fn gvk(&self) -> Gvk {
        Gvk::from_api_version(self.api_version(), self.kind())
    }

    /// The current id.
    pub fn id(&self) -> ResId {
        ResId {
            gvk: self.gvk(),
            name: self.name().to_owned(),
            namespace: self.namespace().to_owned(),
        }
    }

    /// The id the resource had when it was first read or generated.
    pub fn org_id(&self) -> ResId {
        self.previous.first().cloned().unwrap_or_else(|| self.id())
    }

    /// Every id the resource has had, oldest first, ending with the current one.
    pub fn all_ids(&self) -> impl Iterator<Item = ResId> + '_ {
        self.previous.iter().cloned().chain(std::iter::once(self.id()))
    }

    /// Records the current id as a previous one, as kustomize does before a transformer that may
    /// rename or move the resource (the namespace transformer records it even when nothing changes).
    pub fn remember_id(&mut self) {
        let id = self.id();
        self.previous.push(id);
    }

    /// Renames the resource, remembering the old id for name references.
    pub fn set_name(&mut self, name: &str) {
        if self.name() != name {
            self.remember_id();
            self.metadata_mut()
                .insert("name".into(), Value::String(name.to_owned()));
        }
    }

    /// Moves the resource to a namespace (empty removes it), remembering the old id.
    pub fn set_namespace(&mut self, namespace: &str) {
        if self.namespace() != namespace {
            self.remember_id();
            let meta = self.metadata_mut();
            if namespace.is_empty() {
                meta.remove("namespace");
            } else {
                meta.insert("namespace".into(), Value::String(namespace.to_owned()));
            }
        }
    }

    pub fn get(&self, path: &[&str]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        rest.iter().try_fold(self.obj.get(*first)?, |v, key| v.get(key))
    }

    /// `metadata`, created when missing or not a map.
    pub fn metadata_mut(&mut self) -> &mut Object {
        let meta = self
            .obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Object::new()));
        if !meta.is_object() {
            *meta = Value::Object(Object::new());
        }
        meta.as_object_mut().expect("metadata is a map")
    }

    fn string_map(&self, field: &str) -> BTreeMap<String, String> {
        match self.get(&["metadata", field]) {
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        self.string_map("labels")
    }

    pub fn annotations(&self) -> BTreeMap<String, String> {
        self.string_map("annotations")
    }

    /// Sets or removes (`None`) one annotation; an emptied map is removed.
    pub fn set_annotation(&mut self, key: &str, value: Option<&str>) {
        let meta = self.metadata_mut();
        match value {
            Some(v) => {
                let anns = meta
                    .entry("annotations")
                    .or_insert_with(|| Value::Object(Object::new()));
                if !anns.is_object() {
                    *anns = Value::Object(Object::new());
                }
                anns.as_object_mut()
                    .expect("map")
                    .insert(key.to_owned(), Value::String(v.to_owned()));
            }
            None => {
                if let Some(Value::Object(anns)) = meta.get_mut("annotations") {
                    anns.remove(key);
                    if anns.is_empty() {
                        meta.remove("annotations");
                    }
                }
            }
        }
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.obj)
    }
}

/// The part of an id that decides whether two resources are the same object.
type IdKey = (Gvk, String, String);

fn id_key(r: &Resource) -> IdKey {
    let id = r.id();
    let namespace = id.effective_namespace().to_owned();
    (id.gvk, id.name, namespace)
}

/// Resources in build order. Ids are unique.
#[derive(Clone, Debug, Default)]
pub struct ResMap {
    resources: Vec<Resource>,
    /// Position of each current id, built on demand and dropped by any mutable access, so
    /// appending thousands of resources stays linear.
    index: std::cell::RefCell<Option<std::collections::HashMap<IdKey, usize>>>,
}

impl PartialEq for ResMap {
    fn eq(&self, other: &Self) -> bool {
        self.resources == other.resources
    }
}

impl ResMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Resource> {
        self.resources.iter()
    }

    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Resource> {
        *self.index.get_mut() = None;
        self.resources.iter_mut()
    }

    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    /// Direct access for steps that reorder, replace or drop resources.
    pub fn resources_mut(&mut self) -> &mut Vec<Resource> {
        *self.index.get_mut() = None;
        &mut self.resources
    }

    /// Index of the resource whose current id is `id`.
    pub fn position(&self, id: &ResId) -> Option<usize> {
        let mut index = self.index.borrow_mut();
        let index = index.get_or_insert_with(|| {
            let mut map = std::collections::HashMap::with_capacity(self.resources.len());
            for (i, r) in self.resources.iter().enumerate() {
                map.entry(id_key(r)).or_insert(i);
            }
            map
        });
        let key = (id.gvk.clone(), id.name.clone(), id.effective_namespace().to_owned());
        index.get(&key).copied()
    }

    /// Adds a resource; an id already present is an error.
    pub fn append(&mut self, r: Resource) -> Result<()> {
        let id = r.id();
        if self.position(&id).is_some() {
            bail!("may not add resource with an already registered id: {id}");
        }
        if let Some(index) = self.index.get_mut() {
            index.entry(id_key(&r)).or_insert(self.resources.len());
        }
        self.resources.push(r);
        Ok(())
    }

    pub fn append_all(&mut self, other: ResMap) -> Result<()> {
        other.resources.into_iter().try_for_each(|r| self.append(r))
    }

    pub fn to_values(&self) -> Vec<Value> {
        self.resources.iter().map(|r| Value::Object(r.obj.clone())).collect()
    }

    /// Multi-document YAML, the way `kustomize build` prints it.
    pub fn to_yaml(&self) -> String {
        crate::yaml::to_yaml_documents(self.resources.iter().map(|r| &r.obj))
    }
}

impl IntoIterator for ResMap {
    type Item = Resource;
    type IntoIter = std::vec::IntoIter<Resource>;

    fn into_iter(self) -> Self::IntoIter {
        self.resources.into_iter()
    }
}

impl FromIterator<Resource> for ResMap {
    fn from_iter<I: IntoIterator<Item = Resource>>(iter: I) -> Self {
        Self {
            resources: iter.into_iter().collect(),
            index: Default::default(),
        }
    }
}
