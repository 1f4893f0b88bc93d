//! The test harness: a real `docker-registry` (distribution 2.8.2) per configuration, started
//! on a free loopback port and shared by the tests of this binary, and a hermetic runner for
//! the built `regtool` binary.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const USER: &str = "fred";
pub const PASSWORD: &str = "s3cret:with:colons";

/// A running registry. The process is watched by a shell that ends it when this test process
/// exits, so that statics (never dropped) do not leave registries behind.
pub struct Registry {
    pub host: String,
    _watcher: std::process::Child,
}

/// A free loopback port (bound, read, released; the registry binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

impl Registry {
    /// Starts `docker-registry serve` with `extra` appended to a config that listens on a free
    /// port, stores under a fresh directory and allows deletes.
    pub fn start(name: &str, extra: &str) -> Registry {
        let dir = scratch(name);
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n{extra}",
            root = dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).expect("config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("log");
        let watch = format!(
            "docker-registry serve {} & pid=$!; while kill -0 {} 2>/dev/null && kill -0 $pid 2>/dev/null; do sleep 0.5; done; kill $pid 2>/dev/null",
            dir.join("config.yml").display(),
            std::process::id()
        );
        let watcher = Command::new("sh")
            .arg("-c")
            .arg(watch)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("docker-registry must be installed (scripts/test installs it)");
        let host = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&host).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start: {}",
                std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            host,
            _watcher: watcher,
        }
    }
}

/// The plain-HTTP registry shared by this test binary.
pub fn plain() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Registry::start("plain", ""))
}

/// How many partial uploads the plain registry keeps for `repo`: sessions in its storage's
/// `_uploads` directory that still hold data (2.8.2 leaves an empty `hashstates/` behind
/// even after a successful cancel).
pub fn kept_uploads(repo: &str) -> usize {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("plain-{}", std::process::id()))
        .join("data/docker/registry/v2/repositories")
        .join(repo)
        .join("_uploads");
    std::fs::read_dir(dir).map_or(0, |d| {
        d.flatten()
            .filter(|session| session.path().join("data").exists())
            .count()
    })
}

/// A registry behind htpasswd Basic authentication (user [`USER`], password [`PASSWORD`]).
pub fn basic() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        let dir = scratch("htpasswd");
        let out = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .expect("htpasswd (apache2-utils) must be installed");
        assert!(out.status.success());
        let file = dir.join("htpasswd");
        std::fs::write(&file, out.stdout).expect("htpasswd file");
        Registry::start(
            "basic",
            &format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            ),
        )
    })
}

/// What one run of the binary gave.
#[derive(Debug)]
pub struct Run {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_string).collect()
    }
    /// Asserts success and returns stdout as text.
    #[track_caller]
    pub fn ok(&self) -> String {
        assert_eq!(self.status, 0, "expected success; stderr: {}", self.stderr);
        self.text()
    }
    /// Asserts a failure with `status` and a one-line `regtool: ` message (plus maybe a hint).
    #[track_caller]
    pub fn fails(&self, status: i32) -> &str {
        assert_eq!(
            self.status,
            status,
            "stdout: {} stderr: {}",
            self.text(),
            self.stderr
        );
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.starts_with("hint: ") && !l.starts_with("regtool: debug: "))
            .collect();
        assert_eq!(lines.len(), 1, "expected one error line: {:?}", self.stderr);
        assert!(lines[0].starts_with("regtool: "), "{:?}", self.stderr);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        &self.stderr
    }
}

/// A hermetic invocation of the binary: no inherited REGTOOL_/DXF_ variables, a private HOME.
pub struct Cmd {
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

pub fn home() -> &'static Path {
    static H: OnceLock<PathBuf> = OnceLock::new();
    H.get_or_init(|| scratch("home"))
}

pub fn regtool(args: &[&str]) -> Cmd {
    wrapped(&[], args)
}

/// The binary run by another program (`strace` delaying a system call, to force the order of
/// events between two processes), with the same hermetic environment.
pub fn wrapped(wrapper: &[&str], args: &[&str]) -> Cmd {
    let binary = env!("CARGO_BIN_EXE_regtool");
    let mut cmd = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut cmd = Command::new(program);
            cmd.args(rest).arg(binary);
            cmd
        }
        None => Command::new(binary),
    };
    cmd.args(args);
    Cmd::hermetic(cmd)
}

/// Runs `script` in bash with `args` as `$1...` and the binary's path in `$REGTOOL`, in the
/// same hermetic environment: for what only a shell sets up, like `-o >(command)`.
pub fn regtool_in_bash(script: &str, args: &[&str]) -> Cmd {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script).arg("bash").args(args);
    Cmd::hermetic(cmd).env("REGTOOL", env!("CARGO_BIN_EXE_regtool"))
}

impl Cmd {
    fn hermetic(mut cmd: Command) -> Cmd {
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home())
            .env("REGTOOL_RETRIES", "0");
        Cmd { cmd, stdin: None }
    }
    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Cmd {
        self.cmd.env(k, v);
        self
    }
    pub fn host(self, r: &Registry) -> Cmd {
        self.env("REGTOOL_HOST", &r.host)
    }
    pub fn creds(self) -> Cmd {
        self.env("REGTOOL_USERNAME", USER)
            .env("REGTOOL_PASSWORD", PASSWORD)
    }
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self
    }
    pub fn dir(mut self, dir: &Path) -> Cmd {
        self.cmd.current_dir(dir);
        self
    }
    /// Starts the binary with piped stdin, stdout and stderr, for tests that feed it, read
    /// it or interrupt it while it runs.
    pub fn spawn(mut self) -> std::process::Child {
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.cmd.spawn().expect("spawn regtool")
    }

    pub fn run(mut self) -> Run {
        self.cmd
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("spawn regtool");
        if let Some(bytes) = self.stdin.take() {
            let mut pipe = child.stdin.take().expect("stdin");
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        let out = child.wait_with_output().expect("wait");
        Run {
            status: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A fresh scratch directory for one test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("t-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir")
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn sha256(data: &[u8]) -> String {
    regtool::oci::Digest::sha256(data).to_string()
}

/// A unique repository name per test, so tests sharing a registry do not see each other.
pub fn repo(name: &str) -> String {
    format!("t/{name}")
}

/// Presses Ctrl-C on a running regtool.
pub fn interrupt(child: &std::process::Child) {
    signal(child, "INT");
}

/// Sends the signal named like `kill -NAME` (INT, TERM, HUP) to a running regtool.
pub fn signal(child: &std::process::Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Waits (20 s at most) until `ready` says so; `what` names it in the failure.
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
