//! The appliance's P-256 key: generated on the device from the caller's entropy, stored as
//! its 32-byte scalar, its public half sent as SPKI DER in the enrollment request, and used
//! both for the enrollment proof of possession and the TLS CertificateVerify.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{DerSignature, SigningKey as EcdsaKey};
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::sign::{Signer, SigningKey};
use rustls::{Error, SignatureAlgorithm, SignatureScheme};

/// Randomness from the platform: a board's TRNG, the OS on a host. `&self` and `Sync`
/// because rustls shares one source between connections; a board serialises access to its
/// peripheral inside `fill`.
pub trait Entropy: Send + Sync {
    /// Fills `buf` entirely with cryptographically secure random bytes.
    fn fill(&self, buf: &mut [u8]) -> Result<(), EntropyError>;
}

/// The entropy source could not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntropyError;

/// A P-256 key pair. `Debug` shows only the public key.
#[derive(Clone)]
pub struct KeyPair {
    secret: p256::SecretKey,
}

impl KeyPair {
    /// A fresh key from `entropy`; draws again in the ~2^-32 case that 32 bytes are not a
    /// valid scalar (zero or above the group order), so the key is uniform.
    pub fn generate(entropy: &dyn Entropy) -> Result<Self, EntropyError> {
        let mut bytes = [0u8; 32];
        loop {
            entropy.fill(&mut bytes)?;
            if let Some(key) = Self::from_bytes(&bytes) {
                bytes.fill(0);
                return Ok(key);
            }
        }
    }

    /// The key stored by [`Self::to_bytes`]; `None` if the bytes are not a valid scalar.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        p256::SecretKey::from_slice(bytes)
            .ok()
            .map(|secret| Self { secret })
    }

    /// The private scalar, big-endian, for the device's key storage.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes().into()
    }

    /// A key from PKCS#8 DER (as rcgen and `openssl genpkey` write it).
    pub fn from_pkcs8_der(der: &[u8]) -> Option<Self> {
        p256::SecretKey::from_pkcs8_der(der)
            .ok()
            .map(|secret| Self { secret })
    }

    /// A key from SEC1 `ECPrivateKey` DER.
    pub fn from_sec1_der(der: &[u8]) -> Option<Self> {
        p256::SecretKey::from_sec1_der(der)
            .ok()
            .map(|secret| Self { secret })
    }

    /// The public key as SubjectPublicKeyInfo DER: what the certificate request carries.
    pub fn spki_der(&self) -> Vec<u8> {
        // Encoding a valid P-256 point into SPKI cannot fail; an empty result would be
        // refused by the provider rather than panic here.
        self.public_key()
            .to_public_key_der()
            .map(|doc| doc.into_vec())
            .unwrap_or_default()
    }

    /// ECDSA P-256 SHA-256 over `message`, DER-encoded (RFC 6979 nonces, so signing needs
    /// no randomness): TLS CertificateVerify.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: DerSignature = EcdsaKey::from(&self.secret).sign(message);
        signature.as_bytes().to_vec()
    }

    /// The public key as an uncompressed SEC1 point (`04 || x || y`), as the enrollment
    /// request carries it.
    pub fn public_point(&self) -> [u8; 65] {
        let mut point = [0u8; 65];
        let encoded = self.public_key().to_sec1_bytes();
        if let Some(dst) = point.get_mut(..encoded.len()) {
            dst.copy_from_slice(&encoded);
        }
        point
    }

    /// ECDSA P-256 SHA-256 over `message` in the fixed `r || s` form: the enrollment proof
    /// of possession (the provider verifies the fixed encoding).
    pub fn sign_fixed(&self, message: &[u8]) -> [u8; 64] {
        let signature: p256::ecdsa::Signature = EcdsaKey::from(&self.secret).sign(message);
        signature.to_bytes().into()
    }

    pub(crate) fn public_key(&self) -> p256::PublicKey {
        self.secret.public_key()
    }

    pub(crate) fn secret(&self) -> &p256::SecretKey {
        &self.secret
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public_key().to_sec1_bytes())
            .finish()
    }
}

/// The client certificate's key in the handshake: signs CertificateVerify.
impl SigningKey for KeyPair {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(self.clone()) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.spki_der()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

impl Signer for KeyPair {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(KeyPair::sign(self, message))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}
