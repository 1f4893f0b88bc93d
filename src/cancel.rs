//! Cancellation as a value: a [`Cancel`] is handed to the stores and operations that should
//! stop when the caller says so. Long loops ask [`Cancel::check`] between steps; what must not
//! outlive a cancelled run (a temporary file being filled, an upload session open at a
//! registry) is registered with it while it exists. [`Cancel::cancel`] then removes the files,
//! runs the actions (cancelling the sessions) in parallel within a time budget, and from then
//! on every check fails with [`Kind::Interrupted`].
//!
//! The binary makes one per run and cancels it from its signal thread (SIGINT, SIGTERM,
//! SIGHUP), so an interrupt never leaves a partial `.name.regtool-*` file beside the user's
//! target, nor (registry willing) a dangling upload. Two values are independent: cancelling
//! one leaves the other's work and cleanups alone.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use crate::error::{Error, Kind, Result};

type Action = Box<dyn Fn() + Send + Sync>;

enum Entry {
    File(PathBuf),
    Action(Action),
}

/// The registered entries, and whether cleanup has begun (then nothing new waits for it).
#[derive(Default)]
struct Entries {
    list: Vec<(u64, Entry)>,
    closed: bool,
}

#[derive(Default)]
struct Inner {
    entries: Mutex<Entries>,
    /// Set under the `entries` lock when they are taken, so that whoever sees it knows the
    /// cleanups are already in hand: dropping a guard then cannot lose one.
    cancelled: AtomicBool,
    next: AtomicU64,
    /// Wakes [`Cancel::sleep`]ers when the token is cancelled (paired with `entries`).
    wake: Condvar,
}

/// A cancellation token with the cleanups registered against it. Cheap to clone: clones share
/// one state, and cancelling any of them cancels them all.
#[derive(Clone, Default)]
pub struct Cancel {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Keeps a cleanup registered until dropped.
#[must_use = "the cleanup is unregistered when the guard is dropped"]
pub struct Guard {
    id: u64,
    inner: Arc<Inner>,
}

impl Cancel {
    /// A token nobody has cancelled yet, with no cleanups.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Whether [`Cancel::cancel`] has been called. Work in progress should then stop and send
    /// nothing more: its cleanups are running.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// `Err` of kind [`Kind::Interrupted`] once cancelled: the check between two steps of a
    /// long operation.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            return Err(Error::new(Kind::Interrupted, "interrupted"));
        }
        Ok(())
    }

    /// Waits `duration`, or less: `Err` of kind [`Kind::Interrupted`] as soon as the token is
    /// cancelled (at once if it already is). The wait between two retries, which an
    /// interrupt must not have to sit out.
    pub fn sleep(&self, duration: Duration) -> Result<()> {
        let deadline = Instant::now() + duration;
        let mut entries = self.lock();
        while !self.is_cancelled() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            entries = match self.inner.wake.wait_timeout(entries, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        drop(entries);
        self.check()
    }

    /// Registers an action (cancelling an upload session) to run on cancel, until the guard
    /// is dropped. Registered after the cancel, it runs at once on this thread.
    pub fn on_cancel(&self, action: impl Fn() + Send + Sync + 'static) -> Guard {
        self.add(Entry::Action(Box::new(action)))
    }

    /// Registers `path` for removal on cancel, until the guard is dropped. Registered after
    /// the cancel, it is removed at once.
    pub fn remove_on_cancel(&self, path: &Path) -> Guard {
        self.add(Entry::File(path.to_path_buf()))
    }

    /// A temporary file in `dir`, removed on cancel while the guard lives. It becomes
    /// readable by others (mode 0666 less the umask) once renamed into place, unlike
    /// tempfile's default 0600: a pulled file or a layout's blob is the user's ordinary file.
    pub fn tempfile(
        &self,
        prefix: impl AsRef<std::ffi::OsStr>,
        dir: &Path,
    ) -> std::io::Result<(tempfile::NamedTempFile, Guard)> {
        self.tempfile_with_mode(prefix, dir, 0o666)
    }

    fn tempfile_with_mode(
        &self,
        prefix: impl AsRef<std::ffi::OsStr>,
        dir: &Path,
        mode: u32,
    ) -> std::io::Result<(tempfile::NamedTempFile, Guard)> {
        use std::os::unix::fs::PermissionsExt;
        let file = tempfile::Builder::new()
            .prefix(prefix.as_ref())
            .permissions(std::fs::Permissions::from_mode(mode))
            .tempfile_in(dir)?;
        let guard = self.remove_on_cancel(file.path());
        Ok((file, guard))
    }

    /// [`Cancel::tempfile`], locked (`flock`) for as long as it is open, so that
    /// [`sweep_stale`] in another process leaves it alone while its writer lives. A SIGKILL
    /// cannot be caught to remove the file; the lock tells the next writer that it is stale.
    pub fn locked_tempfile(
        &self,
        prefix: impl AsRef<std::ffi::OsStr>,
        dir: &Path,
    ) -> std::io::Result<(tempfile::NamedTempFile, Guard)> {
        let (file, guard) = self.tempfile(prefix, dir)?;
        file.as_file().lock()?;
        Ok((file, guard))
    }

    /// [`Cancel::locked_tempfile`] made 0600, for content that replaces a file others may not
    /// read: a file created readable, even empty, can be opened by another user before its
    /// mode is narrowed, and the open descriptor then reads whatever is written later. The
    /// caller sets the final mode.
    pub fn locked_private_tempfile(
        &self,
        prefix: impl AsRef<std::ffi::OsStr>,
        dir: &Path,
    ) -> std::io::Result<(tempfile::NamedTempFile, Guard)> {
        let (file, guard) = self.tempfile_with_mode(prefix, dir, 0o600)?;
        file.as_file().lock()?;
        Ok((file, guard))
    }

    /// `inner`, whose reads fail with [`Kind::Interrupted`] once cancelled: a copy loop over
    /// it stops at its next read.
    pub fn reader<R: Read>(&self, inner: R) -> Checked<R> {
        Checked {
            inner,
            cancel: self.clone(),
        }
    }

    /// Cancels: removes every registered file, then runs every registered action, all at
    /// once, waiting for them at most `budget` (an action may be a request to a registry that
    /// does not answer). Returns how many actions had not finished by then. Anything
    /// registered after this call is undone as it is registered; a second call finds nothing
    /// left to do.
    pub fn cancel(&self, budget: Duration) -> usize {
        self.close().run(budget)
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        lock(&self.inner)
    }

    fn add(&self, entry: Entry) -> Guard {
        let id = self.inner.next.fetch_add(1, Ordering::SeqCst);
        let guard = Guard {
            id,
            inner: self.inner.clone(),
        };
        let mut entries = self.lock();
        if entries.closed {
            // Created after the cancel: undo it now, on this thread, as the cleanup would have.
            drop(entries);
            match entry {
                Entry::File(path) => {
                    let _ = std::fs::remove_file(path);
                }
                Entry::Action(action) => action(),
            }
            return guard;
        }
        entries.list.push((id, entry));
        guard
    }

    fn close(&self) -> Pending {
        let mut entries = self.lock();
        entries.closed = true;
        self.inner.cancelled.store(true, Ordering::SeqCst);
        self.inner.wake.notify_all();
        Pending::of(
            std::mem::take(&mut entries.list)
                .into_iter()
                .map(|(_, e)| e),
        )
    }
}

/// A temporary file younger than this is never swept: its writer may not have locked it yet.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// Removes the files of `dir` whose names `pick` accepts, once `age` old and, with `locked`,
/// only when no writer holds their lock ([`Cancel::locked_tempfile`]): the temporaries of a
/// writer that was killed. Best effort: a file that cannot be removed now is left for later.
pub fn sweep_stale(dir: &Path, pick: impl Fn(&str) -> bool, age: Duration, locked: bool) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let old = entry.metadata().is_ok_and(|m| {
            m.is_file()
                && m.modified().is_ok_and(|t| {
                    std::time::SystemTime::now()
                        .duration_since(t)
                        .unwrap_or_default()
                        >= age
                })
        });
        if !old || !entry.file_name().to_str().is_some_and(&pick) {
            continue;
        }
        // A writer holds the lock of its file until it is renamed into place or dropped.
        if locked && !std::fs::File::open(&path).is_ok_and(|f| f.try_lock().is_ok()) {
            continue;
        }
        let _ = std::fs::remove_file(&path);
    }
}

/// A reader that stops once its token is cancelled ([`Cancel::reader`]).
pub struct Checked<R> {
    inner: R,
    cancel: Cancel,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.cancel.check()?;
        self.inner.read(buf)
    }
}

/// The entries even if a thread panicked while holding them: cleanup must still run.
fn lock(inner: &Inner) -> MutexGuard<'_, Entries> {
    inner
        .entries
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut entries = lock(&self.inner);
        if let Some(i) = entries.list.iter().position(|(id, _)| *id == self.id) {
            entries.list.swap_remove(i);
        }
    }
}

/// What cleanup has to do, taken out of a token.
struct Pending {
    files: Vec<PathBuf>,
    actions: Vec<Action>,
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
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn a_sleep_ends_when_the_token_is_cancelled() {
        let cancel = Cancel::new();
        assert!(cancel.sleep(Duration::from_millis(1)).is_ok());
        let (tx, rx) = mpsc::channel();
        let sleeper = cancel.clone();
        std::thread::spawn(move || tx.send(sleeper.sleep(Duration::from_secs(600))));
        std::thread::sleep(Duration::from_millis(50));
        cancel.cancel(Duration::from_secs(1));
        let slept = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(slept.unwrap_err().kind, Kind::Interrupted);
        // Once cancelled, a sleep does not even start.
        assert!(cancel.sleep(Duration::from_secs(600)).is_err());
    }

    fn counter() -> (Arc<AtomicUsize>, impl Fn() + Send + Sync + 'static) {
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        (ran, move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
    }

    #[test]
    fn registered_entries_run_until_released() {
        let cancel = Cancel::new();
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "x").unwrap();
        std::fs::write(&b, "x").unwrap();
        let _ga = cancel.remove_on_cancel(&a);
        drop(cancel.remove_on_cancel(&b));
        let (ran, action) = counter();
        let _gc = cancel.on_cancel(action);
        assert!(cancel.check().is_ok());
        assert_eq!(cancel.cancel(Duration::from_secs(5)), 0);
        assert!(!a.exists());
        assert!(b.exists());
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert!(cancel.is_cancelled());
        assert_eq!(cancel.check().unwrap_err().kind, Kind::Interrupted);
    }

    #[test]
    fn what_is_registered_after_cleanup_began_is_undone_at_once() {
        let cancel = Cancel::new();
        cancel.cancel(Duration::from_secs(1));
        let dir = tempfile::tempdir().unwrap();
        let late = dir.path().join("late");
        std::fs::write(&late, "x").unwrap();
        let _guard = cancel.remove_on_cancel(&late);
        assert!(!late.exists());
        let (ran, action) = counter();
        let _guard = cancel.on_cancel(action);
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn actions_run_in_parallel_within_the_budget() {
        let cancel = Cancel::new();
        let _guards: Vec<Guard> = (0..4)
            .map(|_| cancel.on_cancel(|| std::thread::sleep(Duration::from_millis(400))))
            .collect();
        let start = Instant::now();
        assert_eq!(cancel.cancel(Duration::from_secs(5)), 0);
        assert!(
            start.elapsed() < Duration::from_millis(1200),
            "ran one by one"
        );
    }

    #[test]
    fn a_hanging_action_is_given_up_on_after_the_budget() {
        let cancel = Cancel::new();
        let _hanging = cancel.on_cancel(|| std::thread::sleep(Duration::from_secs(60)));
        let _quick = cancel.on_cancel(|| {});
        let start = Instant::now();
        assert_eq!(cancel.cancel(Duration::from_millis(300)), 1);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_checked_reader_stops_at_the_first_read_after_the_cancel() {
        let cancel = Cancel::new();
        let mut reader = cancel.reader(&b"abcdef"[..]);
        let mut buf = [0u8; 3];
        assert_eq!(reader.read(&mut buf).unwrap(), 3);
        cancel.cancel(Duration::from_secs(1));
        let err = reader.read(&mut buf).unwrap_err();
        let err = crate::error::from_io("reading", err);
        assert_eq!(err.kind, Kind::Interrupted);
    }

    #[test]
    fn two_tokens_do_not_affect_each_other() {
        let (one, other) = (Cancel::new(), Cancel::new());
        let dir = tempfile::tempdir().unwrap();
        let (mine, theirs) = (dir.path().join("mine"), dir.path().join("theirs"));
        std::fs::write(&mine, "x").unwrap();
        std::fs::write(&theirs, "x").unwrap();
        let _g1 = one.remove_on_cancel(&mine);
        let _g2 = other.remove_on_cancel(&theirs);
        let (ran, action) = counter();
        let _g3 = other.on_cancel(action);
        one.cancel(Duration::from_secs(5));
        assert!(!mine.exists());
        assert!(theirs.exists(), "the other token's file was removed");
        assert_eq!(
            ran.load(Ordering::SeqCst),
            0,
            "the other token's action ran"
        );
        assert!(one.check().is_err());
        assert!(other.check().is_ok(), "the other token was cancelled too");
        // A clone is the same token.
        assert!(one.clone().is_cancelled());
        other.cancel(Duration::from_secs(5));
        assert!(!theirs.exists());
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }
}
