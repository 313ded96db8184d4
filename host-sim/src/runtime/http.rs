//! HTTP on a pool of smoltcp TCP sockets listening on one port: each socket carries one
//! connection at a time, driven by an appliance `http::Connection`.

use std::io::{self, Write};
use std::net::Ipv4Addr;

use appliance::dhcp::pxe::BootTarget;
use appliance::http::{BootTargets, Connection, ScriptConfig, Site};
use appliance::inventory::Inventory;
use appliance::net::{MacAddr, Uuid};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::IpEndpoint;

use appliance::assets::AssetStore;
use smoltcp::phy::Device;

use super::{Ctx, MACHINES, Observation};

const RX_BUFFER: usize = 4096;
/// Large enough to keep a kernel download streaming between polls.
const TX_BUFFER: usize = 256 * 1024;
/// A peer that vanishes mid-connection is dropped after this.
const SOCKET_TIMEOUT_SECS: u64 = 30;

struct Slot {
    handle: SocketHandle,
    conn: Option<(Connection, IpEndpoint)>,
}

pub struct HttpPort {
    port: u16,
    slots: Vec<Slot>,
    script: ScriptConfig<'static>,
}

impl HttpPort {
    pub fn open(
        port: u16,
        connections: usize,
        script: ScriptConfig<'static>,
        sockets: &mut SocketSet<'static>,
    ) -> HttpPort {
        let slots = (0..connections)
            .map(|_| {
                let mut socket = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; RX_BUFFER]),
                    tcp::SocketBuffer::new(vec![0; TX_BUFFER]),
                );
                socket.set_timeout(Some(smoltcp::time::Duration::from_secs(
                    SOCKET_TIMEOUT_SECS,
                )));
                Slot {
                    handle: sockets.add(socket),
                    conn: None,
                }
            })
            .collect();
        HttpPort {
            port,
            slots,
            script,
        }
    }

    /// Moves bytes between the sockets and their connections; returns whether any were sent.
    /// `join_config` is what `/config` serves (the uplink's, once the provider sent one).
    pub fn process<D: Device, S: AssetStore>(
        &mut self,
        cx: &mut Ctx<'_, D, S>,
        leases: &dyn Fn(Ipv4Addr) -> Option<MacAddr>,
        join_config: Option<&str>,
    ) -> io::Result<bool> {
        let now = cx.now.total_millis() as u64;
        let mut sent = false;
        for slot in &mut self.slots {
            let socket = cx.sockets.get_mut::<tcp::Socket>(slot.handle);
            // The client closed first and all our data is acknowledged: only the ACK of our
            // FIN is missing, which a machine that has moved on to its kernel never sends.
            // Waiting for it would hold the socket until the timeout, in every PXE storm.
            if socket.state() == State::LastAck && socket.send_queue() == 0 {
                socket.abort();
            }
            if matches!(socket.state(), State::Closed | State::TimeWait) {
                if let Some((mut conn, peer)) = slot.conn.take() {
                    conn.release(now, cx.store);
                    log_events(&mut conn, peer, cx.out, cx.quiet, cx.observed)?;
                }
                // TIME-WAIT only guards against old segments; the client keeps its own.
                socket.abort();
                socket.listen(self.port).map_err(io::Error::other)?;
                continue;
            }
            // A client that connected and closed before we saw it (a probe, a health
            // check) would otherwise hold the socket until its timeout.
            if slot.conn.is_none() && socket.state() == State::CloseWait {
                socket.abort();
                continue;
            }
            if slot.conn.is_none() && socket.state() == State::Established {
                let Some(peer) = socket.remote_endpoint() else {
                    continue;
                };
                slot.conn = Some((Connection::new(now), peer));
            }
            let Some((conn, peer)) = slot.conn.as_mut() else {
                continue;
            };
            let targets = ByPeer {
                inventory: cx.inventory,
                peer_mac: peer_ip(*peer).and_then(leases),
                join_config,
            };
            let mut site = Site {
                store: cx.store,
                script: &self.script,
                targets: &targets,
            };
            // Until neither direction moves: a finished response lets the next request in.
            for _ in 0..64 {
                let received = socket.recv(|buf| {
                    let n = conn.receive(now, buf);
                    (n, n)
                });
                let written = if socket.can_send() {
                    socket.send(|buf| {
                        let n = conn.send(now, buf, &mut site);
                        (n, n)
                    })
                } else {
                    Ok(0)
                };
                sent |= written.is_ok_and(|n| n > 0);
                if received.unwrap_or(0) == 0 && written.unwrap_or(0) == 0 {
                    break;
                }
            }
            if !socket.may_recv() && socket.recv_queue() == 0 {
                conn.peer_closed(now);
            }
            if conn.poll_at().is_some_and(|at| at <= now) {
                conn.tick(now);
            }
            if conn.should_close() && socket.state() != State::Closed {
                socket.close();
            }
            let peer = *peer;
            log_events(conn, peer, cx.out, cx.quiet, cx.observed)?;
        }
        Ok(sent)
    }

    /// The earliest connection deadline (milliseconds, smoltcp time).
    pub fn poll_at(&self) -> Option<u64> {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_ref()?.0.poll_at())
            .min()
    }
}

/// Logs the connection's requests; a whole GET body is also a boot file for the uplink.
fn log_events(
    conn: &mut Connection,
    peer: IpEndpoint,
    out: &mut dyn Write,
    quiet: bool,
    observed: &mut Vec<Observation>,
) -> io::Result<()> {
    while let Some(event) = conn.poll_event() {
        if !quiet {
            writeln!(out, "{}", event.line(peer))?;
        }
        if let Some(ip) =
            peer_ip(peer).filter(|_| event.method == "GET" && event.status == 200 && event.complete)
        {
            observed.push(Observation::Http {
                peer: ip,
                target: event.target.as_str().to_owned(),
            });
        }
    }
    Ok(())
}

fn peer_ip(ep: IpEndpoint) -> Option<Ipv4Addr> {
    match ep.addr {
        smoltcp::wire::IpAddress::Ipv4(ip) => Some(ip),
    }
}

/// A machine's boot target by what its script request says, or else by its address: iPXE
/// fetches the plain script URL from DHCP, and its lease names its MAC.
struct ByPeer<'a> {
    inventory: &'a Inventory<MACHINES>,
    peer_mac: Option<MacAddr>,
    join_config: Option<&'a str>,
}

impl BootTargets for ByPeer<'_> {
    fn boot_target(&self, mac: Option<MacAddr>, uuid: Option<Uuid>) -> BootTarget {
        let mac = mac.or(if uuid.is_none() { self.peer_mac } else { None });
        BootTargets::boot_target(self.inventory, mac, uuid)
    }

    fn join_config(&self) -> Option<&str> {
        self.join_config
    }
}
