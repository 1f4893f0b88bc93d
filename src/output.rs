//! Everything regtool prints on stdout goes through here: bare result lines for scripts, or
//! one JSON object per line with `REGTOOL_FORMAT=json`, and raw blob bytes. A closed stdout
//! (`| head`) ends the command quietly with status 0.

use std::io::{self, BufWriter, Stdout, Write};

use regtool::config::Format;
use regtool::error::{Error, Kind, Result};
use serde_json::Value;

pub struct Output {
    out: BufWriter<Stdout>,
    format: Format,
}

/// Maps a stdout write error: a broken pipe is the reader's choice, not our failure.
pub fn write_error(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Error::new(Kind::Closed, "stdout closed")
    } else {
        regtool::error::from_io("writing to stdout", e)
    }
}

impl Output {
    pub fn new(format: Format) -> Output {
        Output {
            out: BufWriter::with_capacity(256 * 1024, io::stdout()),
            format,
        }
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
