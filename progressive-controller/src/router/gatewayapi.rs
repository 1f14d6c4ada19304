//! The `gatewayapi` router (being written).

use super::{Desired, RouterError, RouterInputs, Routes, TrafficRouter};
use crate::release::Release;

/// The `gatewayapi` router.
pub struct GatewayApi { pub version: &'static str }

impl TrafficRouter for GatewayApi {
    fn name(&self) -> &'static str {
        "gatewayapi"
    }

    fn desired(&self, _release: &Release, _routes: &Routes, _inputs: &RouterInputs) -> Result<Vec<Desired>, RouterError> {
        Err(RouterError::Missing { router: "gatewayapi", what: "an implementation".into() })
    }
}
