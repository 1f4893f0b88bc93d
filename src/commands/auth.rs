//! `auth <repo> [action...]`: prints a bearer token for `repository:<repo>:<actions>` (default
//! pull) plus any extra `type:name:actions` scopes, for other tools to use. Prints nothing,
//! status 0, when the registry does not use bearer tokens. The only command that prints a
//! secret.

use regtool::error::{Error, Result};
use regtool::registry::scope::Scope;
use serde_json::json;

use super::Ctx;

/// Mint a bearer token for a repository (pull by default) and extra scopes
///
/// A token that is not visible ASCII (what an Authorization header can carry) is refused
/// with status 65, without showing it, instead of being printed.
#[derive(clap::Args)]
pub struct Args {
    /// Repository, like fred/logs
    pub repo: String,
    /// Actions on the repository (pull, push, delete, *) and extra scopes (type:name:actions)
    pub actions: Vec<String>,
}

pub fn run(ctx: &mut Ctx, args: Args) -> Result<()> {
    let repo = &super::repo(&args.repo)?;
    let scope = Scope::from_words(repo.as_str(), &args.actions)?;
    // Only a registry mints tokens; a local store prints nothing.
    let Some(registry) = ctx.store().registry() else {
        return Ok(());
    };
    if let Some(token) = registry.mint_token(&scope)? {
        // A token belongs in an Authorization header, so it is visible ASCII (RFC 6750's
        // b64token is a subset); anything else could write escapes to the terminal. The
        // message never shows the token: it is a secret.
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::data(
                "the token server sent a token that is not printable ASCII",
            ));
        }
        ctx.out
            .result(&token, json!({"token": token, "scope": scope.to_string()}))?;
    }
    Ok(())
}
