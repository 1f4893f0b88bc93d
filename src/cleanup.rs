//! What must not outlive an interrupted run: temporary files being filled, and upload
//! sessions open at the registry. Writers register them while they work; the interrupt
//! handler (installed by the binary) cancels the sessions (DELETE), removes the files, and the
//! process exits with status 130. So Ctrl-C never leaves a partial `.name.regtool-*` file
//! beside the user's target, nor a dangling upload.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

type Action = Box<dyn Fn() + Send + Sync>;

enum Entry {
    File(PathBuf),
    Action(Action),
}

static ENTRIES: Mutex<Vec<(u64, Entry)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether the interrupt handler has started. Work in progress must then send nothing more:
/// the handler is cancelling it.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Parks the calling thread for good once the interrupt handler has started: the handler
/// cancels what this thread was doing and ends the process (returning an error instead would
/// race it to the exit status).
pub fn stop_if_interrupted() {
    while interrupted() {
        std::thread::park();
    }
}

/// Keeps an entry registered until dropped.
pub struct Guard(u64);

fn add(entry: Entry) -> Guard {
    let id = NEXT.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut e) = ENTRIES.lock() {
        e.push((id, entry));
    }
    Guard(id)
}

/// Registers `path` for removal on interrupt until the guard is dropped.
pub fn register(path: &Path) -> Guard {
    add(Entry::File(path.to_path_buf()))
}

/// Registers an action (cancelling an upload session) to run on interrupt.
pub fn on_interrupt(action: impl Fn() + Send + Sync + 'static) -> Guard {
    add(Entry::Action(Box::new(action)))
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(mut e) = ENTRIES.lock()
            && let Some(i) = e.iter().position(|(id, _)| *id == self.0)
        {
            e.swap_remove(i);
        }
    }
}

/// A temporary file in `dir`, registered for removal on interrupt while the guard lives. It
/// becomes readable by others (mode 0666 less the umask) once renamed into place, unlike
/// tempfile's default 0600: a pulled file or a layout's blob is the user's ordinary file.
pub fn tempfile(
    prefix: impl AsRef<std::ffi::OsStr>,
    dir: &Path,
) -> std::io::Result<(tempfile::NamedTempFile, Guard)> {
    use std::os::unix::fs::PermissionsExt;
    let file = tempfile::Builder::new()
        .prefix(prefix.as_ref())
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    let guard = register(file.path());
    Ok((file, guard))
}

/// Runs every registered action, then removes every registered file (the interrupt handler).
pub fn run_all() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let Ok(entries) = ENTRIES.lock() else { return };
    for (_, entry) in entries.iter() {
        if let Entry::Action(action) = entry {
            action();
        }
    }
    for (_, entry) in entries.iter() {
        if let Entry::File(path) = entry {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn registered_entries_run_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "x").unwrap();
        std::fs::write(&b, "x").unwrap();
        let _ga = register(&a);
        drop(register(&b));
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let _gc = on_interrupt(move || r.store(true, Ordering::SeqCst));
        run_all();
        assert!(!a.exists());
        assert!(b.exists());
        assert!(ran.load(Ordering::SeqCst));
    }
}
