//! Eddy's shared library: the CRD APIs, the contracts between controllers, and the runtime every
//! controller binary starts with. It parses no flags of its own and has no `main`.

pub mod api;
pub mod meta;
