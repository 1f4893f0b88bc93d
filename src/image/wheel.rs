//! Installing a Python wheel into a layer as pip does (PEP 427, "Binary distribution format",
//! and the PyPA "Recording installed projects" and "Entry points" specifications), without
//! running Python: what it decides is where each file goes and what the installed
//! `RECORD` says; the layer writer streams the contents from the zip.
//!
//! - files at the top of the wheel (packages, the `.dist-info` directory) go to the
//!   site-packages directory;
//! - `<name>.data/purelib` and `platlib` go to site-packages too, `data` to the prefix,
//!   `headers` to `<prefix>/include/<name>`, `scripts` to `<prefix>/bin` (mode 0755, a
//!   `#!python` or `#!pythonw` first line becomes `#!/usr/bin/python3`);
//! - each `console_scripts` and `gui_scripts` entry point of `entry_points.txt` becomes a
//!   script in `<prefix>/bin`, the one pip writes;
//! - `INSTALLER` (`regtool`) and `REQUESTED` are added, and `RECORD` is written again: every
//!   installed file, relative to site-packages, with its sha256 (urlsafe base64, no padding)
//!   and size, as the layer holds it.
//!
//! The wheel's own `RECORD` is checked on the way: a file whose content does not match its
//! recorded hash is refused, as pip refuses it. A file is executable when the zip says so.
//! The wheel is read twice (hashes first, since RECORD needs them all; contents when the tar
//! is written), and never held in memory, except the scripts whose first line is rewritten.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use base64::Engine;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// The interpreter a rewritten `#!python` line and an entry-point script name.
pub const PYTHON: &str = "/usr/bin/python3";

/// The largest script whose first line is rewritten (read whole to do so).
const MAX_SCRIPT: u64 = 16 * 1024 * 1024;
/// The largest RECORD or entry_points.txt read.
const MAX_META: u64 = 16 * 1024 * 1024;

/// What one installed file is made of.
#[derive(Debug, Clone)]
pub enum Content {
    /// The zip member at this index, as it is.
    Member {
        /// The member's index in the archive.
        index: usize,
    },
    /// Bytes made here (a rewritten script, an entry point, RECORD, INSTALLER).
    Bytes(Vec<u8>),
}

/// One file a wheel installs.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Where its bytes come from.
    pub content: Content,
    /// Its size in bytes.
    pub size: u64,
    /// Its permission bits.
    pub mode: u32,
    /// The sha256 of the installed content.
    pub sha256: Vec<u8>,
}

/// A wheel ready to be written: where each file goes (relative to the layer's root) and the
/// open archive the contents come from.
pub struct Plan {
    /// Each installed file by its path.
    pub files: BTreeMap<Vec<u8>, Installed>,
    /// The wheel, for the members named by [`Content::Member`].
    pub archive: zip::ZipArchive<File>,
}

/// Where a wheel's files go: both relative to the layer's root, normalised.
pub struct Dirs<'a> {
    /// The root of scripts and data (`bin/` goes under it).
    pub prefix: &'a [u8],
    /// Where packages go (purelib and platlib).
    pub site_packages: &'a [u8],
}

fn bad(wheel: &str, why: impl std::fmt::Display) -> Error {
    Error::data(format!("{wheel}: not an installable wheel: {why}"))
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = a.to_vec();
    if !out.is_empty() && !b.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(b);
    out
}

/// The urlsafe-base64 sha256 RECORD uses.
pub fn record_hash(bytes_hash: &[u8]) -> String {
    format!(
        "sha256={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes_hash)
    )
}

/// Plans the installation of the wheel at `path`.
pub fn plan(path: &Path, dirs: &Dirs<'_>) -> Result<Plan> {
    let wheel = path.display().to_string();
    let file = File::open(path).map_err(|e| Error::io(format!("opening {wheel}"), &e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(&wheel, e))?;
    let names: Vec<String> = (0..archive.len())
        .map(|i| {
            archive
                .by_index(i)
                .and_then(|f| f.name().map(|n| n.into_owned()))
                .map_err(|e| bad(&wheel, e))
        })
        .collect::<Result<_>>()?;
    let dist_info = names
        .iter()
        .filter_map(|n| n.strip_suffix(".dist-info/WHEEL"))
        .find(|d| !d.contains('/'))
        .map(|d| format!("{d}.dist-info"))
        .ok_or_else(|| bad(&wheel, "no .dist-info/WHEEL"))?;
    let data_dir = format!("{}.data", dist_info.trim_end_matches(".dist-info"));
    let distribution = dist_info
        .trim_end_matches(".dist-info")
        .split('-')
        .next()
        .unwrap_or_default()
        .to_string();
    let recorded = read_record(&mut archive, &wheel, &format!("{dist_info}/RECORD"))?;
    let mut files = BTreeMap::new();
    for (index, name) in names.iter().enumerate() {
        if name.ends_with('/') {
            continue;
        }
        let clean = crate::image::merge::normalize(name.as_bytes(), &wheel)?;
        if clean == format!("{dist_info}/RECORD").as_bytes()
            || clean.starts_with(format!("{dist_info}/RECORD.").as_bytes())
        {
            continue;
        }
        let (dest, script) = destination(&clean, &data_dir, &distribution, dirs)
            .ok_or_else(|| bad(&wheel, format!("{name}: an unknown .data directory")))?;
        let mut member = archive.by_index(index).map_err(|e| bad(&wheel, e))?;
        let executable = member.unix_mode().is_some_and(|m| m & 0o111 != 0);
        let (hash, size, rewritten) = hash_member(&mut member, &wheel, name, script)?;
        drop(member);
        if let Some(expected) = recorded.get(name.as_str())
            && !expected.is_empty()
            && *expected != record_hash(&hash)
        {
            return Err(bad(
                &wheel,
                format!("{name} does not match the hash in its RECORD"),
            ));
        }
        let mode = if script || executable { 0o755 } else { 0o644 };
        match rewritten {
            Some(bytes) => add_bytes(&mut files, dest, bytes, mode),
            None => {
                files.insert(
                    dest,
                    Installed {
                        content: Content::Member { index },
                        size,
                        mode,
                        sha256: hash,
                    },
                );
            }
        }
    }
    let entry_points = read_small(&mut archive, &format!("{dist_info}/entry_points.txt"))
        .map_err(|e| bad(&wheel, e))?;
    if let Some(text) = entry_points {
        for (name, script) in entry_point_scripts(&String::from_utf8_lossy(&text), &wheel)? {
            let dest = join(&join(dirs.prefix, b"bin"), name.as_bytes());
            add_bytes(&mut files, dest, script.into_bytes(), 0o755);
        }
    }
    let info = join(dirs.site_packages, dist_info.as_bytes());
    add_bytes(
        &mut files,
        join(&info, b"INSTALLER"),
        b"regtool\n".to_vec(),
        0o644,
    );
    add_bytes(&mut files, join(&info, b"REQUESTED"), Vec::new(), 0o644);
    let record_path = join(&info, b"RECORD");
    let record = record(&files, &record_path, dirs.site_packages);
    add_bytes(&mut files, record_path, record, 0o644);
    Ok(Plan { files, archive })
}

fn add_bytes(files: &mut BTreeMap<Vec<u8>, Installed>, dest: Vec<u8>, bytes: Vec<u8>, mode: u32) {
    files.insert(
        dest,
        Installed {
            size: bytes.len() as u64,
            sha256: Sha256::digest(&bytes).to_vec(),
            content: Content::Bytes(bytes),
            mode,
        },
    );
}

/// Where a wheel member goes, and whether it is a script (whose `#!python` is rewritten).
fn destination(
    name: &[u8],
    data_dir: &str,
    distribution: &str,
    dirs: &Dirs<'_>,
) -> Option<(Vec<u8>, bool)> {
    let Some(rest) = name
        .strip_prefix(data_dir.as_bytes())
        .and_then(|r| r.strip_prefix(b"/"))
    else {
        return Some((join(dirs.site_packages, name), false));
    };
    let (scheme, path) = match rest.iter().position(|&b| b == b'/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    Some(match scheme {
        b"purelib" | b"platlib" => (join(dirs.site_packages, path), false),
        b"data" => (join(dirs.prefix, path), false),
        b"scripts" => (join(&join(dirs.prefix, b"bin"), path), true),
        b"headers" => (
            join(
                &join(&join(dirs.prefix, b"include"), distribution.as_bytes()),
                path,
            ),
            false,
        ),
        _ => return None,
    })
}

/// Hashes a member; a script starting with `#!python` is read whole and rewritten.
fn hash_member(
    member: &mut dyn Read,
    wheel: &str,
    name: &str,
    script: bool,
) -> Result<(Vec<u8>, u64, Option<Vec<u8>>)> {
    let read_error = |e: io::Error| bad(wheel, format!("{name}: {}", crate::error::io_reason(&e)));
    if !script {
        let mut hasher = Sha256::new();
        let size = io::copy(member, &mut HashWriter(&mut hasher)).map_err(read_error)?;
        return Ok((hasher.finalize().to_vec(), size, None));
    }
    let mut bytes = Vec::new();
    member
        .take(MAX_SCRIPT + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_SCRIPT {
        return Err(bad(wheel, format!("{name}: a script larger than 16 MiB")));
    }
    let original = Sha256::digest(&bytes).to_vec();
    let size = bytes.len() as u64;
    if !bytes.starts_with(b"#!python") {
        return Ok((original, size, Some(bytes)));
    }
    let rest = match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => bytes[i + 1..].to_vec(),
        None => Vec::new(),
    };
    let mut rewritten = format!("#!{PYTHON}\n").into_bytes();
    rewritten.extend_from_slice(&rest);
    Ok((original, size, Some(rewritten)))
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn read_small(archive: &mut zip::ZipArchive<File>, name: &str) -> io::Result<Option<Vec<u8>>> {
    let Some(index) = archive.index_for_name(name) else {
        return Ok(None);
    };
    let member = archive.by_index(index).map_err(io::Error::other)?;
    let mut bytes = Vec::new();
    member.take(MAX_META).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// The wheel's RECORD: path → `sha256=...` (empty when not recorded).
fn read_record(
    archive: &mut zip::ZipArchive<File>,
    wheel: &str,
    name: &str,
) -> Result<HashMap<String, String>> {
    let bytes = read_small(archive, name)
        .map_err(|e| bad(wheel, e))?
        .ok_or_else(|| bad(wheel, format!("no {name}")))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields = csv_fields(line);
        if let (Some(path), Some(hash)) = (fields.first(), fields.get(1)) {
            out.insert(path.clone(), hash.clone());
        }
    }
    Ok(out)
}

/// The fields of one CSV line (RFC 4180 quoting, as Python's csv module writes it).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(f) = fields.last_mut() {
                    f.push('"');
                }
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// `path` relative to the directory `base` (both relative to the root).
fn relative(path: &[u8], base: &[u8]) -> Vec<u8> {
    let parts = |p: &[u8]| -> Vec<Vec<u8>> {
        p.split(|&b| b == b'/')
            .filter(|s| !s.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    };
    let (p, b) = (parts(path), parts(base));
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out: Vec<Vec<u8>> = vec![b"..".to_vec(); b.len() - common];
    out.extend(p[common..].iter().cloned());
    out.join(&b'/')
}

/// The installed RECORD: one line per file (sorted by path), RECORD itself last.
fn record(
    files: &BTreeMap<Vec<u8>, Installed>,
    record_path: &[u8],
    site_packages: &[u8],
) -> Vec<u8> {
    let mut out = String::new();
    for (path, file) in files {
        let rel = String::from_utf8_lossy(&relative(path, site_packages)).into_owned();
        out.push_str(&format!(
            "{},{},{}\n",
            csv_field(&rel),
            record_hash(&file.sha256),
            file.size
        ));
    }
    let rel = String::from_utf8_lossy(&relative(record_path, site_packages)).into_owned();
    out.push_str(&format!("{},,\n", csv_field(&rel)));
    out.into_bytes()
}

/// The scripts pip generates for `[console_scripts]` and `[gui_scripts]` entry points
/// (`name = module:object.attr [extras]`), by name.
fn entry_point_scripts(text: &str, wheel: &str) -> Result<Vec<(String, String)>> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            continue;
        }
        if section != "console_scripts" && section != "gui_scripts" {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(bad(wheel, format!("entry_points.txt: {line:?}")));
        };
        let name = name.trim();
        let value = value.split('[').next().unwrap_or_default().trim();
        let ok_name = !name.is_empty()
            && !name.contains('/')
            && name != "."
            && name != ".."
            && !name.chars().any(char::is_whitespace);
        let Some((module, object)) = value.split_once(':').filter(|_| ok_name) else {
            return Err(bad(wheel, format!("entry_points.txt: {line:?}")));
        };
        let (module, object) = (module.trim(), object.trim());
        let import = object.split('.').next().unwrap_or(object);
        out.push((
            name.to_string(),
            format!(
                "#!{PYTHON}\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom {module} import {import}\nif __name__ == '__main__':\n    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n    sys.exit({object}())\n"
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_paths_are_relative_to_site_packages() {
        let sp = b"usr/lib/python3/dist-packages";
        assert_eq!(
            relative(b"usr/lib/python3/dist-packages/a/b.py", sp),
            b"a/b.py"
        );
        assert_eq!(relative(b"usr/local/bin/x", sp), b"../../../local/bin/x");
        assert_eq!(
            record_hash(&Sha256::digest(b"")),
            "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }

    #[test]
    fn csv_round_trips_quoted_fields() {
        assert_eq!(csv_fields("a,b,1"), ["a", "b", "1"]);
        assert_eq!(csv_fields("\"x,\"\"y\",h,2"), ["x,\"y", "h", "2"]);
        assert_eq!(csv_field("x,\"y"), "\"x,\"\"y\"");
    }

    #[test]
    fn entry_points_become_pip_scripts() {
        let text = "[console_scripts]\nhello = pkg.cli:main.run [extra]\n\n[other]\nx = y:z\n";
        let scripts = entry_point_scripts(text, "w").unwrap();
        assert_eq!(scripts.len(), 1);
        assert_eq!(scripts[0].0, "hello");
        assert!(scripts[0].1.starts_with("#!/usr/bin/python3\n"));
        assert!(scripts[0].1.contains("from pkg.cli import main\n"));
        assert!(scripts[0].1.contains("sys.exit(main.run())"));
        assert!(entry_point_scripts("[console_scripts]\n../x = a:b\n", "w").is_err());
    }
}
