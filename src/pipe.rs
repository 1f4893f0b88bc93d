//! Verified copying into a file on two threads: one reads the network and hashes, the
//! caller's thread writes. Writing a file costs the kernel about as much as reading and
//! hashing cost us, so overlapping them makes `pull-blob -o FILE` as fast as the slower of the
//! two rather than their sum (scripts/bench measured 0.80 s against 0.90 s sequential for
//! 512 MiB). For stdout the plain loop of `oci::digest::copy_verified` is faster: a second
//! thread only competes with the registry for the two cores. Memory stays flat: a fixed pool
//! of buffers circulates between the stages.

use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::error::{Error, Kind, Result, from_io};
use crate::oci::Digest;
use crate::oci::digest::COPY_BUFFER;

/// Buffers in flight: enough to keep every stage busy, few enough to keep RSS small.
const BUFFERS: usize = 6;

type Chunk = Result<Vec<u8>>;

/// Streams `reader` into `writer` and fails with a data error unless the content matches
/// `expected` (and `size`, when known). Bytes are written as they are verified-in-progress:
/// the caller decides what a failure means for what was already written (a temporary file is
/// discarded; stdout reports status 65).
pub fn copy_verified(
    reader: &mut (dyn Read + Send),
    writer: &mut dyn Write,
    expected: &Digest,
    size: Option<u64>,
) -> Result<u64> {
    let (free_tx, free_rx) = sync_channel::<Vec<u8>>(BUFFERS);
    for _ in 0..BUFFERS {
        // The channel has room for every buffer.
        let _ = free_tx.send(vec![0u8; COPY_BUFFER]);
    }
    let (read_tx, read_rx) = sync_channel::<Chunk>(BUFFERS);
    std::thread::scope(|scope| {
        let hasher = scope.spawn(move || read_stage(reader, expected, free_rx, read_tx));
        let written = write_stage(writer, read_rx, free_tx);
        // The reader ends at the end of input, or once we stopped listening.
        let hashed = hasher
            .join()
            .unwrap_or_else(|_| Err(Error::other("the reading thread failed")));
        let count = written?;
        crate::oci::digest::check(expected, size, &hashed?, count)?;
        Ok(count)
    })
}

fn read_stage(
    reader: &mut (dyn Read + Send),
    expected: &Digest,
    free: Receiver<Vec<u8>>,
    out: SyncSender<Chunk>,
) -> Result<Digest> {
    let mut hasher = expected.algorithm().hasher();
    while let Ok(mut buf) = free.recv() {
        buf.resize(COPY_BUFFER, 0);
        let n = loop {
            match reader.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match n {
            Ok(0) => break,
            Ok(n) => {
                buf.truncate(n);
                hasher.update(&buf);
                if out.send(Ok(buf)).is_err() {
                    break;
                }
            }
            Err(e) => {
                let _ = out.send(Err(from_io("reading", e)));
                break;
            }
        }
    }
    Ok(hasher.finish())
}

fn write_stage(
    writer: &mut dyn Write,
    input: Receiver<Chunk>,
    free: SyncSender<Vec<u8>>,
) -> Result<u64> {
    let mut count = 0u64;
    for chunk in input {
        let buf = chunk?;
        writer.write_all(&buf).map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => Error::new(Kind::Closed, "output closed"),
            _ => from_io("writing", e),
        })?;
        count += buf.len() as u64;
        // The reader may be gone already; the buffer is then simply dropped.
        let _ = free.send(buf);
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_and_verifies_large_input() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let digest = Digest::sha256(&data);
        let mut out = Vec::new();
        let n = copy_verified(&mut &data[..], &mut out, &digest, Some(data.len() as u64)).unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(out, data);
    }

    #[test]
    fn mismatches_and_short_input_are_data_errors() {
        let digest = Digest::sha256(b"expected");
        let err = copy_verified(&mut &b"other"[..], &mut Vec::new(), &digest, None).unwrap_err();
        assert_eq!(err.kind, Kind::Data);
        let good = Digest::sha256(b"abc");
        let err = copy_verified(&mut &b"abc"[..], &mut Vec::new(), &good, Some(4)).unwrap_err();
        assert!(err.message.contains("expected 4 bytes"), "{}", err.message);
    }

    #[test]
    fn read_and_write_errors_come_through() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))
            }
        }
        let err =
            copy_verified(&mut Failing, &mut Vec::new(), &Digest::sha256(b""), None).unwrap_err();
        assert!(err.message.contains("reset"), "{}", err.message);
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let data = vec![1u8; 2_000_000];
        let err =
            copy_verified(&mut &data[..], &mut Closed, &Digest::sha256(&data), None).unwrap_err();
        assert_eq!(err.kind, Kind::Closed);
    }
}
