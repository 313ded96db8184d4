//! The appliance's side of the enrollment exchange ([`crate::enroll`]), sans IO and without
//! an allocator, shared by host-sim and the boards: plaintext from the TLS stream in, the
//! request frame out, then the certificate or the refusal. The key stays with the caller,
//! which hands over its public point and a signer.

use core::fmt;

use heapless::{String, Vec};

use crate::enroll::{
    Challenge, ENROLL_FRAME_MAX, EnrollRefusal, EnrollRequest, EnrollResponse, FrameError,
    PUBLIC_KEY_LEN, SIGNATURE_LEN, frame_len, proof_message, read_body, write_frame,
};
use crate::message::ID_MAX;

/// A frame header and the largest body.
pub const FRAME_MAX: usize = 2 + ENROLL_FRAME_MAX;

/// What a complete frame led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// The request is the first this many bytes of `out`: send them, then wait.
    Send(usize),
    Enrolled {
        appliance_id: String<ID_MAX>,
        certificate: &'a [u8],
        ca_certificate: &'a [u8],
    },
    Refused(EnrollRefusal),
}

/// Why the exchange cannot go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeError {
    Frame(FrameError),
    /// More bytes than one frame before the provider's turn ended.
    Overflow,
    /// The name is over [`ID_MAX`].
    NameTooLong,
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::Frame(e) => write!(f, "enrollment: {e}"),
            ExchangeError::Overflow => f.write_str("enrollment: more than one frame at once"),
            ExchangeError::NameTooLong => f.write_str("enrollment: name too long"),
        }
    }
}

impl From<FrameError> for ExchangeError {
    fn from(e: FrameError) -> Self {
        ExchangeError::Frame(e)
    }
}

/// What the appliance proves itself with: the token's secret, its new key's public point,
/// a signer with that key (ECDSA P-256 SHA-256, `r || s`) and its name.
pub struct Credentials<'a> {
    pub secret: &'a [u8],
    pub public_key: &'a [u8; PUBLIC_KEY_LEN],
    pub sign: &'a dyn Fn(&[u8]) -> [u8; SIGNATURE_LEN],
    pub name: &'a str,
}

/// Received plaintext until a whole frame is in.
#[derive(Default)]
pub struct Exchange {
    buf: Vec<u8, FRAME_MAX>,
    challenged: bool,
}

impl Exchange {
    /// Takes plaintext; `Ok(None)` until a frame is complete. After the challenge the
    /// request is written into `out` (at least [`FRAME_MAX`] bytes).
    pub fn receive<'a>(
        &'a mut self,
        data: &[u8],
        who: &Credentials<'_>,
        out: &mut [u8],
    ) -> Result<Option<Step<'a>>, ExchangeError> {
        self.buf
            .extend_from_slice(data)
            .map_err(|_| ExchangeError::Overflow)?;
        let [a, b, ..] = self.buf[..] else {
            return Ok(None);
        };
        let len = frame_len([a, b])?;
        if self.buf.len() < 2 + len {
            return Ok(None);
        }
        if self.challenged {
            return Ok(Some(match read_body(&self.buf[2..2 + len])? {
                EnrollResponse::Enrolled {
                    appliance_id,
                    certificate,
                    ca_certificate,
                } => Step::Enrolled {
                    appliance_id,
                    certificate,
                    ca_certificate,
                },
                EnrollResponse::Refused(why) => Step::Refused(why),
            }));
        }
        let challenge: Challenge = read_body(&self.buf[2..2 + len])?;
        let rest = self.buf.len() - (2 + len);
        self.buf.copy_within(2 + len.., 0);
        self.buf.truncate(rest);
        self.challenged = true;
        let request = EnrollRequest {
            secret: Vec::from_slice(who.secret).map_err(|_| FrameError::TooLarge)?,
            public_key: Vec::from_slice(who.public_key).map_err(|_| FrameError::TooLarge)?,
            name: who
                .name
                .try_into()
                .map_err(|_| ExchangeError::NameTooLong)?,
            proof: Vec::from_slice(&(who.sign)(&proof_message(&challenge.nonce)))
                .map_err(|_| FrameError::TooLarge)?,
        };
        Ok(Some(Step::Send(write_frame(&request, out)?)))
    }
}

#[cfg(test)]
mod tests;
