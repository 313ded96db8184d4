//! A stand-in for Image Factory (no Image Factory runs here, and the real one is on the
//! internet): HTTPS on loopback under a test CA of its own, `POST /schematics` checking the
//! YAML body is the customization shape the factory takes (extraKernelArgs, systemExtensions
//! with officialExtensions, nothing else) and answering `{"id": "<sha256 of the body>"}`
//! (content-addressed, like the factory's), and `GET /pxe/<id>/<version>/metal-<arch>`
//! answering the iPXE script the factory serves, with the schematic's kernel arguments on
//! its `kernel` line. It counts the schematics created and can be told to fail.
#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// What the stand-in holds and saw.
#[derive(Default)]
pub struct Seen {
    /// Schematic id -> (kernel args, extensions).
    pub schematics: BTreeMap<String, (Vec<String>, Vec<String>)>,
    /// `POST /schematics` answered with an id, whether new or not.
    pub posts: usize,
    /// Bodies refused (not the factory's shape).
    pub refused: Vec<String>,
}

pub struct Factory {
    pub addr: SocketAddr,
    /// The test CA's certificate, PEM: what `--image-factory-ca` is given.
    pub ca_pem: String,
    pub seen: Arc<Mutex<Seen>>,
    /// Answer this many more POSTs with 503 (an outage).
    pub fail_next: Arc<AtomicUsize>,
    ca_der: CertificateDer<'static>,
}

impl Factory {
    /// Listens on 127.0.0.1 (any port); serves until the runtime ends.
    pub async fn start() -> Factory {
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params
            .signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), ca.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let factory = Factory {
            addr: listener.local_addr().unwrap(),
            ca_pem: ca.pem(),
            seen: Arc::default(),
            fail_next: Arc::default(),
            ca_der: ca.der().clone(),
        };
        let (seen, fail) = (factory.seen.clone(), factory.fail_next.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, seen, fail) = (acceptor.clone(), seen.clone(), fail.clone());
                tokio::spawn(async move {
                    // A client that does not trust the CA hangs up in the handshake.
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let answer = match read_request(&mut tls).await {
                            Some((head, body)) => respond(&head, &body, &seen, &fail),
                            None => (400, "text/plain", "bad request\n".into()),
                        };
                        let (status, kind, body) = answer;
                        let text = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = tls.write_all(text.as_bytes()).await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        factory
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn pxe_url(&self) -> String {
        format!("https://{}/pxe", self.addr)
    }

    /// `GET url` (on this stand-in) trusting its CA; returns status and body.
    pub async fn get(&self, url: &str) -> (u16, String) {
        let path = url
            .strip_prefix(&self.url())
            .expect("a URL on the stand-in");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head[9..12].parse().unwrap(), body.to_string())
    }
}

/// The head and the body (by Content-Length, at most 64 KiB).
async fn read_request<S: AsyncReadExt + Unpin>(s: &mut S) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..64 {
        let at = buf.windows(4).position(|w| w == b"\r\n\r\n");
        if let Some(at) = at {
            let head = String::from_utf8(buf[..at].to_vec()).ok()?;
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .map_or(Some(0), |v| v.parse().ok())?;
            if len > 64 * 1024 {
                return None;
            }
            while buf.len() < at + 4 + len {
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8(buf[at + 4..at + 4 + len].to_vec()).ok()?;
            return Some((head, body));
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    None
}

fn respond(
    head: &str,
    body: &str,
    seen: &Mutex<Seen>,
    fail: &AtomicUsize,
) -> (u16, &'static str, String) {
    let line = head.lines().next().unwrap_or_default();
    let mut seen = seen.lock().unwrap();
    if line == "POST /schematics HTTP/1.1" {
        if fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return (503, "text/plain", "factory down for the test\n".into());
        }
        return match parse_schematic(body) {
            Ok(content) => {
                let id = hex(&Sha256::digest(body.as_bytes()));
                seen.posts += 1;
                seen.schematics.insert(id.clone(), content);
                (201, "application/json", format!("{{\"id\":\"{id}\"}}"))
            }
            Err(e) => {
                seen.refused.push(body.to_string());
                (400, "text/plain", format!("{e}\n"))
            }
        };
    }
    let path = line
        .strip_prefix("GET /pxe/")
        .and_then(|l| l.strip_suffix(" HTTP/1.1"));
    let parts: Vec<&str> = path.map(|p| p.split('/').collect()).unwrap_or_default();
    match parts[..] {
        [id, version, target] if target.starts_with("metal-") => {
            let arch = &target["metal-".len()..];
            let Some((args, _)) = seen.schematics.get(id) else {
                return (404, "text/plain", "no such schematic\n".into());
            };
            let base = format!("/image/{id}/{version}");
            let script = format!(
                "#!ipxe\nimgfree\nkernel {base}/kernel-{arch} talos.platform=metal {}\n\
                 initrd {base}/initramfs-{arch}.xz\nboot\n",
                args.join(" ")
            );
            (200, "text/plain", script)
        }
        _ => (404, "text/plain", "not found\n".into()),
    }
}

/// The factory's schematic shape, as the provider writes it: `customization:` with
/// `extraKernelArgs` and `systemExtensions.officialExtensions` lists of double-quoted
/// strings. Anything else is refused.
fn parse_schematic(body: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let mut lines = body.lines().peekable();
    if lines.next() != Some("customization:") {
        return Err("the document must start with customization:".into());
    }
    let (mut args, mut exts) = (Vec::new(), Vec::new());
    while let Some(line) = lines.next() {
        let (list, indent) = match line {
            "  extraKernelArgs:" => (&mut args, "    - "),
            "  systemExtensions:" => {
                if lines.next() != Some("    officialExtensions:") {
                    return Err("systemExtensions without officialExtensions".into());
                }
                (&mut exts, "      - ")
            }
            other => return Err(format!("unexpected line {other:?}")),
        };
        while let Some(item) = lines.peek().and_then(|l| l.strip_prefix(indent)) {
            let value: String = serde_json::from_str(item)
                .map_err(|e| format!("item {item:?}: not a quoted string: {e}"))?;
            list.push(value);
            lines.next();
        }
        if list.is_empty() {
            return Err(format!("{line} with no items"));
        }
    }
    Ok((args, exts))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
