//! Test certificates, made with the openssl command line once per test binary: a CA, a server
//! certificate for 127.0.0.1/localhost signed by it, a client certificate for mutual TLS, a
//! second CA nobody trusts, the self-signed certificate the token server signs with, and
//! registries' own self-signed certificates.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn self_signed(dir: &Path, name: &str, cn: &str) {
    self_signed_with(dir, name, cn, &[]);
}

/// `openssl req -x509` with `extra` arguments (a subjectAltName, say): a CA:TRUE certificate.
fn self_signed_with(dir: &Path, name: &str, cn: &str, extra: &[&str]) {
    let subject = format!("/CN={cn}");
    let (key, cert) = (format!("{name}.key"), format!("{name}.pem"));
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &cert,
        "-subj",
        &subject,
        "-days",
        "3",
    ];
    args.extend_from_slice(extra);
    openssl(dir, &args);
}

/// A self-signed certificate for 127.0.0.1 (CA:TRUE, as `openssl req -x509` makes) that
/// expired in 2020: `openssl ca` is the one command that takes dates in the past.
fn expired(dir: &Path, name: &str) {
    let config = "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n\
                  serial = serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n\
                  [ext]\nbasicConstraints = critical,CA:TRUE\nsubjectAltName = IP:127.0.0.1\n";
    std::fs::write(dir.join("expired.cnf"), config).unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "01\n").unwrap();
    let (key, csr, cert) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "ca",
            "-selfsign",
            "-batch",
            "-notext",
            "-config",
            "expired.cnf",
            "-extensions",
            "ext",
            "-keyfile",
            &key,
            "-in",
            &csr,
            "-out",
            &cert,
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200102000000Z",
        ],
    );
}

fn signed(dir: &Path, name: &str, cn: &str, ext: &str) {
    let subject = format!("/CN={cn}");
    let (key, csr, cert, extfile) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    std::fs::write(dir.join(&extfile), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subject,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "3",
            "-extfile",
            &extfile,
        ],
    );
}

pub fn pki() -> &'static Pki {
    static P: OnceLock<Pki> = OnceLock::new();
    P.get_or_init(|| {
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        self_signed(&dir, "ca", "regtool test CA");
        self_signed(&dir, "wrong-ca", "a CA nobody trusts");
        self_signed(&dir, "token", "regtool test token signer");
        // Registries' own self-signed certificates, as a quick `openssl req -x509` makes them:
        // one for this machine, one for another name.
        self_signed_with(
            &dir,
            "selfsigned",
            "127.0.0.1",
            &["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        );
        self_signed_with(
            &dir,
            "selfsigned-other",
            "other.example",
            &["-addext", "subjectAltName=DNS:other.example"],
        );
        expired(&dir, "expired");
        signed(
            &dir,
            "server",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        );
        signed(&dir, "client", "fred", "extendedKeyUsage=clientAuth\n");
        Pki { dir }
    })
}

/// The DER bytes of the first PEM block in a file.
pub fn pem_der(path: &Path) -> Vec<u8> {
    use base64::Engine as _;
    let text = std::fs::read_to_string(path).unwrap();
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}
