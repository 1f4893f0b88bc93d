//! Everything regtool prints on stdout goes through here: bare result lines for scripts, or
//! one JSON object per line with `REGTOOL_FORMAT=json`, and raw blob bytes. A reader that went
//! away (`| head`, EPIPE) ends the command quietly with status 0; a stdout that was closed
//! (`>&-`) or cannot be written (EBADF) is an error, so that results are never lost silently.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::settings::Format;
use regtool::error::{Error, Result};
use serde_json::Value;

pub struct Output {
    out: BufWriter<Stdout>,
    format: Format,
}

/// Whether file descriptor 1 was closed when the process started. Rust's runtime reopens a
/// closed stdout on /dev/null before `main` (so that a later open cannot take descriptor 1),
/// which would make every write succeed into nothing; so this is looked at earlier, by a
/// constructor in `.init_array`, which the C runtime calls before Rust's start-up code.
static STDOUT_WAS_CLOSED: AtomicBool = AtomicBool::new(false);

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static CHECK_STDOUT_AT_START: extern "C" fn() = check_stdout_at_start;

#[cfg(target_os = "linux")]
extern "C" fn check_stdout_at_start() {
    // SAFETY: F_GETFD only reads the descriptor's flags; it touches no memory of ours.
    let closed = unsafe { libc::fcntl(1, libc::F_GETFD) } == -1;
    STDOUT_WAS_CLOSED.store(closed, Ordering::Relaxed);
}

/// Standard output as a plain file. Rust's `io::Stdout` treats EBADF as success (a write to a
/// closed stdout "succeeds"), which would lose results silently; a duplicate of descriptor 1
/// reports it.
enum Stdout {
    File(File),
    Closed,
}

impl Stdout {
    fn open() -> Stdout {
        if STDOUT_WAS_CLOSED.load(Ordering::Relaxed) {
            return Stdout::Closed;
        }
        match io::stdout().as_fd().try_clone_to_owned() {
            Ok(fd) => Stdout::File(File::from(fd)),
            Err(_) => Stdout::Closed,
        }
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stdout::File(f) => f.write(buf),
            Stdout::Closed => Err(io::Error::from_raw_os_error(libc::EBADF)),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stdout::File(f) => f.flush(),
            Stdout::Closed => Ok(()),
        }
    }
}

/// Maps a stdout write error: a broken pipe is the reader's choice, not our failure.
/// Writes one line to stderr. A stderr that went away (a closed pipe) loses the line, as a
/// terminal closed under us would: unlike `eprintln!`, which panics then, and turned a
/// debug line or a warning into status 101.
pub fn stderr_line(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

pub fn write_error(e: io::Error) -> Error {
    regtool::error::from_write("writing to stdout", e)
}

impl Output {
    pub fn new(format: Format) -> Output {
        Output {
            out: BufWriter::with_capacity(256 * 1024, Stdout::open()),
            format,
        }
    }

    /// Whether results go out as JSON lines (REGTOOL_FORMAT=json).
    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// One result: `text` as a line, or `json` as one JSON object line.
    pub fn result(&mut self, text: &str, json: Value) -> Result<()> {
        match self.format {
            Format::Text => writeln!(self.out, "{text}"),
            Format::Json => writeln!(self.out, "{json}"),
        }
        .map_err(write_error)
    }

    /// Several text lines that form one result (the digests of an alias), or one JSON line.
    pub fn lines(&mut self, lines: &[String], json: Value) -> Result<()> {
        match self.format {
            Format::Text => lines.iter().try_for_each(|l| writeln!(self.out, "{l}")),
            Format::Json => writeln!(self.out, "{json}"),
        }
        .map_err(write_error)
    }

    /// Raw bytes (a manifest, a blob).
    pub fn raw(&mut self) -> &mut dyn Write {
        &mut self.out
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(write_error)
    }
}
