//! The provider's TLS front: its CA, one TLS 1.3 listener carrying two services, and
//! enrollment by token.
//!
//! # One port, two services
//!
//! Appliances dial one `host:port` (the address in the enrollment token). The service is
//! chosen by ALPN before the handshake (rustls' lazy acceptor reads the ClientHello first),
//! and each service has its own TLS configuration:
//! - [`ALPN_TUNNEL`] (`rack-tunnel/1`): a client certificate issued by our CA is required in
//!   the handshake (anonymous clients and other CAs fail it). After the handshake the key of
//!   the certificate is looked up in the store ([`EnrollmentStore::appliance_by_fingerprint`]):
//!   an unknown or revoked appliance is closed on; a known one is handed to the
//!   [`TunnelHandler`] with its id.
//! - [`ALPN_ENROLL`] (`rack-enroll/1`): no client certificate; one exchange (the protocol is
//!   in [`uplink::enroll`], the provider side in [`enroll`]) trades a token for a client
//!   certificate, then the connection closes.
//!
//! A ClientHello with neither protocol is dropped. Both configurations are TLS 1.3 only
//! (ring, TLS 1.3 suites), without session resumption, so every tunnel connection presents
//! and is checked for its certificate. Handshakes must finish within [`server::HANDSHAKE_TIMEOUT`]
//! and an enrollment within [`server::ENROLL_TIMEOUT`].

pub mod ca;
pub mod enroll;
pub mod server;
pub mod token;

use std::error::Error;
use std::fmt;
use std::future::Future;

use tokio::net::TcpStream;
pub use tokio_rustls::server::TlsStream;
pub use uplink::enroll::{ALPN_ENROLL, ALPN_TUNNEL, EnrollRefusal};

pub use server::{TlsServer, run};

/// Any error from the store or the tunnel, for the log.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// What the TLS front needs from the provider's store. Keys are known by the SHA-256 of
/// their SubjectPublicKeyInfo ([`ca::key_fingerprint`]).
pub trait EnrollmentStore: Send + Sync + 'static {
    /// The store's appliance id; its `Display` goes into the client certificate and the
    /// enrollment response (at most [`uplink::ID_MAX`] bytes, printable ASCII).
    type Id: Clone + fmt::Display + Send + Sync + 'static;

    /// Marks the token with this secret used, once: unknown, used and expired tokens are
    /// refused with their reason; a store failure is [`EnrollRefusal::Internal`].
    fn redeem_token(&self, secret: &[u8], now: u64) -> Result<(), EnrollRefusal>;

    /// Records a newly enrolled appliance and returns its id.
    fn register_appliance(
        &self,
        key_fingerprint: [u8; 32],
        name: &str,
    ) -> Result<Self::Id, BoxError>;

    /// The id of the appliance with this key, or `None` if unknown or revoked.
    fn appliance_by_fingerprint(
        &self,
        key_fingerprint: &[u8; 32],
    ) -> Result<Option<Self::Id>, BoxError>;
}

/// Runs an authenticated appliance's tunnel (the provider core's `serve_connection`).
pub trait TunnelHandler<Id>: Send + Sync + 'static {
    fn serve(
        &self,
        stream: TlsStream<TcpStream>,
        appliance: Id,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}
