//! The `User-Agent` every request carries.

/// `regtool/<version>`.
pub const USER_AGENT: &str = concat!("regtool/", env!("CARGO_PKG_VERSION"));
