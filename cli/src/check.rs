//! `eddy check`: is the cluster reachable, are Eddy's CRDs established, does each controller hold
//! its leader Lease. Every line says what was checked and, when it failed, what to do.

use std::fmt;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client, ResourceExt};

const CONTROLLERS: [&str; 4] = [
    "source-controller",
    "apply-controller",
    "notify-controller",
    "progressive-controller",
];

/// The outcome of each check.
pub struct Report {
    lines: Vec<(bool, String)>,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.lines.iter().all(|(ok, _)| *ok)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (ok, line) in &self.lines {
            writeln!(f, "{} {line}", if *ok { "✔" } else { "✗" })?;
        }
        Ok(())
    }
}

/// Runs the checks. Only an unreachable cluster is an error; everything else is a report line.
pub async fn run(client: &Client, namespace: &str) -> anyhow::Result<Report> {
    let version = client
        .apiserver_version()
        .await
        .map_err(|err| anyhow::anyhow!("the Kubernetes API server is not reachable: {err}"))?;
    let mut lines = vec![(true, format!("Kubernetes {} is reachable", version.git_version))];

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for expected in eddy_api::crds() {
        let name = expected.name_any();
        let line = match crds.get_opt(&name).await? {
            None => (
                false,
                format!("CRD {name} is not installed (kubectl apply --server-side -k manifests/crds)"),
            ),
            Some(crd) if is_established(&crd) => (true, format!("CRD {name} is established")),
            Some(_) => (false, format!("CRD {name} is installed but not established yet")),
        };
        lines.push(line);
    }

    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    for controller in CONTROLLERS {
        let holder = leases
            .get_opt(controller)
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity);
        lines.push(match holder {
            Some(holder) => (true, format!("{controller} is leading ({holder})")),
            None => (
                false,
                format!("{controller} holds no Lease {namespace}/{controller}: is it running?"),
            ),
        });
    }
    Ok(Report { lines })
}

fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}
