//! progressive-controller's traffic routers against the real APIs: the CRDs that Gateway API,
//! Istio and SMI publish (fetched from their Go modules by tests/cluster/peer-crds.sh, which
//! tests/cluster/build.sh runs), and the built-in Service and Ingress. For a Canary created in the
//! cluster, each router's objects for a 90/10 split, an A/B test and a mirror (where the router
//! has one) are applied as the controller applies them, then read back.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use eddy_api::progressive::{Canary, RequestMatch, SessionAffinity, StringMatch};
use eddy_tests::{cluster_namespace, create, delete_namespace, eventually, repo_root};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};
use progressive_controller::release::{RECONCILE_ANNOTATION, Release};
use progressive_controller::router::{self, Desired, RouterError, RouterInputs, Routes, TrafficRouter};
use serde_json::{Value, json};

const FIELD_MANAGER: &str = "progressive-controller";

/// Installs every CRD of `.cache/peer-crds/*.yaml` once per test run and waits until each is
/// Established.
pub(crate) async fn install_peer_crds(client: &Client) {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INSTALLED
        .get_or_try_init(|| apply_peer_crds(client))
        .await
        .expect("installing the peer CRDs");
}

async fn apply_peer_crds(client: &Client) -> anyhow::Result<()> {
    let dir = repo_root().join(".cache/peer-crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| {
            format!(
                "{} is missing: run tests/cluster/peer-crds.sh (tests/cluster/build.sh does)",
                dir.display()
            )
        })?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|path| path.extension().is_some_and(|ext| ext == "yaml"));
    files.sort();
    if files.is_empty() {
        bail!("no CRDs in {}: run tests/cluster/peer-crds.sh", dir.display());
    }
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("eddy-tests").force();
    let mut names = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        let documents: Vec<Value> =
            serde_saphyr::from_multiple(&text).with_context(|| format!("reading {}", file.display()))?;
        for document in documents
            .into_iter()
            .filter(|d| d["kind"] == "CustomResourceDefinition")
        {
            let crd: CustomResourceDefinition = serde_json::from_value(document)?;
            let name = crd.name_any();
            api.patch(&name, &params, &Patch::Apply(&crd))
                .await
                .with_context(|| format!("applying CRD {name} from {}", file.display()))?;
            names.push(name);
        }
    }
    for name in &names {
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), name, conditions::is_crd_established()),
        )
        .await
        .with_context(|| format!("CRD {name} did not become Established"))??;
    }
    Ok(())
}

/// Creates Canary `web` in `ns` with `provider` and `service`, and returns its release (pods
/// labelled `app: web`).
async fn release(client: &Client, ns: &str, provider: &str, service: Value) -> Release {
    let created = create(
        client,
        ns,
        json!({
            "apiVersion": "progressive.eddy.dev/v1alpha1",
            "kind": "Canary",
            "metadata": {"name": "web"},
            "spec": {
                "targetRef": {"kind": "Deployment", "name": "web"},
                "provider": provider,
                "service": service,
            },
        }),
    )
    .await
    .expect("creating the Canary");
    let canary: Canary = serde_json::from_value(serde_json::to_value(created).unwrap()).unwrap();
    Release::new(&canary, ("app".into(), "web".into()))
}

/// What `router` wants for `routes`, applied as the controller applies it, and read back from the
/// server in the same order. A CRD just Established may not be served for a moment: a 404 on
/// apply is retried.
async fn apply_and_read(
    client: &Client,
    router: &dyn TrafficRouter,
    release: &Release,
    routes: &Routes,
    inputs: &RouterInputs,
) -> Vec<Value> {
    let desired = router
        .desired(release, routes, inputs)
        .unwrap_or_else(|err| panic!("{} router: {err}", router.name()));
    eventually(
        Duration::from_secs(20),
        "the router's objects to be applied",
        || async {
            match router::apply(client, FIELD_MANAGER, &desired).await {
                Ok(()) => Some(()),
                Err(RouterError::Apply {
                    source: kube::Error::Api(status),
                    ..
                }) if status.code == 404 => None,
                Err(err) => panic!("the API server refused the {} router's objects: {err}", router.name()),
            }
        },
    )
    .await;
    let mut stored = Vec::new();
    for object in &desired {
        stored.push(read(client, object).await);
    }
    stored
}

async fn read(client: &Client, desired: &Desired) -> Value {
    let metadata = &desired.object["metadata"];
    let name = metadata["name"].as_str().unwrap();
    let namespace = metadata["namespace"].as_str().unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &desired.resource);
    let object = api
        .get(name)
        .await
        .unwrap_or_else(|err| panic!("reading {}/{name} back: {err}", desired.resource.kind));
    serde_json::to_value(object).unwrap()
}

/// Asserts what every generated object carries: the Canary as controller owner and the
/// leave-alone annotation.
fn assert_generated(stored: &Value, release: &Release) {
    let owner = &stored["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Canary", "{stored:#}");
    assert_eq!(owner["uid"], json!(release.owner.uid));
    assert_eq!(owner["controller"], true);
    assert_eq!(stored["metadata"]["annotations"][RECONCILE_ANNOTATION], "disabled");
}

fn weighted(primary: i32, canary: i32) -> Routes {
    Routes {
        primary,
        canary,
        ..Routes::default()
    }
}

fn exact(value: &str) -> StringMatch {
    StringMatch {
        exact: Some(value.into()),
        ..StringMatch::default()
    }
}

/// An A/B test: header `x-canary: insider`, or cookie `canary=always`.
fn ab_test() -> Routes {
    Routes {
        matches: vec![
            RequestMatch {
                headers: BTreeMap::from([("x-canary".into(), exact("insider"))]),
                ..RequestMatch::default()
            },
            RequestMatch {
                cookies: BTreeMap::from([("canary".into(), exact("always"))]),
                ..RequestMatch::default()
            },
        ],
        ..Routes::primary_only()
    }
}

fn mirror(percent: i32) -> Routes {
    Routes {
        mirror: Some(percent),
        ..Routes::primary_only()
    }
}

/// `(name, weight)` of each backend in the list `refs`, the name found at JSON pointer `name`.
fn weights(refs: &Value, name: &str) -> Vec<(String, i64)> {
    refs.as_array()
        .unwrap_or_else(|| panic!("no list in {refs:#}"))
        .iter()
        .map(|r| {
            (
                r.pointer(name).unwrap().as_str().unwrap().to_owned(),
                r["weight"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, i64)]) -> Vec<(String, i64)> {
    expected
        .iter()
        .map(|(name, weight)| ((*name).to_owned(), *weight))
        .collect()
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn gatewayapi_routes_are_accepted_by_the_published_httproute_crd() {
    let (client, ns) = cluster_namespace("routers-gatewayapi").await;
    install_peer_crds(&client).await;
    let release = release(
        &client,
        &ns,
        "gatewayapi",
        json!({"port": 80, "hosts": ["web.example.com"], "timeout": "30s", "gatewayRefs": [{"name": "public", "namespace": "gateways"}]}),
    )
    .await;
    let v1 = router::gatewayapi::GatewayApi { version: "v1" };
    let inputs = RouterInputs::default();

    let split = apply_and_read(&client, &v1, &release, &weighted(90, 10), &inputs).await;
    let route = &split[0];
    assert_generated(route, &release);
    assert_eq!(route["spec"]["hostnames"], json!(["web.example.com"]));
    assert_eq!(route["spec"]["parentRefs"][0]["name"], "public");
    assert_eq!(route["spec"]["rules"].as_array().unwrap().len(), 1);
    assert_eq!(
        weights(&route["spec"]["rules"][0]["backendRefs"], "/name"),
        pairs(&[("web-primary", 90), ("web-canary", 10)])
    );
    assert_eq!(route["spec"]["rules"][0]["timeouts"]["request"], "30s");

    let ab = apply_and_read(&client, &v1, &release, &ab_test(), &inputs).await;
    let rules = ab[0]["spec"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(
        rules[0]["matches"][0]["headers"],
        json!([{"type": "Exact", "name": "x-canary", "value": "insider"}])
    );
    assert_eq!(rules[0]["matches"][1]["headers"][0]["name"], "Cookie");
    assert_eq!(
        weights(&rules[0]["backendRefs"], "/name"),
        pairs(&[("web-canary", 100)])
    );
    assert_eq!(
        weights(&rules[1]["backendRefs"], "/name"),
        pairs(&[("web-primary", 100), ("web-canary", 0)])
    );

    let mirrored = apply_and_read(&client, &v1, &release, &mirror(50), &inputs).await;
    let filter = &mirrored[0]["spec"]["rules"][0]["filters"][0];
    assert_eq!(filter["type"], "RequestMirror");
    assert_eq!(filter["requestMirror"]["backendRef"]["name"], "web-canary");
    assert_eq!(filter["requestMirror"]["percent"], 50);

    // The published schema is enforced, not a permissive stand-in: a mirror of 150% is refused.
    let mut invalid = v1.desired(&release, &mirror(50), &inputs).unwrap();
    invalid[0].object["spec"]["rules"][0]["filters"][0]["requestMirror"]["percent"] = json!(150);
    let err = router::apply(&client, FIELD_MANAGER, &invalid).await.unwrap_err();
    assert!(
        matches!(&err, RouterError::Apply { source: kube::Error::Api(status), .. } if status.code == 422),
        "{err}"
    );

    let sticky = Routes {
        session_affinity: Some(SessionAffinity {
            cookie_name: "web-session".into(),
            max_age: 3600,
            ..SessionAffinity::default()
        }),
        ..weighted(80, 20)
    };
    let sticky = apply_and_read(&client, &v1, &release, &sticky, &inputs).await;
    let rules = sticky[0]["spec"]["rules"].as_array().unwrap();
    assert_eq!(rules[0]["backendRefs"][0]["name"], "web-canary");
    assert_eq!(
        rules[1]["backendRefs"][1]["filters"][0]["responseHeaderModifier"]["add"][0]["name"],
        "Set-Cookie"
    );

    let v1beta1 = router::gatewayapi::GatewayApi { version: "v1beta1" };
    let older = apply_and_read(&client, &v1beta1, &release, &weighted(70, 30), &inputs).await;
    assert_eq!(older[0]["apiVersion"], "gateway.networking.k8s.io/v1beta1");
    assert_eq!(
        weights(&older[0]["spec"]["rules"][0]["backendRefs"], "/name"),
        pairs(&[("web-primary", 70), ("web-canary", 30)])
    );

    let err = v1
        .desired(
            &Release {
                service: eddy_api::progressive::CanaryService {
                    gateway_refs: Vec::new(),
                    ..release.service.clone()
                },
                ..release.clone()
            },
            &weighted(90, 10),
            &inputs,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            RouterError::Missing {
                router: "gatewayapi",
                ..
            }
        ),
        "{err}"
    );

    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn istio_rules_and_virtual_service_are_accepted_by_the_published_crds() {
    let (client, ns) = cluster_namespace("routers-istio").await;
    install_peer_crds(&client).await;
    let policy = json!({"loadBalancer": {"simple": "LEAST_REQUEST"}});
    let release = release(
        &client,
        &ns,
        "istio",
        json!({"port": 9898, "hosts": ["web.example.com"], "gateways": ["public/gateway"], "timeout": "10s", "trafficPolicy": policy}),
    )
    .await;
    let istio = router::istio::Istio;
    let inputs = RouterInputs::default();

    let split = apply_and_read(&client, &istio, &release, &weighted(90, 10), &inputs).await;
    let [primary, canary, vs] = <[Value; 3]>::try_from(split).unwrap();
    for (rule, host) in [(&primary, "web-primary"), (&canary, "web-canary")] {
        assert_generated(rule, &release);
        assert_eq!(rule["spec"]["host"], host);
        assert_eq!(rule["spec"]["trafficPolicy"], policy);
    }
    assert_generated(&vs, &release);
    assert_eq!(vs["spec"]["hosts"], json!(["web", "web.example.com"]));
    assert_eq!(vs["spec"]["gateways"], json!(["public/gateway"]));
    assert_eq!(
        weights(&vs["spec"]["http"][0]["route"], "/destination/host"),
        pairs(&[("web-primary", 90), ("web-canary", 10)])
    );
    assert_eq!(vs["spec"]["http"][0]["timeout"], "10s");

    let ab = apply_and_read(&client, &istio, &release, &ab_test(), &inputs).await;
    let http = ab[2]["spec"]["http"].as_array().unwrap();
    assert_eq!(http.len(), 2);
    assert_eq!(
        http[0]["match"][0]["headers"],
        json!({"x-canary": {"exact": "insider"}})
    );
    assert!(http[0]["match"][1]["headers"]["cookie"]["regex"].is_string());
    assert_eq!(
        weights(&http[0]["route"], "/destination/host"),
        pairs(&[("web-canary", 100)])
    );
    assert_eq!(
        weights(&http[1]["route"], "/destination/host"),
        pairs(&[("web-primary", 100), ("web-canary", 0)])
    );

    let mirrored = apply_and_read(&client, &istio, &release, &mirror(50), &inputs).await;
    let weighted_route = &mirrored[2]["spec"]["http"][0];
    assert_eq!(weighted_route["mirror"]["host"], "web-canary");
    assert_eq!(weighted_route["mirrorPercentage"]["value"], 50.0);

    let sticky = Routes {
        session_affinity: Some(SessionAffinity {
            cookie_name: "web-session".into(),
            max_age: 3600,
            ..SessionAffinity::default()
        }),
        ..weighted(80, 20)
    };
    let sticky = apply_and_read(&client, &istio, &release, &sticky, &inputs).await;
    let http = sticky[2]["spec"]["http"].as_array().unwrap();
    assert_eq!(http[0]["route"][0]["destination"]["host"], "web-canary");
    assert!(http[1]["route"][1]["headers"]["response"]["add"]["Set-Cookie"].is_string());

    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn smi_traffic_split_is_accepted_by_the_published_crd() {
    let (client, ns) = cluster_namespace("routers-smi").await;
    install_peer_crds(&client).await;
    let release = release(&client, &ns, "smi", json!({"port": 80})).await;
    // v1alpha3: the version smi-sdk-go's CRD serves (see tests/cluster/peer-crds.sh).
    let smi = router::smi::Smi { version: "v1alpha3" };
    let inputs = RouterInputs::default();

    let split = apply_and_read(&client, &smi, &release, &weighted(90, 10), &inputs).await;
    assert_generated(&split[0], &release);
    assert_eq!(split[0]["spec"]["service"], "web");
    assert_eq!(
        weights(&split[0]["spec"]["backends"], "/service"),
        pairs(&[("web-primary", 90), ("web-canary", 10)])
    );

    for routes in [ab_test(), mirror(100)] {
        let err = smi.desired(&release, &routes, &inputs).unwrap_err();
        assert!(matches!(err, RouterError::Unsupported { router: "smi", .. }), "{err}");
    }

    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn kubernetes_switches_the_apex_service_between_primary_and_canary() {
    let (client, ns) = cluster_namespace("routers-kubernetes").await;
    let release = release(&client, &ns, "kubernetes", json!({"port": 80, "targetPort": 8080})).await;
    let kubernetes = router::kubernetes::Kubernetes;
    let inputs = RouterInputs::default();

    let primary = apply_and_read(&client, &kubernetes, &release, &Routes::primary_only(), &inputs).await;
    assert_generated(&primary[0], &release);
    assert_eq!(primary[0]["spec"]["selector"], json!({"app": "web-primary"}));
    assert_eq!(primary[0]["spec"]["ports"][0]["targetPort"], 8080);

    let canary = apply_and_read(&client, &kubernetes, &release, &weighted(0, 100), &inputs).await;
    assert_eq!(canary[0]["spec"]["selector"], json!({"app": "web"}));

    for routes in [weighted(90, 10), ab_test(), mirror(100)] {
        let err = kubernetes.desired(&release, &routes, &inputs).unwrap_err();
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

    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn nginx_copies_the_ingress_to_the_canary_and_leaves_the_original_alone() {
    let (client, ns) = cluster_namespace("routers-nginx").await;
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns);
    let original: Ingress = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "shop",
            "annotations": {
                "nginx.ingress.kubernetes.io/rewrite-target": "/",
                "nginx.ingress.kubernetes.io/canary-weight": "50",
            },
        },
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{
                "host": "shop.example.com",
                "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]},
            }],
        },
    }))
    .unwrap();
    ingresses.create(&PostParams::default(), &original).await.unwrap();
    let release = release(&client, &ns, "nginx", json!({"port": 80})).await;
    let nginx = router::nginx::Nginx;
    let inputs = RouterInputs {
        ingress: Some(serde_json::to_value(ingresses.get("shop").await.unwrap()).unwrap()),
    };

    let split = apply_and_read(&client, &nginx, &release, &weighted(90, 10), &inputs).await;
    let copy = &split[0];
    assert_eq!(copy["metadata"]["name"], "shop-canary");
    assert_generated(copy, &release);
    let annotations = &copy["metadata"]["annotations"];
    assert_eq!(annotations["nginx.ingress.kubernetes.io/canary"], "true");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/canary-weight"], "10");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/rewrite-target"], "/");
    assert_eq!(
        copy["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "web-canary"
    );
    assert_eq!(copy["spec"]["ingressClassName"], "nginx");

    let ab = apply_and_read(&client, &nginx, &release, &ab_test(), &inputs).await;
    let annotations = &ab[0]["metadata"]["annotations"];
    assert_eq!(annotations["nginx.ingress.kubernetes.io/canary-by-header"], "x-canary");
    assert_eq!(
        annotations["nginx.ingress.kubernetes.io/canary-by-header-value"],
        "insider"
    );
    assert_eq!(annotations["nginx.ingress.kubernetes.io/canary-by-cookie"], "canary");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/canary-weight"], "0");

    let err = nginx.desired(&release, &mirror(100), &inputs).unwrap_err();
    assert!(matches!(err, RouterError::Unsupported { router: "nginx", .. }), "{err}");

    let after = ingresses.get("shop").await.unwrap();
    assert_eq!(
        after.spec.unwrap().rules.unwrap()[0].http.as_ref().unwrap().paths[0]
            .backend
            .service
            .as_ref()
            .unwrap()
            .name,
        "web",
        "the original Ingress still points at the apex Service"
    );
    assert_eq!(
        after.metadata.annotations.unwrap()["nginx.ingress.kubernetes.io/canary-weight"],
        "50",
        "the original Ingress is never written"
    );

    delete_namespace(&client, &ns).await;
}
