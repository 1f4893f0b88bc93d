//! Image operations that work through any [`crate::store::Store`]: uploading tar layers,
//! appending them to images, and copying images between repositories and registries.

pub mod append;
pub mod copy;
pub mod layer;
pub mod tarcheck;
