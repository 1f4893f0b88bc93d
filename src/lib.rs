//! regtool's library: a blocking client for OCI/Docker registries and local OCI image
//! layouts, behind one [`store::Store`] trait. It knows nothing of the command line: it takes
//! `impl Read` / `impl Write` and returns [`error::Error`] values.

pub mod alias;
pub mod cleanup;
pub mod config;
pub mod credentials;
pub mod error;
pub mod image;
pub mod layout;
pub mod oci;
pub mod outfile;
pub mod parallel;
pub mod pipe;
pub mod registry;
pub mod resume;
pub mod secret;
pub mod store;
pub mod text;

pub use error::{Error, Kind, Result};
pub use store::Store;

/// Opens the store the settings name.
pub fn open(location: &config::Location) -> Box<dyn Store> {
    match location {
        config::Location::Registry(opts) => Box::new(registry::Registry::new(opts)),
        config::Location::Layout { root, .. } => Box::new(layout::Layout::new(root.clone())),
    }
}
