//! The TLS listener: accepts TCP, picks the service by ALPN, runs the handshake with that
//! service's configuration, then the tunnel or the enrollment (see the module doc of
//! [`crate::tls`]).

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{Acceptor, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;

use super::ca::{Ca, ServerIdentity, key_fingerprint};
use super::{ALPN_ENROLL, ALPN_TUNNEL, BoxError, EnrollmentStore, TlsStream, TunnelHandler};

/// From TCP accept to the end of the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The whole enrollment exchange after the handshake.
pub const ENROLL_TIMEOUT: Duration = Duration::from_secs(10);

/// The bound listener with its TLS configurations, store and tunnel handler.
pub struct TlsServer<S, T> {
    listener: TcpListener,
    shared: Arc<Shared<S, T>>,
}

pub(super) struct Shared<S, T> {
    tunnel_config: Arc<ServerConfig>,
    enroll_config: Arc<ServerConfig>,
    pub(super) ca: Ca,
    pub(super) store: Arc<S>,
    tunnel: Arc<T>,
}

#[derive(Clone, Copy)]
enum Service {
    Tunnel,
    Enroll,
}

/// Binds `listen` and serves until the listener fails. `server_names` are the names or
/// addresses appliances dial (the host in the token), for the server certificate.
pub async fn run<S, T>(
    listen: SocketAddr,
    state_dir: &Path,
    server_names: &[String],
    store: Arc<S>,
    tunnel: Arc<T>,
) -> io::Result<()>
where
    S: EnrollmentStore,
    T: TunnelHandler<S::Id>,
{
    TlsServer::bind(listen, state_dir, server_names, store, tunnel)
        .await?
        .serve()
        .await
}

impl<S, T> TlsServer<S, T>
where
    S: EnrollmentStore,
    T: TunnelHandler<S::Id>,
{
    /// Loads or creates the CA and server identity in `state_dir` and binds `listen`.
    pub async fn bind(
        listen: SocketAddr,
        state_dir: &Path,
        server_names: &[String],
        store: Arc<S>,
        tunnel: Arc<T>,
    ) -> io::Result<Self> {
        let ca = Ca::load_or_create(state_dir)?;
        let identity = ca.server_identity(state_dir, server_names)?;
        let (tunnel_config, enroll_config) = configs(&ca, identity).map_err(io::Error::other)?;
        let listener = TcpListener::bind(listen).await?;
        let shared = Shared {
            tunnel_config,
            enroll_config,
            ca,
            store,
            tunnel,
        };
        Ok(TlsServer {
            listener,
            shared: Arc::new(shared),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// SHA-256 of the CA certificate, for enrollment tokens.
    pub fn ca_fingerprint(&self) -> [u8; 32] {
        self.shared.ca.fingerprint()
    }

    /// Accepts connections, each in its own task, until accepting fails for good.
    pub async fn serve(self) -> io::Result<()> {
        loop {
            let (tcp, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                // Out of descriptors or a connection reset before accept: keep serving.
                Err(e) if is_transient(&e) => {
                    eprintln!("tls accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let shared = Arc::clone(&self.shared);
            tokio::spawn(async move {
                if let Err(e) = connection(&shared, tcp).await {
                    eprintln!("tls {peer}: {e}");
                }
            });
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::OutOfMemory
    ) || e.raw_os_error() == Some(24) // EMFILE
}

/// One connection from TCP accept to its end; the error says why it was refused or broke.
async fn connection<S, T>(shared: &Shared<S, T>, tcp: TcpStream) -> Result<(), BoxError>
where
    S: EnrollmentStore,
    T: TunnelHandler<S::Id>,
{
    let (service, mut stream) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(shared, tcp))
        .await
        .map_err(|_| "handshake timed out")??;
    match service {
        Service::Tunnel => {
            let Some(id) = authorize(shared, &stream)? else {
                let _ = stream.shutdown().await;
                return Err("tunnel refused: unknown or revoked appliance".into());
            };
            shared.tunnel.serve(stream, id).await
        }
        Service::Enroll => {
            tokio::time::timeout(ENROLL_TIMEOUT, super::enroll::exchange(shared, &mut stream))
                .await
                .map_err(|_| "enrollment timed out")??;
            Ok(())
        }
    }
}

async fn handshake<S, T>(
    shared: &Shared<S, T>,
    tcp: TcpStream,
) -> Result<(Service, TlsStream<TcpStream>), BoxError> {
    let start = LazyConfigAcceptor::new(Acceptor::default(), tcp).await?;
    let offered = |want: &[u8]| {
        start
            .client_hello()
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == want))
    };
    let (service, config) = if offered(ALPN_TUNNEL) {
        (Service::Tunnel, &shared.tunnel_config)
    } else if offered(ALPN_ENROLL) {
        (Service::Enroll, &shared.enroll_config)
    } else {
        return Err("refused: no known ALPN protocol offered".into());
    };
    let stream = start.into_stream(Arc::clone(config)).await?;
    Ok((service, stream))
}

/// The appliance id for the tunnel's client certificate (already verified against our CA
/// in the handshake), `None` if the store does not know its key or revoked it.
fn authorize<S: EnrollmentStore, T>(
    shared: &Shared<S, T>,
    stream: &TlsStream<TcpStream>,
) -> Result<Option<S::Id>, BoxError> {
    let cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or("tunnel without a client certificate")?;
    let spki = webpki::EndEntityCert::try_from(cert)?.subject_public_key_info();
    shared
        .store
        .appliance_by_fingerprint(&key_fingerprint(spki.as_ref()))
}

/// The largest record plaintext the provider sends: the appliance's `uplink_tls::MAX_FRAGMENT`
/// (the provider does not depend on that crate; the two must agree).
const MAX_FRAGMENT: usize = 4096;

/// ring with only the TLS 1.3 suites: all we speak.
fn crypto_provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|suite| suite.version() == &rustls::version::TLS13);
    Arc::new(provider)
}

/// The tunnel's configuration (client certificate from our CA required) and enrollment's
/// (none asked for), both TLS 1.3 only, without resumption.
fn configs(
    ca: &Ca,
    identity: ServerIdentity,
) -> Result<(Arc<ServerConfig>, Arc<ServerConfig>), rustls::Error> {
    let provider = crypto_provider();
    let mut roots = RootCertStore::empty();
    roots.add(ca.certificate().clone())?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let build = |alpn: &[u8], with_verifier: bool| {
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let builder = if with_verifier {
            builder.with_client_cert_verifier(verifier.clone())
        } else {
            builder.with_no_client_auth()
        };
        let mut config =
            builder.with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
        config.alpn_protocols = vec![alpn.to_vec()];
        config.send_tls13_tickets = 0;
        // Records of at most 4 KiB plaintext (rustls negotiates no record size, neither
        // RFC 6066 nor RFC 8449, so both ends set it): the board's TLS holds two received
        // records on a small heap sized for this (uplink_tls::MAX_FRAGMENT, which the
        // appliance's client sets too).
        config.max_fragment_size = Some(MAX_FRAGMENT);
        Ok::<_, rustls::Error>(Arc::new(config))
    };
    Ok((build(ALPN_TUNNEL, true)?, build(ALPN_ENROLL, false)?))
}
