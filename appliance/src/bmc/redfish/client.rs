//! The Redfish client's state machine: one [`Operation`] at a time, as a series of HTTP
//! exchanges on a connection the adapter owns.
//!
//! Each step is planned from what is known so far ([`Client::plan`]): the service root, a
//! session, the Systems collection and the ComputerSystem are fetched once and cached; then
//! the operation acts (Reset or the boot PATCH) and reads the power state back, polling after
//! a Reset until the state settles. A 401 on a session token logs in again once per
//! operation; a BMC without a SessionService is used with Basic auth.

use heapless::String;

use super::http::{Auth, Method, PATH_CAP, Request, Response, TOKEN_CAP};
use super::json::{self, Body};
use super::reset::{self, ResetType, ResetTypes};
use crate::bmc::{Credentials, Error, Operation, PowerState};

/// Room for one request (head and body).
pub const TX_CAP: usize = 1024;
/// Largest response body accepted; a ComputerSystem is 2-12 KiB on the BMCs seen.
pub const BODY_CAP: usize = 16 * 1024;
/// Redirects followed per request.
const MAX_REDIRECTS: u8 = 3;

type Path = String<PATH_CAP>;

/// How to reach one BMC.
#[derive(Clone, Debug)]
pub struct Config {
    /// The `Host` header: the BMC's host and port as in its URL.
    pub host: String<64>,
    /// The ComputerSystem's id (last path segment); `None` takes the first member.
    pub system: Option<String<64>>,
    /// Log in to the SessionService when the BMC has one (else Basic auth throughout).
    pub sessions: bool,
    /// How long one request may take, from its first byte to the end of the answer.
    pub request_timeout_ms: u64,
    /// After a Reset: how often the power state is read, and for how long at most.
    pub settle_interval_ms: u64,
    pub settle_timeout_ms: u64,
}

impl Config {
    /// Defaults: sessions on, 10 s per request, power read every second for up to 30 s.
    pub fn new(host: &str) -> Result<Config, Error> {
        Ok(Config {
            host: String::try_from(host).map_err(|_| Error::Busy)?,
            system: None,
            sessions: true,
            request_timeout_ms: 10_000,
            settle_interval_ms: 1_000,
            settle_timeout_ms: 30_000,
        })
    }
}

/// What an exchange is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Root,
    Login,
    Systems,
    System,
    Reset(ResetType),
    Patch { with_mode: bool },
    Logout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    /// Waiting to read the power state again.
    Wait(u64),
    /// A request is out (or being written); the deadline of its answer.
    Exchange(u64),
}

/// The connection as the client sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conn {
    /// None usable: the adapter must (re)connect before the next request.
    Closed,
    /// Opened for the current request.
    Fresh,
    /// Has carried a whole exchange; the server may close it just as we reuse it.
    Reused,
}

/// What discovery learned; kept across operations.
#[derive(Debug, Default)]
struct Service {
    root_read: bool,
    /// The Sessions collection; `None`: Basic auth.
    sessions: Option<Path>,
    systems: Option<Path>,
    system: Option<Path>,
    /// Set once the ComputerSystem was read: its reset target and allowed types.
    reset: Option<(Option<Path>, Option<ResetTypes>)>,
}

#[derive(Debug)]
struct OpState {
    op: Operation,
    /// The Reset or PATCH was accepted (a Status has nothing to do).
    acted: bool,
    /// The power state read since acting, and whether it had settled.
    read: Option<(PowerState, bool)>,
    relogged: bool,
    patch_with_mode: bool,
    settle_until: u64,
}

enum Plan {
    Send(Step),
    Wait(u64),
    Finish(Result<PowerState, Error>),
    Idle,
}

/// A Redfish client for one BMC. The adapter owns the connection (TCP or TLS):
/// - when [`Client::needs_connection`], it drops any socket it has, connects and calls
///   [`Client::connected`] (or [`Client::transport_failed`]);
/// - it writes what [`Client::poll_transmit`] yields and feeds what it reads to
///   [`Client::receive`]; an orderly close by the BMC goes to [`Client::peer_closed`] (a
///   request lost to a keep-alive close is sent once more on a new connection);
/// - it calls [`Client::tick`] at [`Client::poll_at`] and collects [`Client::poll_result`].
pub struct Client {
    config: Config,
    creds: Credentials,
    service: Service,
    token: Option<String<TOKEN_CAP>>,
    session: Option<Path>,
    op: Option<OpState>,
    result: Option<Result<PowerState, Error>>,
    closing: bool,
    phase: Phase,
    conn: Conn,
    step: Step,
    method: Method,
    path: Path,
    body: Option<Body>,
    redirects: u8,
    resent: bool,
    tx: [u8; TX_CAP],
    tx_len: usize,
    tx_sent: usize,
    response: Response,
    rx: [u8; BODY_CAP],
}

impl Client {
    pub fn new(config: Config, creds: Credentials) -> Client {
        Client {
            config,
            creds,
            service: Service::default(),
            token: None,
            session: None,
            op: None,
            result: None,
            closing: false,
            phase: Phase::Idle,
            conn: Conn::Closed,
            step: Step::Root,
            method: Method::Get,
            path: Path::new(),
            body: None,
            redirects: 0,
            resent: false,
            tx: [0; TX_CAP],
            tx_len: 0,
            tx_sent: 0,
            response: Response::new(),
            rx: [0; BODY_CAP],
        }
    }

    /// Begins `op`. [`Error::Busy`] while another operation or the close is under way.
    pub fn start(&mut self, op: Operation, now_ms: u64) -> Result<(), Error> {
        if self.op.is_some() || self.closing {
            return Err(Error::Busy);
        }
        self.result = None;
        self.op = Some(OpState {
            op,
            acted: op == Operation::Status,
            read: None,
            relogged: false,
            patch_with_mode: true,
            settle_until: 0,
        });
        self.advance(now_ms);
        Ok(())
    }

    /// The finished operation: the power state the BMC reports afterwards, or why it failed.
    pub fn poll_result(&mut self) -> Option<Result<PowerState, Error>> {
        self.result.take()
    }

    /// A request waits and no connection is usable: drop the old one, open a new one.
    pub fn needs_connection(&self) -> bool {
        self.conn == Conn::Closed && matches!(self.phase, Phase::Exchange(_))
    }

    /// The adapter opened the connection asked for.
    pub fn connected(&mut self, _now_ms: u64) {
        self.conn = Conn::Fresh;
    }

    /// Bytes to write to the connection, copied into `buf`.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.conn == Conn::Closed || !matches!(self.phase, Phase::Exchange(_)) {
            return None;
        }
        let pending = self.tx.get(self.tx_sent..self.tx_len)?;
        let n = pending.len().min(buf.len());
        if n == 0 {
            return None;
        }
        buf.get_mut(..n)?.copy_from_slice(pending.get(..n)?);
        self.tx_sent += n;
        Some(n)
    }

    /// Bytes read from the connection.
    pub fn receive(&mut self, now_ms: u64, bytes: &[u8]) {
        if self.conn == Conn::Closed || !matches!(self.phase, Phase::Exchange(_)) {
            return; // Stale bytes of a connection given up on.
        }
        match self.response.feed(bytes, &mut self.rx) {
            Err(e) => {
                self.conn = Conn::Closed;
                self.fail(e, now_ms);
            }
            Ok(used) if self.response.is_done() => {
                // Bytes past the answer would be misread as the next one's: start afresh.
                self.conn = match self.response.head().close || used < bytes.len() {
                    true => Conn::Closed,
                    false => Conn::Reused,
                };
                self.on_response(now_ms);
            }
            Ok(_) => {}
        }
    }

    /// The BMC closed the connection (end of stream).
    pub fn peer_closed(&mut self, now_ms: u64) {
        let was = core::mem::replace(&mut self.conn, Conn::Closed);
        if was == Conn::Closed || !matches!(self.phase, Phase::Exchange(_)) {
            return;
        }
        if self.response.started() {
            match self.response.eof() {
                Ok(()) => self.on_response(now_ms),
                Err(e) => self.fail(e, now_ms),
            }
        } else if was == Conn::Reused && !self.resent {
            // The server dropped an idle keep-alive connection as we reused it.
            self.resent = true;
            self.tx_sent = 0;
            self.response = Response::new();
        } else {
            self.fail(Error::Timeout, now_ms);
        }
    }

    /// The connection could not be opened or broke (refused, reset, TLS failure): the
    /// exchange in flight fails with `error`.
    pub fn transport_failed(&mut self, now_ms: u64, error: Error) {
        self.conn = Conn::Closed;
        if matches!(self.phase, Phase::Exchange(_)) {
            self.fail(error, now_ms);
        }
    }

    /// When [`Client::tick`] must run: a request's deadline or the next power read.
    pub fn poll_at(&self) -> Option<u64> {
        match self.phase {
            Phase::Idle => None,
            Phase::Wait(t) | Phase::Exchange(t) => Some(t),
        }
    }

    pub fn tick(&mut self, now_ms: u64) {
        match self.phase {
            Phase::Exchange(deadline) if now_ms >= deadline => {
                self.conn = Conn::Closed;
                self.fail(Error::Timeout, now_ms);
            }
            Phase::Wait(t) if now_ms >= t => {
                if let Some(op) = self.op.as_mut() {
                    op.read = None; // Read it again.
                }
                self.phase = Phase::Idle;
                self.advance(now_ms);
            }
            _ => {}
        }
    }

    /// Ends the session (DELETE of the session resource) and abandons any operation in
    /// flight, whose result is not reported.
    pub fn close(&mut self, now_ms: u64) {
        self.op = None;
        self.closing = true;
        if self.phase != Phase::Idle && self.step != Step::Logout {
            if matches!(self.phase, Phase::Exchange(_)) {
                self.conn = Conn::Closed; // Its answer would arrive in the way.
            }
            self.phase = Phase::Idle;
        }
        if self.phase == Phase::Idle {
            self.advance(now_ms);
        }
    }

    /// True once no session is open and nothing is under way.
    pub fn is_closed(&self) -> bool {
        self.token.is_none() && self.op.is_none() && self.phase == Phase::Idle
    }

    /// The next step from what is known.
    fn plan(&mut self, now_ms: u64) -> Plan {
        if self.closing {
            return match (&self.token, &self.session) {
                (Some(_), Some(_)) => Plan::Send(Step::Logout),
                _ => Plan::Idle,
            };
        }
        let Some(op) = &self.op else {
            return Plan::Idle;
        };
        let s = &self.service;
        if !s.root_read {
            return Plan::Send(Step::Root);
        }
        if self.config.sessions && s.sessions.is_some() && self.token.is_none() {
            return Plan::Send(Step::Login);
        }
        let Some((reset_target, allowed)) = &s.reset else {
            return match s.system {
                Some(_) => Plan::Send(Step::System),
                None => Plan::Send(Step::Systems),
            };
        };
        if !op.acted {
            return match op.op {
                Operation::Power(action) => match (reset_target, reset::choose(action, *allowed)) {
                    (Some(_), Some(t)) => Plan::Send(Step::Reset(t)),
                    _ => Plan::Finish(Err(Error::Unsupported)),
                },
                Operation::BootPxe(_) => Plan::Send(Step::Patch {
                    with_mode: op.patch_with_mode,
                }),
                Operation::Status => Plan::Send(Step::System),
            };
        }
        match (op.op, op.read) {
            (_, None) => Plan::Send(Step::System),
            (Operation::Power(action), Some((state, settled))) => {
                if settled && state == reset::expected_state(action) {
                    Plan::Finish(Ok(state))
                } else if now_ms >= op.settle_until {
                    Plan::Finish(Err(Error::Timeout))
                } else {
                    Plan::Wait(now_ms.saturating_add(self.config.settle_interval_ms))
                }
            }
            (_, Some((state, _))) => Plan::Finish(Ok(state)),
        }
    }

    fn advance(&mut self, now_ms: u64) {
        match self.plan(now_ms) {
            Plan::Send(step) => self.begin(step, now_ms),
            Plan::Wait(t) => self.phase = Phase::Wait(t),
            Plan::Finish(r) => self.finish(r, now_ms),
            Plan::Idle => {
                self.phase = Phase::Idle;
                self.closing = false;
            }
        }
    }

    fn finish(&mut self, r: Result<PowerState, Error>, now_ms: u64) {
        if self.op.take().is_some() {
            self.result = Some(r);
        }
        self.phase = Phase::Idle;
        self.advance(now_ms);
    }

    /// Ends the exchange in flight with `e`; a failed logout just forgets the session.
    fn fail(&mut self, e: Error, now_ms: u64) {
        if self.step == Step::Logout {
            self.forget_session();
            self.phase = Phase::Idle;
            self.advance(now_ms);
        } else {
            self.finish(Err(e), now_ms);
        }
    }

    fn forget_session(&mut self) {
        self.token = None;
        self.session = None;
    }

    /// Sends the request of `step`.
    fn begin(&mut self, step: Step, now_ms: u64) {
        let built = self.request_of(step);
        match built {
            Ok((method, path, body)) => {
                self.step = step;
                self.method = method;
                self.path = path;
                self.body = body;
                self.redirects = 0;
                self.phase = Phase::Exchange(now_ms.saturating_add(self.config.request_timeout_ms));
                if let Err(e) = self.encode() {
                    self.fail(e, now_ms);
                }
            }
            Err(e) => {
                self.step = step;
                self.fail(e, now_ms);
            }
        }
    }

    fn request_of(&self, step: Step) -> Result<(Method, Path, Option<Body>), Error> {
        let s = &self.service;
        let known = |p: &Option<Path>| p.clone().ok_or(Error::Malformed);
        Ok(match step {
            Step::Root => (
                Method::Get,
                Path::try_from("/redfish/v1/").map_err(|_| Error::Busy)?,
                None,
            ),
            Step::Login => {
                let body = json::login(&self.creds.user, &self.creds.password)?;
                (Method::Post, known(&s.sessions)?, Some(body))
            }
            Step::Systems => (Method::Get, known(&s.systems)?, None),
            Step::System => (Method::Get, known(&s.system)?, None),
            Step::Reset(t) => {
                let target = s.reset.as_ref().and_then(|(t, _)| t.clone());
                (
                    Method::Post,
                    target.ok_or(Error::Unsupported)?,
                    Some(json::reset(t)?),
                )
            }
            Step::Patch { with_mode } => {
                let Some(Operation::BootPxe(pxe)) = self.op.as_ref().map(|o| o.op) else {
                    return Err(Error::Busy);
                };
                (
                    Method::Patch,
                    known(&s.system)?,
                    Some(json::boot_pxe(pxe, with_mode)?),
                )
            }
            Step::Logout => (Method::Delete, known(&self.session)?, None),
        })
    }

    /// Encodes the current request into the transmit buffer, from its first byte.
    fn encode(&mut self) -> Result<(), Error> {
        let auth = match (self.step, &self.token) {
            (Step::Login, _) => Auth::None,
            (_, Some(token)) => Auth::Token(token),
            (_, None) => Auth::Basic {
                user: &self.creds.user,
                password: &self.creds.password,
            },
        };
        let request = Request {
            method: self.method,
            host: &self.config.host,
            path: &self.path,
            auth,
            body: self.body.as_deref(),
        };
        self.tx_len = request.encode(&mut self.tx)?;
        self.tx_sent = 0;
        self.resent = false;
        self.response = Response::new();
        Ok(())
    }
}

mod answer;
#[cfg(test)]
mod tests;
