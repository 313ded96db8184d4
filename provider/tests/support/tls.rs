//! An appliance's TLS side for the tests: enrollment against a CA pinned by fingerprint (as
//! the token gives it) and the tunnel's client configuration with the issued certificate.

use std::net::SocketAddr;
use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring::default_provider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use uplink::enroll::{
    ALPN_ENROLL, Challenge, ENROLL_FRAME_MAX, EnrollRefusal, EnrollRequest, EnrollResponse,
    frame_len, proof_message, read_body, write_frame,
};

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(default_provider())
}

/// The appliance's trust before enrollment: a chain whose last certificate hashes to the
/// token's CA fingerprint, and a server certificate that CA signed.
#[derive(Debug)]
struct PinnedCa([u8; 32]);

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .last()
            .filter(|ca| ring::digest::digest(&ring::digest::SHA256, ca).as_ref() == self.0)
            .ok_or(rustls::Error::General("CA fingerprint mismatch".into()))?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        WebPkiServerVerifier::builder_with_provider(roots.into(), provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?
            .verify_server_cert(end_entity, &[], name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 not expected".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An appliance's new key (PKCS#8, for its client certificate later).
pub fn new_key() -> (EcdsaKeyPair, Vec<u8>) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    (key, pkcs8.as_ref().to_vec())
}

/// Dials `addr` by its IP address, the name the provider's certificate carries for it.
pub async fn connect(
    addr: SocketAddr,
    config: ClientConfig,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

async fn read_frame(stream: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut header = [0u8; 2];
    stream.read_exact(&mut header).await.unwrap();
    let mut body = vec![0u8; frame_len(header).unwrap()];
    stream.read_exact(&mut body).await.unwrap();
    body
}

/// What enrollment gave the appliance.
pub struct Enrolled {
    pub id: String,
    pub chain: Vec<CertificateDer<'static>>,
    pub ca: CertificateDer<'static>,
    pub key: Vec<u8>,
}

/// Enrolls like an appliance with a token's address, CA fingerprint and secret; `forge`
/// signs another nonce than the one sent.
pub async fn enroll(
    addr: SocketAddr,
    ca_sha256: [u8; 32],
    secret: &[u8],
    forge: bool,
) -> Result<Enrolled, EnrollRefusal> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCa(ca_sha256)))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_ENROLL.to_vec()];
    let mut tls = connect(addr, config).await.unwrap();
    let challenge: Challenge = read_body(&read_frame(&mut tls).await).unwrap();
    let (key, pkcs8) = new_key();
    let mut nonce = challenge.nonce;
    nonce[0] ^= u8::from(forge);
    let proof = key
        .sign(&SystemRandom::new(), &proof_message(&nonce))
        .unwrap();
    let request = EnrollRequest {
        secret: secret.try_into().unwrap(),
        public_key: key.public_key().as_ref().try_into().unwrap(),
        name: "rack 1".try_into().unwrap(),
        proof: proof.as_ref().try_into().unwrap(),
    };
    let mut frame = [0u8; 2 + ENROLL_FRAME_MAX];
    let n = write_frame(&request, &mut frame).unwrap();
    tls.write_all(&frame[..n]).await.unwrap();
    let body = read_frame(&mut tls).await;
    match read_body::<EnrollResponse>(&body).unwrap() {
        EnrollResponse::Enrolled {
            appliance_id,
            certificate,
            ca_certificate,
        } => Ok(Enrolled {
            id: appliance_id.to_string(),
            chain: vec![CertificateDer::from(certificate.to_vec())],
            ca: CertificateDer::from(ca_certificate.to_vec()),
            key: pkcs8,
        }),
        EnrollResponse::Refused(refusal) => Err(refusal),
    }
}

/// A TLS 1.3 client trusting `ca`, with an optional client identity (chain, PKCS#8 key)
/// and ALPN (none if empty).
pub fn client_config(
    ca: &CertificateDer<'static>,
    client: Option<(Vec<CertificateDer<'static>>, Vec<u8>)>,
    alpn: &[u8],
) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    if !alpn.is_empty() {
        config.alpn_protocols = vec![alpn.to_vec()];
    }
    config
}
