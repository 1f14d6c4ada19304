//! Which API serves a kind: a discovery cache per group-version, filled on first use and
//! refreshed when a kind is missing (a CRD applied a moment ago) or on request.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersion;
use kube::discovery::{self, ApiCapabilities, ApiResource, Scope};

use super::{Error, api_message};
use crate::inventory::ObjectRef;

type Resources = Vec<(ApiResource, ApiCapabilities)>;

/// Resolves kinds to API resources through discovery, caching each group-version.
pub struct Resolver {
    client: Client,
    cache: Mutex<HashMap<String, Resources>>,
}

impl Resolver {
    /// A resolver with an empty cache.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The client the resolver discovers with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Forgets everything discovered, e.g. after CRDs were installed or removed.
    pub fn invalidate(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Resources>> {
        // A panic while holding the lock leaves a cache that is still valid data.
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cached(&self, api_version: &str, kind: &str) -> Option<(ApiResource, ApiCapabilities)> {
        self.lock()
            .get(api_version)?
            .iter()
            .find(|(resource, _)| resource.kind == kind)
            .cloned()
    }

    /// The resource and capabilities serving `object`'s kind, `None` when the cluster does not
    /// serve it. A kind missing from the cache is looked up again once.
    pub async fn resolve(&self, object: &ObjectRef) -> Result<Option<(ApiResource, ApiCapabilities)>, Error> {
        let api_version = object.api_version();
        if let Some(found) = self.cached(&api_version, &object.kind) {
            return Ok(Some(found));
        }
        let gv = GroupVersion::gv(&object.group, &object.version);
        let resources = match discovery::pinned_group(&self.client, &gv).await {
            Ok(group) => group.versioned_resources(&object.version),
            Err(kube::Error::Api(status)) if status.is_not_found() => Vec::new(),
            Err(source) => {
                return Err(Error::Discovery {
                    object: object.clone(),
                    message: api_message(&source),
                    source,
                });
            }
        };
        self.lock().insert(api_version.clone(), resources);
        Ok(self.cached(&api_version, &object.kind))
    }

    /// An API for `object`: namespaced to its namespace when its kind is namespaced.
    pub async fn api_for(&self, object: &ObjectRef) -> Result<Api<DynamicObject>, Error> {
        let Some((resource, capabilities)) = self.resolve(object).await? else {
            return Err(Error::UnknownKind { object: object.clone() });
        };
        if capabilities.scope == Scope::Namespaced && object.namespace.is_empty() {
            return Err(Error::InvalidObject {
                object: object.clone(),
                reason: "the kind is namespaced but the object has no namespace".into(),
            });
        }
        Ok(self.api_with(object, &resource, &capabilities.scope))
    }

    pub(super) fn api_with(&self, object: &ObjectRef, resource: &ApiResource, scope: &Scope) -> Api<DynamicObject> {
        match scope {
            Scope::Namespaced => Api::namespaced_with(self.client.clone(), &object.namespace, resource),
            Scope::Cluster => Api::all_with(self.client.clone(), resource),
        }
    }
}
