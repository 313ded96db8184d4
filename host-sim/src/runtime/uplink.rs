//! The uplink to the provider over one smoltcp TCP socket: the appliance's own IP stack, as
//! on a board, so the tunnel leaves through the TAP like every other packet.
//!
//! Without a stored identity the port enrolls with the token (ALPN `rack-enroll/1`, trusting
//! the CA the token pins, see `enroll`), stores what it got (`state`), then dials the tunnel
//! (ALPN `rack-tunnel/1`, mTLS) and runs [`uplink::Session`] over it: hello, events from
//! the services (`report`), commands into the inventory (`commands`), pongs. The outbox is
//! persisted before anything in it is sent (`outbox_store`) and restored on start, so no
//! unacked event is lost in a restart; each queued event is logged with its number. Any failure
//! closes the connection and dials again after a backoff of 1 s doubling to 60 s; DHCP,
//! TFTP and HTTP run on meanwhile, as the loop never waits on the uplink.

mod commands;
mod outbox_store;
mod report;
mod state;

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use appliance::net::MacAddr;
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use uplink::enroll::{ALPN_ENROLL, ALPN_TUNNEL, EnrollmentToken};
use uplink::enroll_client::{Credentials, Exchange, FRAME_MAX, Step};
use uplink::frame::{self, HEADER, MAX_FRAME};
use uplink::{Action, Capabilities, FrameDecoder, Hello, Session, ToAppliance};
use uplink_tls::{ClientConfig, Identity as TlsIdentity, KeyPair, TlsClient};

pub use commands::Tables;
pub use report::Observation;

use commands::Applied;
use outbox_store::Saved;
use report::Reporter;
use state::{Identity, StateDir};

/// Events waiting for the provider's ack.
const OUTBOX: usize = 256;
/// From dialing to the end of enrollment or to the welcome.
const CONNECT_TIMEOUT_MS: u64 = 15_000;
/// Silence after which the tunnel is taken for dead: the provider pings every 15 s.
const IDLE_TIMEOUT_MS: u64 = 60_000;
const BACKOFF_MIN_MS: u64 = 1_000;
const BACKOFF_MAX_MS: u64 = 60_000;
const FIRST_LOCAL_PORT: u16 = 49_152;

/// Where the uplink comes from and what the appliance says about itself.
pub struct UplinkSettings {
    /// Used only while the state dir holds no identity.
    pub token: Option<EnrollmentToken>,
    pub capabilities: Capabilities,
    pub state_dir: PathBuf,
    /// The appliance's address and HTTP server, for its name and the URLs in boot events.
    pub ip: Ipv4Addr,
    pub http_port: u16,
    pub script_path: &'static str,
}

enum Purpose {
    Enroll(Box<Exchange>, KeyPair),
    Tunnel(Box<FrameDecoder>),
}

struct Conn {
    tls: TlsClient,
    purpose: Purpose,
    /// Plaintext `tls.write` has not taken yet.
    pending: Vec<u8>,
    /// The session's hello was queued (after the handshake).
    started: bool,
    deadline: u64,
}

pub struct UplinkPort {
    socket: SocketHandle,
    dir: StateDir,
    name: String,
    token: Option<EnrollmentToken>,
    identity: Option<Identity>,
    session: Option<Box<Session<OUTBOX>>>,
    capabilities: Capabilities,
    conn: Option<Conn>,
    retry_at: u64,
    backoff: u64,
    local_port: u16,
    reporter: Reporter,
    applied: Applied,
    /// What the outbox file holds.
    saved: Saved,
    /// Log lines for events queued since the outbox was last stored (written after it).
    queued: Vec<String>,
    /// This start's [`Hello::boot_id`].
    boot_id: u64,
}

impl UplinkPort {
    /// `None` when there is neither an identity in `state_dir` nor a token: no uplink.
    pub fn open(
        settings: UplinkSettings,
        sockets: &mut SocketSet<'static>,
        out: &mut dyn Write,
    ) -> io::Result<Option<UplinkPort>> {
        let dir = StateDir::new(&settings.state_dir);
        let identity = dir.load()?;
        match (&identity, &settings.token) {
            (None, None) => return Ok(None),
            (Some(id), Some(_)) => writeln!(
                out,
                "uplink enrolled already appliance={} (token not used)",
                id.appliance_id
            )?,
            _ => {}
        }
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        );
        socket.set_nagle_enabled(false);
        let mut port = UplinkPort {
            socket: sockets.add(socket),
            dir,
            name: format!("host-sim {}", settings.ip),
            token: settings.token,
            identity: None,
            session: None,
            capabilities: settings.capabilities,
            conn: None,
            retry_at: 0,
            backoff: BACKOFF_MIN_MS,
            local_port: first_local_port(),
            reporter: Reporter::new(settings.ip, settings.http_port, settings.script_path),
            applied: Applied::default(),
            saved: Saved::default(),
            queued: Vec::new(),
            boot_id: {
                let mut r = [0u8; 8];
                getrandom::fill(&mut r).map_err(io::Error::other)?;
                u64::from_le_bytes(r)
            },
        };
        if let Some(id) = identity {
            let restored = port.dir.load_outbox()?;
            if let Some((outbox, _)) = &restored {
                writeln!(out, "uplink outbox restored events={}", outbox.len())?;
            }
            port.start_session(id, 0, restored)?;
        }
        Ok(Some(port))
    }

    /// The join config the provider pushed (`/config`), once it has.
    pub fn join_config(&self) -> Option<&str> {
        (self.applied.0.config.as_ref()).map(|c| c.join_config.as_str())
    }

    /// When the port next needs a poll without traffic (milliseconds, smoltcp time).
    pub fn poll_at(&self) -> Option<u64> {
        Some(self.conn.as_ref().map_or(self.retry_at, |c| c.deadline))
    }

    /// Queues events for what the services did; `mac_of` finds a machine by its lease.
    pub fn report(
        &mut self,
        now: u64,
        observed: &mut Vec<Observation>,
        mac_of: &dyn Fn(Ipv4Addr) -> Option<MacAddr>,
    ) {
        for o in observed.drain(..) {
            if let Some(event) = self.reporter.event(o, now / 1000, mac_of) {
                self.queue(event);
            }
        }
    }

    /// Dials when due and moves bytes both ways.
    pub fn process(
        &mut self,
        now: u64,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        tables: &mut Tables<'_>,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        self.deliver(tables.power, out)?;
        let socket = sockets.get_mut::<tcp::Socket>(self.socket);
        if let Err(e) = self.save_outbox(out) {
            if self.conn.is_some() {
                self.fail(now, socket);
            }
            return writeln!(out, "uplink error: storing the outbox: {e}");
        }
        if self.conn.is_none() {
            if now >= self.retry_at
                && let Err(why) = self.dial(now, iface, socket)
            {
                self.fail(now, socket);
                writeln!(out, "uplink error: {why}")?;
            }
            return Ok(());
        }
        if let Err(why) = self.drive(now, socket, tables, out) {
            let what = match &self.session {
                None => "enrollment failed",
                Some(s) if s.is_up() => "lost",
                Some(_) => "connect failed",
            };
            self.fail(now, socket);
            let retry = self.retry_at.saturating_sub(now).div_ceil(1000);
            writeln!(out, "uplink {what}: {why} (retry in {retry}s)")?;
        } else if self.conn.is_none() {
            // Enrolled: that connection is done and the tunnel dials next.
            socket.abort();
        }
        Ok(())
    }

    /// `restored` is the outbox stored before a restart, with its numbered flag.
    fn start_session(
        &mut self,
        id: Identity,
        secs: u64,
        restored: Option<(uplink::Outbox<OUTBOX>, bool)>,
    ) -> io::Result<()> {
        let hello = Hello {
            protocol: 0,
            appliance_id: id
                .appliance_id
                .as_str()
                .try_into()
                .map_err(io::Error::other)?,
            firmware_version: env!("CARGO_PKG_VERSION").try_into().unwrap_or_default(),
            capabilities: self.capabilities,
            command_window: 0,
            boot_id: self.boot_id,
        };
        let filter = self.dir.load_filter()?;
        self.session = Some(Box::new(match restored {
            Some((outbox, numbered)) => Session::restore(hello, filter, outbox, numbered),
            None => Session::new(hello, filter),
        }));
        for event in self.reporter.all_seen(secs) {
            self.queue(event);
        }
        self.identity = Some(id);
        Ok(())
    }

    /// Opens the TCP connection and the TLS client for enrollment or the tunnel.
    fn dial(
        &mut self,
        now: u64,
        iface: &mut Interface,
        socket: &mut tcp::Socket,
    ) -> Result<(), String> {
        let (addr, ca_sha256) = match (&self.identity, &self.token) {
            (Some(id), _) => (id.addr.as_str(), id.ca_sha256),
            (None, Some(t)) => (t.addr.as_str(), t.ca_sha256),
            (None, None) => return Err("no identity and no token".into()),
        };
        let provider: SocketAddrV4 = addr
            .parse()
            .map_err(|_| format!("provider address {addr}: expected IPv4:PORT (no DNS here)"))?;
        let (ca_der, identity, alpn, purpose) = match &self.identity {
            Some(id) => (
                Some(id.ca.clone()),
                Some(TlsIdentity {
                    cert_chain: vec![id.certificate.clone()],
                    key: id.key.clone(),
                }),
                ALPN_TUNNEL,
                Purpose::Tunnel(Box::new(FrameDecoder::new())),
            ),
            None => {
                let key = KeyPair::generate(&state::OsEntropy).map_err(|_| "no randomness")?;
                (
                    None,
                    None,
                    ALPN_ENROLL,
                    Purpose::Enroll(Box::default(), key),
                )
            }
        };
        let tls = TlsClient::new(ClientConfig {
            ca_der,
            ca_pin: ca_sha256,
            alpn: vec![alpn.to_vec()],
            identity,
            server_name: provider.ip().to_string(),
            random: &state::RANDOM,
            time: state::clock(),
        })
        .map_err(|e| e.to_string())?;
        // A new local port each time, so no segment of an old connection is taken for ours.
        self.local_port = self.local_port.checked_add(1).unwrap_or(FIRST_LOCAL_PORT);
        socket
            .connect(iface.context(), provider, self.local_port)
            .map_err(|e| format!("connect {provider}: {e}"))?;
        self.conn = Some(Conn {
            tls,
            purpose,
            pending: Vec::new(),
            started: false,
            deadline: now + CONNECT_TIMEOUT_MS,
        });
        Ok(())
    }

    fn fail(&mut self, now: u64, socket: &mut tcp::Socket) {
        socket.abort();
        self.conn = None;
        if let Some(s) = self.session.as_mut() {
            s.disconnect();
        }
        self.retry_at = now + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX_MS);
    }

    /// One pass over an open connection; `Err` says why it must close.
    fn drive(
        &mut self,
        now: u64,
        socket: &mut tcp::Socket,
        tables: &mut Tables<'_>,
        out: &mut dyn Write,
    ) -> Result<(), String> {
        match socket.state() {
            State::Closed | State::TimeWait => return Err("connection refused or reset".into()),
            State::SynSent | State::SynReceived => {
                return self.conn.as_ref().map_or(Ok(()), |c| deadline(now, c));
            }
            _ => {}
        }
        let mut received = false;
        while let Some(conn) = self.conn.as_mut().filter(|_| socket.can_recv()) {
            let fed = socket
                .recv(|buf| match conn.tls.feed(buf) {
                    Ok(n) => (n, Ok(n)),
                    Err(e) => (0, Err(e)),
                })
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            received |= fed > 0;
            self.plaintext(now, tables, out)?;
            if fed == 0 {
                break;
            }
        }
        // The handshake may have completed without application data.
        self.plaintext(now, tables, out)?;
        // Results of the commands just run, and the renumbering of a first welcome.
        self.save_outbox(out)
            .map_err(|e| format!("storing the outbox: {e}"))?;
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        match (&conn.purpose, self.session.as_mut()) {
            (Purpose::Tunnel(_), Some(session)) => {
                if received && session.is_up() {
                    conn.deadline = now + IDLE_TIMEOUT_MS;
                }
                fill(conn, session)?;
            }
            _ => flush(conn)?,
        }
        while socket.can_send() {
            let sent = socket
                .send(|buf| {
                    let n = conn.tls.poll_transmit(buf);
                    (n, n)
                })
                .map_err(|e| e.to_string())?;
            if sent == 0 {
                break;
            }
        }
        if conn.tls.peer_closed() || (!socket.may_recv() && socket.recv_queue() == 0) {
            return Err("provider closed the connection".into());
        }
        deadline(now, conn)
    }

    /// Reads what TLS decrypted and acts on it.
    fn plaintext(
        &mut self,
        now: u64,
        tables: &mut Tables<'_>,
        out: &mut dyn Write,
    ) -> Result<(), String> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        if conn.tls.is_handshaking() {
            return Ok(());
        }
        if !conn.started {
            conn.started = true;
            if let Some(s) = self.session.as_mut() {
                s.connect();
            }
        }
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.tls.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(());
            }
            match &mut conn.purpose {
                Purpose::Enroll(exchange, key) => {
                    let Some(token) = &self.token else {
                        return Err("enrolling without a token".into());
                    };
                    let sign = |m: &[u8]| key.sign_fixed(m);
                    let who = Credentials {
                        secret: &token.secret,
                        public_key: &key.public_point(),
                        sign: &sign,
                        name: &self.name,
                    };
                    let mut frame = [0u8; FRAME_MAX];
                    let step = exchange
                        .receive(&buf[..n], &who, &mut frame)
                        .map_err(|e| e.to_string())?;
                    match step {
                        None => {}
                        Some(Step::Send(len)) => conn.pending.extend_from_slice(&frame[..len]),
                        Some(Step::Refused(why)) => {
                            return Err(format!("enrollment refused: {why}"));
                        }
                        Some(Step::Enrolled {
                            appliance_id,
                            certificate,
                            ..
                        }) => {
                            let (id, cert) =
                                (appliance_id.as_str().to_owned(), certificate.to_vec());
                            return self.enrolled(now, id, cert, out);
                        }
                    }
                }
                Purpose::Tunnel(decoder) => {
                    let Some(session) = self.session.as_mut() else {
                        return Err("tunnel without a session".into());
                    };
                    let mut input = &buf[..n];
                    while let Some(body) = decoder.decode(&mut input) {
                        let msg: ToAppliance = body
                            .and_then(frame::decode)
                            .map_err(|e| format!("frame: {e}"))?;
                        let action = session.handle(msg).map_err(|e| format!("{e:?}"))?;
                        match action {
                            Action::Nothing => {}
                            Action::Established { .. } => {
                                self.backoff = BACKOFF_MIN_MS;
                                conn.deadline = now + IDLE_TIMEOUT_MS;
                                writeln!(out, "uplink connected").map_err(|e| e.to_string())?;
                            }
                            Action::Execute { id, command } => {
                                self.dir
                                    .store_filter(&session.command_filter())
                                    .map_err(|e| format!("storing the command filter: {e}"))?;
                                let what = format!("{command:?}");
                                let outcome = self.applied.run(id, command, tables, now);
                                let shown = (outcome.as_ref())
                                    .map_or_else(|| "running".into(), |o| format!("{o:?}"));
                                writeln!(out, "uplink command id={id} {} -> {shown}", short(&what))
                                    .map_err(|e| e.to_string())?;
                                // Running: answered later, through `commands::deliver`.
                                let Some(outcome) = outcome else { continue };
                                let seq = session
                                    .complete(id, outcome)
                                    .map_err(|e| format!("{e:?}"))?;
                                let line = format!("uplink event seq={seq} CommandResult");
                                self.queued.push(line);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Stores the new identity and dials the tunnel at once.
    fn enrolled(
        &mut self,
        now: u64,
        appliance_id: String,
        certificate: Vec<u8>,
        out: &mut dyn Write,
    ) -> Result<(), String> {
        let (Some(conn), Some(token)) = (self.conn.take(), self.token.take()) else {
            return Err("enrolled without a connection".into());
        };
        let Purpose::Enroll(_, key) = conn.purpose else {
            return Err("enrolled on the tunnel".into());
        };
        let ca = conn.tls.server_ca().ok_or("no CA presented")?.to_vec();
        let id = Identity {
            appliance_id,
            addr: token.addr.as_str().to_owned(),
            ca_sha256: token.ca_sha256,
            key,
            certificate,
            ca,
        };
        // An outbox left by an earlier identity is not this appliance's.
        (self.dir.remove_outbox())
            .and_then(|()| self.dir.store(&id))
            .map_err(|e| format!("storing the identity: {e}"))?;
        writeln!(out, "uplink enrolled appliance={}", id.appliance_id)
            .map_err(|e| e.to_string())?;
        self.start_session(id, now / 1000, None)
            .map_err(|e| e.to_string())?;
        self.retry_at = now;
        self.backoff = BACKOFF_MIN_MS;
        Ok(())
    }
}

/// Takes frames from the session while TLS takes the bytes.
fn fill(conn: &mut Conn, session: &mut Session<OUTBOX>) -> Result<(), String> {
    let mut frame = [0u8; HEADER + MAX_FRAME];
    loop {
        flush(conn)?;
        if !conn.pending.is_empty() {
            return Ok(());
        }
        match session
            .poll_transmit(&mut frame)
            .map_err(|e| format!("{e:?}"))?
        {
            Some(n) => conn.pending.extend_from_slice(&frame[..n]),
            None => return Ok(()),
        }
    }
}

/// Hands pending plaintext to TLS, as much as it takes.
fn flush(conn: &mut Conn) -> Result<(), String> {
    while !conn.pending.is_empty() {
        let n = conn.tls.write(&conn.pending).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        conn.pending.drain(..n);
    }
    Ok(())
}

fn deadline(now: u64, conn: &Conn) -> Result<(), String> {
    if now < conn.deadline {
        return Ok(());
    }
    Err(
        if conn.started && matches!(conn.purpose, Purpose::Tunnel(_)) {
            "no word from the provider".into()
        } else {
            "timed out connecting".into()
        },
    )
}

/// A random start, so a restarted appliance does not reuse the 4-tuple of a tunnel the
/// provider still holds.
fn first_local_port() -> u16 {
    let mut r = [0u8; 2];
    let offset = getrandom::fill(&mut r).map_or(0, |()| u16::from_le_bytes(r) % 8192);
    FIRST_LOCAL_PORT + offset
}

/// A command's name for the log, without its fields (which may hold credentials).
fn short(debug: &str) -> &str {
    debug.split([' ', '(', '{']).next().unwrap_or(debug)
}
