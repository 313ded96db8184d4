//! DHCP on ports 67 and 4011: datagrams from smoltcp's UDP sockets into the appliance's
//! server, replies out through the sockets or, for clients without an address, as frames.

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;

use appliance::assets::AssetStore;
use appliance::dhcp::pxe::ClientKind;
use appliance::dhcp::wire::{CLIENT_PORT, MessageType, PROXY_PORT, SERVER_PORT};
use appliance::dhcp::{Config, Datagram, Destination, Lease, LeaseState, LeaseTable, Server, Slot};
use appliance::frame::UdpFrame;
use appliance::journal::Journal;
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::phy::{Device, TxToken};
use smoltcp::socket::udp;
use smoltcp::time::Instant;

use super::{Ctx, Observation, ipv4_endpoint, udp_socket};

/// smoltcp's host clock counts from the Unix epoch; leases need wall-clock seconds.
fn unix_secs(now: Instant) -> u64 {
    (now.total_millis() / 1000) as u64
}
use crate::journal_file::FileStorage;

/// Requests handled per socket per pass.
const BATCH: usize = 32;

pub struct DhcpPort {
    server: Server<'static>,
    log: LeaseLog,
    sockets: [(u16, SocketHandle); 2],
}

impl DhcpPort {
    /// Restores the leases from the journal in `state_dir` and binds the sockets.
    pub fn open(
        config: Config,
        max_leases: usize,
        state_dir: &Path,
        sockets: &mut SocketSet<'static>,
    ) -> io::Result<DhcpPort> {
        // One table for the life of the process.
        let slots =
            Box::leak(vec![Slot::EMPTY; max_leases.saturating_mul(2).max(2)].into_boxed_slice());
        let mut server = Server::new(config, LeaseTable::new(slots));
        let storage = FileStorage::open(&state_dir.join("leases.journal"))?;
        let (mut journal, replay) = Journal::open(storage, |lease| {
            server.restore(lease);
        })?;
        if replay.torn_bytes > 0 || journal.should_compact(server.leases().len()) {
            journal.compact(server.leases().iter())?;
        }
        let mut bind = |port| -> io::Result<(u16, SocketHandle)> {
            let mut socket = udp_socket();
            socket.bind(port).map_err(io::Error::other)?;
            Ok((port, sockets.add(socket)))
        };
        let sockets = [bind(SERVER_PORT)?, bind(PROXY_PORT)?];
        Ok(DhcpPort {
            server,
            log: LeaseLog { journal, errors: 0 },
            sockets,
        })
    }

    pub fn server(&self) -> &Server<'static> {
        &self.server
    }

    /// Handles every datagram waiting; returns whether anything was sent.
    pub fn process<D: Device, S: AssetStore>(
        &mut self,
        cx: &mut Ctx<'_, D, S>,
    ) -> io::Result<bool> {
        let mut rx = [0u8; 1500];
        let mut tx = [0u8; 1500];
        let mut sent = false;
        for (port, handle) in self.sockets {
            let socket = cx.sockets.get_mut::<udp::Socket>(handle);
            // A batch per pass, so replies leave in small bursts a relay's socket absorbs.
            for _ in 0..BATCH {
                let Ok((len, meta)) = socket.recv_slice(&mut rx) else {
                    break;
                };
                let Some(src) = ipv4_endpoint(meta.endpoint) else {
                    continue;
                };
                let dg = Datagram {
                    src,
                    port,
                    payload: &rx[..len],
                };
                let outcome = self
                    .server
                    .handle(unix_secs(cx.now), &dg, cx.inventory, &mut tx);
                if !cx.quiet {
                    writeln!(cx.out, "{}", outcome.decision)?;
                }
                let d = &outcome.decision;
                if d.received.is_ok() {
                    cx.observed.push(Observation::Dhcp {
                        mac: d.mac,
                        uuid: d.uuid,
                        arch: d.arch,
                    });
                }
                // iPXE told to chain a URL: all the appliance sees of a boot served elsewhere.
                if let (ClientKind::Ipxe, Some(MessageType::Ack), Some(file)) =
                    (d.kind, d.reply, &d.file)
                {
                    cx.observed.push(Observation::Chain {
                        mac: d.mac,
                        url: file.as_str().into(),
                    });
                }
                if let Some(lease) = outcome.change {
                    self.log.record(&lease, cx.out)?;
                    cx.observed.push(Observation::Lease(lease));
                }
                let Some((to, len)) = outcome.reply else {
                    continue;
                };
                match send_reply(socket, cx.device, cx.now, cx.link, port, to, &tx[..len]) {
                    Ok(()) => sent = true,
                    Err(e) => writeln!(cx.out, "error send to={to}: {e}")?,
                }
            }
        }
        self.log.sync(self.server.leases(), cx.out)?;
        Ok(sent)
    }

    /// Datagrams are waiting beyond this pass's batch.
    pub fn pending(&self, sockets: &SocketSet<'static>) -> bool {
        self.sockets
            .iter()
            .any(|&(_, h)| sockets.get::<udp::Socket>(h).can_recv())
    }

    pub fn journal_errors(&self) -> u32 {
        self.log.errors
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.log.journal.flush()
    }
}

/// The lease journal. A failing disk is logged and counted but never stops DHCP: the
/// leases stay in memory and the next compaction rewrites them all.
struct LeaseLog {
    journal: Journal<FileStorage>,
    errors: u32,
}

impl LeaseLog {
    fn record(&mut self, lease: &Lease, out: &mut dyn Write) -> io::Result<()> {
        let result = self.journal.append(lease);
        self.check(result, "append", out)
    }

    /// Writes this batch out, compacting once superseded records dominate.
    fn sync(&mut self, leases: &LeaseTable<'_>, out: &mut dyn Write) -> io::Result<()> {
        let result = self.journal.flush();
        self.check(result, "flush", out)?;
        if self.journal.should_compact(leases.len()) {
            let live = leases.iter().filter(|l| l.state != LeaseState::Offered);
            let result = self.journal.compact(live);
            self.check(result, "compaction", out)?;
        }
        Ok(())
    }

    fn check(&mut self, result: io::Result<()>, what: &str, out: &mut dyn Write) -> io::Result<()> {
        if let Err(e) = result {
            self.errors += 1;
            writeln!(out, "error journal {what}: {e}")?;
        }
        Ok(())
    }
}

fn send_reply<D: Device>(
    socket: &mut udp::Socket<'_>,
    device: &mut D,
    now: Instant,
    link: &UdpFrame,
    port: u16,
    to: Destination,
    reply: &[u8],
) -> Result<(), String> {
    match to {
        Destination::Broadcast => socket
            .send_slice(reply, SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT))
            .map_err(|e| e.to_string()),
        Destination::Unicast(addr) => socket.send_slice(reply, addr).map_err(|e| e.to_string()),
        // The client cannot answer ARP yet: address the frame to its MAC ourselves.
        Destination::Link { mac, ip } => {
            let f = UdpFrame {
                dst_mac: mac,
                src: SocketAddrV4::new(*link.src.ip(), port),
                dst: SocketAddrV4::new(ip, CLIENT_PORT),
                ..*link
            };
            let mut frame = [0u8; 1514];
            let len = f
                .emit(reply, &mut frame)
                .map_err(|_| "frame too large".to_string())?;
            let token = device.transmit(now).ok_or("device busy")?;
            token.consume(len, |dst| dst.copy_from_slice(&frame[..len]));
            Ok(())
        }
    }
}
