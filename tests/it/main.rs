//! Integration tests: the built `regtool` binary against real `docker-registry` instances
//! started by the harness, a local OCI layout, python-dxf, skopeo, and (for what the real
//! registry cannot do) a small scripted HTTP server.

mod faults;
mod harness;
mod pki;
mod scripted;
mod tokens;

mod archives;
mod auth;
mod badinput;
mod blobstore;
mod digests;
mod dxf;
mod errors;
mod first_hour;
mod hints;
mod hostile;
mod hostile_images;
mod imagelayouts;
mod images;
mod layertools;
mod layout;
mod many;
mod outpaths;
mod retries;
mod scheme;
mod secrets;
mod signals;
mod transfers;
mod uploads;
