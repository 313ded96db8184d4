//! The BMC: turns each datagram into at most one reply, runs the IPMI commands (IPMI v2.0 §20,
//! §22, §28) and logs one line per command or handshake step to stderr unless quiet.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::chassis::{CC_BAD_LENGTH, CC_INVALID_FIELD, Chassis};
use crate::crypto::Suite;
use crate::session::{PRIV_ADMIN, PRIV_OPERATOR, PRIV_USER, Rejected, Sessions, User};
use crate::wire::{self, Packet, Request};

/// Network functions (§5.1).
const NETFN_CHASSIS: u8 = 0x00;
const NETFN_APP: u8 = 0x06;
/// Completion codes (§5.2).
const CC_INVALID_COMMAND: u8 = 0xC1;
const CC_INSUFFICIENT_PRIVILEGE: u8 = 0xD4;
/// Our only LAN channel, and the "this channel" alias.
const CHANNEL: u8 = 0x01;
const CHANNEL_CURRENT: u8 = 0x0E;
/// User ID reported for the one account (ID 1 is conventionally the null user).
const USER_ID: u8 = 2;

/// One BMC: its sessions and the chassis it controls. Sans-IO: the caller owns the socket and
/// the clock.
pub struct Bmc {
    sessions: Sessions,
    /// The machine: the caller reads its events and tells it what the machine did by itself.
    pub chassis: Chassis,
    guid: [u8; 16],
    /// Log nothing (a simulated rack runs dozens of BMCs in one process); false after `new`.
    pub quiet: bool,
}

/// Result of one command: completion code, response data, log text, and a session to close
/// once the reply is sent (Close Session on itself).
struct Outcome {
    cc: u8,
    data: Vec<u8>,
    log: String,
    close_after: Option<u32>,
}

fn done(cc: u8, data: Vec<u8>, log: String) -> Outcome {
    Outcome {
        cc,
        data,
        log,
        close_after: None,
    }
}

fn priv_name(level: u8) -> &'static str {
    match level {
        1 => "callback",
        2 => "user",
        3 => "operator",
        4 => "administrator",
        _ => "oem",
    }
}

impl Bmc {
    /// A BMC with one account, offering `suites`, reporting `guid` (IPMI byte order, §20.8)
    /// as its and the system's GUID; it logs until `quiet` is set.
    pub fn new(user: User, suites: Vec<Suite>, guid: [u8; 16], chassis: Chassis) -> Bmc {
        Bmc {
            sessions: Sessions::new(user, suites, guid),
            chassis,
            guid,
            quiet: false,
        }
    }

    /// Drops sessions idle for a minute, so consoles that vanished do not fill the table;
    /// call it now and then.
    pub fn expire(&mut self, now: Instant) {
        for id in self.sessions.expire(now) {
            self.log(format_args!("session 0x{id:08x} expired (idle)"));
        }
    }

    /// One line on stderr per command or handshake step, unless quiet.
    fn log(&self, line: std::fmt::Arguments<'_>) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    /// Logs a handshake step and passes its reply on.
    fn logged(&self, out: Option<(Vec<u8>, String)>) -> Option<Vec<u8>> {
        let (reply, line) = out?;
        self.log(format_args!("{line}"));
        Some(reply)
    }

    /// Handles one datagram; returns the reply, if any. Whatever is malformed, forged, replayed
    /// or not for us is dropped with a log line.
    pub fn handle(&mut self, dgram: &[u8], peer: SocketAddr, now: Instant) -> Option<Vec<u8>> {
        let reply = match wire::parse(dgram) {
            Some(Packet::Ping(tag)) => {
                self.log(format_args!("asf ping from={peer}"));
                Some(wire::pong(tag))
            }
            Some(Packet::V15(msg)) => self.sessionless(msg).map(|m| wire::v15(&m)),
            Some(Packet::V2(pkt))
                if pkt.session_id == 0 || pkt.payload_type != wire::PAYLOAD_IPMI =>
            {
                let plain = !pkt.authenticated && !pkt.encrypted;
                match pkt.payload_type {
                    _ if !plain => None,
                    wire::PAYLOAD_IPMI => self
                        .sessionless(pkt.payload)
                        .map(|m| wire::v2_plain(wire::PAYLOAD_IPMI, &m)),
                    wire::PAYLOAD_OPEN_REQUEST => {
                        let out = self.sessions.open(pkt.payload, peer, now);
                        self.logged(out)
                    }
                    wire::PAYLOAD_RAKP1 => {
                        let out = self.sessions.rakp1(pkt.payload, now);
                        self.logged(out)
                    }
                    wire::PAYLOAD_RAKP3 => {
                        let (reply, line) = self.sessions.rakp3(pkt.payload, now)?;
                        self.log(format_args!("{line}"));
                        reply
                    }
                    _ => None,
                }
            }
            Some(Packet::V2(pkt)) => match self.sessions.unseal(&pkt, now) {
                Ok(msg) => self.in_session(pkt.session_id, &msg),
                Err(why) => {
                    let why = match why {
                        Rejected::UnknownSession => "unknown or inactive session".to_string(),
                        Rejected::NotSealed => "not authenticated and encrypted".to_string(),
                        Rejected::BadAuthCode => "bad AuthCode".to_string(),
                        Rejected::Replay(seq) => {
                            format!("sequence number {seq} replayed or out of window")
                        }
                        Rejected::BadPayload => "bad confidentiality payload".to_string(),
                    };
                    self.log(format_args!(
                        "drop session=0x{:08x} from={peer}: {why}",
                        pkt.session_id
                    ));
                    None
                }
            },
            None => None,
        };
        if reply.is_none() {
            self.log(format_args!(
                "no reply to {} bytes from={peer}",
                dgram.len()
            ));
        }
        reply
    }

    /// Commands taken outside a session: only discovery (auth capabilities, cipher suites).
    fn sessionless(&mut self, msg: &[u8]) -> Option<Vec<u8>> {
        let req = wire::request(msg)?;
        match (req.netfn, req.cmd) {
            (NETFN_APP, 0x38 | 0x54) => {
                let out = self.command(&req, None);
                self.log(format_args!("cmd {} (no session)", out.log));
                Some(wire::response(&req, out.cc, &out.data))
            }
            (netfn, cmd) => {
                self.log(format_args!(
                    "drop netfn=0x{netfn:02x} cmd=0x{cmd:02x}: needs a session"
                ));
                None
            }
        }
    }

    fn in_session(&mut self, id: u32, msg: &[u8]) -> Option<Vec<u8>> {
        let Some(req) = wire::request(msg) else {
            self.log(format_args!(
                "drop session=0x{id:08x}: malformed IPMI message"
            ));
            return None;
        };
        let out = self.command(&req, Some(id));
        self.log(format_args!("cmd {}", out.log));
        let reply = self
            .sessions
            .get_mut(id)?
            .seal(&wire::response(&req, out.cc, &out.data));
        if let Some(closed) = out.close_after {
            self.sessions.remove(closed);
        }
        reply
    }

    /// Runs one command; `session` is the caller's session ID (None outside a session).
    fn command(&mut self, req: &Request<'_>, session: Option<u32>) -> Outcome {
        let privilege = session
            .and_then(|id| self.sessions.get(id))
            .map_or(0, |s| s.privilege);
        let needed = match (req.netfn, req.cmd) {
            (NETFN_CHASSIS, 0x02 | 0x08 | 0x09) => PRIV_OPERATOR,
            (NETFN_CHASSIS, 0x01) | (NETFN_APP, 0x01 | 0x37 | 0x3D) => PRIV_USER,
            _ => 0,
        };
        if privilege < needed {
            let log = format!(
                "netfn=0x{:02x} cmd=0x{:02x} refused: privilege {}",
                req.netfn,
                req.cmd,
                priv_name(privilege)
            );
            return done(CC_INSUFFICIENT_PRIVILEGE, vec![], log);
        }
        let data = req.data;
        match (req.netfn, req.cmd, session) {
            (NETFN_APP, 0x01, _) => done(0, device_id(), "get-device-id".into()),
            (NETFN_APP, 0x37, _) => done(0, self.guid.to_vec(), "get-system-guid".into()),
            (NETFN_APP, 0x38, _) => auth_capabilities(data),
            (NETFN_APP, 0x54, _) => self.cipher_suites(data),
            (NETFN_APP, 0x3B, Some(id)) => self.set_privilege(id, data),
            (NETFN_APP, 0x3C, Some(id)) => self.close_session(id, data),
            (NETFN_APP, 0x3D, Some(id)) => self.session_info(id, data),
            (NETFN_CHASSIS, 0x01, _) => {
                let (data, log) = self.chassis.status();
                done(0, data, log)
            }
            (NETFN_CHASSIS, 0x02, _) => {
                let (cc, log) = self.chassis.control(data);
                done(cc, vec![], log)
            }
            (NETFN_CHASSIS, 0x08, _) => {
                let (cc, log) = self.chassis.set_boot(data);
                done(cc, vec![], log)
            }
            (NETFN_CHASSIS, 0x09, _) => {
                let (cc, data, log) = self.chassis.get_boot(data);
                done(cc, data, log)
            }
            (netfn, cmd, _) => done(
                CC_INVALID_COMMAND,
                vec![],
                format!("unknown netfn=0x{netfn:02x} cmd=0x{cmd:02x}"),
            ),
        }
    }

    /// Get Channel Cipher Suites (§22.15): records `C0h, suite, auth, 40h|integrity,
    /// 80h|confidentiality` (or, by algorithm, the distinct algorithm bytes), 16 bytes a page.
    fn cipher_suites(&self, data: &[u8]) -> Outcome {
        let [channel, payload_type, index] = data else {
            return done(
                CC_BAD_LENGTH,
                vec![],
                "get-channel-cipher-suites bad-length".into(),
            );
        };
        if !matches!(channel & 0x0F, CHANNEL | CHANNEL_CURRENT) || payload_type & 0x3F > 1 {
            return done(
                CC_INVALID_FIELD,
                vec![],
                "get-channel-cipher-suites bad channel or payload".into(),
            );
        }
        let mut records = Vec::new();
        for s in self.sessions.suites() {
            let algs = [s.auth, 0x40 | s.integrity, 0x80 | s.confidentiality];
            if index & 0x80 != 0 {
                records.extend_from_slice(&[0xC0, s.id]);
                records.extend_from_slice(&algs);
            } else {
                records.extend(
                    algs.iter()
                        .filter(|a| !records.contains(*a))
                        .collect::<Vec<_>>(),
                );
            }
        }
        let start = usize::from(index & 0x3F) * 16;
        let page = records.get(start..).unwrap_or_default();
        let mut out = vec![CHANNEL];
        out.extend_from_slice(&page[..page.len().min(16)]);
        done(
            0,
            out,
            format!("get-channel-cipher-suites index={}", index & 0x3F),
        )
    }

    /// Set Session Privilege Level (§22.18): 0 reads the current level; up to the session's
    /// maximum (80h for OEM, 81h above the maximum).
    fn set_privilege(&mut self, id: u32, data: &[u8]) -> Outcome {
        let Some(s) = self.sessions.get_mut(id) else {
            return done(
                CC_INVALID_FIELD,
                vec![],
                "set-session-privilege no session".into(),
            );
        };
        let [level] = data else {
            return done(
                CC_BAD_LENGTH,
                vec![],
                "set-session-privilege bad-length".into(),
            );
        };
        let level = level & 0x0F;
        let cc = match level {
            0 => 0,
            l if l > PRIV_ADMIN => 0x80,
            l if l > s.max_priv => 0x81,
            l => {
                s.privilege = l;
                0
            }
        };
        let log = format!(
            "set-session-privilege {} -> {}",
            priv_name(level),
            priv_name(s.privilege)
        );
        done(cc, if cc == 0 { vec![s.privilege] } else { vec![] }, log)
    }

    /// Close Session (§22.19): by session ID, or by handle when the ID is 0. Closing another
    /// session needs administrator privilege.
    fn close_session(&mut self, own: u32, data: &[u8]) -> Outcome {
        let target = match data {
            [a, b, c, d] | [a, b, c, d, _] if [*a, *b, *c, *d] != [0; 4] => {
                let id = u32::from_le_bytes([*a, *b, *c, *d]);
                self.sessions
                    .get(id)
                    .map(|s| s.id)
                    .ok_or((0x87, format!("id=0x{id:08x}")))
            }
            [0, 0, 0, 0, handle] => self
                .sessions
                .active()
                .iter()
                .find(|s| s.handle == *handle)
                .map(|s| s.id)
                .ok_or((0x88, format!("handle={handle}"))),
            _ => Err((CC_BAD_LENGTH, "bad-length".to_string())),
        };
        let caller = self.sessions.get(own).map_or(0, |s| s.privilege);
        match target {
            Err((cc, what)) => done(
                cc,
                vec![],
                format!("close-session {what} refused cc=0x{cc:02x}"),
            ),
            Ok(id) if id == own => Outcome {
                cc: 0,
                data: vec![],
                log: format!("close-session id=0x{id:08x}"),
                close_after: Some(id),
            },
            Ok(id) if caller < PRIV_ADMIN => done(
                CC_INSUFFICIENT_PRIVILEGE,
                vec![],
                format!("close-session id=0x{id:08x} refused: not administrator"),
            ),
            Ok(id) => {
                self.sessions.remove(id);
                done(
                    0,
                    vec![],
                    format!("close-session id=0x{id:08x} (another session)"),
                )
            }
        }
    }

    /// Get Session Info (§22.20): index 0 = this session, N = the Nth active one, FEh = by
    /// handle, FFh = by session ID. An index with no session gets only the three counts.
    fn session_info(&self, own: u32, data: &[u8]) -> Outcome {
        let active = self.sessions.active();
        let found = match data {
            [0] => active.iter().find(|s| s.id == own),
            [n @ 1..=0x3F] => active.get(usize::from(*n) - 1),
            [0xFE, handle] => match active.iter().find(|s| s.handle == *handle) {
                Some(s) => Some(s),
                None => {
                    return done(
                        CC_INVALID_FIELD,
                        vec![],
                        format!("get-session-info handle={handle} unknown"),
                    );
                }
            },
            [0xFF, a, b, c, d] => match active
                .iter()
                .find(|s| s.id == u32::from_le_bytes([*a, *b, *c, *d]))
            {
                Some(s) => Some(s),
                None => {
                    return done(
                        CC_INVALID_FIELD,
                        vec![],
                        "get-session-info id unknown".into(),
                    );
                }
            },
            _ => {
                return done(
                    CC_INVALID_FIELD,
                    vec![],
                    "get-session-info bad request".into(),
                );
            }
        };
        let handle = found.map_or(0, |s| s.handle);
        let mut out = vec![
            handle,
            crate::session::MAX_SESSIONS as u8,
            active.len() as u8,
        ];
        if let Some(s) = found {
            let ip = match s.peer.ip() {
                IpAddr::V4(v4) => v4.octets(),
                IpAddr::V6(_) => [0; 4],
            };
            out.extend_from_slice(&[USER_ID, s.privilege, 0x10 | CHANNEL]);
            out.extend_from_slice(&ip);
            out.extend_from_slice(&[0; 6]); // console MAC: not known over a UDP socket
            out.extend_from_slice(&s.peer.port().to_le_bytes());
        }
        done(
            0,
            out,
            format!(
                "get-session-info index=0x{:02x} active={}",
                data.first().copied().unwrap_or_default(),
                active.len()
            ),
        )
    }
}

/// Get Device ID (§20.1): device 20h rev 1, firmware 1.02, IPMI 2.0, a chassis device,
/// manufacturer 0 (none), product 0x0011.
fn device_id() -> Vec<u8> {
    vec![
        0x20, 0x01, 0x01, 0x02, 0x02, 0x80, 0x00, 0x00, 0x00, 0x11, 0x00,
    ]
}

/// Get Channel Authentication Capabilities (§22.13), with the v2.0 extended data when asked:
/// no IPMI v1.5 auth types, non-null user names, IPMI v2.0 (RMCP+) connections only.
fn auth_capabilities(data: &[u8]) -> Outcome {
    let [channel, privilege] = data else {
        return done(
            CC_BAD_LENGTH,
            vec![],
            "get-channel-auth-cap bad-length".into(),
        );
    };
    if !matches!(channel & 0x0F, CHANNEL | CHANNEL_CURRENT)
        || !(1..=PRIV_ADMIN).contains(&(privilege & 0x0F))
    {
        return done(
            CC_INVALID_FIELD,
            vec![],
            "get-channel-auth-cap bad channel or privilege".into(),
        );
    }
    let v2 = channel & 0x80 != 0;
    let out = vec![
        CHANNEL,
        if v2 { 0x80 } else { 0 },
        0x04,
        if v2 { 0x02 } else { 0 },
        0,
        0,
        0,
        0,
    ];
    done(0, out, format!("get-channel-auth-cap v2={v2}"))
}
