//! regtool's library: a blocking client for OCI/Docker registries and local OCI image
//! layouts, behind one [`store::Store`] trait. It knows nothing of the command line: it takes
//! `impl Read` / `impl Write` and returns [`error::Error`] values.

#![warn(missing_docs)]

pub mod alias;
pub mod archive;
pub mod cancel;
pub mod credentials;
pub mod digest_cache;
pub mod error;
pub mod image;
pub mod layout;
pub mod oci;
pub mod outfile;
pub mod parallel;
pub mod pipe;
pub mod registry;
pub mod resume;
pub mod retry;
pub mod secret;
pub mod store;
pub mod text;

pub use cancel::Cancel;
pub use error::{Error, Kind, Result};
pub use store::Store;
