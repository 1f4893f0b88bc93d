//! The whole command-line surface (documented in regtool(1) and the README): one subcommand per
//! verb, each declared by the `Args` of its module in `commands/`. The environment table of
//! `--help`, the man page and the README comes from `crate::settings::VARS`.

use clap::{Parser, Subcommand};

use crate::commands;

#[derive(Parser)]
#[command(
    name = "regtool",
    version,
    about = "Use any OCI/Docker registry as a scriptable blob store",
    long_about = "Use any OCI/Docker registry as a scriptable blob store.\n\n\
        Configuration comes from environment variables (REGTOOL_*, with dxf's DXF_* names as a \
        fallback); results go to stdout, progress and errors to stderr.\n\n\
        SIGINT (Ctrl-C), SIGTERM and SIGHUP remove the temporary files being written and cancel \
        open upload sessions, within 3 seconds in all (a second signal exits at once), then \
        exit with 128 + the signal: 130, 143, 129.",
    after_long_help = environment_help(),
    disable_help_subcommand = true,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    PushBlob(commands::push_blob::Args),
    PullBlob(commands::pull_blob::Args),
    BlobSize(commands::blob_size::Args),
    MountBlob(commands::mount_blob::Args),
    DelBlob(commands::del_blob::Args),
    SetAlias(commands::set_alias::Args),
    GetAlias(commands::get_alias::Args),
    DelAlias(commands::del_alias::Args),
    GetDigest(commands::get_digest::Args),
    Resolve(commands::resolve::Args),
    GetManifest(commands::get_manifest::Args),
    ListAliases(commands::list_aliases::Args),
    ListRepos(commands::list_repos::Args),
    Auth(commands::auth::Args),
    AppendLayer(commands::append_layer::Args),
    Copy(commands::copy::Args),
    PullImage(commands::pull_image::Args),
    PushImage(commands::push_image::Args),
    Digest(commands::digest::Args),
    Flatten(commands::flatten::Args),
    Squash(commands::squash::Args),
    MakeLayer(commands::make_layer::Args),
    MakeImage(commands::make_image::Args),
}

/// The ENVIRONMENT section of `--help`, from the one table of variables.
pub fn environment_help() -> String {
    let mut text =
        String::from("Environment (REGTOOL_* first, then the DXF_* name where marked):\n");
    for var in crate::settings::VARS {
        let dxf = if var.dxf {
            format!(" (or DXF_{})", var.name)
        } else {
            String::new()
        };
        text.push_str(&format!("  {}{dxf}\n      {}\n", var.full_name(), var.help));
    }
    text.push_str("\nExit status:\n");
    for (status, meaning) in crate::exit::STATUSES {
        text.push_str(&format!("  {status:>3}  {meaning}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
