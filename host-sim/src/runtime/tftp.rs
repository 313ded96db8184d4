//! TFTP on port 69, each transfer on its own UDP socket (its TID): a fixed pool of slots,
//! slot `i` on port `SLOT_PORT_BASE + i`.

use std::io;
use std::net::SocketAddrV4;

use appliance::tftp::{self, RequestOutcome, Server, Transfer};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::udp;

use appliance::assets::AssetStore;
use smoltcp::phy::Device;

use super::{Ctx, Observation, UdpBurst, ipv4_endpoint};

const TFTP_PORT: u16 = 69;
/// Where the transfers' own ports start.
const SLOT_PORT_BASE: u16 = 50_000;
/// Per-slot send buffer in packets: a whole window of the largest size plus slack.
const SLOT_PACKETS: usize = 72;

pub struct TftpPort {
    server: Server<'static>,
    listener: SocketHandle,
    slots: Vec<SocketHandle>,
    /// Per slot, the DATA of this pass not yet sent, sent as one burst where the NIC can.
    bursts: Vec<Burst>,
    /// The slots whose burst holds data, so a pass flushes those and walks no other slot.
    pending: Vec<usize>,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

/// Consecutive datagrams of one transfer: all `segment` bytes long but the last.
#[derive(Default)]
struct Burst {
    dst: Option<SocketAddrV4>,
    segment: usize,
    data: Vec<u8>,
}

/// The most a burst holds: one IPv4 datagram's worth.
const MAX_BURST: usize = 65_535 - 20 - 8;

impl TftpPort {
    /// `ip_mtu` caps blksize so DATA is never fragmented.
    pub fn open(
        transfers: usize,
        ip_mtu: usize,
        sockets: &mut SocketSet<'static>,
    ) -> io::Result<TftpPort> {
        let max_blksize = u16::try_from(ip_mtu.saturating_sub(20 + 8 + 4))
            .unwrap_or(u16::MAX)
            .max(512);
        let config = tftp::Config {
            max_blksize,
            ..tftp::Config::default()
        };
        let packet = 4 + usize::from(max_blksize);
        let storage = Box::leak(vec![Transfer::EMPTY; transfers].into_boxed_slice());
        let mut bind = |port: u16, packets: usize| -> io::Result<SocketHandle> {
            let buffer = || {
                udp::PacketBuffer::new(
                    vec![udp::PacketMetadata::EMPTY; packets],
                    vec![0u8; packets * packet],
                )
            };
            let mut socket = udp::Socket::new(buffer(), buffer());
            socket.bind(port).map_err(io::Error::other)?;
            Ok(sockets.add(socket))
        };
        let listener = bind(TFTP_PORT, 256)?;
        let slots = (0..transfers)
            .map(|i| bind(SLOT_PORT_BASE + i as u16, SLOT_PACKETS))
            .collect::<io::Result<_>>()?;
        Ok(TftpPort {
            server: Server::new(config, storage),
            listener,
            slots,
            bursts: (0..transfers).map(|_| Burst::default()).collect(),
            pending: Vec::with_capacity(transfers),
            rx: vec![0u8; packet.max(1500)],
            tx: vec![0u8; packet],
        })
    }

    /// Takes requests and ACKs, sends what is due; returns whether anything was sent.
    pub fn process<D: Device + UdpBurst, S: AssetStore>(
        &mut self,
        cx: &mut Ctx<'_, D, S>,
    ) -> io::Result<bool> {
        let now = cx.now.total_millis() as u64;
        let (mut rx, mut tx) = (std::mem::take(&mut self.rx), std::mem::take(&mut self.tx));
        let mut sent = false;
        let listener = cx.sockets.get_mut::<udp::Socket>(self.listener);
        while let Ok((len, meta)) = listener.recv_slice(&mut rx) {
            let Some(src) = ipv4_endpoint(meta.endpoint) else {
                continue;
            };
            if let RequestOutcome::Refused { len, .. } =
                self.server.request(now, src, &rx[..len], cx.store, &mut tx)
            {
                sent |= listener.send_slice(&tx[..len], src).is_ok();
            }
            // The event queue is small: drain it per request, so a storm loses no line.
            log_events(&mut self.server, cx.out, cx.quiet, cx.observed)?;
        }
        for (slot, &handle) in self.slots.iter().enumerate() {
            let socket = cx.sockets.get_mut::<udp::Socket>(handle);
            while let Ok((len, meta)) = socket.recv_slice(&mut rx) {
                let Some(src) = ipv4_endpoint(meta.endpoint) else {
                    continue;
                };
                if let Some(len) =
                    self.server
                        .receive(now, slot, src, &rx[..len], cx.store, &mut tx)
                {
                    sent |= socket.send_slice(&tx[..len], src).is_ok();
                }
                log_events(&mut self.server, cx.out, cx.quiet, cx.observed)?;
            }
        }
        let burst = cx.device.can_burst();
        while let Some(t) = self.server.dispatch(now, cx.store, &mut tx) {
            if burst {
                sent |= self.queue(cx, t.slot, t.dst, &tx[..t.len])?;
            } else {
                sent |= self.send(cx, t.slot, t.dst, &tx[..t.len])?;
            }
            log_events(&mut self.server, cx.out, cx.quiet, cx.observed)?;
        }
        let pending = std::mem::take(&mut self.pending);
        for &slot in &pending {
            sent |= self.flush(cx, slot)?;
        }
        self.pending = pending;
        self.pending.clear();
        log_events(&mut self.server, cx.out, cx.quiet, cx.observed)?;
        (self.rx, self.tx) = (rx, tx);
        Ok(sent)
    }

    /// Adds a datagram to its slot's burst, sending the burst first if this one cannot join.
    fn queue<D: Device + UdpBurst, S: AssetStore>(
        &mut self,
        cx: &mut Ctx<'_, D, S>,
        slot: usize,
        dst: SocketAddrV4,
        datagram: &[u8],
    ) -> io::Result<bool> {
        let b = &self.bursts[slot];
        // An empty burst is not in `pending` yet; one sent early below still is.
        let fresh = b.data.is_empty();
        let joins = fresh
            || (b.dst == Some(dst)
                && b.data.len().is_multiple_of(b.segment)
                && datagram.len() <= b.segment
                && b.data.len() + datagram.len() <= MAX_BURST);
        let sent = if joins { false } else { self.flush(cx, slot)? };
        let b = &mut self.bursts[slot];
        if b.data.is_empty() {
            b.dst = Some(dst);
            b.segment = datagram.len().max(1);
        }
        b.data.extend_from_slice(datagram);
        if fresh {
            self.pending.push(slot);
        }
        Ok(sent)
    }

    /// Sends a slot's burst: in one go where the NIC can, else datagram by datagram.
    fn flush<D: Device + UdpBurst, S: AssetStore>(
        &mut self,
        cx: &mut Ctx<'_, D, S>,
        slot: usize,
    ) -> io::Result<bool> {
        let b = &mut self.bursts[slot];
        let Some(dst) = b.dst.take() else {
            return Ok(false);
        };
        let data = std::mem::take(&mut b.data);
        let segment = b.segment;
        let src = SocketAddrV4::new(*cx.link.src.ip(), SLOT_PORT_BASE + slot as u16);
        let sent = if data.len() > segment && cx.device.send_burst(src, dst, segment, &data)? {
            true
        } else {
            let mut sent = false;
            for datagram in data.chunks(segment) {
                sent |= self.send(cx, slot, dst, datagram)?;
            }
            sent
        };
        let b = &mut self.bursts[slot];
        b.data = data;
        b.data.clear();
        Ok(sent)
    }

    /// Sends one datagram from the slot's socket.
    fn send<D: Device, S: AssetStore>(
        &mut self,
        cx: &mut Ctx<'_, D, S>,
        slot: usize,
        dst: SocketAddrV4,
        datagram: &[u8],
    ) -> io::Result<bool> {
        let socket = cx.sockets.get_mut::<udp::Socket>(self.slots[slot]);
        match socket.send_slice(datagram, dst) {
            Ok(()) => Ok(true),
            // Lost like a dropped packet: the transfer's timer resends it.
            Err(e) => {
                writeln!(cx.out, "error tftp send slot={slot} to={dst}: {e}")?;
                Ok(false)
            }
        }
    }

    /// Milliseconds (smoltcp time) when a retransmission is due.
    pub fn poll_at(&self) -> Option<u64> {
        self.server.poll_at()
    }

    pub fn stats(&self) -> tftp::Stats {
        self.server.stats()
    }
}

/// Logs the server's events; a completed transfer is also a boot file for the uplink.
fn log_events(
    server: &mut Server<'_>,
    out: &mut dyn std::io::Write,
    quiet: bool,
    observed: &mut Vec<Observation>,
) -> io::Result<()> {
    while let Some(event) = server.poll_event() {
        if !quiet {
            writeln!(out, "{event}")?;
        }
        if let tftp::Event::Finished {
            transfer,
            outcome: tftp::Outcome::Completed,
            ..
        } = event
        {
            observed.push(Observation::Tftp {
                peer: *transfer.peer.ip(),
                name: transfer.name.as_str().to_owned(),
            });
        }
    }
    Ok(())
}
