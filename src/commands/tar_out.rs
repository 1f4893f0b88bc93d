//! Where the tar-making commands (squash, flatten, make-layer) write: stdout, or `-o FILE`
//! through a temporary file beside FILE that is renamed over it only once the whole tar was
//! written, so FILE is never partial.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use regtool::error::{Error, Kind, Result};

use crate::output::Output;

/// Runs `write` against stdout or (with a path) a temporary file that becomes `path`.
pub fn write_to(
    stdout: &mut Output,
    path: Option<&PathBuf>,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let Some(path) = path else {
        let result = write(stdout.raw());
        return match result {
            Err(e) if e.kind == Kind::Closed => Ok(()),
            other => other.and_then(|()| stdout.flush()),
        };
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (mut tmp, _guard) = regtool::cleanup::tempfile(&format!(".{name}.regtool-"), dir)
        .map_err(|e| Error::io(format!("creating a file in {}", dir.display()), &e))?;
    {
        let mut buffered = BufWriter::with_capacity(256 * 1024, tmp.as_file_mut());
        write(&mut buffered)?;
        buffered
            .flush()
            .map_err(|e| Error::io(format!("writing {}", path.display()), &e))?;
    }
    // Dropping `tmp` on any error above removes it; only a complete tar is renamed into place.
    tmp.persist(path)
        .map_err(|e| Error::io(format!("writing {}", path.display()), &e.error))?;
    Ok(())
}
