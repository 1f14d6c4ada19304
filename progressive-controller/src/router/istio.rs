//! The `istio` router (being written).

use super::{Desired, RouterError, RouterInputs, Routes, TrafficRouter};
use crate::release::Release;

/// The `istio` router.
pub struct Istio;

impl TrafficRouter for Istio {
    fn name(&self) -> &'static str {
        "istio"
    }

    fn desired(&self, _release: &Release, _routes: &Routes, _inputs: &RouterInputs) -> Result<Vec<Desired>, RouterError> {
        Err(RouterError::Missing { router: "istio", what: "an implementation".into() })
    }
}
