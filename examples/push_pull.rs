//! Pushes a blob into a store and pulls it back, through regtool's library only.
//!
//! ```text
//! cargo run --example push_pull            # a local OCI layout in a temporary directory
//! cargo run --example push_pull HOST:PORT  # a registry (loopback may be plain HTTP)
//! ```
//!
//! The blob goes up as a stream of unknown length (hashed while it is sent), comes back as a
//! stream, and is checked against its digest as it is read. A [`regtool::Cancel`] is handed
//! to the store: cancelling it (from a signal handler, a timeout, a UI) would stop the
//! transfer and remove or cancel what it left half done.

use std::process::ExitCode;

use regtool::Store;
use regtool::oci::digest::copy_verified;
use regtool::oci::{Algorithm, Host, Repository};

const REPO: &str = "examples/push-pull";
const CONTENT: &[u8] = b"hello from regtool's library\n";

fn main() -> ExitCode {
    match run(std::env::args().nth(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("push_pull: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(host: Option<String>) -> regtool::Result<()> {
    let cancel = regtool::Cancel::new();
    // Kept alive until the end: dropping it removes the local store.
    let scratch = tempfile::tempdir().map_err(|e| regtool::Error::io("making a directory", &e))?;
    let store: Box<dyn Store> = match host {
        Some(host) => {
            // Names are typed: a host or repository is checked once, when it is made.
            let host = Host::parse(&host)
                .map_err(|why| regtool::Error::usage(format!("{host:?}: {why}")))?;
            let options = regtool::registry::Options::new(host);
            Box::new(regtool::registry::Registry::new(&options).with_cancel(cancel.clone()))
        }
        None => Box::new(regtool::layout::Layout::new(scratch.path()).with_cancel(cancel)),
    };

    let repo = Repository::new(REPO)?;
    let (digest, size) = store.put_blob_stream(&repo, &mut &CONTENT[..], Algorithm::Sha256)?;
    println!("pushed {digest} ({size} bytes) to {}", store.location());

    let blob = store.open_blob(&repo, &digest)?;
    let mut pulled = Vec::new();
    let mut reader = blob.reader;
    copy_verified(&mut reader, &mut pulled, &digest, Some(size))?;
    if pulled != CONTENT {
        return Err(regtool::Error::data(
            "the pulled blob differs from the pushed one",
        ));
    }
    println!(
        "pulled {digest} back: {} bytes, digest verified",
        pulled.len()
    );
    Ok(())
}
