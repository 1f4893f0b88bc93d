//! Image operations that work through any [`crate::store::Store`]: uploading tar layers,
//! appending them to images, and copying images between repositories and registries; and
//! the layer tools: merging layers into one tar (squash, flatten) and making layers from
//! files and wheels.

pub mod append;
pub mod copy;
pub mod endpoint;
pub mod flatten;
pub mod layer;
pub mod make_image;
pub mod make_layer;
pub mod merge;
pub mod source;
pub mod tarcheck;
pub mod tarout;
pub mod wheel;
