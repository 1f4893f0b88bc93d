//! Generated documentation, checked for drift: the man pages in `man/` (one per command plus
//! `regtool.1` with ENVIRONMENT and EXIT STATUS), the shell completions in `completions/`, and
//! the environment and exit-status tables of README.md, all from the clap definition,
//! `crate::settings::VARS` and `exit::STATUSES`. `REGTOOL_UPDATE_GENERATED=1 cargo test docs_tests`
//! rewrites them.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use roff::{Roff, bold, roman};

use crate::cli::Cli;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

type Section = fn(&clap_mangen::Man, &mut dyn std::io::Write) -> std::io::Result<()>;

fn render(man: &clap_mangen::Man, with_env: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let parts: [Section; 6] = [
        clap_mangen::Man::render_title,
        clap_mangen::Man::render_name_section,
        clap_mangen::Man::render_synopsis_section,
        clap_mangen::Man::render_description_section,
        clap_mangen::Man::render_options_section,
        clap_mangen::Man::render_subcommands_section,
    ];
    for part in parts {
        part(man, &mut out).expect("render");
    }
    if with_env {
        let mut roff = Roff::new();
        roff.control("SH", ["ENVIRONMENT"]);
        roff.text([roman("REGTOOL_* variables come first; where marked, dxf's DXF_* name is read when the REGTOOL_ one is unset.")]);
        for var in crate::settings::VARS {
            roff.control("TP", []);
            let name = if var.dxf {
                format!("{} (or DXF_{})", var.full_name(), var.name)
            } else {
                var.full_name()
            };
            roff.text([bold(name)]);
            roff.text([roman(var.help)]);
        }
        roff.control("SH", ["EXIT STATUS"]);
        for (status, meaning) in crate::exit::STATUSES {
            roff.control("TP", []);
            roff.text([bold(status.to_string())]);
            roff.text([roman(*meaning)]);
        }
        roff.to_writer(&mut out).expect("render");
    }
    clap_mangen::Man::render_version_section(man, &mut out).expect("render");
    out
}

/// Every generated file and its expected content.
fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut files = vec![(
        PathBuf::from("man/regtool.1"),
        render(&clap_mangen::Man::new(cmd.clone()), true),
    )];
    for sub in cmd.get_subcommands() {
        let name = format!("regtool-{}", sub.get_name());
        // clap wants a 'static name; leaking a few bytes in a test is fine.
        let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
        let sub = sub.clone().name(leaked).version(env!("CARGO_PKG_VERSION"));
        files.push((
            PathBuf::from(format!("man/{name}.1")),
            render(&clap_mangen::Man::new(sub), false),
        ));
    }
    for (shell, file) in [
        (Shell::Bash, "regtool.bash"),
        (Shell::Zsh, "_regtool"),
        (Shell::Fish, "regtool.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "regtool", &mut out);
        files.push((PathBuf::from("completions").join(file), out));
    }
    files
}

/// The README's generated tables, between marker comments.
fn readme_tables() -> Vec<(&'static str, String)> {
    let mut env = String::from("| variable | meaning |\n|---|---|\n");
    for var in crate::settings::VARS {
        let name = if var.dxf {
            format!("`{}` (`DXF_{}`)", var.full_name(), var.name)
        } else {
            format!("`{}`", var.full_name())
        };
        env.push_str(&format!("| {name} | {} |\n", var.help.replace('|', "\\|")));
    }
    let mut exit = String::from("| status | meaning |\n|---|---|\n");
    for (status, meaning) in crate::exit::STATUSES {
        exit.push_str(&format!("| {status} | {} |\n", meaning.replace('|', "\\|")));
    }
    vec![("environment", env), ("exit-status", exit)]
}

fn replace_block(text: &str, name: &str, content: &str) -> Option<String> {
    let start = format!("<!-- generated:{name} -->\n");
    let end = format!("<!-- end:{name} -->");
    let a = text.find(&start)? + start.len();
    let b = text[a..].find(&end)? + a;
    Some(format!("{}{content}{}", &text[..a], &text[b..]))
}

#[test]
fn generated_docs_are_current() {
    let update = std::env::var_os("REGTOOL_UPDATE_GENERATED").is_some();
    let mut stale = Vec::new();
    for (path, content) in generated() {
        let full = root().join(&path);
        if std::fs::read(&full).ok().as_deref() != Some(&content[..]) {
            if update {
                std::fs::create_dir_all(full.parent().unwrap_or(Path::new("."))).expect("mkdir");
                std::fs::write(&full, &content).expect("write");
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    // No page for a command that no longer exists.
    let expected: Vec<PathBuf> = generated().into_iter().map(|(p, _)| p).collect();
    for entry in std::fs::read_dir(root().join("man"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let rel = PathBuf::from("man").join(entry.file_name());
        if !expected.contains(&rel) {
            stale.push(format!("{} (no such command)", rel.display()));
        }
    }
    let readme_path = root().join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap_or_default();
    let mut new = readme.clone();
    for (name, table) in readme_tables() {
        match replace_block(&new, name, &table) {
            Some(t) => new = t,
            None => stale.push(format!("README.md has no <!-- generated:{name} --> block")),
        }
    }
    if new != readme {
        if update {
            std::fs::write(&readme_path, new).expect("write README");
        } else {
            stale.push("README.md tables".into());
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files: {stale:?}; run REGTOOL_UPDATE_GENERATED=1 cargo test docs_tests"
    );
}
