//! Field specs: which field of which kinds a transformer touches (`spec/template/metadata/labels`).
// OWNER: transformers helper.

use serde::Deserialize;
use serde_json::Value;

use crate::error::Result;
use crate::resource::{Gvk, Object};

/// kustomize's FieldSpec: an optional group/version/kind filter and a slash-separated path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub create: bool,
}

impl FieldSpec {
    /// Whether the spec's kind filter selects `gvk` (empty parts match anything).
    pub fn selects(&self, gvk: &Gvk) -> bool {
        (self.group.is_empty() || self.group == gvk.group)
            && (self.version.is_empty() || self.version == gvk.version)
            && (self.kind.is_empty() || self.kind == gvk.kind)
    }

    /// Calls `f` on every value the path reaches in `obj`, creating missing maps when the
    /// spec says `create`.
    pub fn apply(&self, obj: &mut Object, f: &mut dyn FnMut(&mut Value) -> Result<()>) -> Result<()> {
        let _ = (obj, f);
        Ok(())
    }
}
