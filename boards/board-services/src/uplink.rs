//! The provider uplink from a board: with the enrollment token from the config region the
//! board makes its P-256 key, enrolls (ALPN `rack-enroll/1`, trusting the CA the token pins,
//! proof over the provider's nonce) and keeps the identity in RAM (not yet in flash: a
//! reboot enrolls again, with a new token); then it dials `rack-tunnel/1` with mTLS and runs
//! [`uplink::Session`], reporting what DHCP saw ([`OBSERVED`]). TLS is `uplink-tls` on the
//! board's heap; the protocol pieces are the `uplink` crate's. Any failure drops the
//! connection and dials again after 1 s doubling to 60 s.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddrV4;

use appliance::provider::power::Report;
use defmt::Display2Format;
use embassy_net::Stack;
use embassy_net::tcp::TcpSocket;
use embassy_time::{Duration, Instant, Timer, with_timeout};
use uplink::enroll::{ALPN_ENROLL, ALPN_TUNNEL, EnrollmentToken};
use uplink::enroll_client::{Credentials, Exchange, FRAME_MAX, Step};
use uplink::frame::{HEADER, MAX_FRAME};
use uplink::{
    Action, Capabilities, CommandFilter, Event, FrameDecoder, Hello, Session, ToAppliance,
};
use uplink_tls::{
    ClientConfig, Identity as TlsIdentity, KeyPair, RandomSource, TimeProvider, TlsClient, UnixTime,
};

use crate::blob::BlobStore;
use crate::heap::TrackedHeap;
use crate::power::{COMMANDS, REPORTS};

mod identity;
mod outbox_store;
mod report;
use identity::Identity;
pub use identity::IdentityStore;
use outbox_store::{OutboxStore, Stored};
use report::Reporter;
pub use report::{OBSERVED, Observation};

/// Events waiting for the provider's ack (RAM: about 100 bytes each).
const OUTBOX: usize = 32;
/// From dialing to the end of enrollment or to the welcome.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Silence after which the tunnel is taken for dead: the provider pings every 15 s.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const BACKOFF_MIN_MS: u64 = 1_000;
const BACKOFF_MAX_MS: u64 = 60_000;
/// TCP buffers of the uplink socket: the provider's certificate flight is ~2 KiB.
const SOCKET_BUF: usize = 4096;

/// What the board gives the uplink.
pub struct Settings {
    pub token: EnrollmentToken,
    /// The board's entropy, in a `static` (rustls keeps it for the connection).
    pub random: &'static dyn RandomSource,
    /// Wall-clock Unix seconds at boot, for certificate validity.
    pub unix_at_boot: u64,
    /// The heap rustls runs on, for its high-water mark in the log.
    pub heap: &'static TrackedHeap,
    /// The stack's high-water mark in bytes, when the board can tell (logged with the heap's;
    /// 0 when it cannot).
    pub stack_high_water: Option<fn() -> usize>,
    /// The name the appliance enrolls under.
    pub name: &'static str,
    /// Where the identity survives a reboot; `None`: RAM only (a reboot needs a new token).
    pub store: Option<IdentityStore>,
    /// Where the unacknowledged events and the command filter survive a reboot (flash);
    /// `None`: RAM only (a reboot loses the waiting events).
    pub outbox: Option<&'static mut dyn BlobStore>,
}

/// Why a connection ended.
#[derive(defmt::Format)]
enum Fail {
    Tcp,
    Closed,
    Timeout,
    Tls(#[defmt(Debug2Format)] uplink_tls::Error),
    Protocol(&'static str),
    Refused,
}

impl From<uplink_tls::Error> for Fail {
    fn from(e: uplink_tls::Error) -> Self {
        Fail::Tls(e)
    }
}

/// Wall-clock time from the boot time and embassy-time.
#[derive(Debug)]
struct BootClock(u64);

impl TimeProvider for BootClock {
    fn current_time(&self) -> Option<UnixTime> {
        let secs = self.0 + Instant::now().as_secs();
        Some(UnixTime::since_unix_epoch(core::time::Duration::from_secs(
            secs,
        )))
    }
}

/// Runs the uplink for ever (it never returns; `()` so that a board's task can be this
/// future itself, see the QEMU board's `uplink_task`).
pub async fn run(stack: Stack<'static>, mut s: Settings) {
    let Some(addr) = s.token.addr.parse::<SocketAddrV4>().ok() else {
        defmt::warn!(
            "uplink: token address {} is not ip:port, no uplink",
            s.token.addr.as_str()
        );
        loop {
            Timer::after_secs(3600).await;
        }
    };
    let mut identity = s
        .store
        .and_then(|st| (st.load)())
        .and_then(|b| Identity::decode(&b));
    let mut outbox = s.outbox.take().map(OutboxStore::new);
    // A stored outbox without an identity was the last enrollment's: replaced at the next.
    let mut session = None;
    if let Some(id) = &identity {
        restore_session(&mut session, id, s.random, &mut outbox);
    }
    if let Some(id) = &identity {
        defmt::info!(
            "uplink enrolled already appliance={} (token not used)",
            id.appliance_id.as_str()
        );
    }
    let mut backoff = BACKOFF_MIN_MS;
    let mut reporter = Reporter::default();
    let mut rx = [0u8; SOCKET_BUF];
    let mut tx = [0u8; SOCKET_BUF];
    stack.wait_config_up().await;
    defmt::info!(
        "uplink starting stack_high_water={}",
        s.stack_high_water.map_or(0, |f| f())
    );
    loop {
        // Events wait in the outbox while the tunnel is down (DHCP's queue is short).
        if let Some(session) = session.as_mut() {
            report(&mut reporter, session, &s);
            save(&mut outbox, session);
        }
        let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
        socket.set_timeout(Some(IDLE_TIMEOUT));
        let result = match (&identity, session.as_mut()) {
            (None, _) => enroll(&mut socket, addr, &s).await.map(|id| {
                defmt::info!(
                    "uplink enrolled appliance={} heap_high_water={} stack_high_water={}",
                    id.appliance_id.as_str(),
                    s.heap.high_water(),
                    s.stack_high_water.map_or(0, |f| f())
                );
                if let Some(store) = s.store {
                    let saved = (store.save)(&id.encode());
                    defmt::info!("uplink identity stored={}", saved);
                }
                start_session(&mut session, &id, s.random, None);
                if let Some(fresh) = &session {
                    save(&mut outbox, fresh);
                }
                identity = Some(id);
            }),
            (Some(id), Some(session)) => {
                let state = (&mut reporter, &mut outbox);
                tunnel(&mut socket, addr, &s, id, session, state).await
            }
            (Some(_), None) => Err(Fail::Protocol("no session")),
        };
        socket.abort();
        let _ = with_timeout(Duration::from_secs(1), socket.flush()).await;
        drop(socket);
        if let Some(session) = session.as_mut() {
            session.disconnect();
        }
        match result {
            Ok(()) => backoff = BACKOFF_MIN_MS,
            Err(e) => {
                defmt::warn!("uplink error: {} (again in {} ms)", e, backoff);
                Timer::after_millis(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX_MS);
            }
        }
    }
}

/// Puts the session for `id` from the stored state, if any, in `slot`. Not inlined: the
/// stored outbox (about 18 KiB) then sits on the stack at boot only, not in the frame of
/// every poll of the uplink's future (that cost 17.6 KiB of stack high-water).
#[inline(never)]
fn restore_session(
    slot: &mut Option<Session<OUTBOX>>,
    id: &Identity,
    random: &dyn RandomSource,
    outbox: &mut Option<OutboxStore>,
) {
    let stored = outbox.as_mut().and_then(|o| o.load());
    start_session(slot, id, random, stored);
}

/// Puts the session for `id` in `slot` (the uplink future's), from its stored state when
/// there is one. Not inlined, the old session dropped first and each session built straight
/// into `slot`: a `Session` (9.5 KiB) returned by value was copied through the frame of every
/// poll of the uplink's future, then three times through this function's.
#[inline(never)]
fn start_session(
    slot: &mut Option<Session<OUTBOX>>,
    id: &Identity,
    random: &dyn RandomSource,
    stored: Option<Stored>,
) {
    *slot = None;
    let hello = Hello {
        protocol: 0,
        appliance_id: id.appliance_id.as_str().try_into().unwrap_or_default(),
        firmware_version: env!("CARGO_PKG_VERSION").try_into().unwrap_or_default(),
        capabilities: Capabilities(0),
        command_window: 0,
        boot_id: boot_id(random),
    };
    let Some(stored) = stored else {
        *slot = Some(Session::new(hello, CommandFilter::default()));
        return;
    };
    let (filter, numbered) = (stored.filter, stored.numbered);
    match stored.outbox() {
        Some(outbox) => *slot = Some(Session::restore(hello, filter, outbox, numbered)),
        None => {
            defmt::warn!("uplink outbox: stored events out of order, dropped");
            *slot = Some(Session::new(hello, filter));
        }
    }
}

/// Stores the session's outbox and command filter if they changed (when the board keeps
/// them).
fn save(outbox: &mut Option<OutboxStore>, session: &Session<OUTBOX>) {
    if let Some(o) = outbox.as_mut() {
        o.save(session);
    }
}

fn boot_id(random: &dyn RandomSource) -> u64 {
    let mut b = [0u8; 8];
    let _ = uplink_tls::Entropy::fill(random, &mut b);
    u64::from_le_bytes(b)
}

fn tls_config(
    addr: SocketAddrV4,
    s: &Settings,
    alpn: &[u8],
    ca: Option<Vec<u8>>,
    identity: Option<TlsIdentity>,
) -> ClientConfig {
    ClientConfig {
        ca_der: ca,
        ca_pin: s.token.ca_sha256,
        alpn: vec![alpn.to_vec()],
        identity,
        server_name: alloc::format!("{}", addr.ip()),
        random: s.random,
        time: Arc::new(BootClock(s.unix_at_boot)),
    }
}

/// Sends what TLS has queued.
async fn flush(socket: &mut TcpSocket<'_>, tls: &mut TlsClient) -> Result<(), Fail> {
    let mut buf = [0u8; 1024];
    loop {
        let n = tls.poll_transmit(&mut buf);
        if n == 0 {
            return Ok(());
        }
        let mut sent = 0;
        while sent < n {
            sent += socket.write(&buf[sent..n]).await.map_err(|_| Fail::Tcp)?;
        }
    }
}

/// Waits up to `wait` for ciphertext and feeds it; `Ok(false)` when nothing came.
async fn receive(
    socket: &mut TcpSocket<'_>,
    tls: &mut TlsClient,
    wait: Duration,
) -> Result<bool, Fail> {
    let mut buf = [0u8; 1024];
    let n = match with_timeout(wait, socket.read(&mut buf)).await {
        Err(_) => return Ok(false),
        Ok(Err(_)) => return Err(Fail::Tcp),
        Ok(Ok(0)) => return Err(Fail::Closed),
        Ok(Ok(n)) => n,
    };
    let mut fed = 0;
    while fed < n {
        let took = tls.feed(&buf[fed..n])?;
        if took == 0 {
            return Err(Fail::Protocol("TLS buffers full"));
        }
        fed += took;
    }
    Ok(true)
}

/// One enrollment: a fresh key, the challenge, the request with the proof, the certificate.
async fn enroll(
    socket: &mut TcpSocket<'_>,
    addr: SocketAddrV4,
    s: &Settings,
) -> Result<Identity, Fail> {
    let key = KeyPair::generate(s.random).map_err(|_| Fail::Tls(uplink_tls::Error::Entropy))?;
    defmt::info!(
        "uplink enrolling at {} name={}",
        Display2Format(&addr),
        s.name
    );
    socket.connect(addr).await.map_err(|_| Fail::Tcp)?;
    let mut tls = TlsClient::new(tls_config(addr, s, ALPN_ENROLL, None, None))?;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut exchange = Exchange::default();
    let sign = |m: &[u8]| key.sign_fixed(m);
    let public_key = key.public_point();
    let who = Credentials {
        secret: &s.token.secret,
        public_key: &public_key,
        sign: &sign,
        name: s.name,
    };
    let mut frame = vec![0u8; FRAME_MAX];
    loop {
        flush(socket, &mut tls).await?;
        if Instant::now() > deadline {
            return Err(Fail::Timeout);
        }
        receive(socket, &mut tls, Duration::from_millis(500)).await?;
        let mut chunk = [0u8; 512];
        loop {
            let n = tls.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            let enrolled = enroll_receive(&mut exchange, &chunk[..n], &who, &mut frame, &mut tls)?;
            if let Some((appliance_id, certificate, ca)) = enrolled {
                return Ok(Identity {
                    appliance_id,
                    certificate,
                    ca,
                    key,
                });
            }
        }
    }
}

/// The appliance id, certificate and CA certificate enrollment hands out.
type Enrolled = (String, Vec<u8>, Vec<u8>);

/// Hands received plaintext to the enrollment exchange and the request it makes to TLS;
/// the appliance id, certificate and CA certificate once enrolled. Not inlined: the
/// exchange's steps stay out of the uplink future's poll frame.
#[inline(never)]
fn enroll_receive(
    exchange: &mut Exchange,
    plain: &[u8],
    who: &Credentials<'_>,
    frame: &mut [u8],
    tls: &mut TlsClient,
) -> Result<Option<Enrolled>, Fail> {
    let step = exchange
        .receive(plain, who, frame)
        .map_err(|_| Fail::Protocol("enrollment exchange"))?;
    match step {
        None => Ok(None),
        Some(Step::Send(len)) => {
            // The handshake is done once plaintext arrives: TLS takes it whole.
            let request = frame.get(..len).ok_or(Fail::Protocol("request length"))?;
            if tls.write(request)? != len {
                return Err(Fail::Protocol("request not taken"));
            }
            Ok(None)
        }
        Some(Step::Refused(why)) => {
            defmt::warn!("uplink enrollment refused: {}", Display2Format(&why));
            Err(Fail::Refused)
        }
        Some(Step::Enrolled {
            appliance_id,
            certificate,
            ca_certificate,
        }) => Ok(Some((
            String::from(appliance_id.as_str()),
            certificate.to_vec(),
            ca_certificate.to_vec(),
        ))),
    }
}

/// One tunnel connection: the session over mTLS until it fails.
async fn tunnel(
    socket: &mut TcpSocket<'_>,
    addr: SocketAddrV4,
    s: &Settings,
    id: &Identity,
    session: &mut Session<OUTBOX>,
    (reporter, outbox): (&mut Reporter, &mut Option<OutboxStore>),
) -> Result<(), Fail> {
    socket.connect(addr).await.map_err(|_| Fail::Tcp)?;
    let identity = TlsIdentity {
        cert_chain: vec![id.certificate.clone()],
        key: id.key.clone(),
    };
    let config = tls_config(addr, s, ALPN_TUNNEL, Some(id.ca.clone()), Some(identity));
    let mut tls = TlsClient::new(config)?;
    session.connect();
    let mut decoder = FrameDecoder::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut frame = [0u8; HEADER + MAX_FRAME];
    let mut heard = Instant::now();
    let mut timeout = CONNECT_TIMEOUT;
    loop {
        report(reporter, session, s);
        // Stored before any of it is sent (acks of the last pass pruned it too).
        save(outbox, session);
        if !tls.is_handshaking() {
            encrypt_outgoing(session, &mut tls, &mut pending, &mut frame)?;
        }
        flush(socket, &mut tls).await?;
        if receive(socket, &mut tls, Duration::from_millis(200)).await? {
            heard = Instant::now();
        } else if heard.elapsed() > timeout {
            return Err(Fail::Timeout);
        }
        let mut chunk = [0u8; 512];
        loop {
            let n = tls.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            let mut input = &chunk[..n];
            while let Some(body) = decoder.decode(&mut input) {
                match handle_frame(session, body)? {
                    Action::Nothing => {}
                    Action::Established { time } => {
                        timeout = IDLE_TIMEOUT;
                        defmt::info!(
                            "uplink connected appliance={} provider_time={} heap_high_water={} stack_high_water={}",
                            id.appliance_id.as_str(),
                            time,
                            s.heap.high_water(),
                            s.stack_high_water.map_or(0, |f| f())
                        );
                    }
                    Action::Execute { id, command } => {
                        // The filter that drops its resends is stored before it runs.
                        save(outbox, session);
                        defmt::info!("uplink command id={} -> power task", id);
                        COMMANDS.send((id, command)).await;
                    }
                }
            }
        }
        if tls.peer_closed() {
            return Err(Fail::Closed);
        }
    }
}

/// Hands the session's frames to TLS until either has nothing more to give or take. Not
/// inlined, as [`handle_frame`]: their temporaries stay out of the uplink future's poll frame.
#[inline(never)]
fn encrypt_outgoing(
    session: &mut Session<OUTBOX>,
    tls: &mut TlsClient,
    pending: &mut Vec<u8>,
    frame: &mut [u8; HEADER + MAX_FRAME],
) -> Result<(), Fail> {
    loop {
        if pending.is_empty() {
            match session.poll_transmit(frame) {
                Ok(Some(n)) => pending.extend_from_slice(&frame[..n]),
                Ok(None) => return Ok(()),
                Err(_) => return Err(Fail::Protocol("session")),
            }
        }
        let took = tls.write(pending)?;
        pending.drain(..took);
        if took == 0 {
            return Ok(());
        }
    }
}

/// Decodes one received frame body and hands the message to the session. Not inlined: the
/// decoded message (1 KiB and more: a config carries the join config) lives in this frame
/// only, not in every poll of the uplink's future.
#[inline(never)]
fn handle_frame(
    session: &mut Session<OUTBOX>,
    body: Result<&[u8], uplink::frame::Error>,
) -> Result<Action, Fail> {
    let body = body.map_err(|_| Fail::Protocol("frame"))?;
    let msg: ToAppliance = uplink::frame::decode(body).map_err(|_| Fail::Protocol("message"))?;
    session.handle(msg).map_err(|_| Fail::Protocol("session"))
}

/// Queues events for what DHCP saw and what the power task did since the last call.
/// A command's result logs the heap's and the stack's high-water marks, power included.
fn report(reporter: &mut Reporter, session: &mut Session<OUTBOX>, s: &Settings) {
    let now = s.unix_at_boot + Instant::now().as_secs();
    while let Ok(r) = REPORTS.try_receive() {
        let queued = match r {
            Report::Power(mut state) => {
                state.at += s.unix_at_boot;
                session.report(Event::PowerState(state)).ok()
            }
            // Only a command this session handed out reaches the power task.
            Report::Result { id, outcome, .. } => {
                defmt::info!(
                    "uplink command id={} result heap_high_water={} stack_high_water={}",
                    id,
                    s.heap.high_water(),
                    s.stack_high_water.map_or(0, |f| f())
                );
                session.complete(id, outcome).ok()
            }
        };
        match queued {
            Some(seq) => defmt::info!("uplink queued seq={}", seq),
            None => defmt::warn!("uplink outbox full, power report dropped"),
        }
    }
    while let Ok(o) = OBSERVED.try_receive() {
        let Some(event) = reporter.event(o, now) else {
            continue;
        };
        match session.report(event) {
            Ok(seq) => defmt::info!("uplink queued seq={}", seq),
            Err(_) => defmt::warn!("uplink outbox full, event dropped"),
        }
    }
}
