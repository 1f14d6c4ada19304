//! The `nginx` router (being written).

use super::{Desired, RouterError, RouterInputs, Routes, TrafficRouter};
use crate::release::Release;

/// The `nginx` router.
pub struct Nginx;

impl TrafficRouter for Nginx {
    fn name(&self) -> &'static str {
        "nginx"
    }

    fn desired(&self, _release: &Release, _routes: &Routes, _inputs: &RouterInputs) -> Result<Vec<Desired>, RouterError> {
        Err(RouterError::Missing { router: "nginx", what: "an implementation".into() })
    }
}
