//! Writing to a path the user named (`-o FILE`, an image target). What the path is decides
//! how:
//! - a regular file, or nothing yet: a temporary file beside it, fsynced, renamed over it only
//!   by [`OutFile::commit`] (so it is never partial or unverified), then the directory
//!   fsynced. An existing file keeps its permission bits and, where allowed, its owner;
//! - a symlink: resolved, and its final target treated as above (the link stays a link). A
//!   link in a sticky world-writable directory (/tmp) is followed only when it is ours or the
//!   directory owner's, as the kernel's `fs.protected_symlinks` decides for its own lookups;
//!   otherwise another user could plant one to have a file of ours replaced or created;
//! - anything else (a character device like /dev/null, a FIFO, a terminal, a descriptor
//!   reached through /dev/fd/N, /dev/stdout or /proc/self/fd/N): opened and written in place.
//!   Renaming over those would replace the device or the pipe its reader waits on. Bytes
//!   reach them before the end is verified, as on stdout, and the caller reports a mismatch.
//!
//! A failure here is the output path's (a missing or read-only directory), never a missing
//! blob: it is never of kind [`Kind::NotFound`], which scripts read as "no such blob".
//! Temporary files are locked while their writer lives; one left by a killed writer is
//! removed by the next write to the same target.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::cancel::{self, Cancel, STALE_AFTER, sweep_stale};
use crate::error::{Error, Kind, Result};

/// The longest file name Linux and macOS file systems take (NAME_MAX), in bytes.
const NAME_MAX: usize = 255;
/// Links followed before giving up, as the kernel's own limit (MAXSYMLINKS, ELOOP).
const MAX_LINKS: usize = 40;
/// What the temporary name adds around the target's name: `.`, `.regtool-`, 6 random.
const TEMP_OVERHEAD: usize = 1 + 9 + 6;

/// An output being written; see the module documentation for the rules.
pub struct OutFile {
    /// The path as the user gave it, for messages.
    path: PathBuf,
    how: How,
}

enum How {
    InPlace(File),
    Atomic {
        tmp: tempfile::NamedTempFile,
        guard: cancel::Guard,
        cancel: Cancel,
        target: PathBuf,
    },
}

/// What a path turned out to be.
#[derive(Debug, PartialEq)]
enum Plan {
    InPlace,
    /// Replace `target`: the path with its symlinks resolved.
    Atomic {
        target: PathBuf,
    },
}

impl OutFile {
    /// Opens `path` for writing. A FIFO's open waits for its reader, as any writer's would.
    /// A temporary file is removed when `cancel` is cancelled, and never renamed into place
    /// after that.
    pub fn create(path: &Path, cancel: &Cancel) -> Result<OutFile> {
        let failed = |e: io::Error| output_error(format!("writing {}", path.display()), &e);
        let how = match plan(path).map_err(failed)? {
            Plan::InPlace => How::InPlace(
                // Appending: a regular file reached through a descriptor (`-o /dev/stdout
                // >> log`, or `> log` after earlier output) continues where its writer is;
                // devices and pipes ignore the flag.
                fs::OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map_err(failed)?,
            ),
            Plan::Atomic { target } => {
                atomic(&target, fs::metadata(&target).ok().as_ref(), cancel)?
            }
        };
        Ok(OutFile {
            path: path.to_path_buf(),
            how,
        })
    }

    /// True when the bytes go straight to a device, a pipe or a descriptor: nothing holds
    /// them back if verification fails later.
    pub fn in_place(&self) -> bool {
        matches!(self.how, How::InPlace(_))
    }

    /// The temporary file of an atomic write, which can be sought (an archive's layer headers
    /// are written after their data); None when the bytes go straight to a device or a pipe.
    pub fn seekable(&mut self) -> Option<&mut File> {
        match &mut self.how {
            How::InPlace(_) => None,
            How::Atomic { tmp, .. } => Some(tmp.as_file_mut()),
        }
    }

    /// Finishes the output: a temporary file is synced to disk and renamed over its target.
    /// Dropping an `OutFile` without committing discards a temporary file.
    pub fn commit(self) -> Result<()> {
        let failed = |e: io::Error| output_error(format!("writing {}", self.path.display()), &e);
        match self.how {
            How::InPlace(mut f) => f.flush().map_err(failed),
            How::Atomic {
                tmp,
                guard,
                cancel,
                target,
            } => {
                cancel.check()?;
                // The data first, then the name: a crash after the rename must not leave an
                // empty or partial file under the final name.
                tmp.as_file().sync_all().map_err(failed)?;
                tmp.persist(&target).map_err(|e| failed(e.error))?;
                drop(guard);
                sync_dir(parent(&target)).map_err(failed)
            }
        }
    }

    fn file(&mut self) -> &mut File {
        match &mut self.how {
            How::InPlace(f) => f,
            How::Atomic { tmp, .. } => tmp.as_file_mut(),
        }
    }
}

impl Write for OutFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

/// Decides how `path` is written (module documentation).
fn plan(path: &Path) -> io::Result<Plan> {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err(io::Error::other("is a directory")),
        Ok(m) if !m.is_file() => return Ok(Plan::InPlace),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(match resolve(path)? {
        Some(target) => Plan::Atomic { target },
        // A regular file reached through a descriptor: its name is not ours to replace.
        None => Plan::InPlace,
    })
}

/// Follows symlinks in the last component of `path`; None when one of them is a descriptor
/// link (/proc/PID/fd/N, which /dev/fd, /dev/stdout and /proc/self/fd lead to), whose text
/// is no path to rename over.
fn resolve(path: &Path) -> io::Result<Option<PathBuf>> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                if is_descriptor_link(&current) {
                    return Ok(None);
                }
                may_follow(&current, &m)?;
                let link = fs::read_link(&current)?;
                // A relative link is relative to the directory holding it; join keeps an
                // absolute one as it is.
                current = parent(&current).join(link);
            }
            Ok(_) => return Ok(Some(current)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(current)),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// The rule of Linux's `fs.protected_symlinks` (proc_sys_fs(5)), applied here because the
/// link is read in user space and the kernel never sees it followed: in a sticky
/// world-writable directory, a link is followed only when it belongs to us (the effective
/// user) or to the directory's owner.
fn may_follow(link: &Path, meta: &Metadata) -> io::Result<()> {
    let dir = fs::metadata(parent(link))?;
    let shared = dir.mode() & 0o1002 == 0o1002;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if !shared || meta.uid() == euid || meta.uid() == dir.uid() {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "not following the symlink {}: it belongs to another user (uid {}) in the sticky \
             world-writable directory {}",
            link.display(),
            meta.uid(),
            parent(link).display()
        ),
    ))
}

/// An error of the output path: a missing directory is the user's path, not a missing blob.
fn output_error(what: impl std::fmt::Display, err: &io::Error) -> Error {
    let mut error = Error::io(what, err);
    if error.kind == Kind::NotFound {
        error.kind = Kind::Other;
    }
    error
}

fn is_descriptor_link(link: &Path) -> bool {
    let Ok(dir) = fs::canonicalize(parent(link)) else {
        return false;
    };
    dir.starts_with("/proc") && dir.file_name() == Some(OsStr::new("fd"))
}

/// The directory holding `path` (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A registered temporary file beside `target`, with the mode and owner of `old`.
fn atomic(target: &Path, old: Option<&Metadata>, cancel: &Cancel) -> Result<How> {
    let dir = parent(target);
    let name = target.file_name().unwrap_or(OsStr::new("out"));
    let prefix = temp_prefix(name);
    sweep_stale(dir, |n| is_temp_of(n, &prefix), STALE_AFTER, true);
    // Replacing a file: made private first, then given the old file's mode (which may be
    // narrower than 0666 less the umask, and must never be wider for a moment).
    let made = match old {
        Some(_) => cancel.locked_private_tempfile(&prefix, dir),
        None => cancel.locked_tempfile(&prefix, dir),
    };
    let (tmp, guard) = made.map_err(|e| cannot_create(dir, target, &e))?;
    if let Some(old) = old {
        keep_attributes(tmp.as_file(), old)
            .map_err(|e| output_error(format!("writing {}", target.display()), &e))?;
    }
    Ok(How::Atomic {
        tmp,
        guard,
        cancel: cancel.clone(),
        target: target.to_path_buf(),
    })
}

/// Whether `name` is a temporary file made with `prefix`: the prefix and the 6 random
/// characters tempfile adds.
fn is_temp_of(name: &str, prefix: &OsStr) -> bool {
    name.as_bytes()
        .strip_prefix(prefix.as_bytes())
        .is_some_and(|rest| rest.len() == 6 && rest.iter().all(u8::is_ascii_alphanumeric))
}

/// The temporary file beside `target` could not be made. A writable file in a read-only
/// directory cannot be replaced by a rename: writing it in place instead would leave a
/// partial or unverified file on failure, so the user is told what to change.
fn cannot_create(dir: &Path, target: &Path, err: &io::Error) -> Error {
    let error = output_error(format!("creating a file in {}", dir.display()), err);
    if err.kind() != io::ErrorKind::PermissionDenied {
        return error;
    }
    error.with_hint(format!(
        "{} is replaced by renaming a verified file over it, so its directory must be writable",
        target.display()
    ))
}

/// `.<name>.regtool-`, with `name` shortened so that the whole temporary name (the random
/// part included) stays within NAME_MAX. A UTF-8 name is cut between characters.
fn temp_prefix(name: &OsStr) -> OsString {
    let bytes = name.as_bytes();
    let mut keep = bytes.len().min(NAME_MAX - TEMP_OVERHEAD);
    if let Some(text) = name.to_str() {
        while !text.is_char_boundary(keep) {
            keep -= 1;
        }
    }
    let mut prefix = b".".to_vec();
    prefix.extend_from_slice(&bytes[..keep]);
    prefix.extend_from_slice(b".regtool-");
    OsString::from_vec(prefix)
}

/// Gives the replacement the owner (when we may: root, or a group of ours) and the
/// permission bits of the file it replaces. Set-id bits are not carried over to new content.
fn keep_attributes(tmp: &File, old: &Metadata) -> io::Result<()> {
    let mine = tmp.metadata()?;
    if (mine.uid(), mine.gid()) != (old.uid(), old.gid()) {
        // Not permitted for an ordinary user giving a file away: the file is then theirs,
        // as any newly written file would be.
        let _ = std::os::unix::fs::fchown(tmp, Some(old.uid()), Some(old.gid()));
    }
    tmp.set_permissions(fs::Permissions::from_mode(old.mode() & 0o777))
}

/// Makes a rename in `dir` durable. File systems that cannot sync a directory say so with
/// EINVAL; that is no failure of ours.
fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_fit_name_max() {
        let long = "x".repeat(NAME_MAX);
        let prefix = temp_prefix(OsStr::new(&long));
        assert_eq!(prefix.len() + 6, NAME_MAX);
        let multibyte = "é".repeat(120);
        let prefix = temp_prefix(OsStr::new(&multibyte));
        assert!(prefix.to_str().is_some(), "cut inside a character");
        assert!(prefix.len() + 6 <= NAME_MAX);
        assert_eq!(temp_prefix(OsStr::new("a.bin")), ".a.bin.regtool-");
    }

    #[test]
    fn paths_are_planned_by_what_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        let new = dir.path().join("new");
        assert_eq!(
            plan(&file).unwrap(),
            Plan::Atomic {
                target: file.clone()
            }
        );
        assert_eq!(
            plan(&new).unwrap(),
            Plan::Atomic {
                target: new.clone()
            }
        );
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("file", &link).unwrap();
        assert_eq!(
            plan(&link).unwrap(),
            Plan::Atomic {
                target: dir.path().join("file")
            }
        );
        let lp = dir.path().join("loop");
        std::os::unix::fs::symlink("loop", &lp).unwrap();
        assert!(plan(&lp).is_err());
        assert_eq!(plan(Path::new("/dev/null")).unwrap(), Plan::InPlace);
        assert!(plan(dir.path()).is_err());
    }

    #[test]
    fn a_descriptor_of_a_regular_file_is_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("f")).unwrap();
        use std::os::fd::AsRawFd;
        let via_fd = PathBuf::from(format!("/dev/fd/{}", file.as_raw_fd()));
        assert_eq!(plan(&via_fd).unwrap(), Plan::InPlace);
    }

    #[test]
    fn an_uncommitted_output_leaves_the_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        fs::write(&target, "old").unwrap();
        let mut out = OutFile::create(&target, &Cancel::new()).unwrap();
        out.write_all(b"new").unwrap();
        drop(out);
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut out = OutFile::create(&target, &Cancel::new()).unwrap();
        assert!(!out.in_place());
        out.write_all(b"new").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn a_cancelled_output_is_removed_and_never_committed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        fs::write(&target, "old").unwrap();
        let cancel = Cancel::new();
        let mut out = OutFile::create(&target, &cancel).unwrap();
        out.write_all(b"new").unwrap();
        cancel.cancel(std::time::Duration::from_secs(1));
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temporary left"
        );
        let err = out.commit().unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Interrupted);
        assert_eq!(fs::read(&target).unwrap(), b"old");
    }

    /// Ages `path` by `ago`, as a file left by an earlier run.
    fn age(path: &Path, ago: u64) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(ago))
            .unwrap();
    }

    #[test]
    fn a_write_removes_the_target_s_temporaries_no_writer_holds() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let file = |name: &str, ago: u64| {
            let path = dir.path().join(name);
            fs::write(&path, "partial").unwrap();
            age(&path, ago);
            path
        };
        let dead = file(".out.bin.regtool-Ab12cd", 120);
        let young = file(".out.bin.regtool-young1", 5);
        let held = file(".out.bin.regtool-held12", 120);
        let holder = File::open(&held).unwrap();
        holder.lock().unwrap();
        let other = file(".other.bin.regtool-Ab12cd", 120);
        let longer = file(".out.bin.regtool-Ab12cd.keep", 120);
        let mut out = OutFile::create(&target, &Cancel::new()).unwrap();
        for (path, kept) in [
            (&dead, false),
            (&young, true),
            (&held, true),
            (&other, true),
            (&longer, true),
        ] {
            assert_eq!(path.exists(), kept, "{}", path.display());
        }
        // Our own temporary is held while we write: another writer's sweep leaves it.
        let ours: Vec<PathBuf> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| ![&young, &held, &other, &longer].contains(&p))
            .collect();
        assert_eq!(ours.len(), 1);
        age(&ours[0], 120);
        crate::cancel::sweep_stale(dir.path(), |_| true, STALE_AFTER, true);
        assert!(ours[0].exists());
        out.write_all(b"new").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }
}
