//! Eddy's shared library: the CRD APIs, the contracts between controllers, and the runtime every
//! controller binary starts with. It parses no flags of its own and has no `main`; binaries
//! flatten [`runtime::RuntimeArgs`] into theirs.

pub mod api;
pub mod artifact;
pub mod conditions;
pub mod events;
pub mod git;
pub mod inventory;
/// The native kustomize engine, shared by apply-controller and `eddy build`.
pub use eddy_kustomize as kustomize;
pub mod meta;
pub mod oci;
pub mod remote_base;
pub mod runtime;
pub mod ssa;
pub mod status;
pub mod versions;

/// Installs ring as the process-wide rustls provider, once. kube, reqwest, gix's HTTP transport
/// and the OCI client all need it; calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
