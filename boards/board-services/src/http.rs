//! The appliance's HTTP server (`appliance::http::Connection`, sans-IO) on embassy-net TCP
//! sockets: the per-machine iPXE script at `/boot.ipxe` and the boot files from the asset
//! store. Each connection is one call of [`serve`] (the board runs [`CONNECTIONS`] of them
//! as a task pool), one socket that takes one client at a time, as host-sim's pool does.
//!
//! Per wake: bytes in to `receive` and out of `send` until neither moves, then the
//! connection's deadline (`tick`), then sleep until the socket has data or room, or the
//! deadline. The script's boot target is the machine's in the DHCP inventory, found by the
//! request's query (`mac`, `uuid`), as host-sim's is; `/config` serves the join config of
//! the provider's last `ConfigUpdate` ([`JOIN_CONFIG`], feature `uplink`; 404 without it).

use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::Poll;

use appliance::assets::AssetStore;
use appliance::dhcp::pxe::BootTarget;
use appliance::http::{BootTargets, Connection, ScriptConfig, Site};
use appliance::net::{MacAddr, Uuid};
use defmt::Display2Format;
use embassy_net::tcp::{State, TcpSocket};
use embassy_net::{IpEndpoint, Stack};
use embassy_time::{Duration, Instant, Timer, with_timeout};

use crate::dhcp::INVENTORY;

/// The port HTTP listens on (the DHCP boot URL's, `http://<board>/boot.ipxe`).
pub const PORT: u16 = 80;
/// Connections served at once (one socket each); more clients wait in SYN retries.
pub const CONNECTIONS: usize = 2;
const RX_BUFFER: usize = 1024;
/// Scripts and small files go out in one window; larger files stream through it.
const TX_BUFFER: usize = 4096;
/// A peer that vanishes mid-connection is dropped after this.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait without a look at the socket: smoltcp does not wake a reader for a FIN
/// alone, so a client's close is seen at the latest after this.
const MAX_SLEEP: Duration = Duration::from_millis(200);
/// How long a closing connection may take to hand over its last bytes and FIN.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The join config of the provider's last `ConfigUpdate` (empty: none yet, `/config` is
/// 404), at the wire's cap so it takes fixed RAM. The power task writes it, HTTP reads it in
/// place while rendering; every task runs in thread mode, so the lock masks no interrupt.
#[cfg(feature = "uplink")]
pub static JOIN_CONFIG: embassy_sync::blocking_mutex::Mutex<
    embassy_sync::blocking_mutex::raw::ThreadModeRawMutex,
    core::cell::RefCell<heapless::String<{ uplink::JOIN_CONFIG_MAX }>>,
> = embassy_sync::blocking_mutex::Mutex::new(core::cell::RefCell::new(heapless::String::new()));

/// Replaces what `/config` serves (`config` fits: it is a `Config.join_config`).
#[cfg(feature = "uplink")]
pub fn publish_join_config(config: &str) {
    JOIN_CONFIG.lock(|c| {
        let c = &mut c.borrow_mut();
        c.clear();
        if c.push_str(config).is_err() {
            defmt::warn!("http: join config over the cap, /config answers 404");
        }
    });
}

/// Runs `f` with the join config `/config` serves, borrowed in place.
fn with_join_config<R>(f: impl FnOnce(Option<&str>) -> R) -> R {
    #[cfg(feature = "uplink")]
    return JOIN_CONFIG.lock(|c| f(Some(c.borrow().as_str())));
    #[cfg(not(feature = "uplink"))]
    f(None)
}

/// A machine's boot target from the DHCP inventory, by the request's query (a request that
/// names no machine gets the default), and the join config.
struct Targets<'a> {
    join_config: Option<&'a str>,
}

impl BootTargets for Targets<'_> {
    fn boot_target(&self, mac: Option<MacAddr>, uuid: Option<Uuid>) -> BootTarget {
        INVENTORY.lock(|i| BootTargets::boot_target(&*i.borrow(), mac, uuid))
    }

    fn join_config(&self) -> Option<&str> {
        self.join_config
    }
}

fn now_ms() -> u64 {
    Instant::now().as_millis()
}

/// Serves HTTP on `port` for ever, one client at a time: `script` renders `/boot.ipxe`,
/// other paths come from `store`.
pub async fn serve<S: AssetStore>(
    stack: Stack<'static>,
    port: u16,
    script: &ScriptConfig<'_>,
    mut store: S,
) -> ! {
    let mut rx = [0u8; RX_BUFFER];
    let mut tx = [0u8; TX_BUFFER];
    let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
    socket.set_timeout(Some(SOCKET_TIMEOUT));
    loop {
        if let Err(e) = socket.accept(port).await {
            defmt::warn!("http accept: {}", e);
            socket.abort();
            continue;
        }
        let peer = socket.remote_endpoint();
        let mut conn = Connection::new(now_ms());
        exchange(&mut socket, &mut conn, &mut store, script, peer).await;
        conn.release(now_ms(), &mut store);
        log_events(&mut conn, peer);
        // FIN after the queued bytes; then the socket is reset for the next client, as
        // host-sim does: a machine off to its kernel never ACKs our FIN.
        socket.close();
        let _ = with_timeout(CLOSE_TIMEOUT, delivered(&socket)).await;
        socket.abort();
        let _ = with_timeout(CLOSE_TIMEOUT, socket.flush()).await;
    }
}

/// Until our bytes and FIN are acknowledged, or the client's ACK of our FIN is all that is
/// missing (LAST-ACK with nothing queued).
async fn delivered(socket: &TcpSocket<'_>) {
    while socket.send_queue() > 0 || matches!(socket.state(), State::FinWait1 | State::Closing) {
        Timer::after_millis(10).await;
    }
}

/// Runs one connection until it or the socket is done.
async fn exchange<S: AssetStore>(
    socket: &mut TcpSocket<'_>,
    conn: &mut Connection,
    store: &mut S,
    script: &ScriptConfig<'_>,
    peer: Option<IpEndpoint>,
) {
    let mut peer_closed = false;
    loop {
        // Until neither direction moves: a finished response lets the next request in.
        for _ in 0..64 {
            let received = if socket.can_recv() {
                let now = now_ms();
                (socket.read_with(|buf| {
                    let n = conn.receive(now, buf);
                    (n, n)
                }))
                .await
                .unwrap_or(0)
            } else {
                0
            };
            let written = if socket.can_send() {
                let now = now_ms();
                (socket.write_with(|buf| {
                    let n = with_join_config(|join_config| {
                        let targets = &Targets { join_config };
                        let mut site = Site {
                            store: &mut *store,
                            script,
                            targets,
                        };
                        conn.send(now, buf, &mut site)
                    });
                    (n, n)
                }))
                .await
                .unwrap_or(0)
            } else {
                0
            };
            if received == 0 && written == 0 {
                break;
            }
        }
        let now = now_ms();
        if !peer_closed && !socket.may_recv() && socket.recv_queue() == 0 {
            conn.peer_closed(now);
            peer_closed = true;
        }
        if conn.poll_at().is_some_and(|at| at <= now) {
            conn.tick(now);
        }
        log_events(conn, peer);
        if conn.should_close() || matches!(socket.state(), State::Closed | State::TimeWait) {
            return;
        }
        let at = conn
            .poll_at()
            .map_or(Instant::MAX, Instant::from_millis)
            .min(Instant::now() + MAX_SLEEP);
        wait(socket, at).await;
    }
}

/// Until the socket has bytes for us (unless some wait that the connection would not take
/// yet) or room while it is full, or `at`.
async fn wait(socket: &TcpSocket<'_>, at: Instant) {
    let readable = !socket.can_recv();
    let writable = !socket.can_send();
    let mut read = pin!(socket.wait_read_ready());
    let mut write = pin!(socket.wait_write_ready());
    let mut timer = pin!(Timer::at(at));
    poll_fn(|cx| {
        let ready = (readable && read.as_mut().poll(cx).is_ready())
            || (writable && write.as_mut().poll(cx).is_ready())
            || timer.as_mut().poll(cx).is_ready();
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

fn log_events(conn: &mut Connection, peer: Option<IpEndpoint>) {
    while let Some(event) = conn.poll_event() {
        match peer {
            Some(p) => defmt::info!("{}", Display2Format(&event.line(p))),
            None => defmt::info!("{}", Display2Format(&event.line("-"))),
        }
    }
}
