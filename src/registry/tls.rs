//! TLS settings: extra CA certificates on top of the built-in (Mozilla) roots, no verification
//! when the user asks for it, and a client certificate for mutual TLS.
//!
//! regtool makes its own TLS connections (a ureq connector over rustls) instead of ureq's,
//! because ureq cannot take a custom certificate verifier, and one is needed: a registry's
//! self-signed certificate (what `openssl req -x509` makes: CA:TRUE, used as the server's own
//! certificate) is refused by webpki as `CaUsedAsEndEntity` even when the user named that very
//! certificate as the one to trust, where curl `--cacert` accepts it. Owning the handshake also
//! lets a stall in it be told apart from a stall while connecting.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};
use ureq::tls::{Certificate, ClientCert, PemItem, parse_pem};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

use crate::error::{Error, Result};

/// TLS material, checked when it is made ([`TlsOptions::from_pem`]).
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// Certificates trusted besides the system's.
    pub extra_roots: Vec<Certificate<'static>>,
    /// The client certificate and key, for registries that ask for one.
    pub client: Option<ClientCert>,
    /// Accept any server certificate (the identity is then not checked).
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

/// Which piece of TLS material a [`TlsError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Material {
    /// The CA bundle trusted on top of the built-in roots.
    CaBundle,
    /// The client certificate (chain) for mutual TLS.
    ClientCert,
    /// The private key of the client certificate.
    ClientKey,
}

/// TLS material that cannot be used: which piece, and why (`not PEM: ...`, `no certificate
/// in it`). The caller knows where the bytes came from and names that in its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// Which of the PEM inputs is wrong.
    pub material: Material,
    /// What is wrong with it.
    pub problem: String,
}

fn tls_error(material: Material, problem: impl std::fmt::Display) -> TlsError {
    TlsError {
        material,
        problem: problem.to_string(),
    }
}

fn parse(material: Material, pem: &[u8]) -> Result<Vec<PemItem<'static>>, TlsError> {
    parse_pem(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_error(material, format!("not PEM: {e}")))
}

fn certificates(material: Material, pem: &[u8]) -> Result<Vec<Certificate<'static>>, TlsError> {
    let certs: Vec<Certificate<'static>> = parse(material, pem)?
        .into_iter()
        .filter_map(|item| match item {
            PemItem::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(tls_error(material, "no certificate in it"));
    }
    Ok(certs)
}

impl TlsOptions {
    /// Checks PEM material: `ca`, a CA bundle (or a registry's self-signed certificate)
    /// trusted on top of the built-in roots; `client`, a certificate chain and its private key
    /// for mutual TLS. Everything is checked now, so that a bad key is reported before any
    /// connection is made.
    pub fn from_pem(
        ca: Option<&[u8]>,
        client: Option<(&[u8], &[u8])>,
        skip_verify: bool,
    ) -> Result<TlsOptions, TlsError> {
        let extra_roots = match ca {
            Some(pem) => certificates(Material::CaBundle, pem)?,
            None => Vec::new(),
        };
        let client = match client {
            None => None,
            Some((cert, key)) => {
                let chain = certificates(Material::ClientCert, cert)?;
                let key = parse(Material::ClientKey, key)?
                    .into_iter()
                    .find_map(|item| match item {
                        PemItem::PrivateKey(k) => Some(k),
                        _ => None,
                    })
                    .ok_or_else(|| tls_error(Material::ClientKey, "no private key in it"))?;
                Some(ClientCert::new_with_certs(&chain, key))
            }
        };
        let options = TlsOptions {
            extra_roots,
            client,
            skip_verify,
        };
        options.client_config()?;
        Ok(options)
    }

    /// The certificate verifier: the built-in roots plus the extra CA certificates.
    fn verifier(
        &self,
        provider: &Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Verifier, TlsError> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let extra = self
            .extra_roots
            .iter()
            .map(|c| CertificateDer::from(c.der()));
        let (_, ignored) = roots.add_parsable_certificates(extra);
        if ignored > 0 {
            return Err(tls_error(
                Material::CaBundle,
                format!("{ignored} certificate(s) in it cannot be used as trust anchors"),
            ));
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| tls_error(Material::CaBundle, e))?;
        Ok(Verifier {
            webpki,
            given: self
                .extra_roots
                .iter()
                .map(|c| CertificateDer::from(c.der().to_vec()))
                .collect(),
            skip: self.skip_verify,
        })
    }

    /// The rustls configuration for these options. Checked by [`TlsOptions::from_pem`], so
    /// that a bad client key is reported rather than a failed connection.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = self.verifier(&provider)?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(|e| tls_error(Material::CaBundle, e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let config = match &self.client {
            None => builder.with_no_client_auth(),
            Some(client) => {
                let chain = client
                    .certs()
                    .iter()
                    .map(|c| CertificateDer::from(c.der().to_vec()))
                    .collect();
                let key = PrivateKeyDer::try_from(client.private_key().der().to_vec())
                    .map_err(|e| tls_error(Material::ClientKey, e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| tls_error(Material::ClientKey, e))?
            }
        };
        Ok(Arc::new(config))
    }

    /// A ureq connector chain (CONNECT proxy, TCP, then TLS with these options) for an agent.
    pub fn connector(&self) -> impl Connector<(), Out = impl Transport> {
        ().chain(ureq::unversioned::transport::ConnectProxyConnector::default())
            .chain(ureq::unversioned::transport::TcpConnector::default())
            .chain(TlsConnector {
                config: self
                    .client_config()
                    .map_err(|e| Error::other(format!("TLS set-up: {}", e.problem))),
            })
    }
}

/// The built-in webpki verification, plus: a certificate the user gave to trust is
/// trusted when the server presents it as its own, even though it is a CA (self-signed).
#[derive(Debug)]
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    given: Vec<CertificateDer<'static>>,
    /// Asked for: the certificate is not checked at all.
    skip: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if self.skip {
            return Ok(ServerCertVerified::assertion());
        }
        let verdict = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match verdict {
            Err(e) if ca_as_end_entity(&e) && self.given.iter().any(|g| g == end_entity) => {
                // webpki checks the validity period before the CA flag, so it has passed; the
                // name is checked here as for any certificate. That the server holds the key
                // is proved by the handshake signature, checked below as always.
                let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
                    rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
                })?;
                cert.verify_is_valid_for_subject_name(server_name)
                    .map_err(|_| {
                        rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
                    })?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        if self.skip {
            return Ok(HandshakeSignatureValid::assertion());
        }
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        if self.skip {
            return Ok(HandshakeSignatureValid::assertion());
        }
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Whether webpki refused a certificate only for being a CA used as the server's own.
pub(crate) fn ca_as_end_entity(e: &rustls::Error) -> bool {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => other
            .0
            .downcast_ref::<webpki::Error>()
            .is_some_and(|w| matches!(w, webpki::Error::CaUsedAsEndEntity)),
        _ => false,
    }
}

/// Wraps the TCP transport of an https URL in TLS with regtool's configuration.
struct TlsConnector {
    config: Result<Arc<ClientConfig>>,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConnector")
    }
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> std::result::Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Err(ureq::Error::ConnectionFailed);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let config = self.config.clone().map_err(wrap)?;
        let host = details.uri.host().unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_string()).map_err(|_| {
            wrap(Error::unavailable(format!(
                "{host}: not a name TLS can check"
            )))
        })?;
        let mut conn = ClientConnection::new(config, name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        if let Err(e) = conn.complete_io(&mut sock) {
            return Err(handshake_error(host, e));
        }
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

/// Carries a library error through ureq, to come out whole in the HTTP layer.
fn wrap(e: Error) -> ureq::Error {
    ureq::Error::Io(std::io::Error::other(e))
}

/// A handshake that timed out says so (the TCP connection was made); other failures go on as
/// ureq reports them (rustls errors included).
fn handshake_error(host: &str, e: std::io::Error) -> ureq::Error {
    let timed_out = e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|i| i.downcast_ref::<ureq::Error>())
            .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)));
    if timed_out {
        return wrap(
            Error::unavailable(format!("{host}: timed out (TLS handshake)"))
                .with_cause(crate::error::Cause::Timeout),
        );
    }
    ureq::Error::from(e)
}

/// A TLS connection as a ureq transport.
pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsTransport")
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(
        &mut self,
        amount: usize,
        timeout: NextTimeout,
    ) -> std::result::Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    /// A self-signed certificate as `openssl req -x509` makes it (CA:TRUE), for 127.0.0.1.
    fn self_signed(dir: &Path) -> std::path::PathBuf {
        let ok = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes",
                "-keyout",
                "k.pem",
                "-out",
                "c.pem",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .args(["-days", "3", "-addext", "subjectAltName=IP:127.0.0.1"])
            .current_dir(dir)
            .output()
            .expect("openssl")
            .status
            .success();
        assert!(ok);
        dir.join("c.pem")
    }

    #[test]
    fn a_given_self_signed_certificate_is_trusted_only_within_its_name_and_dates() {
        let dir = tempfile::tempdir().unwrap();
        let path = self_signed(dir.path());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pem = std::fs::read(&path).unwrap();
        let given = TlsOptions::from_pem(Some(&pem), None, false).unwrap();
        let verifier = given.verifier(&provider).unwrap();
        let der = CertificateDer::from(given.extra_roots[0].der().to_vec());
        let ip = ServerName::try_from("127.0.0.1").unwrap();
        let now = UnixTime::now();
        let check = |name: &ServerName<'_>, at: UnixTime| {
            verifier.verify_server_cert(&der, &[], name, &[], at)
        };
        assert!(check(&ip, now).is_ok());
        let later = UnixTime::since_unix_epoch(Duration::from_secs(now.as_secs() + 10 * 86_400));
        assert!(matches!(
            check(&ip, later),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. }
            ))
        ));
        let other = ServerName::try_from("other.example").unwrap();
        assert!(check(&other, now).is_err());
        // The same certificate, not given: webpki's refusal stands.
        let plain = TlsOptions::default().verifier(&provider).unwrap();
        assert!(plain.verify_server_cert(&der, &[], &ip, &[], now).is_err());
    }
}
