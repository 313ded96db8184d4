//! Enrollment: the token an operator hands to an appliance, and the one exchange in which the
//! appliance trades it for its client certificate. Shared by the provider and the firmware,
//! so both read the same bytes; `no_std`, no allocator.
//!
//! # Token
//!
//! Text: `rack1:` then base64url without padding of a postcard [`EnrollmentToken`]: the
//! provider's address (`host:port` of its TLS listener), the SHA-256 of its CA certificate
//! (DER) and the single-use secret. The prefix is the format's version. The text fits a QR
//! code of version 10 or less (byte mode) even at [`ADDR_MAX`].
//!
//! # Exchange
//!
//! The appliance connects with TLS 1.3, ALPN [`ALPN_ENROLL`] and no client certificate. It
//! trusts the server's chain only if its last certificate hashes to the token's `ca_sha256`
//! (the provider sends its CA certificate in the chain). Then, in [`write_frame`] frames
//! (2-byte big-endian length, postcard body of at most [`ENROLL_FRAME_MAX`]):
//!
//! 1. provider -> [`Challenge`]: a fresh random nonce;
//! 2. appliance -> [`EnrollRequest`]: the secret, its new P-256 public key, a name, and an
//!    ECDSA P-256 / SHA-256 signature over [`proof_message`] (so the key's holder asked, in
//!    this session);
//! 3. provider -> [`EnrollResponse`]: its id and client certificate, or a refusal; then the
//!    provider closes.
//!
//! The signature covers a server nonce rather than a TLS exporter because rustls' unbuffered
//! API, which the appliance uses, does not offer exporters. Afterwards the appliance dials
//! with ALPN [`ALPN_TUNNEL`] and its certificate.

use core::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

use crate::message::ID_MAX;

/// ALPN of the mutually authenticated uplink tunnel.
pub const ALPN_TUNNEL: &[u8] = b"rack-tunnel/1";
/// ALPN of the enrollment exchange (no client certificate).
pub const ALPN_ENROLL: &[u8] = b"rack-enroll/1";

/// Token text prefix; a new token layout gets a new prefix.
pub const TOKEN_PREFIX: &str = "rack1:";
/// `host:port` of the provider (a DNS name is at most 253 bytes; we keep QR codes small).
pub const ADDR_MAX: usize = 128;
/// Token secret bytes.
pub const SECRET_MAX: usize = 64;
/// Longest token text: the prefix and base64 of the largest postcard token.
pub const TOKEN_TEXT_MAX: usize = 320;
/// Largest enrollment frame body: a response holds two certificates of ~500 bytes each.
pub const ENROLL_FRAME_MAX: usize = 2048;
/// Challenge nonce bytes.
pub const NONCE_LEN: usize = 32;
/// Uncompressed SEC1 P-256 point: `04 || x || y`.
pub const PUBLIC_KEY_LEN: usize = 65;
/// ECDSA P-256 signature, fixed `r || s`.
pub const SIGNATURE_LEN: usize = 64;
/// Domain separation for the proof of possession.
pub const PROOF_CONTEXT: &[u8] = b"rack1 enrollment proof of possession\0";

/// What the operator gives the appliance. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentToken {
    /// `host:port` of the provider's TLS listener.
    pub addr: String<ADDR_MAX>,
    /// SHA-256 of the provider CA certificate's DER: the appliance's only trust anchor.
    pub ca_sha256: [u8; 32],
    pub secret: Vec<u8, SECRET_MAX>,
}

/// Why a token text was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not `rack1:`: another format or version.
    Prefix,
    /// Not base64url, or not a token inside.
    Malformed,
    /// A field is over its limit (on encode) or the text is too long.
    TooLong,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenError::Prefix => "not an enrollment token (expected the prefix rack1:)",
            TokenError::Malformed => "enrollment token is damaged",
            TokenError::TooLong => "enrollment token is too long",
        })
    }
}

impl core::error::Error for TokenError {}

impl EnrollmentToken {
    /// The token as text (see the module doc).
    pub fn encode(&self) -> Result<String<TOKEN_TEXT_MAX>, TokenError> {
        let mut raw = [0u8; TOKEN_TEXT_MAX];
        let raw = postcard::to_slice(self, &mut raw).map_err(|_| TokenError::TooLong)?;
        let mut text = [0u8; TOKEN_TEXT_MAX];
        let n = URL_SAFE_NO_PAD
            .encode_slice(raw, &mut text)
            .map_err(|_| TokenError::TooLong)?;
        let body = core::str::from_utf8(&text[..n]).map_err(|_| TokenError::Malformed)?;
        let mut out = String::new();
        out.push_str(TOKEN_PREFIX)
            .and_then(|()| out.push_str(body))
            .map_err(|_| TokenError::TooLong)?;
        Ok(out)
    }

    /// Reads a token text; surrounding whitespace (from copy and paste) is ignored.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let body = text
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenError::Prefix)?;
        if body.len() > TOKEN_TEXT_MAX {
            return Err(TokenError::TooLong);
        }
        let mut raw = [0u8; TOKEN_TEXT_MAX];
        let n = URL_SAFE_NO_PAD
            .decode_slice(body, &mut raw)
            .map_err(|_| TokenError::Malformed)?;
        match postcard::take_from_bytes::<Self>(&raw[..n]) {
            Ok((token, [])) => Ok(token),
            _ => Err(TokenError::Malformed),
        }
    }
}

impl fmt::Debug for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentToken")
            .field("addr", &self.addr)
            .field("ca_sha256", &self.ca_sha256)
            .finish_non_exhaustive()
    }
}

/// Provider -> appliance, first frame: what the proof must sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub nonce: [u8; NONCE_LEN],
}

/// Appliance -> provider. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub secret: Vec<u8, SECRET_MAX>,
    /// The appliance's new key, an uncompressed SEC1 P-256 point.
    pub public_key: Vec<u8, PUBLIC_KEY_LEN>,
    /// A label for the operator (e.g. the rack), printable ASCII.
    pub name: String<ID_MAX>,
    /// ECDSA P-256 SHA-256 over [`proof_message`] of the challenge, `r || s`.
    pub proof: Vec<u8, SIGNATURE_LEN>,
}

impl fmt::Debug for EnrollRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Provider -> appliance, last frame. Borrows the certificates from the frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnrollResponse<'a> {
    Enrolled {
        /// The id the appliance puts in its `Hello` (also its certificate's common name).
        appliance_id: String<ID_MAX>,
        /// The client certificate (DER) for the tunnel.
        certificate: &'a [u8],
        /// The provider CA (DER): the trust anchor from now on.
        ca_certificate: &'a [u8],
    },
    Refused(EnrollRefusal),
}

/// Why the provider turned an enrollment down. Only grows at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnrollRefusal {
    /// No such token: mistyped, or never issued by this provider.
    UnknownToken,
    /// The token was redeemed already.
    TokenUsed,
    /// The token's validity ended.
    TokenExpired,
    /// The signature does not verify with the key sent.
    BadProof,
    /// The request is not well formed (key, name).
    BadRequest,
    /// The provider failed; try again with a new token.
    Internal,
}

impl fmt::Display for EnrollRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EnrollRefusal::UnknownToken => "unknown enrollment token",
            EnrollRefusal::TokenUsed => "enrollment token already used",
            EnrollRefusal::TokenExpired => "enrollment token expired",
            EnrollRefusal::BadProof => "proof of key possession does not verify",
            EnrollRefusal::BadRequest => "malformed enrollment request",
            EnrollRefusal::Internal => "provider error during enrollment",
        })
    }
}

impl core::error::Error for EnrollRefusal {}

/// The bytes the appliance signs: [`PROOF_CONTEXT`] then the nonce.
pub fn proof_message(nonce: &[u8; NONCE_LEN]) -> [u8; PROOF_CONTEXT.len() + NONCE_LEN] {
    let mut m = [0u8; PROOF_CONTEXT.len() + NONCE_LEN];
    let (context, rest) = m.split_at_mut(PROOF_CONTEXT.len());
    context.copy_from_slice(PROOF_CONTEXT);
    rest.copy_from_slice(nonce);
    m
}

/// Why an enrollment frame was not written or read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Over [`ENROLL_FRAME_MAX`], or the output buffer is too small.
    TooLarge,
    /// Not the expected message, or bytes after it.
    Malformed,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameError::TooLarge => "enrollment frame too large",
            FrameError::Malformed => "malformed enrollment message",
        })
    }
}

impl core::error::Error for FrameError {}

/// Writes `msg` as one frame (2-byte big-endian length, postcard body) at the start of
/// `out`; returns the frame's length.
pub fn write_frame<T: Serialize>(msg: &T, out: &mut [u8]) -> Result<usize, FrameError> {
    let (header, rest) = out.split_at_mut_checked(2).ok_or(FrameError::TooLarge)?;
    let room = rest.len().min(ENROLL_FRAME_MAX);
    let len = postcard::to_slice(msg, &mut rest[..room])
        .map_err(|_| FrameError::TooLarge)?
        .len();
    header.copy_from_slice(&(len as u16).to_be_bytes());
    Ok(2 + len)
}

/// The body length a frame header announces, refused above [`ENROLL_FRAME_MAX`] or at zero.
pub fn frame_len(header: [u8; 2]) -> Result<usize, FrameError> {
    match usize::from(u16::from_be_bytes(header)) {
        0 => Err(FrameError::Malformed),
        n if n > ENROLL_FRAME_MAX => Err(FrameError::TooLarge),
        n => Ok(n),
    }
}

/// Reads exactly one message from a frame body.
pub fn read_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, FrameError> {
    match postcard::take_from_bytes(body) {
        Ok((msg, [])) => Ok(msg),
        _ => Err(FrameError::Malformed),
    }
}

#[cfg(test)]
mod tests;
