//! The `smi` router (being written).

use super::{Desired, RouterError, RouterInputs, Routes, TrafficRouter};
use crate::release::Release;

/// The `smi` router.
pub struct Smi { pub version: &'static str }

impl TrafficRouter for Smi {
    fn name(&self) -> &'static str {
        "smi"
    }

    fn desired(&self, _release: &Release, _routes: &Routes, _inputs: &RouterInputs) -> Result<Vec<Desired>, RouterError> {
        Err(RouterError::Missing { router: "smi", what: "an implementation".into() })
    }
}
