//! TFTP on port 69, each transfer on its own UDP socket (its TID): a fixed pool of slots,
//! slot `i` on port `SLOT_PORT_BASE + i`.

use std::io;

use appliance::tftp::{self, RequestOutcome, Server, Transfer};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::udp;

use appliance::assets::AssetStore;
use smoltcp::phy::Device;

use super::{Ctx, ipv4_endpoint};

const TFTP_PORT: u16 = 69;
/// Where the transfers' own ports start.
const SLOT_PORT_BASE: u16 = 50_000;
/// Per-slot send buffer in packets: a whole window of the largest size plus slack.
const SLOT_PACKETS: usize = 72;

pub struct TftpPort {
    server: Server<'static>,
    listener: SocketHandle,
    slots: Vec<SocketHandle>,
    /// Largest datagram: 4 bytes of header and a block.
    packet: usize,
}

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
            packet,
        })
    }

    /// Takes requests and ACKs, sends what is due; returns whether anything was sent.
    pub fn process<D: Device, S: AssetStore>(
        &mut self,
        cx: &mut Ctx<'_, D, S>,
    ) -> io::Result<bool> {
        let now = cx.now.total_millis() as u64;
        let mut rx = vec![0u8; self.packet.max(1500)];
        let mut tx = vec![0u8; self.packet];
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
            log_events(&mut self.server, cx.out, cx.quiet)?;
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
                log_events(&mut self.server, cx.out, cx.quiet)?;
            }
        }
        while let Some(t) = self.server.dispatch(now, cx.store, &mut tx) {
            let socket = cx.sockets.get_mut::<udp::Socket>(self.slots[t.slot]);
            match socket.send_slice(&tx[..t.len], t.dst) {
                Ok(()) => sent = true,
                // Lost like a dropped packet: the transfer's timer resends it.
                Err(e) => writeln!(cx.out, "error tftp send slot={} to={}: {e}", t.slot, t.dst)?,
            }
            log_events(&mut self.server, cx.out, cx.quiet)?;
        }
        log_events(&mut self.server, cx.out, cx.quiet)?;
        Ok(sent)
    }

    /// Milliseconds (smoltcp time) when a retransmission is due.
    pub fn poll_at(&self) -> Option<u64> {
        self.server.poll_at()
    }

    pub fn stats(&self) -> tftp::Stats {
        self.server.stats()
    }
}

fn log_events(
    server: &mut Server<'_>,
    out: &mut dyn std::io::Write,
    quiet: bool,
) -> io::Result<()> {
    while let Some(event) = server.poll_event() {
        if !quiet {
            writeln!(out, "{event}")?;
        }
    }
    Ok(())
}
