//! `auth <repo> [action...]`: prints a bearer token for `repository:<repo>:<actions>` (default
//! pull) plus any extra `type:name:actions` scopes, for other tools to use. Prints nothing,
//! status 0, when the registry does not use bearer tokens. The only command that prints a
//! secret.

use regtool::error::Result;
use regtool::registry::scope::Scope;
use serde_json::json;

use super::Ctx;

/// Mint a bearer token for a repository (pull by default) and extra scopes
#[derive(clap::Args)]
pub struct Args {
    /// Repository, like fred/logs
    pub repo: String,
    /// Actions on the repository (pull, push, delete, *) and extra scopes (type:name:actions)
    pub actions: Vec<String>,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = super::repo(&args.repo)?;
    let scope = Scope::from_words(repo, &args.actions)?;
    if let Some(token) = ctx.store().mint_token(&scope)? {
        ctx.out
            .result(&token, json!({"token": token, "scope": scope.to_string()}))?;
    }
    Ok(())
}
