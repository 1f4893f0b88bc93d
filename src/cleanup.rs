//! What must not outlive an interrupted run: temporary files being filled, and upload
//! sessions open at the registry. Writers register them while they work; when a signal ends
//! the run, the binary's handler calls [`run_all`], which removes the files, runs the actions
//! (cancelling the sessions) in parallel within a time budget, and the process exits with
//! 128 + the signal. So an interrupt never leaves a partial `.name.regtool-*` file beside
//! the user's target, nor (registry willing) a dangling upload.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

type Action = Box<dyn Fn() + Send + Sync>;

enum Entry {
    File(PathBuf),
    Action(Action),
}

/// The registered entries, and whether cleanup has begun (then nothing new waits for it).
struct Registry {
    entries: Vec<(u64, Entry)>,
    closed: bool,
}

static GLOBAL: Mutex<Registry> = Mutex::new(Registry::new());
static NEXT: AtomicU64 = AtomicU64::new(0);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether the interrupt handler has started. Work in progress must then send nothing more:
/// the handler is cancelling it.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Parks the calling thread for good once the interrupt handler has started: the handler
/// cancels what this thread was doing and ends the process (returning an error instead would
/// race it to the exit status). The binary's main thread calls it too before it reports its
/// own outcome, which may be an error the cleanup caused (a removed temporary file).
pub fn stop_if_interrupted() {
    while interrupted() {
        std::thread::park();
    }
}

impl Registry {
    const fn new() -> Registry {
        Registry {
            entries: Vec::new(),
            closed: false,
        }
    }
}

/// The registry even if a thread panicked while holding it: cleanup must still run.
fn lock(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps an entry registered until dropped.
pub struct Guard {
    id: u64,
    registry: &'static Mutex<Registry>,
}

fn add(registry: &'static Mutex<Registry>, entry: Entry) -> Guard {
    let id = NEXT.fetch_add(1, Ordering::SeqCst);
    let mut r = lock(registry);
    if r.closed {
        // Created while the process is being cleaned up and about to exit: undo it now,
        // on this thread, as the cleanup would have.
        drop(r);
        match entry {
            Entry::File(path) => {
                let _ = std::fs::remove_file(path);
            }
            Entry::Action(action) => action(),
        }
        return Guard { id, registry };
    }
    r.entries.push((id, entry));
    Guard { id, registry }
}

/// Registers `path` for removal on interrupt until the guard is dropped.
pub fn register(path: &Path) -> Guard {
    add(&GLOBAL, Entry::File(path.to_path_buf()))
}

/// Registers an action (cancelling an upload session) to run on interrupt.
pub fn on_interrupt(action: impl Fn() + Send + Sync + 'static) -> Guard {
    add(&GLOBAL, Entry::Action(Box::new(action)))
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut r = lock(self.registry);
        if let Some(i) = r.entries.iter().position(|(id, _)| *id == self.id) {
            r.entries.swap_remove(i);
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

/// The interrupt handler's work: removes every registered file, then runs every registered
/// action, all at once, waiting for them at most `budget` (an action may be a request to a
/// registry that does not answer). Returns how many actions had not finished by then.
/// Anything registered after this call is undone as it is registered.
pub fn run_all(budget: Duration) -> usize {
    INTERRUPTED.store(true, Ordering::SeqCst);
    close(&GLOBAL).run(budget)
}

/// What cleanup has to do, taken out of a registry.
struct Pending {
    files: Vec<PathBuf>,
    actions: Vec<Action>,
}

fn close(registry: &Mutex<Registry>) -> Pending {
    let mut r = lock(registry);
    r.closed = true;
    Pending::of(std::mem::take(&mut r.entries).into_iter().map(|(_, e)| e))
}

impl Pending {
    fn of(entries: impl IntoIterator<Item = Entry>) -> Pending {
        let mut pending = Pending {
            files: Vec::new(),
            actions: Vec::new(),
        };
        for entry in entries {
            match entry {
                Entry::File(path) => pending.files.push(path),
                Entry::Action(action) => pending.actions.push(action),
            }
        }
        pending
    }

    /// Files first: removing them is quick and needs nobody's answer.
    fn run(self, budget: Duration) -> usize {
        let deadline = Instant::now() + budget;
        for path in &self.files {
            let _ = std::fs::remove_file(path);
        }
        let total = self.actions.len();
        let (done_tx, done_rx) = mpsc::channel();
        for action in self.actions {
            let done = done_tx.clone();
            std::thread::spawn(move || {
                action();
                let _ = done.send(());
            });
        }
        let mut finished = 0;
        while finished < total {
            let left = deadline.saturating_duration_since(Instant::now());
            if done_rx.recv_timeout(left).is_err() {
                break;
            }
            finished += 1;
        }
        total - finished
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn private() -> &'static Mutex<Registry> {
        Box::leak(Box::new(Mutex::new(Registry::new())))
    }

    #[test]
    fn registered_entries_run_until_released() {
        let registry = private();
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "x").unwrap();
        std::fs::write(&b, "x").unwrap();
        let _ga = add(registry, Entry::File(a.clone()));
        drop(add(registry, Entry::File(b.clone())));
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let _gc = add(
            registry,
            Entry::Action(Box::new(move || {
                r.fetch_add(1, Ordering::SeqCst);
            })),
        );
        assert_eq!(close(registry).run(Duration::from_secs(5)), 0);
        assert!(!a.exists());
        assert!(b.exists());
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn what_is_registered_after_cleanup_began_is_undone_at_once() {
        let registry = private();
        drop(close(registry));
        let dir = tempfile::tempdir().unwrap();
        let late = dir.path().join("late");
        std::fs::write(&late, "x").unwrap();
        let _guard = add(registry, Entry::File(late.clone()));
        assert!(!late.exists());
    }

    #[test]
    fn actions_run_in_parallel_within_the_budget() {
        let registry = private();
        let slow = || Entry::Action(Box::new(|| std::thread::sleep(Duration::from_millis(400))));
        let _guards: Vec<Guard> = (0..4).map(|_| add(registry, slow())).collect();
        let start = Instant::now();
        assert_eq!(close(registry).run(Duration::from_secs(5)), 0);
        assert!(
            start.elapsed() < Duration::from_millis(1200),
            "ran one by one"
        );
    }

    #[test]
    fn a_hanging_action_is_given_up_on_after_the_budget() {
        let registry = private();
        let hang = Entry::Action(Box::new(|| std::thread::sleep(Duration::from_secs(60))));
        let _hanging = add(registry, hang);
        let _quick = add(registry, Entry::Action(Box::new(|| {})));
        let start = Instant::now();
        assert_eq!(close(registry).run(Duration::from_millis(300)), 1);
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
