//! The OCI data model: digests, names, platforms, media types and manifests.

pub mod digest;
pub mod manifest;
pub mod media;
pub mod name;
pub mod platform;
pub mod reference;

pub use digest::{Algorithm, Digest};
pub use manifest::{Descriptor, Manifest};
pub use name::Target;
pub use platform::Platform;
pub use reference::Reference;
