//! RMCP+ cipher suites 3 and 17 (IPMI v2.0 §13.28): the RAKP HMAC, the integrity AuthCode and
//! AES-CBC-128 with the spec's confidentiality pad (§13.29), on RustCrypto.

use aes::Aes128;
use aes::cipher::{Block, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// The hash under both the RAKP authentication and the integrity algorithm of a suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
}

/// A cipher suite this BMC can offer: its number and the algorithm numbers of §13.28.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suite {
    pub id: u8,
    pub hash: Hash,
    /// Authentication algorithm (RAKP-HMAC-SHA1 = 1, RAKP-HMAC-SHA256 = 3).
    pub auth: u8,
    /// Integrity algorithm (HMAC-SHA1-96 = 1, HMAC-SHA256-128 = 4).
    pub integrity: u8,
    /// Confidentiality algorithm (AES-CBC-128 = 1).
    pub confidentiality: u8,
}

impl Suite {
    /// Suite 3 or 17, the two that use AES-CBC-128; `None` for any other number.
    pub fn by_id(id: u8) -> Option<Suite> {
        let (hash, auth, integrity) = match id {
            3 => (Hash::Sha1, 1, 1),
            17 => (Hash::Sha256, 3, 4),
            _ => return None,
        };
        Some(Suite {
            id,
            hash,
            auth,
            integrity,
            confidentiality: 1,
        })
    }

    /// Length of the RAKP 2/3 key exchange auth code: the full HMAC.
    pub fn rakp_len(&self) -> usize {
        match self.hash {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
        }
    }

    /// Length of the RAKP 4 check value and of the session AuthCode: HMAC-SHA1-96 or
    /// HMAC-SHA256-128.
    pub fn icv_len(&self) -> usize {
        match self.hash {
            Hash::Sha1 => 12,
            Hash::Sha256 => 16,
        }
    }
}

/// HMAC over the concatenation of `parts`.
pub fn hmac(hash: Hash, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        // HMAC takes a key of any length, so this cannot fail.
        let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
    match hash {
        Hash::Sha1 => run::<Hmac<Sha1>>(key, parts),
        Hash::Sha256 => run::<Hmac<Sha256>>(key, parts),
    }
}

/// Whether `tag` is the leftmost bytes of the HMAC over `parts` (constant time).
pub fn hmac_matches(hash: Hash, key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
        let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
            return false;
        };
        for part in parts {
            mac.update(part);
        }
        !tag.is_empty() && mac.verify_truncated_left(tag).is_ok()
    }
    match hash {
        Hash::Sha1 => run::<Hmac<Sha1>>(key, parts, tag),
        Hash::Sha256 => run::<Hmac<Sha256>>(key, parts, tag),
    }
}

/// Fills `buf` from the OS random source (session IDs, RAKP random numbers, IVs).
pub fn random(buf: &mut [u8]) {
    // Without a random source the BMC cannot work at all: stop loudly.
    getrandom::fill(buf).expect("OS random source");
}

/// Encrypts an IPMI payload for the wire (§13.29): a random IV, then AES-CBC-128 over the
/// payload, pad bytes 1, 2, 3, … and the pad length, to a multiple of 16 bytes.
pub fn encrypt(key: &[u8; 16], plain: &[u8]) -> Vec<u8> {
    let pad = (16 - (plain.len() + 1) % 16) % 16;
    let mut iv = [0u8; 16];
    random(&mut iv);
    let mut out = iv.to_vec();
    out.extend_from_slice(plain);
    out.extend((1..=pad).map(|i| i as u8));
    out.push(pad as u8);
    let mut enc = cbc::Encryptor::<Aes128>::new(key.into(), &iv.into());
    for chunk in out[16..].chunks_exact_mut(16) {
        enc.encrypt_block(<&mut Block<Aes128>>::try_from(chunk).expect("16-byte chunk"));
    }
    out
}

/// Decrypts a confidentiality payload (IV + ciphertext); `None` if its length or its pad is not
/// the spec's.
pub fn decrypt(key: &[u8; 16], payload: &[u8]) -> Option<Vec<u8>> {
    if payload.len() < 32 || !payload.len().is_multiple_of(16) {
        return None;
    }
    let (iv, cipher) = payload.split_at(16);
    let iv: [u8; 16] = iv.try_into().ok()?;
    let mut plain = cipher.to_vec();
    let mut dec = cbc::Decryptor::<Aes128>::new(key.into(), &iv.into());
    for chunk in plain.chunks_exact_mut(16) {
        let block = <&mut Block<Aes128>>::try_from(chunk).ok()?;
        dec.decrypt_block(block);
    }
    let pad = usize::from(*plain.last()?);
    let body = plain.len().checked_sub(pad + 1)?;
    let pad_ok = plain[body..body + pad]
        .iter()
        .zip(1u8..)
        .all(|(b, i)| *b == i);
    if pad >= 16 || !pad_ok {
        return None;
    }
    plain.truncate(body);
    Some(plain)
}
