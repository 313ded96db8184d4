//! The enrolled identity (key, id, certificate, CA) as bytes for the board to keep, so a
//! reboot reconnects instead of needing a new token. Where it lives is the board's business
//! ([`super::Settings::store`]); the bytes are `RID1`, the 32-byte key, then the id, the
//! certificate and the CA, each behind a 2-byte big-endian length.

use alloc::string::String;
use alloc::vec::Vec;

use uplink_tls::KeyPair;

const MAGIC: &[u8; 4] = b"RID1";

/// What enrollment gave the appliance.
pub struct Identity {
    pub appliance_id: String,
    pub certificate: Vec<u8>,
    pub ca: Vec<u8>,
    pub key: KeyPair,
}

/// Where a board keeps the identity: `load` returns what `save` stored (`None` when there
/// is nothing); `save` reports success. Plain functions, so the task needs no shared state.
#[derive(Clone, Copy)]
pub struct IdentityStore {
    pub load: fn() -> Option<Vec<u8>>,
    pub save: fn(&[u8]) -> bool,
}

impl Identity {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40 + self.certificate.len() + self.ca.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.key.to_bytes());
        for field in [self.appliance_id.as_bytes(), &self.certificate, &self.ca] {
            out.extend_from_slice(&(field.len() as u16).to_be_bytes());
            out.extend_from_slice(field);
        }
        out
    }

    /// `None` for anything `encode` did not write (the board then enrolls again).
    pub fn decode(bytes: &[u8]) -> Option<Identity> {
        let rest = bytes.strip_prefix(MAGIC)?;
        let (key, mut rest) = rest.split_first_chunk::<32>()?;
        let mut field = || {
            let (len, tail) = rest.split_first_chunk::<2>()?;
            let (value, tail) = tail.split_at_checked(usize::from(u16::from_be_bytes(*len)))?;
            rest = tail;
            Some(value)
        };
        let id = core::str::from_utf8(field()?).ok()?;
        let (certificate, ca) = (field()?.to_vec(), field()?.to_vec());
        Some(Identity {
            appliance_id: String::from(id),
            certificate,
            ca,
            key: KeyPair::from_bytes(key)?,
        })
    }
}
