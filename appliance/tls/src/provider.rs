//! The crypto provider: exactly what our TLS 1.3 tunnel uses and nothing else.
//!
//! One cipher suite (TLS13_AES_128_GCM_SHA256), one key exchange group (secp256r1, so a
//! single curve implementation serves the key exchange, both signatures and the key
//! generation), ECDSA P-256 with SHA-256 for the server's chain and our CertificateVerify.
//! All of it on RustCrypto crates, which build for a bare-metal target.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use aes_gcm::{AeadInOut, Aes128Gcm, KeyInit};
use hmac::Mac;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, VerifyingKey};
use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, MessageDecrypter, MessageEncrypter,
    Nonce, OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload, Tls13AeadAlgorithm,
    UnsupportedOperationError, make_tls13_aad,
};
use rustls::crypto::tls13::HkdfUsingHmac;
use rustls::crypto::{
    ActiveKeyExchange, CipherSuiteCommon, CryptoProvider, GetRandomFailed, KeyProvider,
    SecureRandom, SharedSecret, SupportedKxGroup, WebPkiSupportedAlgorithms, hash, hmac as rhmac,
};
use rustls::pki_types::{
    AlgorithmIdentifier, InvalidSignature, PrivateKeyDer, SignatureVerificationAlgorithm, alg_id,
};
use rustls::sign::SigningKey;
use rustls::{
    CipherSuite, ContentType, Error, NamedGroup, PeerMisbehaved, ProtocolVersion, SignatureScheme,
    SupportedCipherSuite, Tls13CipherSuite,
};
use sha2::{Digest, Sha256};

use crate::keys::{Entropy, EntropyError, KeyPair};

/// The caller's entropy in the shape rustls needs: rustls keeps its RNG and key exchange
/// groups as `&'static` references, so the caller puts one `Random` in a `static` (or a
/// `StaticCell` on a board) and it serves as both; no allocation is leaked per connection.
pub struct Random<E>(pub E);

/// What [`crate::ClientConfig`] holds: a `'static` [`Random`] of any entropy source.
pub trait RandomSource: SecureRandom + SupportedKxGroup + Entropy {}

impl<E: Entropy> RandomSource for Random<E> {}

impl<E> fmt::Debug for Random<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Random")
    }
}

impl<E: Entropy> Entropy for Random<E> {
    fn fill(&self, buf: &mut [u8]) -> Result<(), EntropyError> {
        self.0.fill(buf)
    }
}

impl<E: Entropy> SecureRandom for Random<E> {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        self.0.fill(buf).map_err(|_| GetRandomFailed)
    }
}

/// secp256r1 ephemeral key exchange, drawing its secret from the caller's entropy.
impl<E: Entropy> SupportedKxGroup for Random<E> {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let key = KeyPair::generate(&self.0).map_err(|_| Error::FailedToGetRandomBytes)?;
        let public = key.public_key().to_sec1_bytes().into_vec();
        Ok(Box::new(P256Exchange { key, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

struct P256Exchange {
    key: KeyPair,
    public: Vec<u8>,
}

impl ActiveKeyExchange for P256Exchange {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        // TLS 1.3 allows only the uncompressed form (RFC 8446, 4.2.8.2).
        if peer.len() != 65 || peer[0] != 4 {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        let peer = p256::PublicKey::from_sec1_bytes(peer)
            .map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
        let shared = self.key.secret().diffie_hellman(&peer);
        Ok(SharedSecret::from(shared.raw_secret_bytes().as_slice()))
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

/// The provider for one connection's config; `random` also runs the key exchange.
pub(crate) fn provider(random: &'static dyn RandomSource) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: vec![SupportedCipherSuite::Tls13(&TLS13_AES_128_GCM_SHA256)],
        kx_groups: vec![random as &'static dyn SupportedKxGroup],
        signature_verification_algorithms: ALGORITHMS,
        secure_random: random,
        key_provider: &P256Keys,
    })
}

static TLS13_AES_128_GCM_SHA256: Tls13CipherSuite = Tls13CipherSuite {
    common: CipherSuiteCommon {
        suite: CipherSuite::TLS13_AES_128_GCM_SHA256,
        hash_provider: &Sha256Hash,
        // RFC 8446 5.5 / the AEAD limits draft: 2^24.5 full records for AES-GCM.
        confidentiality_limit: 1 << 23,
    },
    hkdf_provider: &HkdfUsingHmac(&HmacSha256),
    aead_alg: &Aes128GcmAead,
    quic: None,
};

/// Verification of the server's certificate chain and CertificateVerify: P-256 only.
const ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[&EcdsaP256Sha256],
    mapping: &[(SignatureScheme::ECDSA_NISTP256_SHA256, &[&EcdsaP256Sha256])],
};

struct Sha256Hash;

impl hash::Hash for Sha256Hash {
    fn start(&self) -> Box<dyn hash::Context> {
        Box::new(Sha256Context(Sha256::new()))
    }

    fn hash(&self, data: &[u8]) -> hash::Output {
        hash::Output::new(&Sha256::digest(data))
    }

    fn output_len(&self) -> usize {
        32
    }

    fn algorithm(&self) -> hash::HashAlgorithm {
        hash::HashAlgorithm::SHA256
    }
}

struct Sha256Context(Sha256);

impl hash::Context for Sha256Context {
    fn fork_finish(&self) -> hash::Output {
        hash::Output::new(&self.0.clone().finalize())
    }

    fn fork(&self) -> Box<dyn hash::Context> {
        Box::new(Sha256Context(self.0.clone()))
    }

    fn finish(self: Box<Self>) -> hash::Output {
        hash::Output::new(&self.0.finalize())
    }

    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
}

struct HmacSha256;

impl rhmac::Hmac for HmacSha256 {
    fn with_key(&self, key: &[u8]) -> Box<dyn rhmac::Key> {
        // HMAC takes keys of any length (long ones are hashed), so this cannot fail.
        Box::new(HmacKey(
            hmac::Hmac::<Sha256>::new_from_slice(key)
                .unwrap_or_else(|_| hmac::Hmac::<Sha256>::new(&Default::default())),
        ))
    }

    fn hash_output_len(&self) -> usize {
        32
    }
}

struct HmacKey(hmac::Hmac<Sha256>);

impl rhmac::Key for HmacKey {
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> rhmac::Tag {
        let mut mac = self.0.clone();
        mac.update(first);
        for part in middle {
            mac.update(part);
        }
        mac.update(last);
        rhmac::Tag::new(&mac.finalize().into_bytes())
    }

    fn tag_len(&self) -> usize {
        32
    }
}

const TAG_LEN: usize = 16;

struct Aes128GcmAead;

impl Tls13AeadAlgorithm for Aes128GcmAead {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(GcmRecords::new(&key, iv))
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(GcmRecords::new(&key, iv))
    }

    fn key_len(&self) -> usize {
        16
    }

    fn extract_keys(
        &self,
        _key: AeadKey,
        _iv: Iv,
    ) -> Result<rustls::ConnectionTrafficSecrets, UnsupportedOperationError> {
        // Only for kTLS offload, which a board does not have.
        Err(UnsupportedOperationError)
    }
}

/// One direction's record protection; `None` if rustls ever handed a key of the wrong
/// length, which then fails every record instead of panicking.
struct GcmRecords {
    cipher: Option<Aes128Gcm>,
    iv: Iv,
}

impl GcmRecords {
    fn new(key: &AeadKey, iv: Iv) -> Self {
        Self {
            cipher: Aes128Gcm::new_from_slice(key.as_ref()).ok(),
            iv,
        }
    }

    fn nonce(&self, seq: u64) -> aes_gcm::aead::Nonce<Aes128Gcm> {
        aes_gcm::aead::Nonce::<Aes128Gcm>::from(Nonce::new(&self.iv, seq).0)
    }
}

impl MessageEncrypter for GcmRecords {
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, Error> {
        let cipher = self.cipher.as_ref().ok_or(Error::EncryptError)?;
        let total = self.encrypted_payload_len(msg.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total);
        payload.extend_from_chunks(&msg.payload);
        payload.extend_from_slice(&msg.typ.to_array());
        let tag = cipher
            .encrypt_inout_detached(
                &self.nonce(seq),
                &make_tls13_aad(total),
                payload.as_mut().into(),
            )
            .map_err(|_| Error::EncryptError)?;
        payload.extend_from_slice(&tag);
        Ok(OutboundOpaqueMessage::new(
            ContentType::ApplicationData,
            // RFC 8446 5.1: the legacy record version of every protected record.
            ProtocolVersion::TLSv1_2,
            payload,
        ))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + TAG_LEN
    }
}

impl MessageDecrypter for GcmRecords {
    fn decrypt<'a>(
        &mut self,
        mut msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, Error> {
        let cipher = self.cipher.as_ref().ok_or(Error::DecryptError)?;
        let len = msg.payload.len();
        let plain_len = len.checked_sub(TAG_LEN).ok_or(Error::DecryptError)?;
        let aad = make_tls13_aad(len);
        let nonce = self.nonce(seq);
        let (body, tag) = msg.payload.split_at_mut(plain_len);
        let tag = aes_gcm::Tag::try_from(&*tag).map_err(|_| Error::DecryptError)?;
        cipher
            .decrypt_inout_detached(&nonce, &aad, body.into(), &tag)
            .map_err(|_| Error::DecryptError)?;
        msg.payload.truncate(plain_len);
        msg.into_tls13_unpadded_message()
    }
}

/// ECDSA P-256 with SHA-256, for webpki (chain) and rustls (CertificateVerify).
#[derive(Debug)]
struct EcdsaP256Sha256;

impl SignatureVerificationAlgorithm for EcdsaP256Sha256 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key = VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let signature = DerSignature::from_bytes(signature).map_err(|_| InvalidSignature)?;
        key.verify(message, &signature)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P256
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA256
    }
}

/// Loads P-256 keys given as PKCS#8 or SEC1 DER (what rcgen and OpenSSL write).
#[derive(Debug)]
struct P256Keys;

impl KeyProvider for P256Keys {
    fn load_private_key(
        &self,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, Error> {
        let key = match &key_der {
            PrivateKeyDer::Pkcs8(der) => KeyPair::from_pkcs8_der(der.secret_pkcs8_der()),
            PrivateKeyDer::Sec1(der) => KeyPair::from_sec1_der(der.secret_sec1_der()),
            _ => None,
        };
        key.map(|key| Arc::new(key) as Arc<dyn SigningKey>)
            .ok_or_else(|| Error::General("client key is not a P-256 key".into()))
    }
}
