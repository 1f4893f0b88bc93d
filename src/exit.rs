//! The one place where error kinds become exit statuses and messages become stderr lines
//! (CLI.md "Errors and exit status").

use std::io::Write;

use regtool::error::{Error, Kind};
use regtool::text::sanitize;

pub const USAGE: i32 = 64;

pub fn code(kind: Kind) -> i32 {
    match kind {
        Kind::Closed => 0,
        Kind::Other => 1,
        Kind::NotFound => 2,
        Kind::Denied => 13,
        Kind::Usage => USAGE,
        Kind::Data => 65,
        Kind::Unavailable => 69,
        Kind::RateLimited => 75,
        Kind::Config => 78,
        Kind::Interrupted => 130,
    }
}

/// Prints `regtool: <message>` and an optional `hint:` line; returns the exit status.
pub fn report(err: &Error) -> i32 {
    if err.kind != Kind::Closed {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "regtool: {}", sanitize(&err.message, 1000));
        if let Some(hint) = &err.hint {
            let _ = writeln!(stderr, "hint: {}", sanitize(hint, 1000));
        }
    }
    code(err.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_documented_status() {
        let table = [
            (Kind::Closed, 0),
            (Kind::Other, 1),
            (Kind::NotFound, 2),
            (Kind::Denied, 13),
            (Kind::Usage, 64),
            (Kind::Data, 65),
            (Kind::Unavailable, 69),
            (Kind::RateLimited, 75),
            (Kind::Config, 78),
            (Kind::Interrupted, 130),
        ];
        for (kind, status) in table {
            assert_eq!(code(kind), status, "{kind:?}");
        }
    }
}
