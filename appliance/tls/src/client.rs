//! `TlsClient`: rustls' unbuffered client connection behind a byte-in, byte-out API that
//! an embassy TCP socket or a host `TcpStream` drives alike.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use rustls::client::{UnbufferedClientConnection, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::time_provider::TimeProvider;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError};
use rustls::{AlertDescription, RootCertStore};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::keys::KeyPair;
use crate::pinned::PinnedPresentedCa;
use crate::provider::{RandomSource, provider};

/// The largest record plaintext either end sends. rustls negotiates neither
/// max_fragment_length (RFC 6066) nor record_size_limit (RFC 8449), but both ends are ours:
/// the client sets it in its config (`max_fragment_size`, for what it sends) and the
/// provider sets the same in its `ServerConfig` (provider/src/tls/server.rs), so the board's
/// incoming buffer holds two of these records instead of two of TLS' 16 KiB. A peer sending
/// larger records stalls the connection ("TLS buffers full" on the board), it does not
/// overrun the heap.
pub const MAX_FRAGMENT: usize = 4096;
/// Ciphertext held before processing: two full records (plaintext, and up to 256 bytes of
/// expansion and a 5-byte header each), so a handshake message split across records can be
/// joined in place.
const MAX_INCOMING: usize = 2 * (MAX_FRAGMENT + 256 + 5);
/// Plaintext accepted per `write`, and the ciphertext queued before `write` pushes back.
const MAX_WRITE: usize = 16384;
/// Decrypted bytes held for `read` before records are left undecrypted.
const MAX_PLAIN: usize = 16384;

/// Everything one connection to the provider needs.
pub struct ClientConfig {
    /// The provider CA certificate (DER): the only trust anchor. `None` while enrolling,
    /// when only the pin is known: then the CA the server presents last in its chain is the
    /// anchor if it hashes to `ca_pin` ([`TlsClient::server_ca`] hands it out to store).
    pub ca_der: Option<Vec<u8>>,
    /// SHA-256 of the CA as the enrollment token carries it: a stored CA that does not match
    /// is refused before any byte is sent, a presented one in the handshake.
    pub ca_pin: [u8; 32],
    /// ALPN protocols to offer (the provider picks tunnel or enrollment by it); the server
    /// must choose one of them when any are given.
    pub alpn: Vec<Vec<u8>>,
    /// Our certificate chain (DER, leaf first) and key; `None` while enrolling.
    pub identity: Option<Identity>,
    /// The provider's DNS name or IP address, as in its certificate.
    pub server_name: String,
    /// Entropy for the handshake, in a `static` (see [`crate::Random`]).
    pub random: &'static dyn RandomSource,
    /// Wall-clock time for certificate validity: a board's RTC, the OS clock on a host.
    pub time: Arc<dyn TimeProvider>,
}

/// The appliance's client certificate chain and its key.
pub struct Identity {
    /// Leaf first, DER.
    pub cert_chain: Vec<Vec<u8>>,
    /// The key the leaf certifies.
    pub key: KeyPair,
}

/// A TLS 1.3 client connection, sans IO: feed it what the socket received, send what
/// `poll_transmit` hands out.
pub struct TlsClient {
    conn: UnbufferedClientConnection,
    /// Received ciphertext not yet processed by rustls.
    incoming: Vec<u8>,
    /// Ciphertext waiting for `poll_transmit`.
    outgoing: Vec<u8>,
    /// Decrypted application data waiting for `read`.
    plain: Vec<u8>,
    /// The first fatal error; every later call returns it again.
    failed: Option<Error>,
    peer_closed: bool,
    /// `close` was called: writes are refused, close_notify goes out with traffic keys.
    closing: bool,
    close_sent: bool,
}

impl TlsClient {
    /// Checks the CA against its pin, builds the config and queues the ClientHello.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let provider = provider(config.random);
        let builder = rustls::ClientConfig::builder_with_details(
            Arc::<CryptoProvider>::clone(&provider),
            config.time,
        )
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(Error::Tls)?;
        let builder = match config.ca_der {
            Some(ca_der) => {
                if Sha256::digest(&ca_der).as_slice() != config.ca_pin {
                    return Err(Error::CaPinMismatch);
                }
                let mut roots = RootCertStore::empty();
                roots
                    .add(CertificateDer::from(ca_der))
                    .map_err(|_| Error::BadCaCertificate)?;
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|_| Error::BadCaCertificate)?;
                builder.with_webpki_verifier(verifier)
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedPresentedCa {
                    pin: config.ca_pin,
                    provider,
                })),
        };
        let mut tls_config = match config.identity {
            Some(identity) => {
                let chain = identity
                    .cert_chain
                    .into_iter()
                    .map(CertificateDer::from)
                    .collect();
                let key = CertifiedKey::new(chain, Arc::new(identity.key));
                builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(key)))
            }
            None => builder.with_no_client_auth(),
        };
        tls_config.alpn_protocols = config.alpn;
        tls_config.max_fragment_size = Some(MAX_FRAGMENT);
        let name = ServerName::try_from(config.server_name).map_err(|_| Error::BadServerName)?;
        let conn =
            UnbufferedClientConnection::new(Arc::new(tls_config), name).map_err(Error::from_tls)?;
        let mut client = Self {
            conn,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            plain: Vec::new(),
            failed: None,
            peer_closed: false,
            closing: false,
            close_sent: false,
        };
        client.process(&[]);
        client.failed.clone().map_or(Ok(client), Err)
    }

    /// Takes received ciphertext; returns how much it took (less than all when its buffers
    /// are full: `read` and `poll_transmit` first, then feed the rest).
    pub fn feed(&mut self, ciphertext: &[u8]) -> Result<usize, Error> {
        self.check()?;
        let take = ciphertext
            .len()
            .min(MAX_INCOMING.saturating_sub(self.incoming.len()));
        let want = self.incoming.len() + take;
        if want > self.incoming.capacity() {
            // Doubling, but never past the bound: the board's heap is sized for MAX_INCOMING,
            // not for the power of two above it.
            let grow = (self.incoming.capacity() * 2).clamp(want, MAX_INCOMING.max(want));
            self.incoming.reserve_exact(grow - self.incoming.len());
        }
        self.incoming.extend_from_slice(&ciphertext[..take]);
        self.process(&[]);
        self.check().map(|()| take)
    }

    /// Copies ciphertext to send into `out`; returns its length (0: nothing to send).
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.outgoing.len());
        out[..n].copy_from_slice(&self.outgoing[..n]);
        self.outgoing.drain(..n);
        n
    }

    /// Copies received application data into `plain`; returns its length. 0 means nothing
    /// yet, or the end of the stream once [`Self::peer_closed`] says so.
    pub fn read(&mut self, plain: &mut [u8]) -> Result<usize, Error> {
        if self.plain.is_empty() {
            self.check()?;
        }
        let n = plain.len().min(self.plain.len());
        plain[..n].copy_from_slice(&self.plain[..n]);
        self.plain.drain(..n);
        // Records left undecrypted while `plain` was full can go now.
        self.process(&[]);
        Ok(n)
    }

    /// Encrypts application data; returns how much it took: 0 while handshaking or while
    /// earlier ciphertext waits for `poll_transmit`.
    pub fn write(&mut self, plain: &[u8]) -> Result<usize, Error> {
        self.check()?;
        if self.closing {
            return Err(Error::Closed);
        }
        if self.outgoing.len() >= MAX_WRITE {
            return Ok(0);
        }
        let n = plain.len().min(MAX_WRITE);
        let written = self.process(&plain[..n]);
        self.check().map(|()| written)
    }

    /// True until the handshake has completed (on our side: TLS 1.3 lets the server refuse
    /// our certificate only after that, which then arrives as an error on `read`).
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The ALPN protocol the server chose, once it has answered.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The CA certificate (DER) the server presented last in its chain, once the handshake
    /// has verified it: with [`ClientConfig::ca_der`] `None`, the anchor to store after
    /// enrolling (it hashes to the pin).
    pub fn server_ca(&self) -> Option<&[u8]> {
        if self.is_handshaking() {
            return None;
        }
        let chain = self.conn.peer_certificates()?;
        chain.get(1..)?.last().map(|ca| ca.as_ref())
    }

    /// True once the server has sent close_notify: no more data will arrive.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Queues close_notify (sent by the next `poll_transmit`; during the handshake there is
    /// nothing to close cleanly, so the caller just drops the socket); writes are refused after.
    pub fn close(&mut self) {
        if !self.closing && self.failed.is_none() {
            self.closing = true;
            self.process(&[]);
        }
    }

    fn check(&self) -> Result<(), Error> {
        self.failed.clone().map_or(Ok(()), Err)
    }

    /// Drives rustls until it needs input from the network, encrypting `data` (and a pending
    /// close_notify) when traffic keys are ready; returns how much of `data` it encrypted.
    fn process(&mut self, mut data: &[u8]) -> usize {
        let mut written = 0;
        while self.failed.is_none() {
            let status = self.conn.process_tls_records(&mut self.incoming);
            let discard = status.discard;
            let mut progressed = true;
            match status.state {
                Err(e) => self.failed = Some(Error::from_tls(e)),
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    if self.plain.len() >= MAX_PLAIN {
                        progressed = false;
                    } else {
                        while let Some(record) = traffic.next_record() {
                            match record {
                                Ok(record) => self.plain.extend_from_slice(record.payload),
                                Err(e) => {
                                    self.failed = Some(Error::from_tls(e));
                                    break;
                                }
                            }
                        }
                    }
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    let start = self.outgoing.len();
                    let result = match encode.encode(&mut []) {
                        Err(EncodeError::InsufficientSize(need)) => {
                            self.outgoing.resize(start + need.required_size, 0);
                            encode.encode(&mut self.outgoing[start..])
                        }
                        other => other,
                    };
                    match result {
                        Ok(n) => self.outgoing.truncate(start + n),
                        Err(_) => {
                            self.outgoing.truncate(start);
                            self.failed = Some(Error::Internal);
                        }
                    }
                }
                // The bytes are already in `outgoing`, which `poll_transmit` hands out once.
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    progressed = false;
                    if !data.is_empty() {
                        match Self::append(&mut self.outgoing, |out| traffic.encrypt(data, out)) {
                            Ok(()) => {
                                written = data.len();
                                data = &[];
                                progressed = true;
                            }
                            Err(e) => self.failed = Some(e),
                        }
                    } else if self.closing && !self.close_sent {
                        self.close_sent = true;
                        if let Err(e) =
                            Self::append(&mut self.outgoing, |out| traffic.queue_close_notify(out))
                        {
                            self.failed = Some(e);
                        }
                    }
                }
                Ok(ConnectionState::PeerClosed) => self.peer_closed = true,
                Ok(ConnectionState::Closed | ConnectionState::BlockedHandshake) => {
                    progressed = false
                }
                // Early data is a server-side state; anything new in rustls stops the loop.
                Ok(_) => progressed = false,
            }
            self.incoming.drain(..discard);
            if !progressed {
                break;
            }
        }
        written
    }

    /// Runs an encrypt step into the end of `out`, growing it to the size rustls asks for.
    fn append(
        out: &mut Vec<u8>,
        mut step: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
    ) -> Result<(), Error> {
        let start = out.len();
        let result = match step(&mut []) {
            Err(EncryptError::InsufficientSize(need)) => {
                out.resize(start + need.required_size, 0);
                step(&mut out[start..])
            }
            other => other,
        };
        match result {
            Ok(n) => {
                out.truncate(start + n);
                Ok(())
            }
            Err(_) => {
                out.truncate(start);
                Err(Error::Internal)
            }
        }
    }
}

impl Error {
    /// Sorts a rustls error into what the caller can act on.
    fn from_tls(error: rustls::Error) -> Self {
        match error {
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                Error::UntrustedServer
            }
            rustls::Error::AlertReceived(AlertDescription::ProtocolVersion)
            | rustls::Error::PeerIncompatible(_) => Error::Incompatible,
            rustls::Error::AlertReceived(alert) => Error::PeerAlert(alert),
            rustls::Error::FailedToGetRandomBytes => Error::Entropy,
            other => Error::Tls(other),
        }
    }
}
