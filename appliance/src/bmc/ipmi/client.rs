//! The client's state machine: session establishment, one operation at a time over a
//! reused session, retransmission, and Close Session.

use rand_core::CryptoRng;

use super::cipher::{PREFERENCE, Suite};
use super::command::{self, Command, DeviceId};
use super::rakp::{Handshake, status};
use super::session::{Drop, Session};
use super::wire::{self, Packet, Request, Response, Writer, payload};
use crate::bmc::{Credentials, Error, Operation, PowerAction, PowerState};

/// Session privilege levels (§22.13); chassis control needs Operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    User = 2,
    Operator = 3,
    Administrator = 4,
}

/// How the client talks to one BMC.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Use exactly this suite instead of the best one the BMC lists.
    pub cipher_suite: Option<u8>,
    /// Also accept suites without authentication, integrity or encryption (0, 1, 2, 15, 16).
    pub allow_weak: bool,
    pub privilege: Privilege,
    /// Wait for an answer before retransmitting.
    pub timeout_ms: u32,
    /// Transmissions of one request before `Error::Timeout`.
    pub tries: u8,
    /// A session idle this long is considered expired by the BMC and not reused (BMCs
    /// drop idle sessions after about a minute).
    pub session_idle_ms: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            cipher_suite: None,
            allow_weak: false,
            privilege: Privilege::Administrator,
            timeout_ms: 1000,
            tries: 3,
            session_idle_ms: 20_000,
        }
    }
}

/// Counters of what the client dropped or repeated, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams that did not parse or were not for us.
    pub malformed: u32,
    /// Datagrams whose AuthCode did not verify.
    pub integrity: u32,
    /// Datagrams outside the replay window or seen before.
    pub replayed: u32,
    /// Well-formed answers to nothing in flight (late, duplicate, wrong sequence).
    pub unexpected: u32,
    pub retransmits: u32,
    pub sessions_opened: u32,
    pub sessions_closed: u32,
}

/// One request/response exchange of the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    AuthCaps,
    CipherSuites(u8),
    OpenSession,
    Rakp1,
    Rakp3,
    /// RAKP3 with an error status after a wrong RAKP2 HMAC: sent once, not answered.
    Rakp3Refuse,
    SetPrivilege,
    DeviceId,
    SystemGuid,
    /// Boot options set-in-progress (the lock), boot flags, set-complete.
    BootLock,
    BootFlags,
    BootUnlock,
    Control(PowerAction),
    Status,
    Close,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    step: Step,
    /// rqSeq for IPMI messages, message tag for RMCP+ ones; the same for retransmissions.
    seq: u8,
    tries: u8,
    /// `None`: not sent yet.
    deadline: Option<u64>,
}

/// Room for the Get Channel Cipher Suites list (16 bytes per answer).
const OFFERED_MAX: usize = 128;

/// The sans-IO IPMI v2.0 client of one BMC. The adapter moves datagrams between it and a
/// UDP socket: `poll_transmit` until `None` after every call, `receive` every datagram,
/// `poll_transmit` again at `poll_at`, and `poll_result` for the finished operation.
pub struct Client {
    config: Config,
    credentials: Credentials,
    session: Option<Session>,
    last_used_ms: u64,
    handshake: Option<Handshake>,
    offered: heapless::Vec<u8, OFFERED_MAX>,
    candidates: heapless::Vec<u8, 8>,
    boot_locked: bool,
    op: Option<Operation>,
    pending: Option<Pending>,
    result: Option<Result<PowerState, Error>>,
    close_requested: bool,
    rq_seq: u8,
    device: Option<DeviceId>,
    guid: Option<[u8; 16]>,
    stats: Stats,
}

impl Client {
    pub fn new(config: Config, credentials: Credentials) -> Client {
        Client {
            config,
            credentials,
            session: None,
            last_used_ms: 0,
            handshake: None,
            offered: heapless::Vec::new(),
            candidates: heapless::Vec::new(),
            boot_locked: false,
            op: None,
            pending: None,
            result: None,
            close_requested: false,
            rq_seq: 0,
            device: None,
            guid: None,
            stats: Stats::default(),
        }
    }

    /// Begins `op`, opening a session first unless one is open. `Error::Busy` while another
    /// operation or the Close Session is in flight.
    pub fn start(&mut self, op: Operation, now_ms: u64) -> Result<(), Error> {
        if self.op.is_some() || self.pending.is_some() {
            return Err(Error::Busy);
        }
        let idle = now_ms.saturating_sub(self.last_used_ms);
        if self.session.is_some() && idle > u64::from(self.config.session_idle_ms) {
            // The BMC has most likely expired it; it times out there on its own.
            self.session = None;
        }
        self.close_requested = false;
        self.result = None;
        self.op = Some(op);
        let step = if self.session.is_some() {
            first_step(op)
        } else {
            Step::AuthCaps
        };
        self.begin(step);
        Ok(())
    }

    /// Ends the session once nothing is in flight (Close Session, retried like any request).
    pub fn close(&mut self, _now_ms: u64) {
        if self.op.is_some() {
            self.close_requested = true;
        } else if self.pending.is_none() && self.session.is_some() {
            self.begin(Step::Close);
        }
    }

    /// No session open and nothing in flight.
    pub fn is_closed(&self) -> bool {
        self.session.is_none() && self.pending.is_none() && self.op.is_none()
    }

    /// The finished operation: the power state read back, or why it failed.
    pub fn poll_result(&mut self) -> Option<Result<PowerState, Error>> {
        self.result.take()
    }

    /// When `poll_transmit` has something to do (a time in the past means now).
    pub fn poll_at(&self) -> Option<u64> {
        self.pending.map(|p| p.deadline.unwrap_or(0))
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Get Device ID of the BMC, read when the session opened.
    pub fn device_id(&self) -> Option<DeviceId> {
        self.device
    }

    /// The system GUID (SMBIOS UUID bytes as IPMI sends them, least significant first),
    /// read when the session opened: ties the BMC to the machine DHCP sees.
    pub fn system_guid(&self) -> Option<[u8; 16]> {
        self.guid
    }

    /// The suite of the open session.
    pub fn cipher_suite(&self) -> Option<u8> {
        self.session.as_ref().map(|s| s.suite.id)
    }

    /// The next datagram to send (a new request or a retransmission due at `now_ms`), or
    /// `None`. Randomness (session id, Rm, IVs) comes from `rng`. A request that has used
    /// up its tries ends the operation with `Error::Timeout`.
    pub fn poll_transmit(
        &mut self,
        now_ms: u64,
        rng: &mut impl CryptoRng,
        out: &mut [u8],
    ) -> Option<usize> {
        let p = self.pending?;
        if let Some(deadline) = p.deadline {
            if now_ms < deadline {
                return None;
            }
            if p.tries >= self.config.tries {
                self.timed_out(p.step);
                return None;
            }
            self.stats.retransmits = self.stats.retransmits.saturating_add(1);
        }
        match self.encode(p, rng, out) {
            Ok(n) if p.step == Step::Rakp3Refuse => {
                self.fail(Error::Auth);
                Some(n)
            }
            Ok(n) => {
                self.pending = Some(Pending {
                    tries: p.tries.saturating_add(1),
                    deadline: Some(now_ms.saturating_add(u64::from(self.config.timeout_ms))),
                    ..p
                });
                Some(n)
            }
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    /// Takes a datagram from the BMC. Anything that is not the awaited answer is counted
    /// and dropped without changing state.
    pub fn receive(&mut self, now_ms: u64, datagram: &[u8]) {
        let Some(p) = self.pending.filter(|p| p.deadline.is_some()) else {
            self.stats.unexpected = self.stats.unexpected.saturating_add(1);
            return;
        };
        let outcome = match p.step {
            Step::AuthCaps | Step::CipherSuites(_) => self.receive_sessionless(p, datagram),
            Step::OpenSession | Step::Rakp1 | Step::Rakp3 | Step::Rakp3Refuse => {
                self.receive_rakp(p, datagram)
            }
            _ => self.receive_in_session(p, datagram),
        };
        match outcome {
            Err(drop) => self.count(drop),
            Ok(()) => self.last_used_ms = now_ms,
        }
    }

    fn count(&mut self, drop: Drop) {
        let c = match drop {
            Drop::Malformed => &mut self.stats.malformed,
            Drop::Integrity => &mut self.stats.integrity,
            Drop::Replay => &mut self.stats.replayed,
        };
        *c = c.saturating_add(1);
    }

    fn begin(&mut self, step: Step) {
        self.rq_seq = self.rq_seq.wrapping_add(1) & 0x3F;
        self.pending = Some(Pending {
            step,
            seq: self.rq_seq,
            tries: 0,
            deadline: None,
        });
    }

    fn encode(
        &mut self,
        p: Pending,
        rng: &mut impl CryptoRng,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let mut tmp = [0u8; 64];
        let mut w = Writer::new(&mut tmp);
        let payload_type = match p.step {
            Step::AuthCaps => {
                request(
                    p,
                    &Command::channel_auth_capabilities(self.config.privilege as u8),
                )
                .encode(&mut w)?;
                return wire::encode_v15_plain(out, w.written()?);
            }
            Step::CipherSuites(index) => {
                request(p, &Command::channel_cipher_suites(index)).encode(&mut w)?;
                // Outside a session some BMCs (ipmi_sim) answer this only in v1.5 format,
                // others only in v2.0: alternate between the two on retransmission.
                if p.tries.is_multiple_of(2) {
                    return wire::encode_v15_plain(out, w.written()?);
                }
                payload::IPMI
            }
            Step::OpenSession => {
                if p.tries == 0 {
                    self.handshake = Some(self.new_handshake(rng)?);
                }
                self.handshake()?.open_session(p.seq, &mut w)?;
                payload::OPEN_SESSION_REQUEST
            }
            Step::Rakp1 => {
                self.handshake()?.rakp1(p.seq, &mut w)?;
                payload::RAKP1
            }
            Step::Rakp3 | Step::Rakp3Refuse => {
                let status = match p.step {
                    Step::Rakp3 => 0,
                    _ => status::INVALID_INTEGRITY_CHECK,
                };
                self.handshake()?.rakp3(p.seq, status, &mut w)?;
                payload::RAKP3
            }
            step => {
                let cmd = self.command(step)?;
                let session = self.session.as_mut().ok_or(Error::Malformed)?;
                return session.seal(out, rng, |w| request(p, &cmd).encode(w));
            }
        };
        wire::encode_v2_plain(out, payload_type, w.written()?)
    }

    fn new_handshake(&self, rng: &mut impl CryptoRng) -> Result<Handshake, Error> {
        let id = *self.candidates.first().ok_or(Error::NoCommonCipher)?;
        let suite = Suite::from_id(id).ok_or(Error::NoCommonCipher)?;
        // A console session id of 0 is reserved.
        let console_id = rng.next_u32().max(1);
        let mut rm = [0u8; 16];
        rng.fill_bytes(&mut rm);
        let c = &self.credentials;
        Handshake::new(
            suite,
            console_id,
            rm,
            self.config.privilege as u8,
            &c.user,
            &c.password,
        )
        .ok_or(Error::Auth)
    }

    fn handshake(&self) -> Result<&Handshake, Error> {
        self.handshake.as_ref().ok_or(Error::Malformed)
    }

    fn command(&self, step: Step) -> Result<Command, Error> {
        Ok(match step {
            Step::SetPrivilege => Command::set_session_privilege(self.config.privilege as u8),
            Step::DeviceId => Command::device_id(),
            Step::SystemGuid => Command::system_guid(),
            Step::BootLock => Command::boot_set_in_progress(true),
            Step::BootUnlock => Command::boot_set_in_progress(false),
            Step::BootFlags => match self.op {
                Some(Operation::BootPxe(pxe)) => Command::boot_flags_pxe(pxe),
                _ => return Err(Error::Malformed),
            },
            Step::Control(action) => Command::chassis_control(action),
            Step::Status => Command::chassis_status(),
            Step::Close => {
                let session = self.session.as_ref().ok_or(Error::Malformed)?;
                Command::close_session(session.bmc_id)
            }
            _ => return Err(Error::Malformed),
        })
    }

    fn receive_sessionless(&mut self, p: Pending, datagram: &[u8]) -> Result<(), Drop> {
        let message = match (p.step, wire::parse(datagram)) {
            (
                Step::AuthCaps | Step::CipherSuites(_),
                Ok(Packet::V15 {
                    session_id: 0,
                    payload,
                }),
            ) => payload,
            (
                Step::CipherSuites(_),
                Ok(Packet::V2 {
                    header, payload, ..
                }),
            ) if header.session_id == 0
                && header.payload_type == payload::IPMI
                && !header.encrypted =>
            {
                payload
            }
            _ => return Err(Drop::Malformed),
        };
        let cmd = match p.step {
            Step::AuthCaps => Command::channel_auth_capabilities(0),
            Step::CipherSuites(i) => Command::channel_cipher_suites(i),
            _ => return Err(Drop::Malformed),
        };
        let r = matching_response(p, cmd, message)?;
        self.on_response(p.step, r.cc, r.data);
        Ok(())
    }

    fn receive_in_session(&mut self, p: Pending, datagram: &[u8]) -> Result<(), Drop> {
        let cmd = self.command(p.step).map_err(|_| Drop::Malformed)?;
        let session = self.session.as_mut().ok_or(Drop::Malformed)?;
        let mut scratch = [0u8; 128];
        let message = session.open(datagram, &mut scratch)?;
        let r = matching_response(p, cmd, message)?;
        self.on_response(p.step, r.cc, r.data);
        Ok(())
    }

    fn receive_rakp(&mut self, p: Pending, datagram: &[u8]) -> Result<(), Drop> {
        let Ok(Packet::V2 {
            header, payload, ..
        }) = wire::parse(datagram)
        else {
            return Err(Drop::Malformed);
        };
        let expected = match p.step {
            Step::OpenSession => payload::OPEN_SESSION_RESPONSE,
            Step::Rakp1 => payload::RAKP2,
            _ => payload::RAKP4,
        };
        if header.payload_type != expected || header.session_id != 0 || header.encrypted {
            return Err(Drop::Malformed);
        }
        let hs = self.handshake.as_mut().ok_or(Drop::Malformed)?;
        let outcome = match p.step {
            Step::OpenSession => hs.open_session_response(p.seq, payload).map(|()| None),
            Step::Rakp1 => hs.rakp2(p.seq, payload).map(|()| None),
            _ => hs.rakp4(p.seq, payload).map(Some),
        };
        match outcome {
            // Not an answer to this message (tag, session id or length wrong).
            Err(Error::Malformed) => return Err(Drop::Malformed),
            Err(Error::NoCommonCipher) if p.step == Step::OpenSession => self.next_candidate(),
            // Wrong password (or a forged RAKP2): tell the BMC, then fail with `Auth`.
            Err(Error::Auth) if p.step == Step::Rakp1 => self.begin(Step::Rakp3Refuse),
            Err(e) => self.fail(e),
            Ok(None) if p.step == Step::OpenSession => self.begin(Step::Rakp1),
            Ok(None) => self.begin(Step::Rakp3),
            Ok(Some(keys)) => {
                let hs = self.handshake.take().ok_or(Drop::Malformed)?;
                self.session = Some(Session::new(hs.suite, hs.console_id, hs.bmc_id, keys));
                self.stats.sessions_opened = self.stats.sessions_opened.saturating_add(1);
                self.begin(Step::SetPrivilege);
            }
        }
        Ok(())
    }

    /// Advances after the awaited answer of `step`, with completion code `cc`.
    fn on_response(&mut self, step: Step, cc: u8, data: &[u8]) {
        let ok = cc == 0;
        match step {
            Step::AuthCaps if !ok => self.fail(command::completion_error(cc)),
            Step::AuthCaps => match command::supports_v2(data) {
                Ok(true) => match self.config.cipher_suite {
                    Some(id) => self.choose(&[id]),
                    None => {
                        self.offered.clear();
                        self.begin(Step::CipherSuites(0));
                    }
                },
                Ok(false) => self.fail(Error::Unsupported),
                Err(e) => self.fail(e),
            },
            Step::CipherSuites(index) => {
                let Some(records) = data.get(1..).filter(|_| ok) else {
                    // A BMC without the command: propose the suites in order of preference.
                    return self.choose(&PREFERENCE);
                };
                let fits = self.offered.extend_from_slice(records).is_ok();
                match index.checked_add(1) {
                    Some(next) if records.len() == 16 && fits && next < 64 => {
                        self.begin(Step::CipherSuites(next))
                    }
                    _ => {
                        let offered: heapless::Vec<u8, 64> =
                            command::cipher_suite_ids(&self.offered).take(64).collect();
                        self.choose(&offered);
                    }
                }
            }
            Step::SetPrivilege if !ok => self.fail(command::completion_error(cc)),
            Step::SetPrivilege => self.begin(Step::DeviceId),
            // Informational: a BMC without them still gets power control.
            Step::DeviceId => {
                self.device = DeviceId::parse(data).ok().filter(|_| ok);
                self.begin(Step::SystemGuid);
            }
            Step::SystemGuid => {
                self.guid = data
                    .get(..16)
                    .and_then(|g| g.try_into().ok())
                    .filter(|_| ok);
                match self.op {
                    Some(op) => self.begin(first_step(op)),
                    None => self.pending = None,
                }
            }
            Step::BootLock => {
                // Not every BMC implements the lock (parameter 0): go on without it.
                self.boot_locked = ok;
                self.begin(Step::BootFlags);
            }
            Step::BootFlags if !ok => self.fail(command::completion_error(cc)),
            Step::BootFlags if self.boot_locked => self.begin(Step::BootUnlock),
            Step::BootFlags | Step::BootUnlock => self.begin(Step::Status),
            Step::Control(_) if !ok => self.fail(command::completion_error(cc)),
            Step::Control(_) => self.begin(Step::Status),
            Step::Status if !ok => self.fail(command::completion_error(cc)),
            Step::Status => match command::power_state(data) {
                Ok(state) => self.finish(Ok(state)),
                Err(e) => self.fail(e),
            },
            Step::Close => self.closed(),
            Step::OpenSession | Step::Rakp1 | Step::Rakp3 | Step::Rakp3Refuse => {
                self.fail(Error::Malformed)
            }
        }
    }

    /// Picks the suites to propose, best first, from those offered and allowed.
    fn choose(&mut self, offered: &[u8]) {
        self.candidates.clear();
        let allowed =
            |id: &u8| Suite::from_id(*id).is_some_and(|s| s.is_strong() || self.config.allow_weak);
        let forced = self.config.cipher_suite;
        for id in PREFERENCE
            .iter()
            .filter(|id| allowed(id) && offered.contains(id))
        {
            if forced.is_none_or(|f| f == *id) {
                let _ = self.candidates.push(*id);
            }
        }
        if self.candidates.is_empty() {
            self.fail(Error::NoCommonCipher);
        } else {
            self.begin(Step::OpenSession);
        }
    }

    /// The BMC refused the proposed suite: try the next one.
    fn next_candidate(&mut self) {
        if !self.candidates.is_empty() {
            self.candidates.remove(0);
        }
        if self.candidates.is_empty() {
            self.fail(Error::NoCommonCipher);
        } else {
            self.begin(Step::OpenSession);
        }
    }

    fn timed_out(&mut self, step: Step) {
        if step == Step::Close {
            // The BMC will expire it; nothing more to do.
            self.closed();
        } else if let Step::CipherSuites(_) = step {
            // No list (as with ipmitool, the command is optional): propose in order.
            self.choose(&PREFERENCE);
        } else {
            self.fail(Error::Timeout);
        }
    }

    fn closed(&mut self) {
        if self.session.take().is_some() {
            self.stats.sessions_closed = self.stats.sessions_closed.saturating_add(1);
        }
        self.pending = None;
    }

    fn finish(&mut self, result: Result<PowerState, Error>) {
        self.result = Some(result);
        self.op = None;
        self.pending = None;
        self.handshake = None;
        if self.close_requested && self.session.is_some() {
            self.close_requested = false;
            self.begin(Step::Close);
        }
    }

    /// Ends the operation with `e`. A session that stopped answering or could not be
    /// trusted is forgotten (no Close Session: it would go unanswered too).
    fn fail(&mut self, e: Error) {
        if matches!(e, Error::Timeout | Error::Auth | Error::Malformed) {
            self.session = None;
        }
        if self.op.is_some() {
            self.finish(Err(e));
        } else {
            self.pending = None;
        }
    }
}

fn first_step(op: Operation) -> Step {
    match op {
        Operation::Status => Step::Status,
        Operation::Power(action) => Step::Control(action),
        Operation::BootPxe(_) => Step::BootLock,
    }
}

fn request(p: Pending, cmd: &Command) -> Request<'_> {
    Request {
        netfn: cmd.netfn,
        cmd: cmd.cmd,
        rq_seq: p.seq,
        data: cmd.data(),
    }
}

/// The answer to the request in flight, or a drop (another command, sequence or netfn).
fn matching_response<'m>(
    p: Pending,
    cmd: Command,
    message: &'m [u8],
) -> Result<Response<'m>, Drop> {
    let r = Response::parse(message).map_err(|_| Drop::Malformed)?;
    if r.netfn != cmd.netfn | 1 || r.cmd != cmd.cmd || r.rq_seq != p.seq {
        return Err(Drop::Malformed);
    }
    Ok(r)
}
