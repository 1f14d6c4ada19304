//! The `smi` router: one SMI TrafficSplit `<apex>` (`split.smi-spec.io`, `v1alpha3`, or
//! `v1alpha2` as Linkerd serves it) that splits the apex Service's traffic between the primary
//! and canary Services by integer weight.
//!
//! A TrafficSplit carries weights only: A/B matches, mirroring, session affinity and timeouts
//! are refused with an error naming the router, never dropped. Written as JSON in the shape of
//! the CRD that `smi-sdk-go` publishes, which the cluster tests install.

use serde_json::json;

use super::{Desired, RouterError, RouterInputs, Routes, Supports, TrafficRouter, check_routes, custom_resource};
use crate::release::Release;

const GROUP: &str = "split.smi-spec.io";

/// The `smi` router, writing TrafficSplits at API `version` (`v1alpha3` or `v1alpha2`, whose
/// weights are both integers).
pub struct Smi {
    pub version: &'static str,
}

impl TrafficRouter for Smi {
    fn name(&self) -> &'static str {
        "smi"
    }

    fn desired(&self, release: &Release, routes: &Routes, _inputs: &RouterInputs) -> Result<Vec<Desired>, RouterError> {
        check_routes(self.name(), Supports::default(), release, routes)?;
        Ok(vec![Desired {
            resource: custom_resource(GROUP, self.version, "TrafficSplit", "trafficsplits"),
            object: json!({
                "apiVersion": format!("{GROUP}/{}", self.version),
                "kind": "TrafficSplit",
                "metadata": release.metadata(&release.apex, &Default::default(), &Default::default()),
                "spec": {
                    "service": release.apex,
                    "backends": [
                        {"service": release.primary_service, "weight": routes.primary},
                        {"service": release.canary_service, "weight": routes.canary},
                    ],
                },
            }),
        }])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use eddy_api::progressive::{RequestMatch, SessionAffinity, StringMatch};
    use serde_json::json;

    use super::*;
    use crate::router::fixtures::{assert_generated, release};

    const V1ALPHA3: Smi = Smi { version: "v1alpha3" };

    fn weighted(primary: i32, canary: i32) -> Routes {
        Routes {
            primary,
            canary,
            ..Routes::default()
        }
    }

    #[test]
    fn weights_go_to_the_primary_and_canary_backends_of_the_apex_service() {
        let desired = V1ALPHA3
            .desired(
                &release(json!({"port": 80})),
                &weighted(90, 10),
                &RouterInputs::default(),
            )
            .unwrap();
        assert_eq!(desired.len(), 1);
        let split = &desired[0].object;
        assert_generated(split, "web");
        assert_eq!(split["apiVersion"], "split.smi-spec.io/v1alpha3");
        assert_eq!(split["kind"], "TrafficSplit");
        assert_eq!(
            split["spec"],
            json!({
                "service": "web",
                "backends": [{"service": "web-primary", "weight": 90}, {"service": "web-canary", "weight": 10}],
            })
        );
        assert_eq!(desired[0].resource.plural, "trafficsplits");
    }

    #[test]
    fn v1alpha2_writes_the_same_split_at_linkerds_version() {
        let desired = Smi { version: "v1alpha2" }
            .desired(
                &release(json!({"port": 80})),
                &weighted(50, 50),
                &RouterInputs::default(),
            )
            .unwrap();
        assert_eq!(desired[0].object["apiVersion"], "split.smi-spec.io/v1alpha2");
        assert_eq!(desired[0].resource.api_version, "split.smi-spec.io/v1alpha2");
        assert_eq!(desired[0].object["spec"]["backends"][1]["weight"], 50);
    }

    #[test]
    fn matches_mirrors_and_session_affinity_are_refused_by_name() {
        let release = release(json!({"port": 80}));
        let ab = Routes {
            matches: vec![RequestMatch {
                headers: BTreeMap::from([(
                    "x-canary".into(),
                    StringMatch {
                        exact: Some("insider".into()),
                        ..StringMatch::default()
                    },
                )]),
                ..RequestMatch::default()
            }],
            ..Routes::primary_only()
        };
        let mirror = Routes {
            mirror: Some(100),
            ..Routes::primary_only()
        };
        let sticky = Routes {
            session_affinity: Some(SessionAffinity {
                cookie_name: "c".into(),
                max_age: 60,
                ..SessionAffinity::default()
            }),
            ..weighted(90, 10)
        };
        for (routes, what) in [
            (
                ab,
                "the smi router cannot route requests by header or cookie (A/B testing)",
            ),
            (mirror, "the smi router cannot mirror requests to the canary"),
            (
                sticky,
                "the smi router cannot keep sessions on the canary with a cookie (session affinity)",
            ),
        ] {
            let err = V1ALPHA3
                .desired(&release, &routes, &RouterInputs::default())
                .unwrap_err();
            assert!(matches!(err, RouterError::Unsupported { router: "smi", .. }));
            assert_eq!(err.to_string(), what);
        }
    }
}
