//! A fault-injecting reverse proxy in front of the real registry. Every connection carries
//! one request (the proxy makes both sides close after it), so rules apply per request: the
//! first `times` requests matching a method and a path fragment get the fault, the rest pass
//! through untouched. Faults: an answer of its own (503, 429 with Retry-After), a response cut
//! after K body bytes, a request body cut after K bytes, a response stalled after K body
//! bytes, one flipped response byte, no answer at all (the request is held for 30 s), an
//! answer delivered late.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub enum Fault {
    Status(u16, Option<u64>),
    CutResponse(usize),
    CutRequest(usize),
    Stall(usize),
    Flip(usize),
    /// The request reaches the registry whole; its answer never reaches the client.
    LoseResponse,
    /// No answer at all: the request is held for 30 s, then the connection closed.
    Hang,
    /// The registry's answer reaches the client this many milliseconds late (the registry
    /// has done its work by then).
    Delay(u64),
}

pub struct Rule {
    /// A method, or `*` for any.
    pub method: &'static str,
    pub path: &'static str,
    pub fault: Fault,
    pub times: usize,
    /// The fault hits one matching request in `every` (the others pass), starting with the
    /// `every`-th: `every(2)` is a load balancer that fails every other request.
    pub every: usize,
    seen: usize,
}

impl Rule {
    pub fn every(mut self, n: usize) -> Rule {
        self.every = n;
        self
    }
}

pub fn rule(method: &'static str, path: &'static str, fault: Fault, times: usize) -> Rule {
    Rule {
        method,
        path,
        fault,
        times,
        every: 1,
        seen: 0,
    }
}

pub struct FaultProxy {
    pub host: String,
    /// One line per request: `METHOD path [range]`, and `FAULT` lines when one was injected.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    pub fn start(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let rules = Arc::new(Mutex::new(rules));
        let (upstream, l) = (upstream.to_string(), log.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, rules, log) = (upstream.clone(), rules.clone(), l.clone());
                std::thread::spawn(move || relay(client, &upstream, &rules, &log));
            }
        });
        FaultProxy { host, log }
    }

    pub fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }
}

fn relay(client: TcpStream, upstream: &str, rules: &Mutex<Vec<Rule>>, log: &Mutex<Vec<String>>) {
    // A client that sends no request (a TLS ClientHello, say) is dropped, not waited on forever.
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == b"\r\n" {
            break;
        }
        head.push(String::from_utf8_lossy(&line).trim_end().to_string());
    }
    let request_line = head.first().cloned().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let range = head
        .iter()
        .find(|h| h.to_ascii_lowercase().starts_with("range:"))
        .cloned()
        .unwrap_or_default();
    log.lock()
        .unwrap()
        .push(format!("{method} {path} {range}").trim_end().to_string());
    let fault = {
        let mut rules = rules.lock().unwrap();
        rules
            .iter_mut()
            .find(|r| {
                r.times > 0 && (r.method == "*" || r.method == method) && path.contains(r.path)
            })
            .and_then(|r| {
                r.seen += 1;
                if r.seen % r.every != 0 {
                    return None;
                }
                r.times -= 1;
                Some(r.fault)
            })
    };
    if let Some(f) = fault {
        log.lock()
            .unwrap()
            .push(format!("FAULT {f:?} {method} {path}"));
    }
    let mut client_out = client.try_clone().unwrap();
    if let Some(Fault::Hang) = fault {
        std::thread::sleep(Duration::from_secs(30));
        let _ = client_out.shutdown(Shutdown::Both);
        return;
    }
    if let Some(Fault::Status(code, retry_after)) = fault {
        // Like a load balancer whose backend failed, take the request body first.
        let length = head
            .iter()
            .find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<u64>().ok())?
            })
            .unwrap_or(0);
        let _ = std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink());
        let chunked = head.iter().any(|h| {
            h.to_ascii_lowercase().starts_with("transfer-encoding:")
                && h.to_ascii_lowercase().contains("chunked")
        });
        if chunked {
            drain_chunked(&mut reader);
        }
        let extra = retry_after
            .map(|s| format!("Retry-After: {s}\r\n"))
            .unwrap_or_default();
        let body = format!(r#"{{"errors":[{{"code":"INJECTED","message":"injected {code}"}}]}}"#);
        let _ = write!(
            client_out,
            "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client_out.shutdown(Shutdown::Both);
        return;
    }
    let Ok(up) = TcpStream::connect(upstream) else {
        return;
    };
    let mut up_out = up.try_clone().unwrap();
    let mut new_head: Vec<String> = head
        .into_iter()
        .filter(|h| !h.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    new_head.push("Connection: close".into());
    if up_out
        .write_all(format!("{}\r\n\r\n", new_head.join("\r\n")).as_bytes())
        .is_err()
    {
        return;
    }
    // Request body: client to upstream, maybe cut.
    let request_cut = match fault {
        Some(Fault::CutRequest(k)) => Some(k),
        _ => None,
    };
    let (up_for_cut, client_for_cut) = (up.try_clone().unwrap(), client.try_clone().unwrap());
    std::thread::spawn(move || {
        let mut sent = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let n = match request_cut {
                Some(k) if sent + n >= k => {
                    let _ = up_out.write_all(&buf[..k - sent]);
                    let _ = up_for_cut.shutdown(Shutdown::Both);
                    let _ = client_for_cut.shutdown(Shutdown::Both);
                    return;
                }
                _ => n,
            };
            if up_out.write_all(&buf[..n]).is_err() {
                break;
            }
            sent += n;
        }
    });
    // Response: upstream to client, with the response faults counted in body bytes.
    let mut up_in = up;
    let mut buf = vec![0u8; 64 * 1024];
    let mut head_done = false;
    let mut pending = Vec::new();
    let mut body_sent = 0usize;
    loop {
        let n = match up_in.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = buf[..n].to_vec();
        if !head_done {
            pending.extend_from_slice(&chunk);
            let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            head_done = true;
            if let Some(Fault::Delay(ms)) = fault {
                std::thread::sleep(Duration::from_millis(ms));
            }
            let lost = matches!(fault, Some(Fault::LoseResponse));
            if !lost && client_out.write_all(&pending[..end + 4]).is_err() {
                return;
            }
            chunk = pending[end + 4..].to_vec();
        }
        let start = body_sent;
        body_sent += chunk.len();
        if let Some(Fault::LoseResponse) = fault {
            // Read the whole answer (the registry has done its work), send nothing.
            continue;
        }
        match fault {
            Some(Fault::Flip(k)) if (start..body_sent).contains(&k) => chunk[k - start] ^= 0x01,
            Some(Fault::CutResponse(k)) if body_sent >= k => {
                let _ = client_out.write_all(&chunk[..k - start.min(k)]);
                let _ = client_out.shutdown(Shutdown::Both);
                return;
            }
            Some(Fault::Stall(k)) if body_sent >= k => {
                let _ = client_out.write_all(&chunk[..k - start.min(k)]);
                std::thread::sleep(Duration::from_secs(30));
                let _ = client_out.shutdown(Shutdown::Both);
                return;
            }
            _ => {}
        }
        if client_out.write_all(&chunk).is_err() {
            return;
        }
    }
    let _ = client_out.shutdown(Shutdown::Both);
}

/// Reads a chunked request body to its end (chunks, the last chunk, trailers).
fn drain_chunked(reader: &mut impl BufRead) {
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let size = line.trim().split(';').next().unwrap_or("");
        let Ok(size) = u64::from_str_radix(size, 16) else {
            return;
        };
        if size == 0 {
            break;
        }
        let _ = std::io::copy(&mut reader.take(size + 2), &mut std::io::sink());
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            return;
        }
    }
}

/// A forward proxy: `CONNECT host:port` tunnels (for HTTPS_PROXY), absolute-form requests
/// are relayed (for HTTP_PROXY). Records each request line.
pub fn forward_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let log = l.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push(line.trim_end().to_string());
                }
                let first = head.first().cloned().unwrap_or_default();
                log.lock().unwrap().push(first.clone());
                let mut parts = first.split(' ');
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let mut client_out = client.try_clone().unwrap();
                let (upstream, forward_head) = if method == "CONNECT" {
                    (target.to_string(), None)
                } else {
                    let rest = target.strip_prefix("http://").unwrap_or(target);
                    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                    let mut h = head.clone();
                    h[0] = format!("{method} {path} HTTP/1.1");
                    h.retain(|x| !x.to_ascii_lowercase().starts_with("connection:"));
                    h.push("Connection: close".into());
                    (authority.to_string(), Some(h))
                };
                let Ok(up) = TcpStream::connect(&upstream) else {
                    return;
                };
                let mut up_out = up.try_clone().unwrap();
                match forward_head {
                    None => {
                        let _ =
                            client_out.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                    }
                    Some(h) => {
                        let _ = up_out.write_all(format!("{}\r\n\r\n", h.join("\r\n")).as_bytes());
                    }
                }
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut reader, &mut up_out);
                });
                let mut up_in = up;
                let _ = std::io::copy(&mut up_in, &mut client_out);
                let _ = client_out.shutdown(Shutdown::Both);
            });
        }
    });
    (host, log)
}
