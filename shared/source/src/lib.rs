//! eddy-source: what turns a source into an artifact and back. [`artifact`] packs a tree into a
//! reproducible tar.gz, stores it by digest, serves it over HTTP, fetches it with its digest
//! verified and unpacks it confined; [`git`] resolves refs and checks out commits (gitoxide);
//! [`oci`] is Flux's OCI artifact format (oci-client); [`versions`] parses semver ranges.
//!
//! May depend on: eddy-api, gix, oci-client, axum, reqwest. Never on the apply engine, the
//! kustomize engine or the controller runtime: source-controller builds on it without them.

pub mod artifact;
pub mod git;
pub mod oci;
pub mod versions;

/// Installs ring as the process-wide rustls provider, once. reqwest, gix's HTTP transport and the
/// OCI client all need it; calling it again is harmless. (eddy-runtime installs the same provider
/// for the controllers; a tool using only this crate, such as `eddy build`, relies on this one.)
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
