//! Where the tar-making commands (squash, flatten, make-layer) write: stdout, or `-o FILE`
//! with the rules of `regtool::outfile`: a regular FILE through a temporary file beside it
//! that is renamed over it only once the whole tar was written, so FILE is never partial;
//! a symlink's target likewise; a device, a FIFO or /dev/fd/N directly.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use regtool::Cancel;
use regtool::error::{Error, Kind, Result};
use regtool::outfile::OutFile;

use crate::output::Output;

/// Runs `write` against stdout or (with a path) a temporary file that becomes `path`, removed
/// on `cancel`.
pub fn write_to(
    stdout: &mut Output,
    path: Option<&PathBuf>,
    cancel: &Cancel,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let Some(path) = super::output_file(path) else {
        let result = write(stdout.raw());
        return match result {
            Err(e) if e.kind == Kind::Closed => Ok(()),
            other => other.and_then(|()| stdout.flush()),
        };
    };
    // A regular FILE gets a temporary file that is renamed over it only once the whole tar
    // was written (dropping it on an error removes it); devices and pipes get the tar as it
    // is made (regtool::outfile).
    let mut file = OutFile::create(path, cancel)?;
    {
        let mut buffered = BufWriter::with_capacity(256 * 1024, &mut file);
        write(&mut buffered)?;
        buffered
            .flush()
            .map_err(|e| Error::io(format!("writing {}", path.display()), &e))?;
    }
    file.commit()
}
