//! A small scripted HTTP/1.1 server for what the real registry cannot be made to do (429,
//! lying content, a 202 to a mount of a blob the source has, paginated and unsorted tag
//! lists, redirects to another host, bodies that do not end). It records every request it
//! receives and how many streamed body bytes the client took.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send this many body bytes, then stall for a minute before the rest.
    pub stall_after: Option<usize>,
    /// Instead of `body`: this many bytes of `body` repeated, chunked, for as long as the
    /// client reads (a server that streams "forever").
    pub stream: Option<u64>,
    /// Close the connection without answering (an answer lost on the way).
    pub hang_up: bool,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            stall_after: None,
            stream: None,
            hang_up: false,
        }
    }
    /// No answer at all: the connection is closed after the request was read.
    pub fn hang_up() -> Response {
        Response {
            hang_up: true,
            ..Response::new(0)
        }
    }
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Response {
        self.headers.push((k.to_string(), v.into()));
        self
    }
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Response {
        self.body = b.into();
        self
    }
    pub fn stall_after(mut self, n: usize) -> Response {
        self.stall_after = Some(n);
        self
    }
    /// Streams `total` bytes (the body repeated) with chunked encoding.
    pub fn stream(mut self, total: u64) -> Response {
        self.stream = Some(total);
        self
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

pub struct Server {
    pub host: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
    /// Body bytes of streamed responses the client accepted.
    pub streamed: Arc<AtomicU64>,
}

impl Server {
    /// Serves `handler` on a free loopback port until the test process ends.
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
        Server::start_with(None, handler)
    }

    /// The same over TLS with the test PKI's server certificate.
    pub fn start_tls(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
        Server::start_with(Some(tls_config()), handler)
    }

    fn start_with(
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let streamed = Arc::new(AtomicU64::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = requests.clone();
        let counter = streamed.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (handler, log, tls) = (handler.clone(), log.clone(), tls.clone());
                let counter = counter.clone();
                std::thread::spawn(move || match tls {
                    None => serve(
                        stream.try_clone().unwrap(),
                        stream,
                        &*handler,
                        &log,
                        &counter,
                    ),
                    Some(config) => {
                        let Ok(conn) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        let tls = Arc::new(Mutex::new(rustls::StreamOwned::new(conn, stream)));
                        serve(Shared(tls.clone()), Shared(tls), &*handler, &log, &counter)
                    }
                });
            }
        });
        Server {
            host,
            requests,
            streamed,
        }
    }

    pub fn seen(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// One TLS stream used for reading and writing from the same thread.
struct Shared(Arc<Mutex<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>>);

impl Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().read(buf)
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap().flush()
    }
}

fn tls_config() -> Arc<rustls::ServerConfig> {
    let pki = crate::pki::pki();
    let cert =
        rustls::pki_types::CertificateDer::from(crate::pki::pem_der(&pki.path("server.pem")));
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(crate::pki::pem_der(&pki.path("server.key")))
            .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    Arc::new(config)
}

fn serve(
    read: impl Read,
    mut writer: impl Write,
    handler: &Handler,
    log: &Mutex<Vec<Request>>,
    streamed: &AtomicU64,
) {
    let mut reader = BufReader::new(read);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let req = Request {
            method,
            path,
            headers,
            body,
        };
        log.lock().unwrap().push(req.clone());
        let resp = handler(&req);
        if resp.hang_up {
            return;
        }
        let mut head = format!("HTTP/1.1 {} X\r\n", resp.status);
        for (k, v) in &resp.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(total) = resp.stream.filter(|_| req.method != "HEAD") {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            if writer.write_all(head.as_bytes()).is_err() {
                return;
            }
            stream_chunks(&mut writer, &resp.body, total, streamed);
            return;
        }
        if !resp
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
        }
        head.push_str("\r\n");
        let body: &[u8] = if req.method == "HEAD" {
            &[]
        } else {
            &resp.body
        };
        let split = resp.stall_after.unwrap_or(body.len()).min(body.len());
        let sent = writer
            .write_all(head.as_bytes())
            .and_then(|()| writer.write_all(&body[..split]))
            .and_then(|()| writer.flush());
        if sent.is_err() {
            return;
        }
        if split < body.len() {
            std::thread::sleep(std::time::Duration::from_secs(60));
            if writer.write_all(&body[split..]).is_err() {
                return;
            }
        }
    }
}

/// Writes `total` bytes of `pattern` repeated as HTTP chunks, counting what the client took,
/// until done or the client hangs up.
fn stream_chunks(writer: &mut impl Write, pattern: &[u8], total: u64, streamed: &AtomicU64) {
    let pattern = if pattern.is_empty() { b"x" } else { pattern };
    let mut block = Vec::new();
    while block.len() < 64 * 1024 {
        block.extend_from_slice(pattern);
    }
    let mut left = total;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        let chunk = format!("{n:x}\r\n");
        let sent = writer
            .write_all(chunk.as_bytes())
            .and_then(|()| writer.write_all(&block[..n]))
            .and_then(|()| writer.write_all(b"\r\n"));
        if sent.is_err() {
            return;
        }
        streamed.fetch_add(n as u64, Ordering::SeqCst);
        left -= n as u64;
    }
    let _ = writer.write_all(b"0\r\n\r\n").and_then(|()| writer.flush());
}
