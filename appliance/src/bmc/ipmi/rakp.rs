//! RMCP+ session establishment (IPMI v2.0 §13.17-13.31): Open Session and RAKP messages 1-4,
//! and the key derivation (SIK, K1, K2) they feed.

use super::cipher::{Hash, Mac, Suite, hmac};
use super::wire::{Reader, Writer};
use crate::bmc::Error;

/// What the console remembers between Open Session and RAKP4: the inputs of every HMAC of
/// the exchange. The password (Kuid) is zero-padded to the 20 bytes of a v2.0 user key.
pub struct Handshake {
    pub suite: Suite,
    pub console_id: u32,
    pub bmc_id: u32,
    /// Remote console random number Rm.
    pub rm: [u8; 16],
    /// Managed system random number Rc.
    pub rc: [u8; 16],
    pub guid: [u8; 16],
    /// Requested maximum privilege byte of RAKP1 (privilege, plus 10h for name-only lookup).
    pub role: u8,
    pub user: heapless::Vec<u8, 16>,
    kuid: [u8; 20],
}

// Holds the password: never printed.
impl core::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Handshake(..)")
    }
}

/// RMCP+ status codes the client interprets (§13.24).
pub mod status {
    pub const INVALID_AUTH_ALGORITHM: u8 = 0x04;
    pub const INVALID_INTEGRITY_ALGORITHM: u8 = 0x05;
    pub const NO_MATCHING_AUTH_PAYLOAD: u8 = 0x06;
    pub const NO_MATCHING_INTEGRITY_PAYLOAD: u8 = 0x07;
    pub const INVALID_ROLE: u8 = 0x09;
    pub const INVALID_INTEGRITY_CHECK: u8 = 0x0F;
    pub const INVALID_CONF_ALGORITHM: u8 = 0x10;
    pub const NO_CIPHER_SUITE_MATCH: u8 = 0x11;
}

/// Maps a non-zero RMCP+ status to the error it means for the operation.
pub fn status_error(code: u8) -> Error {
    use status::*;
    match code {
        INVALID_AUTH_ALGORITHM
        | INVALID_INTEGRITY_ALGORITHM
        | NO_MATCHING_AUTH_PAYLOAD
        | NO_MATCHING_INTEGRITY_PAYLOAD
        | INVALID_CONF_ALGORITHM
        | NO_CIPHER_SUITE_MATCH => Error::NoCommonCipher,
        // Invalid role .. invalid integrity check value: the user, its privilege or its key.
        INVALID_ROLE..=INVALID_INTEGRITY_CHECK => Error::Auth,
        other => Error::Refused(u16::from(other)),
    }
}

impl Handshake {
    /// `None` when the name (16 bytes) or the password (20 bytes) is too long for IPMI v2.0.
    pub fn new(
        suite: Suite,
        console_id: u32,
        rm: [u8; 16],
        privilege: u8,
        user: &str,
        password: &str,
    ) -> Option<Handshake> {
        let user = heapless::Vec::from_slice(user.as_bytes()).ok()?;
        let mut kuid = [0u8; 20];
        kuid.get_mut(..password.len())?
            .copy_from_slice(password.as_bytes());
        Some(Handshake {
            suite,
            console_id,
            bmc_id: 0,
            rm,
            rc: [0; 16],
            guid: [0; 16],
            // Name-only lookup (10h): the BMC picks the user by name, as ipmitool does.
            role: 0x10 | (privilege & 0x0F),
            user,
            kuid,
        })
    }

    fn user_len(&self) -> [u8; 1] {
        // At most 16 bytes (the Vec's capacity).
        [self.user.len() as u8]
    }

    /// Open Session request payload (§13.17), proposing exactly this suite's algorithms.
    pub fn open_session(&self, tag: u8, out: &mut Writer<'_>) -> Result<(), Error> {
        let [auth, integrity, conf] = self.suite.algorithms();
        out.put(&[tag, self.role & 0x0F, 0, 0])?;
        out.u32le(self.console_id)?;
        for (kind, alg) in [(0u8, auth), (1, integrity), (2, conf)] {
            out.put(&[kind, 0, 0, 8, alg, 0, 0, 0])?;
        }
        Ok(())
    }

    /// Checks an Open Session response and learns the BMC's session id. A status error is
    /// returned as such (the caller may try another suite).
    pub fn open_session_response(&mut self, tag: u8, payload: &[u8]) -> Result<(), Error> {
        let mut r = Reader::new(payload);
        check_tag_status(&mut r, tag)?;
        let _privilege = r.u8()?;
        let _reserved = r.u8()?;
        if r.u32le()? != self.console_id {
            return Err(Error::Malformed);
        }
        self.bmc_id = r.u32le()?;
        for (kind, alg) in [0u8, 1, 2].into_iter().zip(self.suite.algorithms()) {
            let record: [u8; 8] = r.array()?;
            if record.first() != Some(&kind) || record.get(4).map(|a| a & 0x3F) != Some(alg) {
                return Err(Error::NoCommonCipher);
            }
        }
        if self.bmc_id == 0 {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// RAKP message 1 payload (§13.20).
    pub fn rakp1(&self, tag: u8, out: &mut Writer<'_>) -> Result<(), Error> {
        out.put(&[tag, 0, 0, 0])?;
        out.u32le(self.bmc_id)?;
        out.put(&self.rm)?;
        out.put(&[self.role, 0, 0])?;
        out.put(&self.user_len())?;
        out.put(&self.user)
    }

    /// Checks RAKP message 2 (§13.21): learns Rc and the GUID and verifies the BMC's HMAC,
    /// which proves it knows the password. A wrong HMAC is `Error::Auth`.
    pub fn rakp2(&mut self, tag: u8, payload: &[u8]) -> Result<(), Error> {
        let mut r = Reader::new(payload);
        check_tag_status(&mut r, tag)?;
        let _reserved: [u8; 2] = r.array()?;
        if r.u32le()? != self.console_id {
            return Err(Error::Malformed);
        }
        self.rc = r.array()?;
        self.guid = r.array()?;
        let code = r.rest();
        let expected = self.rakp2_hmac()?;
        if !expected.matches(code, expected.as_slice().len()) {
            return Err(Error::Auth);
        }
        Ok(())
    }

    fn rakp2_hmac(&self) -> Result<Mac, Error> {
        let c = self.console_id.to_le_bytes();
        let b = self.bmc_id.to_le_bytes();
        let parts: [&[u8]; 9] = [
            &c,
            &b,
            &self.rm,
            &self.rc,
            &self.guid,
            &[self.role],
            &self.user_len(),
            &self.user,
            &[],
        ];
        hmac(self.suite.auth, &self.kuid, &parts)
    }

    /// RAKP message 3 payload (§13.22): the console's proof of the password, or with a
    /// non-zero `status` the refusal of RAKP2 (the BMC then drops the half-open session).
    pub fn rakp3(&self, tag: u8, status: u8, out: &mut Writer<'_>) -> Result<(), Error> {
        out.put(&[tag, status, 0, 0])?;
        out.u32le(self.bmc_id)?;
        if status != 0 {
            return Ok(());
        }
        let c = self.console_id.to_le_bytes();
        let parts: [&[u8]; 5] = [&self.rc, &c, &[self.role], &self.user_len(), &self.user];
        let code = hmac(self.suite.auth, &self.kuid, &parts)?;
        out.put(code.as_slice())
    }

    /// Session Integrity Key: HMAC(Kg, Rm | Rc | role | ulen | name) with Kg = Kuid (no BMC key).
    pub fn sik(&self) -> Result<Mac, Error> {
        hmac(
            self.suite.auth,
            &self.kuid,
            &[
                &self.rm,
                &self.rc,
                &[self.role],
                &self.user_len(),
                &self.user,
            ],
        )
    }

    /// Checks RAKP message 4 (§13.23): the BMC's integrity check value over Rm, its session
    /// id and the GUID, keyed by the SIK. Returns the session keys.
    pub fn rakp4(&self, tag: u8, payload: &[u8]) -> Result<Keys, Error> {
        let mut r = Reader::new(payload);
        check_tag_status(&mut r, tag)?;
        let _reserved: [u8; 2] = r.array()?;
        if r.u32le()? != self.console_id {
            return Err(Error::Malformed);
        }
        let sik = self.sik()?;
        let b = self.bmc_id.to_le_bytes();
        let icv = hmac(self.suite.auth, sik.as_slice(), &[&self.rm, &b, &self.guid])?;
        if !icv.matches(r.rest(), self.suite.rakp4_icv_len()) {
            return Err(Error::Auth);
        }
        Keys::derive(self.suite.auth, &sik)
    }
}

fn check_tag_status(r: &mut Reader<'_>, tag: u8) -> Result<(), Error> {
    if r.u8()? != tag {
        return Err(Error::Malformed);
    }
    match r.u8()? {
        0 => Ok(()),
        code => Err(status_error(code)),
    }
}

/// The session keys: K1 signs packets, the first 16 bytes of K2 are the AES key.
#[derive(Debug)]
pub struct Keys {
    pub k1: Mac,
    pub k2: Mac,
}

impl Keys {
    /// K_n = HMAC(SIK, the byte n repeated 20 times) (§13.32). Twenty for SHA-256 as well:
    /// the spec's constants predate suite 17 and ipmitool, FreeIPMI and OpenBMC all keep 20.
    pub fn derive(hash: Option<Hash>, sik: &Mac) -> Result<Keys, Error> {
        Ok(Keys {
            k1: hmac(hash, sik.as_slice(), &[&[1u8; 20]])?,
            k2: hmac(hash, sik.as_slice(), &[&[2u8; 20]])?,
        })
    }

    pub fn aes_key(&self) -> [u8; 16] {
        let mut key = [0u8; 16];
        if let Some(k) = self.k2.as_slice().get(..16) {
            key.copy_from_slice(k);
        }
        key
    }
}

#[cfg(test)]
mod tests;
