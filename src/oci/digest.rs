//! Content digests (`sha256:<hex>`, `sha512:<hex>`): parsing, hashing while data streams
//! through, and verification. OCI image-spec "Digests" defines the grammar; we accept only the
//! two registered algorithms because no registry stores anything else.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{Error, Result};

/// A digest algorithm (OCI image-spec "Digests": the registered ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the default.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// Its name in a digest: `sha256`, `sha512`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
    /// A fresh running hash.
    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }
}

/// A validated digest. Displayed as `algorithm:hex`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    /// The hex part (lower case, the algorithm's length).
    pub fn hex(&self) -> &str {
        &self.hex
    }
    /// The digest of a byte slice.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut h = algorithm.hasher();
        h.update(bytes);
        h.finish()
    }
    /// The SHA-256 digest of a byte slice.
    pub fn sha256(bytes: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, bytes)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(text: &str) -> Result<Digest> {
        let bad = || {
            Error::usage(format!(
                "invalid digest {text:?}: expected sha256:<64 hex> or sha512:<128 hex>"
            ))
        };
        let (algo, hex) = text.split_once(':').ok_or_else(bad)?;
        let algorithm = match algo {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(bad()),
        };
        // The spec's encoded part for sha256/sha512 is lower-case hex only.
        if hex.len() != algorithm.hex_len()
            || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(bad());
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Digest, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e: Error| serde::de::Error::custom(e.message))
    }
}

/// A running hash of one of the supported algorithms.
#[derive(Clone)]
pub enum Hasher {
    /// A SHA-256 hash in progress.
    Sha256(Sha256),
    /// A SHA-512 hash in progress.
    Sha512(Sha512),
}

impl Hasher {
    /// Hashes more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }
    /// The digest of everything hashed.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

/// A reader that hashes and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Reads through `inner`, hashing with `algorithm`.
    pub fn new(inner: R, algorithm: Algorithm) -> Self {
        HashingReader {
            inner,
            hasher: algorithm.hasher(),
            count: 0,
        }
    }
    /// The digest and length of what was read so far.
    pub fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Size of the buffer used to move blob bytes: large enough that syscalls and hashing calls
/// are amortised, small enough to keep memory flat.
pub const COPY_BUFFER: usize = 256 * 1024;

/// Streams `reader` into `writer`, hashing with the algorithm of `expected`, and fails with a
/// data error when the content does not match it (or, if given, its length).
pub fn copy_verified(
    reader: &mut dyn Read,
    writer: &mut dyn Write,
    expected: &Digest,
    size: Option<u64>,
) -> Result<u64> {
    let (actual, count) = match size {
        Some(size) => copy_hashing(
            &mut Bounded::new(reader, size),
            writer,
            expected.algorithm(),
        )?,
        None => copy_hashing(reader, writer, expected.algorithm())?,
    };
    check(expected, size, &actual, count)?;
    Ok(count)
}

/// Yields at most `size` bytes of `inner`, and fails with a data error as soon as `inner`
/// has more: a declared size is a promise, and a source that keeps sending past it (a
/// server streaming forever, a Content-Length larger than the manifest says) must not fill
/// a disk or a terminal. Nothing past `size` reaches the caller.
pub struct Bounded<R> {
    inner: R,
    size: u64,
    remaining: u64,
}

impl<R: Read> Bounded<R> {
    /// Passes through at most `size` bytes of `inner`.
    pub fn new(inner: R, size: u64) -> Bounded<R> {
        Bounded {
            inner,
            size,
            remaining: size,
        }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            // The declared end: the source must end here too.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    Err(Error::data(format!("expected {} bytes, received more", self.size)).into())
                }
            };
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Fails with a data error unless what arrived (`actual`, `count` bytes) is what was expected.
pub fn check(expected: &Digest, size: Option<u64>, actual: &Digest, count: u64) -> Result<()> {
    if let Some(size) = size
        && size != count
    {
        return Err(Error::data(format!(
            "{expected}: expected {size} bytes, received {count}"
        )));
    }
    if actual != expected {
        return Err(Error::data(format!(
            "digest mismatch: expected {expected}, content is {actual}"
        )));
    }
    Ok(())
}

/// Streams `reader` into `writer` and returns the digest and length of what passed through.
/// Read errors and write errors are told apart, since only the writer's are the caller's.
pub fn copy_hashing(
    reader: &mut dyn Read,
    writer: &mut dyn Write,
    algorithm: Algorithm,
) -> Result<(Digest, u64)> {
    let mut hasher = algorithm.hasher();
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut count = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(crate::error::from_io("reading", e)),
        };
        hasher.update(&buf[..n]);
        writer
            .write_all(&buf[..n])
            .map_err(|e| crate::error::from_write("writing", e))?;
        count += n as u64;
    }
    Ok((hasher.finish(), count))
}

/// Hashes a whole reader (a local file, usually) without keeping it.
pub fn hash_reader(reader: &mut dyn Read, algorithm: Algorithm) -> Result<(Digest, u64)> {
    copy_hashing(reader, &mut io::sink(), algorithm)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints_valid_digests() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(Digest::sha256(b""), d);
        assert!(
            format!("sha512:{}", "a".repeat(128))
                .parse::<Digest>()
                .is_ok()
        );
    }

    #[test]
    fn rejects_malformed_digests() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha256:abc",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            &EMPTY.to_uppercase(),
            &format!("{EMPTY}0"),
            "sha256:zz3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn copy_verified_catches_a_flipped_byte() {
        let good = Digest::sha256(b"hello");
        let mut out = Vec::new();
        assert_eq!(
            copy_verified(&mut &b"hello"[..], &mut out, &good, Some(5)).unwrap(),
            5
        );
        let err = copy_verified(&mut &b"hellp"[..], &mut Vec::new(), &good, None).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Data);
        let err = copy_verified(&mut &b"hello"[..], &mut Vec::new(), &good, Some(6)).unwrap_err();
        assert!(err.message.contains("expected 6 bytes"));
    }

    #[test]
    fn nothing_past_the_declared_size_is_read_or_written() {
        let good = Digest::sha256(b"hello");
        let mut out = Vec::new();
        let mut endless = io::repeat(b'x');
        let err = copy_verified(&mut endless, &mut out, &good, Some(5)).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Data);
        assert_eq!(err.message, "expected 5 bytes, received more");
        assert_eq!(out.len(), 5);
        let mut exact = Bounded::new(&b"hello"[..], 5);
        let mut out = Vec::new();
        exact.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello");
        let mut none = Bounded::new(&b"x"[..], 0);
        assert!(none.read_to_end(&mut Vec::new()).is_err());
    }
}
