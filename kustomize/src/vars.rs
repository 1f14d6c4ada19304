//! The legacy `vars`: `$(NAME)` in the fields the var-reference table lists.
// OWNER: replacements helper.

use serde::Deserialize;
use serde_json::Value;

use crate::builtin::TransformerConfig;
use crate::error::{Result, bail};
use crate::resource::ResMap;

/// One entry of `vars`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Var {
    pub name: String,
    #[serde(default)]
    pub objref: serde_json::Map<String, Value>,
    #[serde(default)]
    pub fieldref: serde_json::Map<String, Value>,
}

/// Vars gathered from a kustomization and its bases, each tied to the resource it reads.
#[derive(Clone, Debug, Default)]
pub struct VarSet {
    pub vars: Vec<Var>,
}

impl VarSet {
    /// Adds a kustomization's vars; a name already defined is an error.
    pub fn merge(&mut self, vars: &[Var], rm: &mut ResMap) -> Result<()> {
        let _ = rm;
        if !vars.is_empty() {
            bail!("vars are not implemented yet");
        }
        Ok(())
    }

    /// Adds the vars of a base (already tied to resources).
    pub fn absorb(&mut self, other: VarSet) -> Result<()> {
        self.vars.extend(other.vars);
        Ok(())
    }

    /// Replaces `$(NAME)` everywhere the var-reference table allows.
    pub fn resolve(&self, rm: &mut ResMap, config: &TransformerConfig) -> Result<()> {
        let _ = (rm, config);
        Ok(())
    }
}
