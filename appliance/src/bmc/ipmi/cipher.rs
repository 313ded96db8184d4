//! Cipher suites (IPMI v2.0 §22.15.2) and their algorithms: HMAC-SHA1/SHA256 for RAKP and
//! integrity, AES-CBC-128 with the spec's padding for confidentiality (§13.29).
//!
//! Only the SHA families are implemented. MD5 and RC4 suites are never proposed: they are
//! broken, and a BMC that offers only them gets `Error::NoCommonCipher`.

use aes::Aes128;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit};
use sha1::Sha1;
use sha2::Sha256;

use crate::bmc::Error;

/// The hash under an HMAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    /// Full HMAC output length.
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
        }
    }
}

/// One cipher suite: the RAKP authentication HMAC, the per-packet integrity HMAC and
/// whether payloads are AES-CBC-128 encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suite {
    pub id: u8,
    pub auth: Option<Hash>,
    pub integrity: Option<Hash>,
    pub aes: bool,
}

/// Suites the client can speak, best first. The first two are the only ones proposed
/// unless `Config::allow_weak` is set.
pub const PREFERENCE: [u8; 7] = [17, 3, 16, 2, 15, 1, 0];

impl Suite {
    pub fn from_id(id: u8) -> Option<Suite> {
        let (auth, integrity, aes) = match id {
            0 => (None, None, false),
            1 => (Some(Hash::Sha1), None, false),
            2 => (Some(Hash::Sha1), Some(Hash::Sha1), false),
            3 => (Some(Hash::Sha1), Some(Hash::Sha1), true),
            15 => (Some(Hash::Sha256), None, false),
            16 => (Some(Hash::Sha256), Some(Hash::Sha256), false),
            17 => (Some(Hash::Sha256), Some(Hash::Sha256), true),
            _ => return None,
        };
        Some(Suite {
            id,
            auth,
            integrity,
            aes,
        })
    }

    /// Authenticated, integrity-protected and encrypted: safe on a shared network.
    pub fn is_strong(&self) -> bool {
        self.auth.is_some() && self.integrity.is_some() && self.aes
    }

    /// Algorithm numbers for the Open Session request (§13.28): auth, integrity, conf.
    pub fn algorithms(&self) -> [u8; 3] {
        let auth = match self.auth {
            None => 0,
            Some(Hash::Sha1) => 1,
            Some(Hash::Sha256) => 3,
        };
        let integrity = match self.integrity {
            None => 0,
            Some(Hash::Sha1) => 1,
            Some(Hash::Sha256) => 4,
        };
        [auth, integrity, u8::from(self.aes)]
    }

    /// Length of the AuthCode on integrity-protected packets (HMAC-SHA1-96, HMAC-SHA256-128).
    pub fn auth_code_len(&self) -> usize {
        match self.integrity {
            None => 0,
            Some(Hash::Sha1) => 12,
            Some(Hash::Sha256) => 16,
        }
    }

    /// Length of RAKP4's integrity check value (same truncation, keyed by the SIK).
    pub fn rakp4_icv_len(&self) -> usize {
        match self.auth {
            None => 0,
            Some(Hash::Sha1) => 12,
            Some(Hash::Sha256) => 16,
        }
    }
}

/// An HMAC output (up to SHA-256's 32 bytes); empty for "no authentication".
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Mac {
    bytes: [u8; 32],
    len: usize,
}

impl Mac {
    pub const EMPTY: Mac = Mac {
        bytes: [0; 32],
        len: 0,
    };

    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    /// The first `n` bytes (a truncated HMAC), or all if shorter.
    pub fn truncated(&self, n: usize) -> &[u8] {
        let s = self.as_slice();
        s.get(..n).unwrap_or(s)
    }

    /// Constant-time comparison with a received code, which must have exactly `n` bytes.
    pub fn matches(&self, received: &[u8], n: usize) -> bool {
        let ours = self.truncated(n);
        ours.len() == received.len()
            && ours
                .iter()
                .zip(received)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

// Key material: never printed.
impl core::fmt::Debug for Mac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Mac({} bytes)", self.len)
    }
}

/// HMAC over the concatenation of `parts`; `None` gives the empty MAC (suite without that
/// algorithm).
pub fn hmac(hash: Option<Hash>, key: &[u8], parts: &[&[u8]]) -> Result<Mac, Error> {
    fn run<M: hmac::Mac + KeyInit>(
        key: &[u8],
        parts: &[&[u8]],
        out: &mut Mac,
    ) -> Result<(), Error> {
        let mut mac = <M as KeyInit>::new_from_slice(key).map_err(|_| Error::Auth)?;
        for p in parts {
            mac.update(p);
        }
        let tag = mac.finalize().into_bytes();
        out.len = tag.len();
        out.bytes
            .get_mut(..tag.len())
            .ok_or(Error::Malformed)?
            .copy_from_slice(&tag);
        Ok(())
    }
    let mut out = Mac::EMPTY;
    match hash {
        None => {}
        Some(Hash::Sha1) => run::<Hmac<Sha1>>(key, parts, &mut out)?,
        Some(Hash::Sha256) => run::<Hmac<Sha256>>(key, parts, &mut out)?,
    }
    Ok(out)
}

/// AES block and IV length.
pub const AES_BLOCK: usize = 16;

/// Encrypts `buf[..len]` in place as an AES-CBC-128 payload body: appends the confidentiality
/// pad (01h, 02h, ..., then the pad length) to a whole number of blocks. Returns the
/// ciphertext length. The caller writes the IV in front.
pub fn aes_encrypt(
    key: &[u8; 16],
    iv: &[u8; 16],
    buf: &mut [u8],
    len: usize,
) -> Result<usize, Error> {
    let pad = (AES_BLOCK - (len.checked_add(1).ok_or(Error::Busy)? % AES_BLOCK)) % AES_BLOCK;
    let total = len
        .checked_add(pad)
        .and_then(|n| n.checked_add(1))
        .ok_or(Error::Busy)?;
    let body = buf.get_mut(..total).ok_or(Error::Busy)?;
    let tail = body.get_mut(len..).ok_or(Error::Busy)?;
    for (i, b) in (1u8..).zip(tail.iter_mut()) {
        *b = i;
    }
    // `pad` < 16.
    *tail.last_mut().ok_or(Error::Busy)? = pad as u8;
    let mut enc = cbc::Encryptor::<Aes128>::new(key.into(), iv.into());
    for chunk in body.chunks_exact_mut(AES_BLOCK) {
        let block: &mut [u8; AES_BLOCK] = chunk.try_into().map_err(|_| Error::Busy)?;
        enc.encrypt_block(block.into());
    }
    Ok(total)
}

/// Decrypts an AES-CBC-128 payload (IV then ciphertext) into `out` and checks and removes
/// the confidentiality pad. Returns the plaintext.
pub fn aes_decrypt<'o>(
    key: &[u8; 16],
    payload: &[u8],
    out: &'o mut [u8],
) -> Result<&'o [u8], Error> {
    let (iv, ct) = payload
        .split_at_checked(AES_BLOCK)
        .ok_or(Error::Malformed)?;
    if ct.is_empty() || ct.len() % AES_BLOCK != 0 {
        return Err(Error::Malformed);
    }
    let iv: &[u8; AES_BLOCK] = iv.try_into().map_err(|_| Error::Malformed)?;
    let plain = out.get_mut(..ct.len()).ok_or(Error::Malformed)?;
    plain.copy_from_slice(ct);
    let mut dec = cbc::Decryptor::<Aes128>::new(key.into(), iv.into());
    for chunk in plain.chunks_exact_mut(AES_BLOCK) {
        let block: &mut [u8; AES_BLOCK] = chunk.try_into().map_err(|_| Error::Malformed)?;
        dec.decrypt_block(block.into());
    }
    let (&pad, rest) = plain.split_last().ok_or(Error::Malformed)?;
    let data_len = rest
        .len()
        .checked_sub(usize::from(pad))
        .ok_or(Error::Malformed)?;
    let (data, pad_bytes) = rest.split_at(data_len);
    if pad_bytes.iter().zip(1u8..).any(|(&b, i)| b != i) {
        return Err(Error::Malformed);
    }
    Ok(data)
}

#[cfg(test)]
mod tests;
