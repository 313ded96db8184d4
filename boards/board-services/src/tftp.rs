//! The appliance's TFTP server: requests on UDP 69, every transfer on one more socket (port
//! [`TRANSFER_PORT`], the server's TID for all of them; the server tells transfers apart by
//! the client's address and port, `Server::receive_shared`), files from the board's asset
//! store.
//!
//! One socket for all transfers rather than one per slot (host-sim's way) because a socket
//! per slot costs more RAM than the transfer itself: 64 slots with a window's send buffer
//! each came to about 450 KB, and even one packet each to about 100 KB; one shared socket
//! with back-pressure costs the same for 2 transfers or 64, and each slot is then only its
//! `Transfer` (the transfer's state and file name).
//!
//! One pass of the sans-IO server per wake: requests, then ACKs, then whatever `dispatch`
//! has due, until the transfers' socket is full; the packet that did not fit is held (in
//! the one block buffer) and sent first when the stack has drained the socket, which wakes
//! the task. The task also sleeps on the sockets' receive wakers and a timer at `poll_at`
//! (retransmissions).
//!
//! A datagram to an address that answers no ARP (a client gone mid-transfer, a forged RRQ)
//! stays at the head of a smoltcp socket's queue for ever, and with one socket every
//! transfer waits behind it. So a packet held longer than [`STALL_MS`] means the queue is
//! stuck: the socket is closed and bound again, which drops what it held, and the server's
//! retransmissions resend what mattered (each retry to the dead address stalls the others
//! that long again, until its transfer times out, about 25 s).

use core::convert::Infallible;
use core::future::{Future, poll_fn};
use core::mem::MaybeUninit;
use core::net::SocketAddrV4;
use core::pin::Pin;
use core::task::{Context, Poll};

use appliance::assets::AssetStore;
use appliance::tftp::{Config, RequestOutcome, Server, Transfer, Transmit};
use defmt::Display2Format;
use embassy_net::udp::{PacketMetadata, UdpMetadata, UdpSocket};
use embassy_net::{IpAddress, IpEndpoint, Stack};
use embassy_time::{Instant, Timer};
use static_cell::StaticCell;

const TFTP_PORT: u16 = 69;
/// The port every transfer sends from and takes ACKs on.
pub const TRANSFER_PORT: u16 = 50_000;
/// Concurrent transfers; a full table answers ERROR 0 "server busy". Each costs its
/// `Transfer` (344 bytes) and room for one ACK in the socket. 8 by default; 64, the issue's
/// target, with the feature `tftp-transfers-64` (per board, in its Cargo.toml): that build
/// is measured (BENCHMARKS.md); with TLS up its static RAM plus the stack's high-water mark
/// is within the 192 KiB budget (188,424 bytes, boards/README.md).
pub const TRANSFERS: usize = if cfg!(feature = "tftp-transfers-64") {
    64
} else {
    8
};
/// The sockets this module opens: port 69 and [`TRANSFER_PORT`].
pub const SOCKETS: usize = 2;
/// blksize for a 1500-byte MTU: 20 IP + 8 UDP + 4 TFTP header bytes less.
const MAX_BLKSIZE: u16 = 1468;
/// The largest window granted (RFC 7440).
const MAX_WINDOW: u16 = 4;
const PACKET: usize = 4 + MAX_BLKSIZE as usize;
/// How long a packet may wait for room before the transfers' socket counts as stuck behind
/// an address that answers no ARP (smoltcp asks once a second; a live host answers at once).
const STALL_MS: u64 = 1500;
/// An ERROR (the server's messages are short static texts).
const ERROR_PACKET: usize = 128;

static SLOTS: StaticCell<[MaybeUninit<Transfer>; TRANSFERS]> = StaticCell::new();

/// The transfer table, written slot by slot where it lies: built whole (even with
/// `init_with`) the 64 slots went through the stack, a 22 KB frame in this task's first
/// poll; and const-initialised they are not all zero bytes, so 22 KB more flash (.data).
fn slots() -> &'static mut [Transfer] {
    let table = SLOTS.init_with(|| [const { MaybeUninit::uninit() }; TRANSFERS]);
    for slot in table.iter_mut() {
        slot.write(Transfer::EMPTY);
    }
    // SAFETY: every element was written just above, and `MaybeUninit<Transfer>` has the
    // layout of `Transfer`; the table is 'static and this is its only reference (init once).
    unsafe { core::slice::from_raw_parts_mut(table.as_mut_ptr().cast::<Transfer>(), TRANSFERS) }
}

/// One socket's buffers: `RX` bytes in `RN` datagrams, `TX` bytes out in `TN` datagrams.
struct Buffers<const RX: usize, const RN: usize, const TX: usize, const TN: usize> {
    rx_meta: [PacketMetadata; RN],
    rx: [u8; RX],
    tx_meta: [PacketMetadata; TN],
    tx: [u8; TX],
}

impl<const RX: usize, const RN: usize, const TX: usize, const TN: usize> Buffers<RX, RN, TX, TN> {
    const NEW: Self = Buffers {
        rx_meta: [PacketMetadata::EMPTY; RN],
        rx: [0; RX],
        tx_meta: [PacketMetadata::EMPTY; TN],
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

/// Port 69: a burst of RRQs in (64 clients starting at once; a request that finds the
/// buffer full is dropped and the client repeats it), short ERRORs out.
type ListenerBuffers = Buffers<2048, 32, 512, 4>;
/// The transfers' port: an ACK from every transfer at once (4 bytes each; a client's ERROR
/// is longer) in, and two DATA packets out: what does not fit waits in the block buffer
/// (see [`serve`]), so a bigger buffer would only save wakes.
type TransferBuffers = Buffers<512, TRANSFERS, { 2 * PACKET }, 2>;

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

/// Sends an ERROR if the socket has room: it is advice, and the client times out without it.
fn send_error(socket: &UdpSocket<'_>, buf: &[u8], to: SocketAddrV4, cx: &mut Context<'_>) {
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
    let mut server = Server::new(config, slots());
    let mut listener_buffers = ListenerBuffers::NEW;
    let listener = listener_buffers.bind(stack, TFTP_PORT);
    let mut transfer_buffers = TransferBuffers::NEW;
    let mut transfers = transfer_buffers.bind(stack, TRANSFER_PORT);
    defmt::info!(
        "tftp listening port={} transfers={} transfer_port={}",
        TFTP_PORT,
        TRANSFERS,
        TRANSFER_PORT
    );

    let mut rx = [0u8; 1024];
    let mut reply = [0u8; ERROR_PACKET];
    // The one block buffer: what `dispatch` wrote, kept while `held` waits for room (with
    // the time it started waiting).
    let mut tx = [0u8; PACKET];
    let mut held: Option<(Transmit, u64)> = None;
    let never: Infallible = poll_fn(|cx| {
        while let Poll::Ready(r) = listener.poll_recv_from(&mut rx, cx) {
            let Ok((len, meta)) = r else { continue };
            let src = ipv4(&meta);
            let outcome = server.request(now_ms(), src, &rx[..len], &mut store, &mut reply);
            if let RequestOutcome::Refused { len, .. } = outcome {
                send_error(&listener, &reply[..len], src, cx);
            }
            log_events(&mut server);
        }
        while let Poll::Ready(r) = transfers.poll_recv_from(&mut rx, cx) {
            let Ok((len, meta)) = r else { continue };
            let src = ipv4(&meta);
            let now = now_ms();
            if let Some(len) = server.receive_shared(now, src, &rx[..len], &mut store, &mut reply) {
                send_error(&transfers, &reply[..len], src, cx);
            }
            log_events(&mut server);
        }
        // Bounded: each turn sends a packet, drops one or stops; `dispatch` runs dry once
        // every due window is out.
        loop {
            let now = now_ms();
            let (t, since) = match held.take() {
                Some(h) => h,
                None => match server.dispatch(now, &mut store, &mut tx) {
                    Some(t) => (t, now),
                    None => break,
                },
            };
            match transfers.poll_send_to(&tx[..t.len], endpoint(t.dst), cx) {
                Poll::Ready(Ok(())) => {}
                // A lost packet is retransmitted by the server's timer.
                Poll::Ready(Err(e)) => {
                    defmt::warn!("tftp send to={}: {}", Display2Format(&t.dst), e)
                }
                Poll::Pending if now.saturating_sub(since) >= STALL_MS => {
                    defmt::warn!(
                        "tftp send queue stalled ms={} (an address that answers no ARP?): dropped",
                        now - since
                    );
                    transfers.close();
                    // ok: boot-time port, free again since the close just above
                    defmt::unwrap!(transfers.bind(TRANSFER_PORT), "tftp: rebind");
                }
                // Full: the stack wakes the task when it has sent one.
                Poll::Pending => {
                    held = Some((t, since));
                    break;
                }
            }
        }
        log_events(&mut server);
        // Wake at the next retransmission deadline (at once if packets are waiting: a new
        // timer's first poll always schedules its wake, even when it is already due); while
        // a packet is held, when it would count as stalled.
        let wake_at = match held {
            Some((_, since)) => Some(since + STALL_MS),
            None => server.poll_at(),
        };
        if let Some(at) = wake_at {
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
