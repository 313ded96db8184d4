//! The journal record of a lease: 20 bytes, big-endian fields.

use core::net::Ipv4Addr;

use super::leases::{Lease, LeaseState};
use crate::journal::Record;
use crate::net::MacAddr;

/// Format tag, so a future layout can be told apart.
const TAG: u8 = 0xa1;

impl Record for Lease {
    const LEN: usize = 20;

    fn encode(&self, out: &mut [u8]) {
        out[0] = TAG;
        out[1..5].copy_from_slice(&self.ip.octets());
        out[5..11].copy_from_slice(&self.mac.0);
        out[11] = self.state as u8;
        out[12..20].copy_from_slice(&self.expires.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Option<Lease> {
        let b: &[u8; 20] = b.try_into().ok()?;
        if b[0] != TAG {
            return None;
        }
        let state = LeaseState::from_u8(b[11]).filter(|s| *s != LeaseState::Offered)?;
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&b[5..11]);
        let mut expires = [0u8; 8];
        expires.copy_from_slice(&b[12..20]);
        Some(Lease {
            ip: Ipv4Addr::new(b[1], b[2], b[3], b[4]),
            mac: MacAddr(mac),
            state,
            expires: u64::from_be_bytes(expires),
        })
    }
}
