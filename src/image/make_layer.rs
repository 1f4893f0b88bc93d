//! Making a reproducible layer tar from local files, directories and Python wheels. The tar
//! depends only on the content, the permission bits and the file types of the inputs: every
//! entry is owned by 0:0 with no user or group name, every mtime is the one given
//! (SOURCE_DATE_EPOCH, else 0), entries are sorted by path, and the parent directories of
//! everything are entries of their own (mode 0755). Symlinks stay symlinks; hard links
//! become separate files. Contents stream from the files when the tar is written; only the
//! list of paths is held.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::from_write as write_error;
use crate::error::{Error, Result};
use crate::image::tarout::{Kind, Meta, TarWriter};
use crate::image::wheel;
use crate::text::sanitize;

/// One input: a file, directory, symlink or wheel, and where it goes (None: under the prefix
/// with its own name; a wheel is always installed).
pub struct Input {
    /// The file, directory, symlink or wheel on disk.
    pub source: PathBuf,
    /// Its path in the layer.
    pub dest: Option<String>,
}

/// How make-layer lays out its inputs.
pub struct Options {
    /// Where inputs without a destination go, and the root of a wheel's scripts and data.
    pub prefix: String,
    /// Where a wheel's packages go in the layer, like `/usr/lib/python3/dist-packages`.
    pub site_packages: String,
    /// Every entry's modification time (seconds since the epoch).
    pub mtime: u64,
}

#[derive(Debug)]
enum Item {
    Dir {
        mode: u32,
    },
    File {
        source: PathBuf,
        size: u64,
        mode: u32,
    },
    Symlink(Vec<u8>),
    Wheel {
        wheel: usize,
        file: wheel::Installed,
    },
}

/// Normalises a destination or directory given on the command line (absolute or not) into a
/// path relative to the layer's root; `..` is refused.
pub fn layer_path(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for part in text.as_bytes().split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                return Err(Error::usage(format!(
                    "{:?}: a path in the layer cannot contain ..",
                    sanitize(text, 200)
                )));
            }
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(part);
            }
        }
    }
    Ok(out)
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = a.to_vec();
    if !out.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(b);
    out
}

fn shown(path: &[u8]) -> String {
    format!("/{}", sanitize(&String::from_utf8_lossy(path), 200))
}

struct Layer {
    items: BTreeMap<Vec<u8>, Item>,
    wheels: Vec<zip::ZipArchive<File>>,
}

impl Layer {
    fn add(&mut self, dest: Vec<u8>, item: Item, from: &Path) -> Result<()> {
        if dest.is_empty() {
            return Err(Error::usage(format!(
                "{}: the root of the layer cannot be replaced",
                from.display()
            )));
        }
        if let Some(old) = self.items.get(&dest) {
            let both_dirs = matches!(old, Item::Dir { .. }) && matches!(item, Item::Dir { .. });
            if !both_dirs {
                return Err(Error::usage(format!(
                    "{} would be written twice (the second time from {})",
                    shown(&dest),
                    from.display()
                )));
            }
        }
        self.items.insert(dest, item);
        Ok(())
    }

    /// Adds a file, a symlink, or a directory and everything below it.
    fn add_tree(&mut self, source: &Path, dest: Vec<u8>) -> Result<()> {
        let meta = std::fs::symlink_metadata(source)
            .map_err(|e| Error::io(format!("reading {}", source.display()), &e))?;
        let mode = meta.permissions().mode() & 0o7777;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = std::fs::read_link(source)
                .map_err(|e| Error::io(format!("reading {}", source.display()), &e))?;
            return self.add(
                dest,
                Item::Symlink(target.as_os_str().as_bytes().to_vec()),
                source,
            );
        }
        if kind.is_file() {
            let item = Item::File {
                source: source.to_path_buf(),
                size: meta.len(),
                mode,
            };
            return self.add(dest, item, source);
        }
        if !kind.is_dir() {
            let what = if kind.is_fifo() {
                "a FIFO"
            } else if kind.is_socket() {
                "a socket"
            } else {
                "a device"
            };
            return Err(Error::usage(format!(
                "{}: {what} cannot go in a layer",
                source.display()
            )));
        }
        self.add(dest.clone(), Item::Dir { mode }, source)?;
        let entries = std::fs::read_dir(source)
            .map_err(|e| Error::io(format!("reading {}", source.display()), &e))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| Error::io(format!("reading {}", source.display()), &e))?;
            let name = entry.file_name();
            self.add_tree(&entry.path(), join(&dest, name.as_bytes()))?;
        }
        Ok(())
    }

    fn add_wheel(&mut self, source: &Path, opts: &Options) -> Result<()> {
        let (prefix, site) = (layer_path(&opts.prefix)?, layer_path(&opts.site_packages)?);
        let plan = wheel::plan(
            source,
            &wheel::Dirs {
                prefix: &prefix,
                site_packages: &site,
            },
        )?;
        let index = self.wheels.len();
        self.wheels.push(plan.archive);
        for (dest, file) in plan.files {
            self.add(dest, Item::Wheel { wheel: index, file }, source)?;
        }
        Ok(())
    }

    /// Makes every parent directory an entry (0755), refusing a file in the way.
    fn add_parents(&mut self) -> Result<()> {
        let paths: Vec<Vec<u8>> = self.items.keys().cloned().collect();
        for path in paths {
            let mut end = 0;
            while let Some(i) = path[end..].iter().position(|&b| b == b'/') {
                end += i;
                let parent = &path[..end];
                match self.items.get(parent) {
                    Some(Item::Dir { .. }) => {}
                    Some(_) => {
                        return Err(Error::usage(format!(
                            "{} is a file, and also the directory of {}",
                            shown(parent),
                            shown(&path)
                        )));
                    }
                    None => {
                        self.items
                            .insert(parent.to_vec(), Item::Dir { mode: 0o755 });
                    }
                }
                end += 1;
            }
        }
        Ok(())
    }
}

fn is_wheel(input: &Input) -> bool {
    input.dest.is_none()
        && input.source.extension().is_some_and(|e| e == "whl")
        && input.source.is_file()
}

/// Writes the layer made of `inputs` to `out`; returns the number of entries.
pub fn make_layer(inputs: &[Input], opts: &Options, out: &mut dyn Write) -> Result<u64> {
    let prefix = layer_path(&opts.prefix)?;
    let mut layer = Layer {
        items: BTreeMap::new(),
        wheels: Vec::new(),
    };
    for input in inputs {
        if is_wheel(input) {
            layer.add_wheel(&input.source, opts)?;
            continue;
        }
        let dest = match &input.dest {
            Some(d) => layer_path(d)?,
            None => {
                let name = input.source.file_name().ok_or_else(|| {
                    Error::usage(format!(
                        "{}: give it a destination (path=dest)",
                        input.source.display()
                    ))
                })?;
                join(&prefix, name.as_bytes())
            }
        };
        layer.add_tree(&input.source, dest)?;
    }
    layer.add_parents()?;
    write(layer, opts.mtime, out)
}

fn write(mut layer: Layer, mtime: u64, out: &mut dyn Write) -> Result<u64> {
    let mut writer = TarWriter::new(out);
    let mut count = 0;
    for (path, item) in &layer.items {
        let meta = |mode: u32| Meta {
            mode,
            mtime,
            ..Meta::default()
        };
        let what = || format!("writing {}", shown(path));
        let result = match item {
            Item::Dir { mode } => {
                writer.entry(path, &Kind::Dir, &meta(*mode), 0, &mut std::io::empty())
            }
            Item::Symlink(target) => writer.entry(
                path,
                &Kind::Symlink(target.clone()),
                &meta(0o777),
                0,
                &mut std::io::empty(),
            ),
            Item::File { source, size, mode } => {
                let mut file = File::open(source)
                    .map_err(|e| Error::io(format!("reading {}", source.display()), &e))?;
                writer.entry(path, &Kind::File, &meta(*mode), *size, &mut file)
            }
            Item::Wheel { wheel, file } => match &file.content {
                wheel::Content::Bytes(bytes) => writer.entry(
                    path,
                    &Kind::File,
                    &meta(file.mode),
                    file.size,
                    &mut &bytes[..],
                ),
                wheel::Content::Member { index } => {
                    let mut member = layer.wheels[*wheel]
                        .by_index(*index)
                        .map_err(|e| Error::data(format!("{}: {e}", what())))?;
                    writer.entry(path, &Kind::File, &meta(file.mode), file.size, &mut member)
                }
            },
        };
        result.map_err(|e| write_error(what(), e))?;
        count += 1;
    }
    writer
        .finish()
        .map_err(|e| write_error("writing the tar", e))?;
    Ok(count)
}

/// Splits a `path[=dest]` argument: a whole argument naming an existing path is a path (so a
/// file name may contain `=`); otherwise the first `=` whose left side exists splits it.
pub fn parse_input(arg: &str) -> Input {
    let whole = Input {
        source: PathBuf::from(arg),
        dest: None,
    };
    if Path::new(arg).symlink_metadata().is_ok() {
        return whole;
    }
    for (i, _) in arg.match_indices('=') {
        if Path::new(&arg[..i]).symlink_metadata().is_ok() {
            return Input {
                source: PathBuf::from(&arg[..i]),
                dest: Some(arg[i + 1..].to_string()),
            };
        }
    }
    match arg.split_once('=') {
        Some((source, dest)) => Input {
            source: PathBuf::from(source),
            dest: Some(dest.to_string()),
        },
        None => whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(bytes: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                format!(
                    "{} {:o} {}:{} {}",
                    String::from_utf8_lossy(&e.path_bytes()),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn files_land_under_the_prefix_or_their_destination_with_parents() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tool");
        std::fs::create_dir(&tool).unwrap();
        std::fs::write(tool.join("a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("prog"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            dir.path().join("prog"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        let inputs = [
            parse_input(tool.to_str().unwrap()),
            parse_input(&format!(
                "{}=/usr/local/bin/prog",
                dir.path().join("prog").display()
            )),
        ];
        let opts = Options {
            prefix: "/opt".into(),
            site_packages: "/usr/lib/python3/dist-packages".into(),
            mtime: 1_700_000_000,
        };
        let mut out = Vec::new();
        make_layer(&inputs, &opts, &mut out).unwrap();
        let mode = std::fs::metadata(&tool).unwrap().permissions().mode() & 0o7777;
        assert_eq!(
            listing(&out),
            [
                "opt/ 755 0:0 1700000000".to_string(),
                format!("opt/tool/ {mode:o} 0:0 1700000000"),
                "opt/tool/a.txt 644 0:0 1700000000".to_string(),
                "usr/ 755 0:0 1700000000".to_string(),
                "usr/local/ 755 0:0 1700000000".to_string(),
                "usr/local/bin/ 755 0:0 1700000000".to_string(),
                "usr/local/bin/prog 750 0:0 1700000000".to_string(),
            ]
        );
    }

    #[test]
    fn collisions_and_escapes_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "x").unwrap();
        let opts = Options {
            prefix: "/".into(),
            site_packages: "/sp".into(),
            mtime: 0,
        };
        let twice = [
            parse_input(&format!("{}=/x", f.display())),
            parse_input(&format!("{}=x", f.display())),
        ];
        let err = make_layer(&twice, &opts, &mut Vec::new()).unwrap_err();
        assert!(
            err.message.contains("/x would be written twice"),
            "{}",
            err.message
        );
        let escape = [parse_input(&format!("{}=../x", f.display()))];
        let err = make_layer(&escape, &opts, &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Usage);
        let under_file = [
            parse_input(&format!("{}=/a", f.display())),
            parse_input(&format!("{}=/a/b", f.display())),
        ];
        let err = make_layer(&under_file, &opts, &mut Vec::new()).unwrap_err();
        assert!(
            err.message.contains("is a file, and also"),
            "{}",
            err.message
        );
    }
}
