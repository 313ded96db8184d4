//! The appliance's TFTP server: requests on UDP 69, each transfer slot on its own socket
//! (its TID, port `SLOT_PORT_BASE + slot`, as in host-sim), files from the board's asset
//! store.
//!
//! One pass of the sans-IO server per wake: requests, then ACKs, then whatever
//! `dispatch` has due. The task sleeps on the sockets' receive wakers and a timer at
//! `poll_at` (retransmissions).

use core::convert::Infallible;
use core::future::{Future, poll_fn};
use core::net::SocketAddrV4;
use core::pin::Pin;
use core::task::{Context, Poll};

use appliance::assets::AssetStore;
use appliance::tftp::{Config, RequestOutcome, Server, Transfer};
use defmt::Display2Format;
use embassy_net::udp::{PacketMetadata, UdpMetadata, UdpSocket};
use embassy_net::{IpAddress, IpEndpoint, Stack};
use embassy_time::{Instant, Timer};
use static_cell::StaticCell;

const TFTP_PORT: u16 = 69;
const SLOT_PORT_BASE: u16 = 50_000;
/// Concurrent transfers (one socket each).
pub const TRANSFERS: usize = 2;
/// blksize for a 1500-byte MTU: 20 IP + 8 UDP + 4 TFTP header bytes less.
const MAX_BLKSIZE: u16 = 1468;
/// The window a slot's send buffer holds whole, so a window is never cut short.
const MAX_WINDOW: u16 = 4;
const PACKET: usize = 4 + MAX_BLKSIZE as usize;

static SLOTS: StaticCell<[Transfer; TRANSFERS]> = StaticCell::new();

/// One socket's buffers: `RX` bytes in, `N` packets of up to `TX / N` bytes out.
struct Buffers<const RX: usize, const TX: usize, const N: usize> {
    rx_meta: [PacketMetadata; N],
    rx: [u8; RX],
    tx_meta: [PacketMetadata; N],
    tx: [u8; TX],
}

impl<const RX: usize, const TX: usize, const N: usize> Buffers<RX, TX, N> {
    const NEW: Self = Buffers {
        rx_meta: [PacketMetadata::EMPTY; N],
        rx: [0; RX],
        tx_meta: [PacketMetadata::EMPTY; N],
        tx: [0; TX],
    };

    fn bind(&mut self, stack: Stack<'static>, port: u16) -> UdpSocket<'_> {
        let mut s = UdpSocket::new(
            stack,
            &mut self.rx_meta,
            &mut self.rx,
            &mut self.tx_meta,
            &mut self.tx,
        );
        defmt::unwrap!(s.bind(port), "tftp: bind port {}", port); // ok: boot-time init, the ports are free
        s
    }
}

/// A slot's socket: ACKs in, a whole window of DATA out.
type SlotBuffers = Buffers<1024, { MAX_WINDOW as usize * PACKET }, { MAX_WINDOW as usize }>;
/// Port 69: requests in, ERRORs out.
type ListenerBuffers = Buffers<2048, 1024, 4>;

fn now_ms() -> u64 {
    Instant::now().as_millis()
}

fn ipv4(meta: &UdpMetadata) -> SocketAddrV4 {
    let IpAddress::Ipv4(ip) = meta.endpoint.addr;
    SocketAddrV4::new(ip, meta.endpoint.port)
}

fn endpoint(addr: SocketAddrV4) -> IpEndpoint {
    IpEndpoint::new((*addr.ip()).into(), addr.port())
}

/// Sends if the socket has room; a lost packet is retransmitted by the server's timer.
fn send(socket: &UdpSocket<'_>, buf: &[u8], to: SocketAddrV4, cx: &mut Context<'_>) {
    let to_ip = Display2Format(&to);
    match socket.poll_send_to(buf, endpoint(to), cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => defmt::warn!("tftp send to={}: {}", to_ip, e),
        Poll::Pending => defmt::warn!("tftp send to={}: socket full", to_ip),
    }
}

/// Serves TFTP on `stack` for ever, the files from `store`.
pub async fn serve<S: AssetStore>(stack: Stack<'static>, mut store: S) -> ! {
    let config = Config {
        max_blksize: MAX_BLKSIZE,
        max_windowsize: MAX_WINDOW,
        ..Config::default()
    };
    let mut server = Server::new(config, SLOTS.init([Transfer::EMPTY; TRANSFERS]));
    let mut listener_buffers = ListenerBuffers::NEW;
    let listener = listener_buffers.bind(stack, TFTP_PORT);
    let mut slot_buffers = [SlotBuffers::NEW; TRANSFERS];
    let mut next_port = SLOT_PORT_BASE;
    let slots = slot_buffers.each_mut().map(|b| {
        let socket = b.bind(stack, next_port);
        next_port += 1;
        socket
    });
    defmt::info!("tftp listening port={} transfers={}", TFTP_PORT, TRANSFERS);

    let mut rx = [0u8; 1024];
    let mut tx = [0u8; PACKET];
    let never: Infallible = poll_fn(|cx| {
        while let Poll::Ready(r) = listener.poll_recv_from(&mut rx, cx) {
            let Ok((len, meta)) = r else { continue };
            let src = ipv4(&meta);
            let outcome = server.request(now_ms(), src, &rx[..len], &mut store, &mut tx);
            if let RequestOutcome::Refused { len, .. } = outcome {
                send(&listener, &tx[..len], src, cx);
            }
            log_events(&mut server);
        }
        for (slot, socket) in slots.iter().enumerate() {
            while let Poll::Ready(r) = socket.poll_recv_from(&mut rx, cx) {
                let Ok((len, meta)) = r else { continue };
                let src = ipv4(&meta);
                let now = now_ms();
                if let Some(len) = server.receive(now, slot, src, &rx[..len], &mut store, &mut tx) {
                    send(socket, &tx[..len], src, cx);
                }
                log_events(&mut server);
            }
        }
        while let Some(t) = server.dispatch(now_ms(), &mut store, &mut tx) {
            send(&slots[t.slot], &tx[..t.len], t.dst, cx);
        }
        log_events(&mut server);
        // Wake at the next retransmission deadline (at once if packets are waiting: a new
        // timer's first poll always schedules its wake, even when it is already due).
        if let Some(at) = server.poll_at() {
            let _ = Pin::new(&mut Timer::at(Instant::from_millis(at))).poll(cx);
        }
        Poll::Pending
    })
    .await;
    match never {}
}

fn log_events(server: &mut Server<'_>) {
    while let Some(event) = server.poll_event() {
        defmt::info!("{}", Display2Format(&event));
    }
}
