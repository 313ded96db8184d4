//! Trust before enrollment: the appliance knows only the SHA-256 of the provider CA (from
//! the token), not the CA itself. The provider sends its CA as the last certificate of its
//! chain; that certificate is the trust anchor if, and only if, it hashes to the pin, and the
//! server's certificate must then chain to it as usual (webpki: signature, validity, name).

use alloc::sync::Arc;
use alloc::vec::Vec;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

#[derive(Debug)]
pub(crate) struct PinnedPresentedCa {
    pub pin: [u8; 32],
    pub provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedPresentedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let (ca, between) = intermediates
            .split_last()
            .filter(|(ca, _)| Sha256::digest(ca.as_ref()).as_slice() == self.pin)
            .ok_or(Error::InvalidCertificate(CertificateError::UnknownIssuer))?;
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&self.provider))
            .build()
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?
            .verify_server_cert(end_entity, between, name, ocsp, now)
    }

    /// Never called: only TLS 1.3 is offered.
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
