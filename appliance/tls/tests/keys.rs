//! The device key: generation, storage round trip, SPKI and signatures checked by ring.

mod common;

use common::OsEntropy;
use ring::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use uplink_tls::{Entropy, EntropyError, KeyPair};

#[test]
fn proof_of_possession_verifies_with_the_spki() {
    let key = KeyPair::generate(&OsEntropy).unwrap();
    let spki = key.spki_der();
    assert_eq!(
        spki.len(),
        91,
        "P-256 SPKI: 26-byte header + uncompressed point"
    );
    let signature = key.sign(b"enrollment nonce");
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &spki[26..]);
    public.verify(b"enrollment nonce", &signature).unwrap();
    assert!(public.verify(b"another nonce", &signature).is_err());
}

#[test]
fn fixed_signature_verifies_with_the_public_point() {
    let key = KeyPair::generate(&OsEntropy).unwrap();
    let point = key.public_point();
    assert_eq!(point[0], 4, "uncompressed");
    assert_eq!(&key.spki_der()[26..], point);
    let signature = key.sign_fixed(b"context and nonce");
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point);
    public.verify(b"context and nonce", &signature).unwrap();
    assert!(public.verify(b"context and other", &signature).is_err());
}

#[test]
fn stored_scalar_gives_back_the_same_key() {
    let key = KeyPair::generate(&OsEntropy).unwrap();
    let again = KeyPair::from_bytes(&key.to_bytes()).unwrap();
    assert_eq!(again.spki_der(), key.spki_der());
    assert!(KeyPair::from_bytes(&[0; 32]).is_none());
    assert!(
        KeyPair::from_bytes(&[0xff; 32]).is_none(),
        "above the group order"
    );
}

#[test]
fn pkcs8_keys_from_rcgen_load() {
    let rc = rcgen::KeyPair::generate().unwrap();
    let key = KeyPair::from_pkcs8_der(&rc.serialize_der()).unwrap();
    assert_eq!(&key.spki_der()[26..], rc.public_key_raw());
    assert!(KeyPair::from_pkcs8_der(b"junk").is_none());
}

#[test]
fn generation_fails_when_entropy_fails() {
    struct Broken;
    impl Entropy for Broken {
        fn fill(&self, _: &mut [u8]) -> Result<(), EntropyError> {
            Err(EntropyError)
        }
    }
    assert_eq!(KeyPair::generate(&Broken).unwrap_err(), EntropyError);
}
