//! A Redfish BMC over a non-blocking TCP connection, plain HTTP or TLS (rustls with ring).
//!
//! The appliance's sans-IO client decides what to send; this link connects (a non-blocking
//! connect, so a dead BMC stalls no other link), moves bytes and reconnects whenever the
//! client asks for a new connection (the BMC closed a keep-alive connection, or answered
//! with `Connection: close`). The runner waits only for POLLIN, so while a connect or a
//! write is pending `poll_at` asks to be polled again within 10 ms.
//!
//! Trust for `https://`: a CA file (PEM; the BMC's certificate must name the URL's host or
//! IP), a pinned SHA-256 of the end-entity certificate (BMCs' self-signed certificates:
//! the name is not checked, the handshake signature is), or none (`Insecure`). There is
//! no default set of public roots: a BMC's certificate is practically never issued by one.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use appliance::bmc::redfish::{Client, Config};
use appliance::bmc::{Credentials, Error, Operation, PowerState};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, ring as provider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use socket2::{Domain, Socket, Type};

use super::Link;

/// How the BMC's TLS certificate is checked (ignored for `http://`).
#[derive(Clone, Debug)]
pub enum Trust {
    /// Certificates issued by the CAs in this PEM file.
    CaFile(PathBuf),
    /// Only the certificate whose DER has this SHA-256.
    Fingerprint([u8; 32]),
    /// Any certificate (lab use).
    Insecure,
}

/// How soon a pending connect or write is looked at again.
const RECHECK: Duration = Duration::from_millis(10);

enum Stream {
    Connecting(Socket),
    Plain(TcpStream),
    Tls(TcpStream, Box<ClientConnection>),
}

/// One Redfish BMC: implements [`Link`] for `host-sim bmc` and the power-manager runner.
pub struct RedfishLink {
    client: Client,
    addr: SocketAddr,
    name: String,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    stream: Option<Stream>,
    /// Plain HTTP: bytes the client gave that the socket has not taken yet.
    unsent: Vec<u8>,
    epoch: Instant,
}

impl RedfishLink {
    /// A link to the service at `url` (`http://HOST[:PORT]` or `https://HOST[:PORT]`; a
    /// path after the authority is ignored: discovery starts at `/redfish/v1`).
    pub fn new(url: &str, creds: Credentials, trust: Trust) -> Result<RedfishLink, String> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("expected an http:// or https:// URL".into());
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = split_host_port(authority, if https { 443 } else { 80 })?;
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("{host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}: no address"))?;
        let config = Config::new(authority).map_err(|_| "host name too long".to_string())?;
        let tls = match https {
            false => None,
            true => {
                let name = ServerName::try_from(host.to_string())
                    .map_err(|e| format!("{host}: not a TLS server name: {e}"))?;
                Some((tls_config(&trust)?, name))
            }
        };
        Ok(RedfishLink {
            client: Client::new(config, creds),
            addr,
            name: authority.to_string(),
            tls,
            stream: None,
            unsent: Vec::new(),
            epoch: Instant::now(),
        })
    }

    fn ms(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn connect(&mut self, ms: u64) {
        self.stream = None;
        self.unsent.clear();
        let started = Socket::new(Domain::for_address(self.addr), Type::STREAM, None)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .and_then(|s| match s.connect(&self.addr.into()) {
                Ok(()) => Ok(s),
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(s),
                Err(e) => Err(e),
            });
        match started {
            Ok(s) => self.stream = Some(Stream::Connecting(s)),
            Err(e) => self.fail(ms, Error::Timeout, &format!("connect: {e}")),
        }
    }

    /// Ends the exchange in flight on a transport failure; says why on stderr (the
    /// client's error says only what kind of failure).
    fn fail(&mut self, ms: u64, error: Error, why: &str) {
        eprintln!("redfish {}: {why}", self.name);
        self.stream = None;
        self.client.transport_failed(ms, error);
    }

    /// Moves bytes once in each direction; true if anything moved.
    fn pump(&mut self, ms: u64) -> bool {
        let Some(stream) = self.stream.take() else {
            return false;
        };
        let result = match stream {
            Stream::Connecting(s) => self.finish_connect(ms, s),
            Stream::Plain(s) => self.pump_plain(ms, s),
            Stream::Tls(s, tls) => self.pump_tls(ms, s, tls),
        };
        match result {
            Ok(progress) => progress,
            Err((error, why)) => {
                self.fail(ms, error, &why);
                true
            }
        }
    }

    fn finish_connect(&mut self, ms: u64, s: Socket) -> Result<bool, (Error, String)> {
        if s.peer_addr().is_err() {
            return match s.take_error() {
                Ok(None) => {
                    self.stream = Some(Stream::Connecting(s));
                    Ok(false)
                }
                Ok(Some(e)) | Err(e) => Err((Error::Timeout, format!("connect: {e}"))),
            };
        }
        let tcp = TcpStream::from(s);
        let _ = tcp.set_nodelay(true);
        self.stream = Some(match &self.tls {
            None => Stream::Plain(tcp),
            Some((config, name)) => {
                let tls = ClientConnection::new(config.clone(), name.clone())
                    .map_err(|e| (Error::Malformed, format!("TLS: {e}")))?;
                Stream::Tls(tcp, Box::new(tls))
            }
        });
        self.client.connected(ms);
        Ok(true)
    }

    fn pump_plain(&mut self, ms: u64, mut s: TcpStream) -> Result<bool, (Error, String)> {
        let mut buf = [0u8; 4096];
        let mut progress = false;
        while let Some(n) = self.client.poll_transmit(&mut buf) {
            self.unsent.extend_from_slice(&buf[..n]);
        }
        if !self.unsent.is_empty() {
            match s.write(&self.unsent) {
                Ok(n) => {
                    self.unsent.drain(..n);
                    progress = n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err((Error::Timeout, format!("write: {e}"))),
            }
        }
        match s.read(&mut buf) {
            Ok(0) => {
                self.client.peer_closed(ms);
                return Ok(true); // The stream is dropped.
            }
            Ok(n) => {
                self.client.receive(ms, &buf[..n]);
                progress = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err((Error::Timeout, format!("read: {e}"))),
        }
        self.stream = Some(Stream::Plain(s));
        Ok(progress)
    }

    fn pump_tls(
        &mut self,
        ms: u64,
        mut s: TcpStream,
        mut tls: Box<ClientConnection>,
    ) -> Result<bool, (Error, String)> {
        let mut buf = [0u8; 4096];
        let mut progress = false;
        while let Some(n) = self.client.poll_transmit(&mut buf) {
            // rustls buffers plaintext until the handshake is done.
            let _ = tls.writer().write_all(&buf[..n]);
        }
        while tls.wants_write() {
            match tls.write_tls(&mut s) {
                Ok(n) => progress |= n > 0,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err((Error::Timeout, format!("write: {e}"))),
            }
        }
        let eof = match tls.read_tls(&mut s) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => return Err((Error::Timeout, format!("read: {e}"))),
        };
        if let Err(e) = tls.process_new_packets() {
            // Tell the BMC why (a fatal alert), as far as the socket takes it.
            let _ = tls.write_tls(&mut s);
            let kind = match e {
                rustls::Error::InvalidCertificate(_) => Error::Auth,
                _ => Error::Malformed,
            };
            return Err((kind, format!("TLS: {e}")));
        }
        loop {
            match tls.reader().read(&mut buf) {
                Ok(0) => {
                    self.client.peer_closed(ms); // close_notify
                    return Ok(true);
                }
                Ok(n) => {
                    self.client.receive(ms, &buf[..n]);
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // Closed without close_notify: the same to HTTP framing.
                    self.client.peer_closed(ms);
                    return Ok(true);
                }
            }
        }
        if eof {
            self.client.peer_closed(ms);
            return Ok(true);
        }
        self.stream = Some(Stream::Tls(s, tls));
        Ok(progress)
    }

    fn waiting_to_write(&self) -> bool {
        match &self.stream {
            Some(Stream::Connecting(_)) => true,
            Some(Stream::Plain(_)) => !self.unsent.is_empty(),
            Some(Stream::Tls(_, tls)) => tls.wants_write(),
            None => false,
        }
    }
}

impl Link for RedfishLink {
    fn start(&mut self, op: Operation, now: Instant) -> Result<(), Error> {
        self.client.start(op, self.ms(now))
    }

    fn poll(&mut self, now: Instant) -> Option<Result<PowerState, Error>> {
        let ms = self.ms(now);
        if self.client.poll_at().is_some_and(|t| t <= ms) {
            self.client.tick(ms);
        }
        // Bounded: a BMC streaming bytes cannot keep one link's poll going forever.
        for _ in 0..64 {
            let connecting = matches!(self.stream, Some(Stream::Connecting(_)));
            if self.client.needs_connection() && !connecting {
                self.connect(ms);
            }
            if !self.pump(ms) {
                break;
            }
        }
        if self.client.is_closed() && !self.client.needs_connection() {
            self.stream = None; // Nothing more to say: free the socket.
        }
        self.client.poll_result()
    }

    fn poll_at(&self) -> Option<Instant> {
        let client = self
            .client
            .poll_at()
            .map(|ms| self.epoch + Duration::from_millis(ms));
        let recheck = self.waiting_to_write().then(|| Instant::now() + RECHECK);
        client.into_iter().chain(recheck).min()
    }

    fn fd(&self) -> Option<RawFd> {
        match self.stream.as_ref()? {
            Stream::Connecting(s) => Some(s.as_raw_fd()),
            Stream::Plain(s) | Stream::Tls(s, _) => Some(s.as_raw_fd()),
        }
    }

    fn close(&mut self, now: Instant) {
        self.client.close(self.ms(now));
    }

    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str, default_port: u16) -> Result<(&str, u16), String> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, rest) = v6.split_once(']').ok_or("unclosed [ in the URL")?;
            (host, rest.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err("no host in the URL".into());
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
        None => default_port,
    };
    Ok((host, port))
}

fn tls_config(trust: &Trust) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(provider::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = match trust {
        Trust::CaFile(path) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
            {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no certificate in it", path.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Fingerprint(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                pin: Some(*pin),
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                pin: None,
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Accepts the end-entity certificate whose SHA-256 is `pin` (any, if `None`), and checks
/// the handshake signatures with its key, so the peer must hold that certificate's key.
#[derive(Debug)]
struct Pinned {
    pin: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        match self.pin {
            Some(pin) if digest.as_ref() != pin => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(split_host_port("10.0.0.5", 443), Ok(("10.0.0.5", 443)));
        assert_eq!(split_host_port("bmc:8000", 80), Ok(("bmc", 8000)));
        assert_eq!(split_host_port("[::1]:8443", 443), Ok(("::1", 8443)));
        assert_eq!(split_host_port("[::1]", 443), Ok(("::1", 443)));
        assert!(split_host_port(":80", 80).is_err());
        assert!(split_host_port("h:x", 80).is_err());
        let creds = Credentials {
            user: "u".try_into().unwrap(),
            password: "p".try_into().unwrap(),
        };
        assert!(RedfishLink::new("ftp://x", creds.clone(), Trust::Insecure).is_err());
        assert!(RedfishLink::new("http://127.0.0.1:1/redfish/v1", creds, Trust::Insecure).is_ok());
    }
}
