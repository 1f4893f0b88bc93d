//! Writing tar entries one way wherever regtool makes a tar (squash, flatten, make-layer):
//! GNU headers built from the metadata alone (nothing of the input's header format, padding
//! or field quirks carries over, so the same content always gives the same bytes), long names
//! and link targets as GNU `L`/`K` records, xattrs as PAX `SCHILY.xattr.*` records (the
//! names GNU tar, Go's archive/tar and umoci read), directories with a trailing `/`, and the
//! root as `./`.

use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tar::{EntryType, Header};

/// What an entry is, with what each kind needs beyond the common metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file; its bytes follow the header.
    File,
    /// A directory.
    Dir,
    /// A symbolic link to this target.
    Symlink(Vec<u8>),
    /// A hard link to an earlier entry of the same archive.
    Link(Vec<u8>),
    /// A character device (major, minor).
    Char(u32, u32),
    /// A block device (major, minor).
    Block(u32, u32),
    /// A named pipe.
    Fifo,
}

/// The metadata an entry keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits (with setuid, setgid and sticky).
    pub mode: u32,
    /// Owner's user id.
    pub uid: u64,
    /// Owner's group id.
    pub gid: u64,
    /// Owner's user name (may be empty).
    pub uname: Vec<u8>,
    /// Owner's group name (may be empty).
    pub gname: Vec<u8>,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// `(name, value)`, in the order they came.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Writes tar entries to `W` the one way the module describes (GNU headers, `L`/`K` long
/// names, PAX xattrs).
pub struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> TarWriter<W> {
    /// A writer that starts a new archive on `out`.
    pub fn new(out: W) -> TarWriter<W> {
        TarWriter {
            builder: tar::Builder::new(out),
        }
    }

    /// Writes one entry at `path` (relative, normalised; empty for the root). `data` must
    /// yield exactly `size` bytes for a file and is not read for other kinds.
    pub fn entry(
        &mut self,
        path: &[u8],
        kind: &Kind,
        meta: &Meta,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        if !meta.xattrs.is_empty() {
            let mut records = Vec::new();
            for (name, value) in &meta.xattrs {
                let key = format!("SCHILY.xattr.{}", String::from_utf8_lossy(name));
                records.push((key, value.as_slice()));
            }
            self.builder
                .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))?;
        }
        let mut header = header(kind, meta)?;
        let mut name = if path.is_empty() {
            b".".to_vec()
        } else {
            path.to_vec()
        };
        if *kind == Kind::Dir {
            name.push(b'/');
        }
        let name = Path::new(std::ffi::OsStr::from_bytes(&name));
        match kind {
            Kind::Symlink(target) | Kind::Link(target) => {
                header.set_size(0);
                let target = Path::new(std::ffi::OsStr::from_bytes(target));
                self.builder.append_link(&mut header, name, target)
            }
            Kind::File => {
                header.set_size(size);
                let mut limited = data.take(size);
                let mut counted = Counted {
                    inner: &mut limited,
                    count: 0,
                };
                self.builder.append_data(&mut header, name, &mut counted)?;
                if counted.count != size {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{} ended after {} of {size} bytes (did it change?)",
                            name.display(),
                            counted.count
                        ),
                    ));
                }
                Ok(())
            }
            _ => {
                header.set_size(0);
                self.builder.append_data(&mut header, name, io::empty())
            }
        }
    }

    /// Writes the end-of-archive marker and returns the writer.
    pub fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }
}

fn header(kind: &Kind, meta: &Meta) -> io::Result<Header> {
    let mut h = Header::new_gnu();
    h.set_entry_type(match kind {
        Kind::File => EntryType::Regular,
        Kind::Dir => EntryType::Directory,
        Kind::Symlink(_) => EntryType::Symlink,
        Kind::Link(_) => EntryType::Link,
        Kind::Char(..) => EntryType::Char,
        Kind::Block(..) => EntryType::Block,
        Kind::Fifo => EntryType::Fifo,
    });
    h.set_mode(meta.mode & 0o7777);
    h.set_uid(meta.uid);
    h.set_gid(meta.gid);
    h.set_mtime(meta.mtime);
    // Names that do not fit the 32-byte fields are left out: the numeric ids still hold.
    if let Ok(name) = std::str::from_utf8(&meta.uname) {
        let _ = h.set_username(name);
    }
    if let Ok(name) = std::str::from_utf8(&meta.gname) {
        let _ = h.set_groupname(name);
    }
    if let Kind::Char(major, minor) | Kind::Block(major, minor) = kind {
        h.set_device_major(*major)?;
        h.set_device_minor(*minor)?;
    }
    Ok(h)
}

/// Counts what the tar builder reads, to tell a source that shrank from a complete one.
struct Counted<'a> {
    inner: &'a mut dyn Read,
    count: u64,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Path, type, mode and PAX records of each entry.
    type Back = (String, EntryType, u32, Vec<(String, Vec<u8>)>);

    fn read_back(bytes: &[u8]) -> Vec<Back> {
        let mut archive = tar::Archive::new(bytes);
        let mut out = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let xattrs = e
                .pax_extensions()
                .unwrap()
                .map(|p| {
                    p.map(|x| {
                        let x = x.unwrap();
                        (x.key().unwrap().to_string(), x.value_bytes().to_vec())
                    })
                    .collect()
                })
                .unwrap_or_default();
            out.push((
                String::from_utf8(e.path_bytes().to_vec()).unwrap(),
                e.header().entry_type(),
                e.header().mode().unwrap(),
                xattrs,
            ));
        }
        out
    }

    #[test]
    fn writes_roots_dirs_long_names_and_xattrs() {
        let mut w = TarWriter::new(Vec::new());
        let meta = Meta {
            mode: 0o100755,
            xattrs: vec![(b"user.k".to_vec(), b"v".to_vec())],
            ..Meta::default()
        };
        let long = "d/".to_string() + &"x".repeat(150);
        w.entry(b"", &Kind::Dir, &meta, 0, &mut io::empty())
            .unwrap();
        w.entry(b"d", &Kind::Dir, &Meta::default(), 0, &mut io::empty())
            .unwrap();
        w.entry(
            long.as_bytes(),
            &Kind::File,
            &Meta::default(),
            2,
            &mut &b"hi"[..],
        )
        .unwrap();
        let bytes = w.finish().unwrap();
        let back = read_back(&bytes);
        assert_eq!(back[0].0, "./");
        assert_eq!(back[0].2, 0o755, "type bits never reach the mode field");
        assert_eq!(
            back[0].3,
            vec![("SCHILY.xattr.user.k".to_string(), b"v".to_vec())]
        );
        assert_eq!(back[1].0, "d/");
        assert_eq!(back[2].0, long);
    }

    #[test]
    fn a_short_source_is_an_error() {
        let mut w = TarWriter::new(Vec::new());
        let err = w
            .entry(b"f", &Kind::File, &Meta::default(), 10, &mut &b"abc"[..])
            .unwrap_err();
        assert!(err.to_string().contains("ended after 3 of 10"), "{err}");
    }
}
