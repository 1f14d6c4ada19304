//! The `kubernetes` router: no traffic-splitting API, only the apex Service, whose selector
//! picks the primary's pods or, once the routes send everything to the canary, the canary's
//! (a blue/green switch). Anything between, A/B matches, mirroring, session affinity and
//! timeouts are refused with an error naming the router.

use k8s_openapi::api::core::v1::Service;
use kube::core::ApiResource;

use super::{Desired, RouterError, RouterInputs, Routes, Supports, TrafficRouter, check_routes};
use crate::release::Release;

/// The `kubernetes` router.
pub struct Kubernetes;

impl TrafficRouter for Kubernetes {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn desired(&self, release: &Release, routes: &Routes, _inputs: &RouterInputs) -> Result<Vec<Desired>, RouterError> {
        check_routes(self.name(), Supports::default(), release, routes)?;
        let selector = match (routes.primary, routes.canary) {
            (100, 0) => release.primary_selector(),
            (0, 100) => release.canary_selector(),
            (primary, canary) => {
                return Err(RouterError::Unsupported {
                    router: self.name(),
                    what: format!(
                        "split traffic {primary}/{canary}: the apex Service sends all of it to the primary or all to the canary"
                    ),
                });
            }
        };
        let metadata = release.service.apex.clone().unwrap_or_default();
        Ok(vec![Desired {
            resource: ApiResource::erase::<Service>(&()),
            object: release.service_object(&release.apex, &selector, &metadata.labels, &metadata.annotations),
        }])
    }

    fn owns_apex_service(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::router::fixtures::{assert_generated, release};

    fn weighted(primary: i32, canary: i32) -> Routes {
        Routes {
            primary,
            canary,
            ..Routes::default()
        }
    }

    #[test]
    fn the_apex_service_selects_the_primary_until_everything_goes_to_the_canary() {
        let release = release(json!({
            "port": 80,
            "targetPort": 8080,
            "apex": {"labels": {"tier": "web"}, "annotations": {"team": "shop"}},
        }));
        let primary = Kubernetes
            .desired(&release, &weighted(100, 0), &RouterInputs::default())
            .unwrap();
        assert_eq!(primary.len(), 1);
        let service = &primary[0].object;
        assert_generated(service, "web");
        assert_eq!(service["kind"], "Service");
        assert_eq!(service["spec"]["selector"], json!({"app": "web-primary"}));
        assert_eq!(service["spec"]["ports"][0]["port"], 80);
        assert_eq!(service["spec"]["ports"][0]["targetPort"], 8080);
        assert_eq!(service["metadata"]["labels"]["tier"], "web");
        assert_eq!(service["metadata"]["annotations"]["team"], "shop");

        let canary = Kubernetes
            .desired(&release, &weighted(0, 100), &RouterInputs::default())
            .unwrap();
        assert_eq!(canary[0].object["spec"]["selector"], json!({"app": "web"}));
    }

    #[test]
    fn a_split_between_is_refused_by_name() {
        let err = Kubernetes
            .desired(
                &release(json!({"port": 80})),
                &weighted(90, 10),
                &RouterInputs::default(),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the kubernetes router cannot split traffic 90/10: the apex Service sends all of it to the primary or all to the canary"
        );
    }

    #[test]
    fn mirrors_and_timeouts_are_refused_by_name() {
        let mirror = Routes {
            mirror: Some(100),
            ..Routes::primary_only()
        };
        let err = Kubernetes
            .desired(&release(json!({"port": 80})), &mirror, &RouterInputs::default())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the kubernetes router cannot mirror requests to the canary"
        );

        let err = Kubernetes
            .desired(
                &release(json!({"port": 80, "timeout": "10s"})),
                &Routes::primary_only(),
                &RouterInputs::default(),
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                RouterError::Unsupported {
                    router: "kubernetes",
                    ..
                }
            ),
            "{err}"
        );
    }
}
