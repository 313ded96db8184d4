//! The appliance's side of the uplink tunnel: TLS 1.3 with mutual authentication to the
//! provider service, sans IO, for a bare-metal board and the host alike.
//!
//! - [`TlsClient`] wraps rustls' unbuffered client connection (no `std::io`): ciphertext in
//!   through [`TlsClient::feed`], out through [`TlsClient::poll_transmit`]; application data
//!   (the `uplink` crate's postcard frames) through [`TlsClient::write`] and
//!   [`TlsClient::read`].
//! - Trust is the provider CA given as DER and nothing else, and that CA must hash to the
//!   SHA-256 pin the enrollment token carries. While enrolling the appliance has only the
//!   pin: then the CA the server presents at the end of its chain is the anchor if it hashes
//!   to the pin, and [`TlsClient::server_ca`] hands it out to be stored. Only TLS 1.3 is
//!   offered (and this crate does not enable rustls' `tls12` feature). ALPN picks the
//!   provider's service (tunnel or enrollment).
//! - The crypto provider (module `provider`, fed by [`Random`]) holds only what the tunnel uses:
//!   TLS13_AES_128_GCM_SHA256, secp256r1, ECDSA P-256 SHA-256, on RustCrypto crates.
//! - [`KeyPair`]: the device key, generated from the caller's [`Entropy`], its SPKI DER for
//!   the certificate request, and signatures for the enrollment proof of possession.
//!
//! Time and randomness come from the caller: rustls' `TimeProvider` (a board's RTC) and an
//! [`Entropy`] source in a `static` [`Random`] (a board's TRNG).
//!
//! This is the one appliance crate with an allocator: rustls allocates its handshake state,
//! record buffers and certificates on the heap, so the firmware gives it a heap; the rest of
//! the appliance stays allocation-free.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod client;
mod keys;
mod pinned;
mod provider;

pub use client::{ClientConfig, Identity, MAX_FRAGMENT, TlsClient};
pub use keys::{Entropy, EntropyError, KeyPair};
pub use provider::{Random, RandomSource};
pub use rustls::AlertDescription;
pub use rustls::pki_types::UnixTime;
pub use rustls::time_provider::TimeProvider;

/// Why the tunnel cannot go on. Every error is final for its connection: dial again.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The CA certificate does not hash to the pin from the enrollment token.
    CaPinMismatch,
    /// The CA certificate could not be parsed as a trust anchor.
    BadCaCertificate,
    /// The server name is neither a DNS name nor an IP address.
    BadServerName,
    /// The server's certificate does not chain to our CA, has expired, or names another
    /// host.
    UntrustedServer,
    /// The server offers no TLS 1.3 with our suite, group or signature scheme.
    Incompatible,
    /// The server ended the handshake or connection with this alert (e.g.
    /// `CertificateRequired` when we have no certificate, `BadCertificate` when it does not
    /// accept ours).
    PeerAlert(AlertDescription),
    /// The entropy source failed.
    Entropy,
    /// `write` after `close`.
    Closed,
    /// rustls could not encode a record it had prepared (a bug, not the peer's doing).
    Internal,
    /// Any other TLS failure: malformed or unexpected messages, bad record MACs.
    Tls(rustls::Error),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::CaPinMismatch => {
                f.write_str("provider CA does not match the pinned fingerprint")
            }
            Error::BadCaCertificate => f.write_str("provider CA certificate is not usable"),
            Error::BadServerName => f.write_str("server name is not a DNS name or IP address"),
            Error::UntrustedServer => f.write_str("server certificate is not trusted"),
            Error::Incompatible => f.write_str("server does not speak TLS 1.3 with our algorithms"),
            Error::PeerAlert(alert) => write!(f, "server sent alert {alert:?}"),
            Error::Entropy => f.write_str("no random bytes"),
            Error::Closed => f.write_str("connection closed"),
            Error::Internal => f.write_str("internal TLS error"),
            Error::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}
