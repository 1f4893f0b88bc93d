//! The OCI data model: digests, hosts, names, platforms, media types and manifests.

pub mod digest;
pub mod host;
pub mod manifest;
pub mod media;
pub mod name;
pub mod platform;
pub mod reference;

pub use digest::{Algorithm, Digest};
pub use host::Host;
pub use manifest::{Descriptor, Manifest};
pub use name::{Reference, Repository, Tag, Target};
pub use platform::Platform;
pub use reference::ImageRef;
