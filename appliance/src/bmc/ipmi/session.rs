//! An active RMCP+ session: outbound sequence numbers, the inbound replay window, and
//! sealing (encrypt, sign) and opening (verify, decrypt) of packets (IPMI v2.0 §13.28-13.29).

use rand_core::CryptoRng;

use super::cipher::{AES_BLOCK, Suite, aes_decrypt, aes_encrypt, hmac};
use super::rakp::Keys;
use super::wire::{self, Packet, V2_PAYLOAD_OFFSET, V2Header, Writer};
use crate::bmc::Error;

/// How far behind the highest sequence number seen a packet may arrive (and still be
/// accepted once) and how far ahead it may jump: the spec's ±16 window (§6.12.13).
const WINDOW: u32 = 16;

/// Sliding window over inbound session sequence numbers: accepts each number once,
/// within `WINDOW` of the highest seen.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplayWindow {
    highest: u32,
    /// Bit i set: `highest - i` was received.
    seen: u32,
}

impl ReplayWindow {
    /// Would `seq` be accepted? (Does not record it.)
    pub fn check(&self, seq: u32) -> bool {
        if seq == 0 {
            return false;
        }
        if self.seen == 0 {
            // Nothing received yet: the packet is authenticated with fresh keys, so any
            // starting number is genuine.
            return true;
        }
        let ahead = seq.wrapping_sub(self.highest);
        if ahead != 0 && ahead <= WINDOW {
            return true;
        }
        let behind = self.highest.wrapping_sub(seq);
        behind < WINDOW && self.seen & (1u32 << behind) == 0
    }

    /// Records an accepted `seq` (call only after `check` and the integrity check passed).
    pub fn accept(&mut self, seq: u32) {
        let ahead = seq.wrapping_sub(self.highest);
        if self.seen == 0 {
            self.highest = seq;
            self.seen = 1;
        } else if ahead != 0 && ahead <= WINDOW {
            self.seen = self.seen.checked_shl(ahead).unwrap_or(0) | 1;
            self.highest = seq;
        } else {
            let behind = self.highest.wrapping_sub(seq);
            self.seen |= 1u32.checked_shl(behind).unwrap_or(0);
        }
    }
}

/// Keys and counters of an active session.
#[derive(Debug)]
pub struct Session {
    pub suite: Suite,
    pub console_id: u32,
    pub bmc_id: u32,
    keys: Keys,
    out_seq: u32,
    window: ReplayWindow,
}

/// Why an inbound packet was dropped; each is counted in `Stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    Malformed,
    Integrity,
    Replay,
}

impl Session {
    pub fn new(suite: Suite, console_id: u32, bmc_id: u32, keys: Keys) -> Session {
        Session {
            suite,
            console_id,
            bmc_id,
            keys,
            out_seq: 0,
            window: ReplayWindow::default(),
        }
    }

    /// Builds an in-session IPMI packet around the message `encode` writes: encrypted with
    /// a fresh random IV and signed with K1 as the suite requires. Each call (a
    /// retransmission too) takes the next sequence number.
    pub fn seal(
        &mut self,
        out: &mut [u8],
        rng: &mut impl CryptoRng,
        encode: impl FnOnce(&mut Writer<'_>) -> Result<(), Error>,
    ) -> Result<usize, Error> {
        self.out_seq = self.out_seq.checked_add(1).ok_or(Error::Busy)?;
        let mut w = Writer::at(out, V2_PAYLOAD_OFFSET);
        let payload_len = if self.suite.aes {
            let mut iv = [0u8; AES_BLOCK];
            rng.fill_bytes(&mut iv);
            w.put(&iv)?;
            let start = w.pos();
            encode(&mut w)?;
            let len = w.pos().checked_sub(start).ok_or(Error::Busy)?;
            let key = self.keys.aes_key();
            let body = w.tail_from(start)?;
            let n = aes_encrypt(&key, &iv, body, len)?;
            w.skip_to(start.checked_add(n).ok_or(Error::Busy)?)?;
            n.checked_add(AES_BLOCK).ok_or(Error::Busy)?
        } else {
            encode(&mut w)?;
            w.pos().checked_sub(V2_PAYLOAD_OFFSET).ok_or(Error::Busy)?
        };
        let header = V2Header {
            payload_type: wire::payload::IPMI,
            encrypted: self.suite.aes,
            authenticated: self.suite.integrity.is_some(),
            session_id: self.bmc_id,
            seq: self.out_seq,
        };
        let end = w.pos();
        if header.authenticated {
            wire::write_trailer_fields(&mut w)?;
        }
        let signed_end = w.pos();
        let mut head = Writer::new(w.into_inner());
        wire::write_v2_header(&mut head, &header, payload_len)?;
        let buf = head.into_inner();
        if !header.authenticated {
            return Ok(end);
        }
        let signed = buf
            .get(wire::RMCP_HEADER.len()..signed_end)
            .ok_or(Error::Busy)?;
        let code = hmac(self.suite.integrity, self.keys.k1.as_slice(), &[signed])?;
        let mut w = Writer::at(buf, signed_end);
        w.put(code.truncated(self.suite.auth_code_len()))?;
        Ok(w.pos())
    }

    /// Verifies (integrity, replay window) and decrypts an inbound packet of this session;
    /// returns the IPMI message. The window only advances for packets that pass.
    pub fn open<'o>(&mut self, datagram: &[u8], scratch: &'o mut [u8]) -> Result<&'o [u8], Drop> {
        let Ok(Packet::V2 {
            header,
            payload,
            trailer,
        }) = wire::parse(datagram)
        else {
            return Err(Drop::Malformed);
        };
        if header.session_id != self.console_id
            || header.payload_type != wire::payload::IPMI
            || header.authenticated != self.suite.integrity.is_some()
            || header.encrypted != self.suite.aes
        {
            return Err(Drop::Malformed);
        }
        if header.authenticated {
            let (signed, code) = wire::split_trailer(datagram, trailer, self.suite.auth_code_len())
                .map_err(|_| Drop::Malformed)?;
            let ours = hmac(self.suite.integrity, self.keys.k1.as_slice(), &[signed])
                .map_err(|_| Drop::Integrity)?;
            if !ours.matches(code, self.suite.auth_code_len()) {
                return Err(Drop::Integrity);
            }
        }
        if !self.window.check(header.seq) {
            return Err(Drop::Replay);
        }
        let plain = if header.encrypted {
            aes_decrypt(&self.keys.aes_key(), payload, scratch).map_err(|_| Drop::Malformed)?
        } else {
            let out = scratch.get_mut(..payload.len()).ok_or(Drop::Malformed)?;
            out.copy_from_slice(payload);
            out
        };
        self.window.accept(header.seq);
        Ok(plain)
    }
}

#[cfg(test)]
mod tests;
