//! Artifacts, the contract between source-controller and its consumers (DESIGN.md section 3):
//! a reproducible tar.gz per source revision, stored atomically under its digest, served over
//! HTTP, and on the consumer side downloaded with a size cap, verified while streaming and
//! unpacked with path confinement.

mod fetch;
mod pack;
mod serve;
mod store;
mod unpack;

pub use fetch::{FetchError, fetch};
pub use pack::{DEFAULT_EXCLUSIONS, Dropped, PackError, Packed, SOURCEIGNORE, pack};
pub use serve::router;
pub use store::{ArtifactOwner, ArtifactStore, DigestWriter, StoreError, hex};
pub use unpack::{Limits, UnpackError, Unpacked, unpack};
