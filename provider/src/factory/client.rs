//! The Image Factory client: `POST <base>/schematics` over HTTP/1.1 (hyper) on plain TCP or
//! TLS (rustls, the webpki roots plus an optional PEM file of extra roots, for a factory
//! behind a site's own CA). One connection per request: schematics are created rarely.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Longest answer read (the factory answers `{"id":"<64 hex>"}`).
const MAX_ANSWER: usize = 16 * 1024;
/// Connect, send and read, all together.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where schematics are created, and whom to trust there.
#[derive(Clone)]
pub struct Factory {
    /// `http(s)://host[:port][/prefix]`, without a trailing `/`.
    base: String,
    tls: TlsConnector,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

impl Factory {
    /// `extra_ca_pem`: PEM certificates trusted besides the webpki roots.
    pub fn new(base: &str, extra_ca_pem: Option<&[u8]>) -> Result<Factory, String> {
        let base = base.trim_end_matches('/').to_string();
        split_url(&base)?;
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = extra_ca_pem {
            let mut n = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("CA file: {e}"))?;
                roots.add(cert).map_err(|e| format!("CA file: {e}"))?;
                n += 1;
            }
            if n == 0 {
                return Err("CA file: no PEM certificate in it".into());
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Factory {
            base,
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Creates the schematic `yaml` (or finds it: ids are content-addressed) and returns
    /// its id.
    pub async fn create(&self, yaml: &str) -> Result<String, String> {
        let url = format!("{}/schematics", self.base);
        let answer = tokio::time::timeout(TIMEOUT, self.post(&url, yaml))
            .await
            .map_err(|_| format!("POST {url}: no answer in {} s", TIMEOUT.as_secs()))??;
        let created: Created = serde_json::from_slice(&answer)
            .map_err(|e| format!("POST {url}: unreadable answer: {e}"))?;
        let id = created.id;
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("POST {url}: answered a malformed id {id:?}"));
        }
        Ok(id)
    }

    async fn post(&self, url: &str, yaml: &str) -> Result<Bytes, String> {
        let (tls, host, port, path) = split_url(url)?;
        let fail = |what: &str, e: &dyn std::fmt::Display| format!("POST {url}: {what}: {e}");
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| fail("connect", &e))?;
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, host_header(&host, port, tls))
            .header(hyper::header::CONTENT_TYPE, "application/yaml")
            .body(Full::new(Bytes::from(yaml.to_owned())))
            .map_err(|e| fail("request", &e))?;
        let response = if tls {
            let name = ServerName::try_from(host.clone()).map_err(|e| fail("host", &e))?;
            let stream = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| fail("TLS", &e))?;
            send(TokioIo::new(stream), request).await
        } else {
            send(TokioIo::new(tcp), request).await
        }
        .map_err(|e| fail("HTTP", &e))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| fail("reading the answer", &e))?
            .to_bytes();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(format!("POST {url}: {status}: {}", text.trim()));
        }
        Ok(body)
    }
}

async fn send<T>(
    io: TokioIo<T>,
    request: hyper::Request<Full<Bytes>>,
) -> hyper::Result<hyper::Response<hyper::body::Incoming>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let driver = tokio::spawn(conn);
    let response = sender.send_request(request).await;
    // The body is read after this returns; the connection task ends with it.
    drop(driver);
    response
}

fn host_header(host: &str, port: u16, tls: bool) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    match (tls, port) {
        (true, 443) | (false, 80) => host,
        _ => format!("{host}:{port}"),
    }
}

/// `(tls, host, port, path)` of an `http://` or `https://` URL.
fn split_url(url: &str) -> Result<(bool, String, u16, String), String> {
    let bad = || format!("{url}: expected http(s)://host[:port][/path]");
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h, p.parse().map_err(|_| bad())?)
        }
        _ => (authority, if tls { 443 } else { 80 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    let path = if path.is_empty() { "/" } else { path };
    Ok((tls, host.to_string(), port, path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn urls() {
        let ok = |u: &str| split_url(u).unwrap();
        assert_eq!(
            ok("https://factory.talos.dev/schematics"),
            (true, "factory.talos.dev".into(), 443, "/schematics".into())
        );
        assert_eq!(
            ok("http://10.0.0.5:8080"),
            (false, "10.0.0.5".into(), 8080, "/".into())
        );
        assert_eq!(
            ok("https://[::1]:9443/f/schematics"),
            (true, "::1".into(), 9443, "/f/schematics".into())
        );
        assert!(split_url("ftp://x").is_err());
        assert!(split_url("https://:80").is_err());
        assert!(split_url("https://x:port").is_err());
    }
}
