//! RMCP+ sessions (IPMI v2.0 §13.15-§13.32): Open Session, RAKP 1-4 with key derivation, the
//! inbound sequence-number window, and sealing/unsealing of session payloads. The table is
//! bounded and idle sessions expire.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::crypto::{Suite, decrypt, encrypt, hmac, hmac_matches, random};
use crate::wire::{self, V2};

/// Sessions open at once, established or in the handshake; one more gets status 0x01.
pub const MAX_SESSIONS: usize = 32;
/// A session with no valid packet for this long is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How far before the highest sequence number seen a late packet is still taken, and how far
/// beyond it a new one may jump (§6.12.13 asks for a window of at least 8).
const SEQ_WINDOW: u32 = 16;

/// Privilege levels (§6.8).
pub const PRIV_USER: u8 = 2;
pub const PRIV_OPERATOR: u8 = 3;
pub const PRIV_ADMIN: u8 = 4;

/// RMCP+ status codes (§13.24, table 13-15).
const STATUS_NO_RESOURCES: u8 = 0x01;
const STATUS_INVALID_SESSION: u8 = 0x02;
const STATUS_INVALID_AUTH_ALG: u8 = 0x04;
const STATUS_INVALID_INTEGRITY_ALG: u8 = 0x05;
const STATUS_INVALID_ROLE: u8 = 0x09;
const STATUS_UNAUTHORIZED_NAME: u8 = 0x0D;
const STATUS_INVALID_ICV: u8 = 0x0F;
const STATUS_INVALID_CONF_ALG: u8 = 0x10;
const STATUS_NO_SUITE_MATCH: u8 = 0x11;
const STATUS_ILLEGAL_PARAMETER: u8 = 0x12;

/// The one user account: name and password (Kuid; no BMC key Kg).
pub struct User {
    pub name: Vec<u8>,
    pub password: Vec<u8>,
}

/// What the RAKP exchange has fixed so far.
enum Stage {
    /// Open Session answered; waiting for RAKP 1.
    Opened,
    /// RAKP 2 sent: the console's and our random numbers and the RAKP 1 role byte.
    Rakp2 {
        rm: [u8; 16],
        rc: [u8; 16],
        role: u8,
    },
    /// RAKP 4 sent: keys derived, IPMI payloads accepted.
    Active { k1: Vec<u8>, k2: [u8; 16] },
}

pub struct Session {
    /// Our (managed system) session ID, which the console puts in its packets.
    pub id: u32,
    /// The console's session ID, which we put in ours.
    pub console_id: u32,
    /// Small number for Get Session Info, 1..=255.
    pub handle: u8,
    pub suite: Suite,
    pub peer: SocketAddr,
    /// Highest privilege this session may take (from Open Session and RAKP 1).
    pub max_priv: u8,
    /// Current operating privilege (Set Session Privilege Level).
    pub privilege: u8,
    stage: Stage,
    last_seen: Instant,
    /// Highest inbound sequence number taken, and bit i set if `highest - i` was taken.
    highest: u32,
    seen: u32,
    out_seq: u32,
}

impl Session {
    pub fn is_active(&self) -> bool {
        matches!(self.stage, Stage::Active { .. })
    }

    /// Takes `seq` once: false for 0, replays, and numbers outside the window.
    fn take_seq(&mut self, seq: u32) -> bool {
        if seq == 0 {
            return false;
        }
        if seq > self.highest {
            let ahead = seq - self.highest;
            if ahead > SEQ_WINDOW {
                return false;
            }
            self.seen = self.seen.checked_shl(ahead).unwrap_or(0) | 1;
            self.highest = seq;
            return true;
        }
        let behind = self.highest - seq;
        if behind >= SEQ_WINDOW || self.seen & (1 << behind) != 0 {
            return false;
        }
        self.seen |= 1 << behind;
        true
    }

    /// Encrypts and authenticates an IPMI payload for this session's console.
    pub fn seal(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        let Stage::Active { k1, k2 } = &self.stage else {
            return None;
        };
        self.out_seq = self.out_seq.wrapping_add(1).max(1);
        let body = encrypt(k2, payload);
        let keys = (self.suite.hash, k1.as_slice(), self.suite.icv_len());
        Some(wire::v2_sealed(
            wire::PAYLOAD_IPMI,
            self.console_id,
            self.out_seq,
            &body,
            keys,
        ))
    }
}

/// Why an in-session packet was dropped (for the log).
pub enum Rejected {
    UnknownSession,
    NotSealed,
    BadAuthCode,
    Replay(u32),
    BadPayload,
}

/// All sessions, by our session ID.
pub struct Sessions {
    user: User,
    suites: Vec<Suite>,
    guid: [u8; 16],
    table: BTreeMap<u32, Session>,
}

impl Sessions {
    pub fn new(user: User, suites: Vec<Suite>, guid: [u8; 16]) -> Sessions {
        Sessions {
            user,
            suites,
            guid,
            table: BTreeMap::new(),
        }
    }

    pub fn suites(&self) -> &[Suite] {
        &self.suites
    }

    /// Established sessions, in handle order.
    pub fn active(&self) -> Vec<&Session> {
        let mut v: Vec<&Session> = self.table.values().filter(|s| s.is_active()).collect();
        v.sort_by_key(|s| s.handle);
        v
    }

    pub fn get(&self, id: u32) -> Option<&Session> {
        self.table.get(&id)
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut Session> {
        self.table.get_mut(&id)
    }

    pub fn remove(&mut self, id: u32) -> Option<Session> {
        self.table.remove(&id)
    }

    /// Drops sessions idle for [`IDLE_TIMEOUT`]; returns their IDs.
    pub fn expire(&mut self, now: Instant) -> Vec<u32> {
        let old: Vec<u32> = self
            .table
            .values()
            .filter(|s| now.duration_since(s.last_seen) >= IDLE_TIMEOUT)
            .map(|s| s.id)
            .collect();
        for id in &old {
            self.table.remove(id);
        }
        old
    }

    /// Answers an RMCP+ Open Session Request (§13.17): picks the configured suite that matches
    /// the three proposed algorithms exactly, or refuses with the status of the first mismatch.
    /// Returns the reply and a log line.
    pub fn open(
        &mut self,
        req: &[u8],
        peer: SocketAddr,
        now: Instant,
    ) -> Option<(Vec<u8>, String)> {
        let tag = *req.first()?;
        let console_id = u32::from_le_bytes(req.get(4..8)?.try_into().ok()?);
        let refuse = |status: u8, why: &str| {
            let mut out = vec![tag, status, 0, 0];
            out.extend_from_slice(&console_id.to_le_bytes());
            (
                wire::v2_plain(wire::PAYLOAD_OPEN_RESPONSE, &out),
                format!("open-session refused status=0x{status:02x} ({why})"),
            )
        };
        // Three 8-byte algorithm records: type, reserved, reserved, length 8, algorithm, reserved.
        let alg = |i: usize| -> Option<u8> {
            let rec = req.get(8 + 8 * i..16 + 8 * i)?;
            (rec[0] == i as u8 && rec[3] == 8).then_some(rec[4] & 0x3F)
        };
        let (Some(auth), Some(integ), Some(conf)) = (alg(0), alg(1), alg(2)) else {
            return Some(refuse(
                STATUS_ILLEGAL_PARAMETER,
                "malformed algorithm payloads",
            ));
        };
        let requested = req.get(1)? & 0x0F;
        if requested > PRIV_ADMIN {
            return Some(refuse(STATUS_INVALID_ROLE, "privilege above administrator"));
        }
        let Some(suite) = self
            .suites
            .iter()
            .find(|s| (s.auth, s.integrity, s.confidentiality) == (auth, integ, conf))
            .copied()
        else {
            let status = if !self.suites.iter().any(|s| s.auth == auth) {
                STATUS_INVALID_AUTH_ALG
            } else if !self.suites.iter().any(|s| s.integrity == integ) {
                STATUS_INVALID_INTEGRITY_ALG
            } else if !self.suites.iter().any(|s| s.confidentiality == conf) {
                STATUS_INVALID_CONF_ALG
            } else {
                STATUS_NO_SUITE_MATCH
            };
            return Some(refuse(
                status,
                &format!(
                    "algorithms auth={auth} integrity={integ} confidentiality={conf} not offered"
                ),
            ));
        };
        if self.table.len() >= MAX_SESSIONS {
            return Some(refuse(STATUS_NO_RESOURCES, "session table full"));
        }
        let id = self.new_id();
        let handle = (1..=255u8).find(|h| self.table.values().all(|s| s.handle != *h))?;
        let max_priv = if requested == 0 {
            PRIV_ADMIN
        } else {
            requested
        };
        self.table.insert(
            id,
            Session {
                id,
                console_id,
                handle,
                suite,
                peer,
                max_priv,
                privilege: PRIV_USER.min(max_priv),
                stage: Stage::Opened,
                last_seen: now,
                highest: 0,
                seen: 0,
                out_seq: 0,
            },
        );
        let mut out = vec![tag, 0, max_priv, 0];
        out.extend_from_slice(&console_id.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
        for (kind, alg) in [
            (0u8, suite.auth),
            (1, suite.integrity),
            (2, suite.confidentiality),
        ] {
            out.extend_from_slice(&[kind, 0, 0, 8, alg, 0, 0, 0]);
        }
        let line = format!("open-session id=0x{id:08x} suite={} from={peer}", suite.id);
        Some((wire::v2_plain(wire::PAYLOAD_OPEN_RESPONSE, &out), line))
    }

    fn new_id(&self) -> u32 {
        loop {
            let mut b = [0u8; 4];
            random(&mut b);
            let id = u32::from_le_bytes(b);
            if id != 0 && !self.table.contains_key(&id) {
                return id;
            }
        }
    }

    /// Answers RAKP 1 with RAKP 2 (§13.20-13.21): checks the user name and role, and proves
    /// knowledge of the password with HMAC_Kuid(SIDm, SIDc, Rm, Rc, GUIDc, ROLEm, ULENm, UNAMEm).
    pub fn rakp1(&mut self, req: &[u8], now: Instant) -> Option<(Vec<u8>, String)> {
        let tag = *req.first()?;
        let id = u32::from_le_bytes(req.get(4..8)?.try_into().ok()?);
        let rm: [u8; 16] = req.get(8..24)?.try_into().ok()?;
        let role = *req.get(24)?;
        let name = req.get(28..28 + usize::from(*req.get(27)?))?;
        let reply = |status: u8, console_id: u32, rest: &[&[u8]]| {
            let mut out = vec![tag, status, 0, 0];
            out.extend_from_slice(&console_id.to_le_bytes());
            rest.iter().for_each(|r| out.extend_from_slice(r));
            wire::v2_plain(wire::PAYLOAD_RAKP2, &out)
        };
        let Some(s) = self
            .table
            .get_mut(&id)
            .filter(|s| matches!(s.stage, Stage::Opened))
        else {
            return Some((
                reply(STATUS_INVALID_SESSION, 0, &[]),
                format!("rakp1 refused: no session 0x{id:08x} awaiting it"),
            ));
        };
        let console_id = s.console_id;
        let wanted = role & 0x0F;
        let refusal = if name.len() > 16 || name != self.user.name.as_slice() {
            Some((STATUS_UNAUTHORIZED_NAME, "unknown user name"))
        } else if wanted > s.max_priv {
            Some((STATUS_INVALID_ROLE, "role above the session's maximum"))
        } else {
            None
        };
        if let Some((status, why)) = refusal {
            self.table.remove(&id);
            return Some((
                reply(status, console_id, &[]),
                format!("rakp1 refused session=0x{id:08x}: {why}"),
            ));
        }
        if wanted != 0 {
            s.max_priv = wanted;
            s.privilege = s.privilege.min(wanted);
        }
        let mut rc = [0u8; 16];
        random(&mut rc);
        let code = hmac(
            s.suite.hash,
            &self.user.password,
            &[
                &console_id.to_le_bytes(),
                &id.to_le_bytes(),
                &rm,
                &rc,
                &self.guid,
                &[role, name.len() as u8],
                name,
            ],
        );
        s.stage = Stage::Rakp2 { rm, rc, role };
        s.last_seen = now;
        let line = format!(
            "rakp1 session=0x{id:08x} user={} role=0x{role:02x}",
            String::from_utf8_lossy(name)
        );
        Some((reply(0, console_id, &[&rc, &self.guid, &code]), line))
    }

    /// Answers RAKP 3 with RAKP 4 (§13.22-13.23): checks HMAC_Kuid(Rc, SIDm, ROLEm, ULENm,
    /// UNAMEm), derives SIK = HMAC_Kuid(Rm, Rc, ROLEm, ULENm, UNAMEm), K1 and K2 (HMAC_SIK of 20
    /// bytes of 1 and of 2, as ipmitool and OpenBMC do for both hashes), and returns the check
    /// value HMAC_SIK(Rm, SIDc, GUIDc). A console that reports an error in RAKP 3 gets no reply.
    pub fn rakp3(&mut self, req: &[u8], now: Instant) -> Option<(Option<Vec<u8>>, String)> {
        let tag = *req.first()?;
        let status = *req.get(1)?;
        let id = u32::from_le_bytes(req.get(4..8)?.try_into().ok()?);
        let reply = |status: u8, console_id: u32, icv: &[u8]| {
            let mut out = vec![tag, status, 0, 0];
            out.extend_from_slice(&console_id.to_le_bytes());
            out.extend_from_slice(icv);
            Some(wire::v2_plain(wire::PAYLOAD_RAKP4, &out))
        };
        let Some(s) = self.table.get_mut(&id) else {
            return Some((
                reply(STATUS_INVALID_SESSION, 0, &[]),
                format!("rakp3 refused: no session 0x{id:08x}"),
            ));
        };
        let Stage::Rakp2 { rm, rc, role } = s.stage else {
            return Some((
                reply(STATUS_INVALID_SESSION, 0, &[]),
                format!("rakp3 refused: session 0x{id:08x} not awaiting it"),
            ));
        };
        let console_id = s.console_id;
        if status != 0 {
            self.table.remove(&id);
            return Some((
                None,
                format!(
                    "rakp3 session=0x{id:08x}: console reports status=0x{status:02x}, session dropped"
                ),
            ));
        }
        let name = self.user.name.as_slice();
        let head = [role, name.len() as u8];
        let hash = s.suite.hash;
        let code = req.get(8..).unwrap_or_default();
        let key = &self.user.password;
        if code.len() != s.suite.rakp_len()
            || !hmac_matches(
                hash,
                key,
                &[&rc, &console_id.to_le_bytes(), &head, name],
                code,
            )
        {
            self.table.remove(&id);
            return Some((
                reply(STATUS_INVALID_ICV, console_id, &[]),
                format!("rakp3 refused session=0x{id:08x}: key exchange auth code does not match"),
            ));
        }
        let sik = hmac(hash, key, &[&rm, &rc, &head, name]);
        let k1 = hmac(hash, &sik, &[&[1u8; 20]]);
        let k2_full = hmac(hash, &sik, &[&[2u8; 20]]);
        let k2: [u8; 16] = k2_full.get(..16)?.try_into().ok()?;
        let icv = hmac(hash, &sik, &[&rm, &id.to_le_bytes(), &self.guid]);
        s.stage = Stage::Active { k1, k2 };
        s.last_seen = now;
        let line = format!("session 0x{id:08x} active suite={}", s.suite.id);
        Some((reply(0, console_id, &icv[..s.suite.icv_len()]), line))
    }

    /// Checks an in-session packet (session, AuthCode, sequence number) and decrypts its IPMI
    /// payload. Only what passes all checks refreshes the session's idle timer.
    pub fn unseal(&mut self, pkt: &V2<'_>, now: Instant) -> Result<Vec<u8>, Rejected> {
        let s = self
            .table
            .get_mut(&pkt.session_id)
            .ok_or(Rejected::UnknownSession)?;
        let Stage::Active { k1, k2 } = &s.stage else {
            return Err(Rejected::UnknownSession);
        };
        if !pkt.authenticated || !pkt.encrypted || pkt.payload_type != wire::PAYLOAD_IPMI {
            return Err(Rejected::NotSealed);
        }
        if !pkt.integrity_ok(s.suite.hash, k1, s.suite.icv_len()) {
            return Err(Rejected::BadAuthCode);
        }
        let plain = decrypt(k2, pkt.payload).ok_or(Rejected::BadPayload)?;
        if !s.take_seq(pkt.seq) {
            return Err(Rejected::Replay(pkt.seq));
        }
        s.last_seen = now;
        Ok(plain)
    }
}
