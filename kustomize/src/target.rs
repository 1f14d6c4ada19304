//! The build: one kustomization, its bases and components, generators and transformers.

use std::path::Path;

use crate::Options;
use crate::error::{Result, bail};
use crate::resource::ResMap;

pub fn build(dir: &Path, options: &Options) -> Result<ResMap> {
    let _ = (dir, options);
    bail!("not implemented")
}
