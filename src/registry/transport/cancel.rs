//! The interrupt canceller: an action the interrupt handler runs to DELETE an upload session,
//! with its own copy of the wire and the credentials current when it was made.

use ureq::SendBody;
use ureq::http::{self, Method};

use crate::error::{Error, Result};
use crate::registry::auth::{Auth, TokenCall};
use crate::registry::http::read_limited;
use crate::registry::scope::Scope;
use crate::registry::transport::redirect::same_origin;
use crate::registry::transport::wire::Wire;

/// An action that DELETEs a URL (an upload session) for the interrupt handler, and gives
/// the status and (the start of) the body of the answer, None when there was none: it
/// carries its own agent and the current credentials, and never fetches a token. The
/// credentials go only to `ours`, the registry's origin (docs/registry-notes.md §7): an upload
/// Location may name another host.
pub fn canceller(
    wire: &Wire,
    auth: &Auth,
    scope: &Scope,
    ours: String,
) -> impl Fn(&str) -> Option<(u16, Vec<u8>)> + Send + Sync + 'static {
    let no_fetch = |_: &TokenCall| -> Result<(u16, Vec<u8>)> {
        Err(Error::other("no token requests while interrupted"))
    };
    let authorization = auth.header(scope, &no_fetch).ok().flatten();
    let wire = wire.clone();
    move |url: &str| {
        let mut builder = http::Request::builder().method(Method::DELETE).uri(url);
        if let Some(a) = &authorization
            && same_origin(&ours, url)
        {
            builder = builder.header("authorization", a.expose());
        }
        let req = builder.body(SendBody::none()).ok()?;
        let mut resp = wire.run(req, false).ok()?;
        let body = read_limited(&mut resp, 4096).unwrap_or_default();
        Some((resp.status().as_u16(), body))
    }
}
