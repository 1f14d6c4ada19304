//! `replacements`: copy a field of one resource into fields of others.
// OWNER: replacements helper.

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Result, bail};
use crate::fsys::Loader;
use crate::resource::ResMap;

/// One entry of `replacements`: a file with replacements, or one inline.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplacementField {
    #[serde(default)]
    pub path: String,
    #[serde(flatten)]
    pub inline: serde_json::Map<String, Value>,
}

/// kind ReplacementTransformer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplacementTransformer {
    #[serde(default)]
    pub replacements: Vec<ReplacementField>,
}

impl ReplacementTransformer {
    /// Runs every replacement in order; `ldr` reads the files `path` entries name.
    pub fn transform(&self, rm: &mut ResMap, ldr: &Loader) -> Result<()> {
        let _ = (rm, ldr);
        if self.replacements.is_empty() {
            return Ok(());
        }
        bail!("replacements are not implemented yet")
    }
}
