//! The `kubernetes` router (being written).

use super::{Desired, RouterError, RouterInputs, Routes, TrafficRouter};
use crate::release::Release;

/// The `kubernetes` router.
pub struct Kubernetes;

impl TrafficRouter for Kubernetes {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn desired(&self, _release: &Release, _routes: &Routes, _inputs: &RouterInputs) -> Result<Vec<Desired>, RouterError> {
        Err(RouterError::Missing { router: "kubernetes", what: "an implementation".into() })
    }
}
