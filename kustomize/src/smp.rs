//! Strategic merge patch, as kustomize applies it.
// OWNER: strategic-merge helper.

use crate::error::{Result, bail};
use crate::resource::{Gvk, Object};

/// Applies a strategic-merge `patch` to `target`, an object of kind `gvk`. Returns `None`
/// when the patch deletes the whole object (`$patch: delete` at the top).
pub fn apply(target: &Object, patch: &Object, gvk: &Gvk) -> Result<Option<Object>> {
    let _ = (target, patch, gvk);
    bail!("strategic merge is not implemented yet")
}
