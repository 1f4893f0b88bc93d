//! A streaming check that bytes form a tar archive fit to be an image layer: every header's
//! checksum is right, sizes are octal (or base-256) numbers, entries follow each other on
//! 512-byte boundaries, the archive ends, and no path escapes the root (absolute, or with a
//! `..` component; GNU long names and PAX `path` records included). It sees the bytes once,
//! as they stream past on their way to the registry, and keeps at most one header and one
//! long name in memory.

use crate::error::{Error, Result};

const BLOCK: usize = 512;
/// Longest GNU long name or PAX header we read (the rest is refused).
const MAX_META: u64 = 64 * 1024;

/// Checks a tar as it streams past: header checksums, sizes, and no path leaving the root.
#[derive(Default)]
pub struct TarCheck {
    block: Vec<u8>,
    /// Bytes of entry data (and padding) still to skip, or to collect for a long name / PAX.
    remaining: u64,
    /// Collecting the data of a `L` (GNU long name) or `x` (PAX) entry.
    meta: Option<(u8, Vec<u8>)>,
    /// The name that a preceding `L` or PAX `path` gave the next entry.
    next_name: Option<String>,
    zero_blocks: u8,
    ended: bool,
    entries: u64,
    offset: u64,
}

fn parse_number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // Base-256 (GNU): big-endian after the marker bit.
        return field[1..]
            .iter()
            .try_fold(u64::from(field[0] & 0x7f), |acc, &b| {
                acc.checked_mul(256)?.checked_add(u64::from(b))
            });
    }
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Refuses names that leave the extraction root.
fn check_path(name: &str) -> Result<()> {
    if name.starts_with('/') || name.split('/').any(|c| c == "..") {
        return Err(Error::data(format!(
            "the tar entry {:?} leaves the layer's root",
            crate::text::sanitize(name, 200)
        )));
    }
    Ok(())
}

impl TarCheck {
    /// A check at the start of an archive.
    pub fn new() -> TarCheck {
        TarCheck::default()
    }

    fn bad(&self, why: &str) -> Error {
        Error::data(format!(
            "the input is not a tar archive: {why} at byte {}",
            self.offset
        ))
    }

    /// Feeds the next bytes of the (uncompressed) stream.
    pub fn update(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = (self.remaining.min(data.len() as u64)) as usize;
                if let Some((_, buf)) = &mut self.meta {
                    buf.extend_from_slice(&data[..n]);
                }
                self.remaining -= n as u64;
                self.offset += n as u64;
                data = &data[n..];
                if self.remaining == 0 {
                    self.finish_meta()?;
                }
                continue;
            }
            if self.ended {
                // Anything after the end marker (more zero blocks, usually) is ignored, as tar does.
                self.offset += data.len() as u64;
                return Ok(());
            }
            let n = (BLOCK - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.block.len() == BLOCK {
                let block = std::mem::take(&mut self.block);
                self.header(&block)?;
                self.offset += BLOCK as u64;
            }
        }
        Ok(())
    }

    fn header(&mut self, h: &[u8]) -> Result<()> {
        if h.iter().all(|&b| b == 0) {
            self.zero_blocks += 1;
            if self.zero_blocks == 2 {
                self.ended = true;
            }
            return Ok(());
        }
        if self.zero_blocks > 0 {
            return Err(self.bad("data after an empty block"));
        }
        let stored =
            parse_number(&h[148..156]).ok_or_else(|| self.bad("a malformed header checksum"))?;
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        if stored != sum {
            return Err(self.bad("a header checksum that does not match"));
        }
        let size = parse_number(&h[124..136]).ok_or_else(|| self.bad("a malformed entry size"))?;
        let kind = h[156];
        // A base-256 size can be near 2^64: the padding must not wrap.
        let padded = size
            .div_ceil(BLOCK as u64)
            .checked_mul(BLOCK as u64)
            .ok_or_else(|| self.bad("an entry size too large"))?;
        match kind {
            b'L' | b'x' => {
                if size > MAX_META {
                    return Err(self.bad("an oversized long-name or PAX header"));
                }
                self.meta = Some((kind, Vec::with_capacity(size as usize)));
                self.remaining = padded;
                // Keep only the real length, not the padding.
                if padded == 0 {
                    self.finish_meta()?;
                }
                return Ok(());
            }
            b'g' => {}
            _ => {
                let name = match self.next_name.take() {
                    Some(n) => n,
                    None => {
                        let mut name = cstr(&h[0..100]);
                        if &h[257..262] == b"ustar" {
                            let prefix = cstr(&h[345..500]);
                            if !prefix.is_empty() {
                                name = format!("{prefix}/{name}");
                            }
                        }
                        name
                    }
                };
                check_path(&name)?;
                if matches!(kind, b'1' | b'2') {
                    let target = cstr(&h[157..257]);
                    if kind == b'1' {
                        check_path(&target)?;
                    }
                }
                self.entries += 1;
            }
        }
        self.remaining = padded;
        Ok(())
    }

    fn finish_meta(&mut self) -> Result<()> {
        let Some((kind, data)) = self.meta.take() else {
            return Ok(());
        };
        match kind {
            b'L' => self.next_name = Some(cstr(&data)),
            _ => {
                // PAX records: "<len> key=value\n".
                let text = String::from_utf8_lossy(&data);
                for record in text.split('\n') {
                    if let Some((_, kv)) = record.split_once(' ')
                        && let Some(path) = kv.strip_prefix("path=")
                    {
                        self.next_name = Some(path.to_string());
                    }
                }
            }
        }
        Ok(())
    }

    /// Called at the end of the stream: the archive must have ended properly (an end
    /// marker, or at least a whole last entry, as GNU tar accepts).
    pub fn finish(&self) -> Result<()> {
        if self.offset == 0 && self.block.is_empty() {
            return Err(self.bad("empty input"));
        }
        if self.offset == 0 {
            return Err(self.bad("input shorter than one tar header"));
        }
        if self.remaining > 0 || !self.block.is_empty() {
            return Err(self.bad("a truncated archive"));
        }
        if self.entries == 0 && !self.ended {
            return Err(self.bad("no entries"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ustar archive with the given (name, data, type) entries.
    pub fn tar(entries: &[(&str, &[u8], u8)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data, kind) in entries {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[100..107].copy_from_slice(b"0000644");
            h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
            h[136..147].copy_from_slice(b"00000000000");
            h[156] = *kind;
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
            h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    fn check(bytes: &[u8], step: usize) -> Result<()> {
        let mut c = TarCheck::new();
        for part in bytes.chunks(step) {
            c.update(part)?;
        }
        c.finish()
    }

    #[test]
    fn accepts_archives_in_any_chunking() {
        let t = tar(&[
            ("a/", b"", b'5'),
            ("a/b.txt", b"hello", b'0'),
            ("a/c", &[7u8; 1500], b'0'),
        ]);
        for step in [1, 7, 511, 512, 513, 4096] {
            check(&t, step).unwrap();
        }
    }

    #[test]
    fn refuses_non_tar_truncated_and_escaping_input() {
        assert!(check(b"", 10).is_err());
        assert!(
            check(&[b'x'; 4096], 100)
                .unwrap_err()
                .message
                .contains("not a tar")
        );
        let t = tar(&[("a", &[1u8; 2000], b'0')]);
        assert!(
            check(&t[..1500], 100)
                .unwrap_err()
                .message
                .contains("truncated")
        );
        for evil in ["../etc/passwd", "/etc/passwd", "a/../../b"] {
            let t = tar(&[(evil, b"x", b'0')]);
            assert!(
                check(&t, 512).unwrap_err().message.contains("leaves"),
                "{evil}"
            );
        }
        let long = tar(&[
            ("././@LongLink", b"../escape\0", b'L'),
            ("short", b"x", b'0'),
        ]);
        assert!(check(&long, 512).unwrap_err().message.contains("leaves"));
        let pax = tar(&[
            ("pax", b"20 path=../../evil\n", b'x'),
            ("short", b"x", b'0'),
        ]);
        assert!(check(&pax, 512).unwrap_err().message.contains("leaves"));
        let hard = tar(&[("link", b"", b'1')]);
        check(&hard, 512).unwrap();
    }

    #[test]
    fn a_size_near_2_pow_64_is_refused_not_wrapped() {
        let mut t = tar(&[("a", b"", b'0')]);
        // Base-256 size 2^64-1, then the header checksum again.
        t[124] = 0x80;
        t[125..128].fill(0);
        t[128..136].fill(0xff);
        t[148..156].copy_from_slice(b"        ");
        let sum: u32 = t[..512].iter().map(|&b| u32::from(b)).sum();
        t[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let err = check(&t, 512).unwrap_err();
        assert!(
            err.message.contains("entry size too large"),
            "{}",
            err.message
        );
    }
}
