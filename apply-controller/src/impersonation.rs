//! Who applies: the controller itself, or the service account a Kustomization names (or
//! `--default-service-account`), impersonated so that the Kustomization can do exactly what that
//! account may do. One apply engine (client and discovery cache) per identity, made on first use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use eddy_apply::ssa::Applier;
use http::{HeaderName, HeaderValue};

/// The apply engines by identity.
pub struct Identities {
    config: kube::Config,
    own: Arc<Applier>,
    impersonated: Mutex<HashMap<(String, String), Arc<Applier>>>,
}

impl Identities {
    /// The controller's own engine on `client`, and the configuration impersonating clients are
    /// made from: the one `client` was made from, inferred as kube does (in-cluster or
    /// `KUBECONFIG`).
    pub async fn new(client: kube::Client) -> anyhow::Result<Self> {
        let config = kube::Config::infer()
            .await
            .context("no usable Kubernetes configuration for impersonating clients")?;
        Ok(Self::with_config(client, config))
    }

    /// [`new`](Self::new) with the configuration given.
    pub fn with_config(client: kube::Client, config: kube::Config) -> Self {
        Self {
            config,
            own: Arc::new(Applier::new(client)),
            impersonated: Mutex::new(HashMap::new()),
        }
    }

    /// The controller's own engine.
    pub fn own(&self) -> Arc<Applier> {
        self.own.clone()
    }

    /// The engine acting as `system:serviceaccount:<namespace>:<name>`.
    pub fn service_account(&self, namespace: &str, name: &str) -> Result<Arc<Applier>, String> {
        let key = (namespace.to_owned(), name.to_owned());
        let mut cache = self.impersonated.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(applier) = cache.get(&key) {
            return Ok(applier.clone());
        }
        let user = format!("system:serviceaccount:{namespace}:{name}");
        let value = HeaderValue::from_str(&user).map_err(|_| format!("service account name {user:?} is not valid"))?;
        let mut config = self.config.clone();
        config
            .headers
            .push((HeaderName::from_static("impersonate-user"), value));
        let client = kube::Client::try_from(config).map_err(|e| format!("client for {user}: {e}"))?;
        let applier = Arc::new(Applier::new(client));
        cache.insert(key, applier.clone());
        Ok(applier)
    }
}
