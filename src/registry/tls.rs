//! TLS settings: extra CA certificates on top of the built-in (Mozilla) roots, no verification
//! when the user asks for it, and a client certificate for mutual TLS. ureq's
//! `RootCerts::Specific` replaces the roots, so the list is built here from
//! `webpki-root-certs` plus the user's PEM (PROTOCOL.md, "ureq 3 specifics").

use std::path::Path;
use std::sync::Arc;

use ureq::tls::{Certificate, ClientCert, PemItem, RootCerts, TlsConfig, TlsProvider, parse_pem};

use crate::error::{Error, Result};

/// TLS material, read and checked when the configuration is read.
#[derive(Clone, Default)]
pub struct TlsOptions {
    pub extra_roots: Vec<Certificate<'static>>,
    pub client: Option<ClientCert>,
    pub skip_verify: bool,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("extra_roots", &self.extra_roots.len())
            .field("client", &self.client.is_some())
            .field("skip_verify", &self.skip_verify)
            .finish()
    }
}

impl PartialEq for TlsOptions {
    fn eq(&self, other: &TlsOptions) -> bool {
        self.skip_verify == other.skip_verify
            && self
                .extra_roots
                .iter()
                .map(|c| c.der())
                .eq(other.extra_roots.iter().map(|c| c.der()))
            && self.client.as_ref().map(|c| c.private_key().der())
                == other.client.as_ref().map(|c| c.private_key().der())
    }
}

fn read_pem(var: &str, path: &Path) -> Result<Vec<PemItem<'static>>> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::config(
            var,
            format!(
                "cannot read {}: {}",
                path.display(),
                crate::error::io_reason(&e)
            ),
        )
    })?;
    parse_pem(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::config(var, format!("{}: not PEM: {e}", path.display())))
}

fn certificates(var: &str, path: &Path) -> Result<Vec<Certificate<'static>>> {
    let certs: Vec<Certificate<'static>> = read_pem(var, path)?
        .into_iter()
        .filter_map(|item| match item {
            PemItem::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(Error::config(
            var,
            format!("{}: no certificate in it", path.display()),
        ));
    }
    Ok(certs)
}

impl TlsOptions {
    /// Reads the CA bundle and client certificate files the variables name.
    pub fn load(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
        skip_verify: bool,
    ) -> Result<TlsOptions> {
        let extra_roots = match ca {
            Some(path) => certificates("REGTOOL_TLSVERIFY", path)?,
            None => Vec::new(),
        };
        let client = match (cert, key) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::config(
                    "REGTOOL_CLIENT_KEY",
                    "unset, but REGTOOL_CLIENT_CERT is set",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::config(
                    "REGTOOL_CLIENT_CERT",
                    "unset, but REGTOOL_CLIENT_KEY is set",
                ));
            }
            (Some(cert), Some(key)) => {
                let chain = certificates("REGTOOL_CLIENT_CERT", cert)?;
                let key = read_pem("REGTOOL_CLIENT_KEY", key)?
                    .into_iter()
                    .find_map(|item| match item {
                        PemItem::PrivateKey(k) => Some(k),
                        _ => None,
                    })
                    .ok_or_else(|| {
                        Error::config(
                            "REGTOOL_CLIENT_KEY",
                            format!("{}: no private key in it", key.display()),
                        )
                    })?;
                Some(ClientCert::new_with_certs(&chain, key))
            }
        };
        Ok(TlsOptions {
            extra_roots,
            client,
            skip_verify,
        })
    }

    /// The ureq TLS configuration.
    pub fn config(&self) -> TlsConfig {
        let roots = if self.extra_roots.is_empty() {
            RootCerts::WebPki
        } else {
            let builtin = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned());
            RootCerts::Specific(Arc::new(
                builtin.chain(self.extra_roots.iter().cloned()).collect(),
            ))
        };
        TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(roots)
            .client_cert(self.client.clone())
            .disable_verification(self.skip_verify)
            .build()
    }
}
