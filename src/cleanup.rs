//! Temporary files that must not outlive an interrupted run. Writers register the temporary
//! file they are filling; an interrupt handler (installed by the binary) removes whatever is
//! registered before the process exits with status 130, so Ctrl-C never leaves a partial
//! `.name.regtool-*` file beside the user's target.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

static PATHS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Keeps a path registered until dropped.
pub struct Guard(PathBuf);

/// Registers `path` for removal on interrupt until the guard is dropped.
pub fn register(path: &Path) -> Guard {
    if let Ok(mut p) = PATHS.lock() {
        p.push(path.to_path_buf());
    }
    Guard(path.to_path_buf())
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(mut p) = PATHS.lock()
            && let Some(i) = p.iter().position(|x| x == &self.0)
        {
            p.swap_remove(i);
        }
    }
}

/// Removes every registered path (called from the interrupt handler).
pub fn remove_all() {
    if let Ok(p) = PATHS.lock() {
        for path in p.iter() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn registered_files_are_removed_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "x").unwrap();
        std::fs::write(&b, "x").unwrap();
        let _ga = super::register(&a);
        drop(super::register(&b));
        super::remove_all();
        assert!(!a.exists());
        assert!(b.exists());
    }
}
