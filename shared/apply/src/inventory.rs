//! Object identities and inventories in Flux's format: the apply engine (`crate::ssa`) reports
//! objects as [`ObjectRef`]s, apply-controller records them in `status.inventory` as
//! `<namespace>_<name>_<group>_<kind>` entries with their version, and the difference between the
//! previous and the new inventory is what gets pruned.

use std::collections::BTreeSet;
use std::fmt;

use kube::api::DynamicObject;
use kube::core::GroupVersionKind;

pub use eddy_api::apply::{Inventory, InventoryEntry};

/// Flux's separator between the fields of an inventory id.
const FIELD_SEPARATOR: char = '_';
/// RBAC names may contain `:`; Flux (cli-utils) stores it as `__` inside an id.
const COLON_TRANSLATION: &str = "__";

/// One object of any kind: what the apply engine reports, waits for and deletes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// API group, empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// Why an object or an inventory entry cannot be identified.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The object has no apiVersion/kind or no name.
    #[error("object {object} has no {missing}")]
    Incomplete {
        /// What identifies it so far.
        object: String,
        /// The missing field.
        missing: &'static str,
    },
    /// An inventory entry whose id is not `<namespace>_<name>_<group>_<kind>`.
    #[error("inventory entry {id:?} is not <namespace>_<name>_<group>_<kind>")]
    MalformedEntry {
        /// The entry's id.
        id: String,
    },
}

impl ObjectRef {
    /// An object reference from an apiVersion (`apps/v1`, `v1`) and the rest.
    pub fn new(api_version: &str, kind: &str, namespace: &str, name: &str) -> Self {
        let (group, version) = split_api_version(api_version);
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The identity of a manifest. The namespace is taken as written; cluster-scoped kinds are
    /// recognised only by the apply engine, which clears it.
    pub fn from_object(object: &DynamicObject) -> Result<Self, IdentityError> {
        let name = object.metadata.name.clone().unwrap_or_default();
        let Some(types) = object.types.as_ref().filter(|t| !t.kind.is_empty()) else {
            return Err(IdentityError::Incomplete {
                object: if name.is_empty() { "(unnamed)".into() } else { name },
                missing: "apiVersion/kind",
            });
        };
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let found = Self::new(&types.api_version, &types.kind, &namespace, &name);
        if name.is_empty() {
            return Err(IdentityError::Incomplete {
                object: found.to_string(),
                missing: "metadata.name",
            });
        }
        Ok(found)
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The group, version and kind.
    pub fn gvk(&self) -> GroupVersionKind {
        GroupVersionKind::gvk(&self.group, &self.version, &self.kind)
    }

    /// The inventory id, `<namespace>_<name>_<group>_<kind>`, as Flux writes it.
    pub fn inventory_id(&self) -> String {
        format!(
            "{}_{}_{}_{}",
            self.namespace,
            self.name.replace(':', COLON_TRANSLATION),
            self.group,
            self.kind
        )
    }

    /// The inventory entry of this object.
    pub fn to_entry(&self) -> InventoryEntry {
        InventoryEntry {
            id: self.inventory_id(),
            v: self.version.clone(),
        }
    }

    /// The object an inventory entry stands for.
    pub fn from_entry(entry: &InventoryEntry) -> Result<Self, IdentityError> {
        let malformed = || IdentityError::MalformedEntry { id: entry.id.clone() };
        // Parsed as cli-utils does: namespace up to the first separator, kind after the last,
        // group before that; what is left is the name, whose `__` stands for `:`.
        let (namespace, rest) = entry.id.split_once(FIELD_SEPARATOR).ok_or_else(malformed)?;
        let (rest, kind) = rest.rsplit_once(FIELD_SEPARATOR).ok_or_else(malformed)?;
        let (name, group) = rest.rsplit_once(FIELD_SEPARATOR).ok_or_else(malformed)?;
        let name = name.replace(COLON_TRANSLATION, ":");
        if name.is_empty() || kind.is_empty() || name.contains(FIELD_SEPARATOR) {
            return Err(malformed());
        }
        Ok(Self {
            group: group.to_owned(),
            version: entry.v.clone(),
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name,
        })
    }
}

/// `Kind/namespace/name`, or `Kind/name` for cluster-scoped objects: how every message names an
/// object.
impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// The entries of `old` whose object is not in `new`: what pruning should delete. The version is
/// not part of an object's identity, so an object whose apiVersion changed is not stale.
pub fn stale(old: &Inventory, new: &Inventory) -> Vec<InventoryEntry> {
    let kept: BTreeSet<&str> = new.entries.iter().map(|e| e.id.as_str()).collect();
    old.entries
        .iter()
        .filter(|entry| !kept.contains(entry.id.as_str()))
        .cloned()
        .collect()
}

/// `inventory` with `extra` added (kept sorted, no duplicate ids): used to keep objects whose
/// deletion failed.
pub fn merge(inventory: &Inventory, extra: &[InventoryEntry]) -> Inventory {
    let mut entries = inventory.entries.clone();
    for entry in extra {
        if !entries.iter().any(|e| e.id == entry.id) {
            entries.push(entry.clone());
        }
    }
    entries.sort();
    Inventory { entries }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, v: &str) -> InventoryEntry {
        InventoryEntry {
            id: id.into(),
            v: v.into(),
        }
    }

    #[test]
    fn ids_match_fluxs_format() {
        let web = ObjectRef::new("apps/v1", "Deployment", "default", "podinfo");
        assert_eq!(web.inventory_id(), "default_podinfo_apps_Deployment");
        let service = ObjectRef::new("v1", "Service", "default", "podinfo");
        assert_eq!(service.to_entry(), entry("default_podinfo__Service", "v1"));
        let role = ObjectRef::new("rbac.authorization.k8s.io/v1", "ClusterRole", "", "system:eddy");
        assert_eq!(
            role.inventory_id(),
            "_system__eddy_rbac.authorization.k8s.io_ClusterRole"
        );
    }

    #[test]
    fn entries_parse_back_into_the_same_object() {
        for object in [
            ObjectRef::new("apps/v1", "Deployment", "default", "podinfo"),
            ObjectRef::new("v1", "Service", "shop", "web"),
            ObjectRef::new("v1", "Namespace", "", "shop"),
            ObjectRef::new("rbac.authorization.k8s.io/v1", "ClusterRole", "", "system:a:b"),
        ] {
            assert_eq!(ObjectRef::from_entry(&object.to_entry()).unwrap(), object);
        }
        assert!(ObjectRef::from_entry(&entry("nonsense", "v1")).is_err());
        assert!(ObjectRef::from_entry(&entry("ns_a_b_c_apps_Deployment", "v1")).is_err());
    }

    #[test]
    fn objects_are_named_kind_namespace_name() {
        assert_eq!(
            ObjectRef::new("apps/v1", "Deployment", "shop", "web").to_string(),
            "Deployment/shop/web"
        );
        assert_eq!(
            ObjectRef::new("v1", "Namespace", "", "shop").to_string(),
            "Namespace/shop"
        );
    }

    #[test]
    fn stale_entries_are_those_that_left_the_inventory() {
        let old = Inventory {
            entries: vec![
                entry("a_web_apps_Deployment", "v1"),
                entry("a_web__Service", "v1"),
                entry("a_cron_batch_CronJob", "v1beta1"),
            ],
        };
        let new = Inventory {
            entries: vec![
                entry("a_web_apps_Deployment", "v1"),
                entry("a_cron_batch_CronJob", "v1"),
            ],
        };
        assert_eq!(stale(&old, &new), vec![entry("a_web__Service", "v1")]);
        assert_eq!(merge(&new, &stale(&old, &new)).entries.len(), 3);
    }
}
