//! The `regtool` binary: parse the command line, read the environment, run one command, and
//! turn its result into an exit status (src/exit.rs).

mod cli;
mod commands;
mod exit;
mod output;
mod progress;
mod settings;
mod signals;

use std::io::IsTerminal;

use clap::Parser;
use regtool::error::{Error, Result};
use settings::{Location, ProcessEnv, Settings};

fn main() {
    // SIGINT, SIGTERM, SIGHUP cancel this token: open uploads are cancelled, temporary files
    // being filled removed, then the signal thread exits 128 + the signal.
    let cancel = regtool::Cancel::new();
    signals::install(cancel.clone());
    let status = run(&cancel);
    wait_if_cancelled(&cancel);
    std::process::exit(status);
}

/// Once the token is cancelled, the signal thread owns the exit status: this thread (whose
/// outcome may be an error the cleanup caused, such as a removed temporary file) waits for
/// it to end the process, and reports nothing.
fn wait_if_cancelled(cancel: &regtool::Cancel) {
    while cancel.is_cancelled() {
        std::thread::park();
    }
}

fn run(cancel: &regtool::Cancel) -> i32 {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match execute(cli, cancel) {
        Ok(()) => 0,
        Err(e) => {
            wait_if_cancelled(cancel);
            exit::report(&e)
        }
    }
}

fn execute(cli: cli::Cli, cancel: &regtool::Cancel) -> Result<()> {
    let settings = Settings::from_env(&ProcessEnv)?;
    notices(&settings);
    let mut ctx = commands::Ctx {
        store: settings.location.open(cancel),
        cancel: cancel.clone(),
        out: output::Output::new(settings.format),
        bars: progress::Bars::new(settings.progress),
        settings,
    };
    commands::run(&mut ctx, cli.command)?;
    ctx.out.flush()
}

/// One-line notices on stderr about where regtool is talking to.
fn notices(settings: &Settings) {
    match &settings.location {
        Location::Layout {
            root,
            implicit: true,
        } if std::io::stderr().is_terminal() => {
            crate::output::stderr_line(format_args!(
                "regtool: REGTOOL_HOST is unset: using the local store {}",
                root.display()
            ));
        }
        Location::Registry(r) => {
            if r.tls.skip_verify {
                crate::output::stderr_line(format_args!(
                    "regtool: warning: REGTOOL_SKIPTLSVERIFY=1: the identity of {} is not checked",
                    r.host
                ));
            }
            let has_credentials = r.auth.username.is_some()
                || r.auth.authorization.is_some()
                || r.auth.token.is_some();
            if r.insecure && has_credentials && !r.host.is_loopback() {
                crate::output::stderr_line(format_args!(
                    "regtool: warning: REGTOOL_INSECURE: credentials go to {} in clear text",
                    r.host
                ));
            }
        }
        _ => {}
    }
}

/// clap's errors become one `regtool: usage: ...` line and status 64 (never 2, which
/// means not-found); `--help` and `--version` print as usual and exit 0.
fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return 0;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let err = Error::usage("usage: a command is required").with_hint("see regtool --help");
            return exit::report(&err);
        }
        _ => {}
    }
    let (message, usage) = summarize(&e.render().to_string());
    let hint = match usage {
        Some(line) => format!("{line} (more with --help)"),
        None => "see regtool --help, or regtool <command> --help".to_string(),
    };
    exit::report(&Error::usage(format!("usage: {message}")).with_hint(hint))
}

/// Folds clap's rendered error into one line (its first paragraph: the complaint and the list
/// of missing or wrong arguments under it) and its `Usage:` line, if any.
fn summarize(rendered: &str) -> (String, Option<String>) {
    let message = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches("error: "))
        .collect::<Vec<_>>()
        .join(" ");
    let usage = rendered
        .lines()
        .find_map(|l| l.strip_prefix("Usage: "))
        .map(|u| format!("usage: {}", u.trim()));
    let message = if message.is_empty() {
        "invalid arguments".to_string()
    } else {
        message
    };
    (message, usage)
}

#[cfg(test)]
mod docs_tests;

#[cfg(test)]
mod tests {
    /// The files of the library's modules (those `src/lib.rs` declares).
    fn library_files() -> Vec<std::path::PathBuf> {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
        let mut files = vec![src.join("lib.rs")];
        let mut dirs = Vec::new();
        for name in lib.lines().filter_map(|l| l.strip_prefix("pub mod ")) {
            let name = name.trim_end_matches(';');
            let file = src.join(format!("{name}.rs"));
            if file.exists() {
                files.push(file);
            }
            dirs.push(src.join(name));
        }
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        files
    }

    /// The boundary: the library takes typed options, so it never prints, never names a
    /// variable of the binary's (those live in src/settings.rs and src/exit.rs) and reads no
    /// environment (not even TMPDIR: a caller names its temporary directory). Unit tests at
    /// the end of a file may.
    #[test]
    fn the_library_never_prints_nor_names_a_variable() {
        let files = library_files();
        assert!(files.len() > 20, "{files:?}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let code = match text.find("#[cfg(test)]\nmod tests") {
                Some(end) => &text[..end],
                None => &text,
            };
            for (n, line) in code.lines().enumerate() {
                let named = ["REGTOOL_", "DXF_"]
                    .iter()
                    .any(|p| line.contains(p) && !line.contains("REGTOOL_BLOBS"));
                let prints = ["eprintln!", "println!", "eprint!(", "print!("]
                    .iter()
                    .any(|p| line.contains(p));
                let reads = ["env::var", "env::temp_dir", "env::home_dir"]
                    .iter()
                    .any(|p| line.contains(p));
                assert!(
                    !named && !prints && !reads,
                    "{}:{}: {line}",
                    file.display(),
                    n + 1
                );
            }
        }
    }

    /// The binary writes its stderr lines through `output::stderr_line`: `eprintln!` panics
    /// (status 101) when stderr is a pipe whose reader went away.
    #[test]
    fn the_binary_never_panics_on_a_gone_stderr() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let library = library_files();
        let mut files = Vec::new();
        let mut checked = 0;
        for entry in std::fs::read_dir(&src).unwrap() {
            files.push(entry.unwrap().path());
        }
        while let Some(path) = files.pop() {
            if path.is_dir() {
                if path.ends_with("commands") {
                    files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                }
                continue;
            }
            if library.contains(&path) || path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = match text.find("#[cfg(test)]\nmod tests") {
                Some(end) => &text[..end],
                None => &text,
            };
            checked += 1;
            assert!(
                !code.contains("eprintln!(") && !code.contains("eprint!("),
                "{}: use output::stderr_line",
                path.display()
            );
        }
        assert!(checked > 10, "{checked}");
    }

    #[test]
    fn missing_arguments_are_named_with_the_usage_line() {
        let rendered = "error: the following required arguments were not provided:\n  <REPO>\n  <FILES>...\n\nUsage: regtool push-blob <REPO> <FILES>...\n\nFor more information, try '--help'.\n";
        let (message, usage) = super::summarize(rendered);
        assert_eq!(
            message,
            "the following required arguments were not provided: <REPO> <FILES>..."
        );
        assert_eq!(
            usage.as_deref(),
            Some("usage: regtool push-blob <REPO> <FILES>...")
        );
    }
}
