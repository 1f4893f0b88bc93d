//! Output paths (`pull-blob -o`): a regular file or a new path is replaced atomically and keeps
//! its mode, a symlink is written through to its target, and devices, FIFOs and `/dev/fd/N`
//! are written in place, verified as they stream.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::scripted::{Response, Server};

/// Pushes `data` to the plain registry and returns its digest.
fn pushed(repo: &str, data: &[u8]) -> String {
    regtool(&["push-blob", repo, "-"])
        .host(plain())
        .stdin(data.to_vec())
        .run()
        .ok()
        .trim()
        .to_string()
}

fn pull_to(repo: &str, digest: &str, path: &Path) -> Run {
    regtool(&["pull-blob", repo, digest, "-o", path.to_str().unwrap()])
        .host(plain())
        .run()
}

/// Entries in `dir`, sorted: a leftover temporary file shows up here.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A `cat` reading a FIFO, drained by a thread. `finish` gives what it read, or None when
/// nothing ever opened the FIFO for writing (then the reader is ended, not waited on forever).
struct FifoReader {
    child: std::process::Child,
    output: std::thread::JoinHandle<Vec<u8>>,
}

impl FifoReader {
    fn start(fifo: &Path) -> FifoReader {
        let mut child = Command::new("cat")
            .arg(fifo)
            .stdout(Stdio::piped())
            .spawn()
            .expect("cat");
        let mut stdout = child.stdout.take().unwrap();
        let output = std::thread::spawn(move || {
            let mut all = Vec::new();
            std::io::Read::read_to_end(&mut stdout, &mut all).unwrap();
            all
        });
        FifoReader { child, output }
    }

    fn finish(mut self) -> Option<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(self.output.join().unwrap())
    }
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(ok.success());
}

#[test]
fn a_character_device_stays_a_device() {
    let repo = repo("out-device");
    let digest = pushed(&repo, &bytes(100_000, 1));
    // The same device as /dev/null, but a private node: a regression replaces this one, not
    // the machine's /dev/null.
    let dir = tempdir();
    let null = dir.path().join("null");
    let made = Command::new("mknod")
        .arg(&null)
        .args(["c", "1", "3"])
        .status();
    assert!(
        made.unwrap().success(),
        "mknod needs root, as the suite runs"
    );
    assert!(pull_to(&repo, &digest, &null).ok().is_empty());
    let meta = std::fs::symlink_metadata(&null).unwrap();
    assert!(meta.file_type().is_char_device(), "{meta:?}");
    assert_eq!(names(dir.path()), ["null"]);
    // And the real one.
    assert!(
        pull_to(&repo, &digest, Path::new("/dev/null"))
            .ok()
            .is_empty()
    );
    let meta = std::fs::symlink_metadata("/dev/null").unwrap();
    assert!(meta.file_type().is_char_device());
}

#[test]
fn a_symlink_is_written_through_to_its_target() {
    let repo = repo("out-symlink");
    let data = bytes(300_000, 2);
    let digest = pushed(&repo, &data);
    let dir = tempdir();
    let real = dir.path().join("real.bin");
    std::fs::write(&real, b"old").unwrap();
    let link = dir.path().join("link.bin");
    std::os::unix::fs::symlink("real.bin", &link).unwrap();
    assert!(pull_to(&repo, &digest, &link).ok().is_empty());
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read(&real).unwrap(), data);
    // A dangling link: its target is created. Two hops, the second one absolute.
    let new = dir.path().join("new.bin");
    let hop = dir.path().join("hop");
    std::os::unix::fs::symlink(&new, &hop).unwrap();
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink("hop", &dangling).unwrap();
    assert!(pull_to(&repo, &digest, &dangling).ok().is_empty());
    assert!(std::fs::symlink_metadata(&dangling).unwrap().is_symlink());
    assert_eq!(std::fs::read(&new).unwrap(), data);
    assert_eq!(
        names(dir.path()),
        ["dangling", "hop", "link.bin", "new.bin", "real.bin"]
    );
}

#[test]
fn a_fifo_reader_gets_the_bytes() {
    let repo = repo("out-fifo");
    let data = bytes(1_000_000, 3);
    let digest = pushed(&repo, &data);
    let dir = tempdir();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let reader = FifoReader::start(&fifo);
    let out = pull_to(&repo, &digest, &fifo);
    let read = reader.finish();
    assert!(out.ok().is_empty());
    assert!(read.as_ref() == Some(&data), "the reader got {:?} bytes", {
        read.map(|r| r.len())
    });
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(names(dir.path()), ["fifo"]);
}

#[test]
fn a_process_substitution_gets_the_bytes() {
    let repo = repo("out-fd");
    let data = bytes(500_000, 4);
    let digest = pushed(&repo, &data);
    let dir = tempdir();
    let sum = dir.path().join("sum");
    // `>(...)` is /dev/fd/63, a pipe; bash waits for it with `wait $!`.
    let out = regtool_in_bash(
        r#""$REGTOOL" pull-blob "$1" "$2" -o >(sha256sum > "$3"); s=$?; wait $!; exit $s"#,
        &[&repo, &digest, sum.to_str().unwrap()],
    )
    .host(plain())
    .run();
    out.ok();
    let hex = digest.trim_start_matches("sha256:");
    assert_eq!(
        std::fs::read_to_string(&sum).unwrap(),
        format!("{hex}  -\n")
    );
    // /dev/stdout into a pipe is the same case.
    let out = regtool_in_bash(
        r#""$REGTOOL" pull-blob "$1" "$2" -o /dev/stdout | cat"#,
        &[&repo, &digest],
    )
    .host(plain())
    .run();
    assert_eq!(out.stdout, data, "{}", out.stderr);
}

#[test]
fn an_existing_file_keeps_its_mode_and_owner() {
    let repo = repo("out-mode");
    let data = bytes(10_000, 5);
    let digest = pushed(&repo, &data);
    let dir = tempdir();
    let target = dir.path().join("secret.bin");
    std::fs::write(&target, b"old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&target, Some(4242), Some(4243)).unwrap();
    assert!(pull_to(&repo, &digest, &target).ok().is_empty());
    let meta = std::fs::metadata(&target).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!((meta.uid(), meta.gid()), (4242, 4243));
    assert_eq!(std::fs::read(&target).unwrap(), data);
    // A new file gets the usual 0666 less the umask (the test runner's is 022 or stricter).
    let fresh = dir.path().join("fresh.bin");
    assert!(pull_to(&repo, &digest, &fresh).ok().is_empty());
    let mode = std::fs::metadata(&fresh).unwrap().mode() & 0o777;
    assert_eq!(mode & !0o644, 0, "{mode:o}");
}

#[test]
fn a_long_file_name_works() {
    let repo = repo("out-long");
    let data = bytes(10_000, 6);
    let digest = pushed(&repo, &data);
    let dir = tempdir();
    // 250 bytes, with multibyte characters where the temporary name cuts it.
    let name = format!("{}{}", "a".repeat(236), "é".repeat(7));
    assert_eq!(name.len(), 250);
    let target = dir.path().join(&name);
    assert!(pull_to(&repo, &digest, &target).ok().is_empty());
    assert_eq!(std::fs::read(&target).unwrap(), data);
    assert_eq!(names(dir.path()), [name]);
}

#[test]
fn a_mismatch_on_a_fifo_is_written_then_exits_65() {
    let expected = sha256(b"what was asked for");
    let server = Server::start(|_| Response::new(200).body(b"what the server sent".to_vec()));
    let dir = tempdir();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let reader = FifoReader::start(&fifo);
    let out = regtool(&[
        "pull-blob",
        "fred/logs",
        &expected,
        "-o",
        fifo.to_str().unwrap(),
    ])
    .env("REGTOOL_HOST", &server.host)
    .run();
    let read = reader.finish();
    let stderr = out.fails(65);
    assert!(stderr.contains("digest mismatch"), "{stderr}");
    assert_eq!(read.as_deref(), Some(&b"what the server sent"[..]));
    assert_eq!(names(dir.path()), ["fifo"]);
}

#[test]
fn a_directory_or_a_symlink_loop_is_refused() {
    let repo = repo("out-dir");
    let digest = pushed(&repo, b"x");
    let dir = tempdir();
    let out = pull_to(&repo, &digest, dir.path());
    let stderr = out.fails(1);
    assert!(stderr.contains("is a directory"), "{stderr}");
    assert!(names(dir.path()).is_empty());
    let lp = dir.path().join("loop");
    std::os::unix::fs::symlink("loop", &lp).unwrap();
    let out = pull_to(&repo, &digest, &lp);
    let stderr = out.fails(1);
    assert!(
        stderr.contains(&format!("writing {}: ", lp.display()))
            && stderr.contains("levels of symbolic links"),
        "{stderr}"
    );
    assert_eq!(names(dir.path()), ["loop"]);
}

#[test]
fn a_written_file_is_synced_before_the_rename_and_the_directory_after() {
    let repo = repo("out-fsync");
    let digest = pushed(&repo, &bytes(10_000, 7));
    let dir = tempdir();
    let target = dir.path().join("synced.bin");
    let log = dir.path().join("strace.log");
    let log_arg = log.to_str().unwrap();
    let strace = [
        "strace",
        "-f",
        "-y",
        "-qq",
        "-e",
        "trace=fsync,fdatasync,rename,renameat,renameat2",
        "-o",
        log_arg,
    ];
    wrapped(
        &strace,
        &["pull-blob", &repo, &digest, "-o", target.to_str().unwrap()],
    )
    .host(plain())
    .run()
    .ok();
    let calls = std::fs::read_to_string(&log).unwrap();
    let position = |what: &dyn Fn(&str) -> bool| {
        calls
            .lines()
            .position(what)
            .unwrap_or_else(|| panic!("missing call in:\n{calls}"))
    };
    let dir_name = dir.path().to_str().unwrap();
    let file_sync = position(&|l| l.contains("sync(") && l.contains(".synced.bin.regtool-"));
    let rename = position(&|l| l.contains("rename") && l.contains("synced.bin\""));
    let dir_sync = position(&|l| l.contains("fsync(") && l.contains(&format!("<{dir_name}>")));
    assert!(file_sync < rename && rename < dir_sync, "{calls}");
}

#[test]
fn tar_commands_follow_the_same_rules() {
    let dir = tempdir();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("a.txt"), bytes(5_000, 8)).unwrap();
    let layer = dir.path().join("layer.tar");
    let made = Command::new("tar")
        .arg("-cf")
        .arg(&layer)
        .arg("-C")
        .arg(&tree)
        .arg("a.txt")
        .status()
        .unwrap();
    assert!(made.success());
    let layer = layer.to_str().unwrap();
    let expected = regtool(&["squash", layer]).run().stdout;
    assert!(!expected.is_empty());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // A FIFO gets the tar as it is made.
    let fifo = out.join("fifo");
    mkfifo(&fifo);
    let reader = FifoReader::start(&fifo);
    regtool(&["squash", layer, "-o", fifo.to_str().unwrap()])
        .run()
        .ok();
    assert!(
        reader.finish() == Some(expected.clone()),
        "the FIFO got no tar"
    );
    // A symlink's target is replaced and keeps its mode.
    let real = out.join("real.tar");
    std::fs::write(&real, b"old").unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = out.join("link.tar");
    std::os::unix::fs::symlink("real.tar", &link).unwrap();
    regtool(&["squash", layer, "-o", link.to_str().unwrap()])
        .run()
        .ok();
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read(&real).unwrap(), expected);
    assert_eq!(std::fs::metadata(&real).unwrap().mode() & 0o777, 0o600);
    assert_eq!(names(&out), ["fifo", "link.tar", "real.tar"]);
}

/// Sets the mode bits of `path`, sticky bit included.
fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_symlink_planted_in_a_sticky_world_writable_directory_is_not_followed() {
    let repo = repo("out-sticky");
    let data = bytes(1_000, 11);
    let digest = pushed(&repo, &data);
    let dir = tempdir();
    let shared = dir.path().join("tmp");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o1777);
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    // Another user's link to a file of ours, and one to where a file of ours would be made.
    let planted = shared.join("out.bin");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    std::os::unix::fs::lchown(&planted, Some(4242), Some(4242)).unwrap();
    let created = dir.path().join("created");
    let dangling = shared.join("new.bin");
    std::os::unix::fs::symlink(&created, &dangling).unwrap();
    std::os::unix::fs::lchown(&dangling, Some(4242), Some(4242)).unwrap();
    for link in [&planted, &dangling] {
        let stderr = pull_to(&repo, &digest, link).fails(1).to_string();
        assert!(
            stderr.contains(&format!(
                "not following the symlink {}: it belongs to another user (uid 4242) in the \
                 sticky world-writable directory {}",
                link.display(),
                shared.display()
            )),
            "{stderr}"
        );
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!created.exists());
    assert_eq!(names(&shared), ["new.bin", "out.bin"]);

    // The kernel's exceptions: the directory's owner's link is followed...
    std::os::unix::fs::chown(&shared, Some(4242), None).unwrap();
    assert!(pull_to(&repo, &digest, &dangling).ok().is_empty());
    assert_eq!(std::fs::read(&created).unwrap(), data);
    std::os::unix::fs::chown(&shared, Some(0), None).unwrap();
    // ...and so is one in a directory without the sticky bit...
    chmod(&shared, 0o777);
    assert!(pull_to(&repo, &digest, &planted).ok().is_empty());
    assert_eq!(std::fs::read(&victim).unwrap(), data);
    // ...and our own link, sticky bit or not.
    chmod(&shared, 0o1777);
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::lchown(&planted, Some(0), Some(0)).unwrap();
    assert!(pull_to(&repo, &digest, &planted).ok().is_empty());
    assert_eq!(std::fs::read(&victim).unwrap(), data);
    assert!(std::fs::symlink_metadata(&planted).unwrap().is_symlink());
}

#[test]
fn a_missing_output_directory_is_no_missing_blob() {
    let repo = repo("out-nodir");
    let digest = pushed(&repo, b"x");
    let dir = tempdir();
    let target = dir.path().join("nonexist/x");
    let out = pull_to(&repo, &digest, &target);
    let stderr = out.fails(1);
    assert!(
        stderr.contains(&format!(
            "creating a file in {}: No such file or directory",
            dir.path().join("nonexist").display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_writable_file_in_a_read_only_directory_gets_a_hint() {
    let repo = repo("out-rodir");
    let digest = pushed(&repo, b"new");
    let dir = tempdir();
    chmod(dir.path(), 0o755);
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    chmod(&ro, 0o755);
    let target = ro.join("out");
    std::fs::write(&target, b"old").unwrap();
    std::os::unix::fs::chown(&target, Some(4242), Some(4242)).unwrap();
    // Run as the file's owner, who may write the file but not its directory.
    let out = wrapped(
        &["setpriv", "--reuid=4242", "--regid=4242", "--clear-groups"],
        &["pull-blob", &repo, &digest, "-o", target.to_str().unwrap()],
    )
    .host(plain())
    .run();
    let stderr = out.fails(1);
    assert!(
        stderr.contains(&format!(
            "regtool: creating a file in {}: Permission denied\nhint: {} is replaced by renaming \
             a verified file over it, so its directory must be writable",
            ro.display(),
            target.display()
        )),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"old");
}

#[test]
fn a_private_file_is_never_replaced_through_a_readable_temporary() {
    // Created 0644 and narrowed to 0600 afterwards, the temporary could be opened by another
    // user in between, and read through that descriptor as it fills: it must be born 0600.
    let repo = repo("out-private");
    let digest = pushed(&repo, &bytes(10_000, 9));
    let dir = tempdir();
    let target = dir.path().join("secret.bin");
    std::fs::write(&target, b"old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let log = dir.path().join("strace.log");
    let strace = [
        "strace",
        "-f",
        "-qq",
        "-e",
        "trace=open,openat",
        "-o",
        log.to_str().unwrap(),
    ];
    wrapped(
        &strace,
        &["pull-blob", &repo, &digest, "-o", target.to_str().unwrap()],
    )
    .host(plain())
    .run()
    .ok();
    let calls = std::fs::read_to_string(&log).unwrap();
    let created = calls
        .lines()
        .find(|l| l.contains(".secret.bin.regtool-") && l.contains("O_CREAT"))
        .unwrap_or_else(|| panic!("no temporary created in:\n{calls}"));
    assert!(created.contains(", 0600) = "), "{created}");
}

#[test]
fn a_dash_for_the_output_is_stdout() {
    let repo = repo("out-dash");
    let data = bytes(5_000, 10);
    let digest = pushed(&repo, &data);
    let dir = tempdir();
    let out = regtool(&["pull-blob", &repo, &digest, "-o", "-"])
        .host(plain())
        .dir(dir.path())
        .run();
    assert_eq!(out.stdout, data, "{}", out.stderr);
    std::fs::write(dir.path().join("a.txt"), b"a\n").unwrap();
    let tar = regtool(&["make-layer", "a.txt", "-o", "-"])
        .dir(dir.path())
        .run();
    assert!(tar.stdout.len() >= 1024, "{}", tar.stderr);
    assert_eq!(names(dir.path()), ["a.txt"], "no file named -");
    // The tar and the config cannot both go to stdout.
    let both = regtool(&["flatten", "oci:nowhere", "-o", "-", "--config", "-"])
        .dir(dir.path())
        .run();
    assert!(
        both.fails(64)
            .contains("--config and -o name the same file"),
        "{}",
        both.stderr
    );
}
