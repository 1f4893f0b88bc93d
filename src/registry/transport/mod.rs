//! The layers under [`super::http::Http`], one job per file (go-containerregistry's
//! `pkg/v1/remote/transport` is the model): the wire (one attempt through ureq, and the one
//! clear-text check for credentials), the scheme (https, or plain HTTP for a loopback registry
//! that does not speak TLS), redirects, the debug log, the user agent, the
//! token endpoint call, and the interrupt canceller. Authentication on 401 is `auth/`; the
//! retry policy every layer shares is the backend-neutral `crate::retry`.

pub(crate) mod cancel;
pub(crate) mod logger;
pub(crate) mod redirect;
pub(crate) mod scheme;
pub(crate) mod token;
pub(crate) mod useragent;
pub(crate) mod wire;
