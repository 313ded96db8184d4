//! The appliance's HTTP server (`appliance::http::Connection`, sans-IO) on embassy-net TCP
//! sockets: the per-machine iPXE script at `/boot.ipxe` and the boot files from the asset
//! store. Each connection is one call of [`serve`] (the board runs [`CONNECTIONS`] of them
//! as a task pool), one socket that takes one client at a time, as host-sim's pool does.
//!
//! Per wake: bytes in to `receive` and out of `send` until neither moves, then the
//! connection's deadline (`tick`), then sleep until the socket has data or room, or the
//! deadline. Every machine gets the default boot target: the uplink, which sets
//! per-machine targets, is not on the board yet.

use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::Poll;

use appliance::assets::AssetStore;
use appliance::dhcp::pxe::BootTarget;
use appliance::http::{Connection, ScriptConfig, Site};
use defmt::Display2Format;
use embassy_net::tcp::{State, TcpSocket};
use embassy_net::{IpEndpoint, Stack};
use embassy_time::{Duration, Instant, Timer, with_timeout};

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
        let mut site = Site {
            store: &mut store,
            script,
            targets: &BootTarget::Default,
        };
        exchange(&mut socket, &mut conn, &mut site, peer).await;
        conn.release(now_ms(), site.store);
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
    site: &mut Site<'_, S>,
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
                    let n = conn.send(now, buf, site);
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
