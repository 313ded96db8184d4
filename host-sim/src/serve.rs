//! `host-sim serve`: the appliance on a TAP device, through smoltcp (its own IP stack).

use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use appliance::dhcp::pxe::BootTarget;
use appliance::dhcp::wire::{CLIENT_PORT, PROXY_PORT, SERVER_PORT};
use appliance::dhcp::{
    Config, Datagram, Destination, Lease, LeaseState, LeaseTable, Mode, Server, Slot,
};
use appliance::frame::UdpFrame;
use appliance::inventory::{Inventory, MachineKey};
use appliance::journal::Journal;
use appliance::net::{Ipv4Net, MacAddr};
use smoltcp::iface::{Interface, SocketSet};
use smoltcp::phy::{self, Device, TunTapInterface, TxToken};
use smoltcp::socket::udp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpCidr, IpEndpoint};

use crate::journal_file::FileStorage;
use crate::tap;

/// Machines the host simulator remembers (a board picks its own, smaller, number).
pub const MACHINES: usize = 1024;
/// The longest the loop sleeps, so signals and journal flushes are timely.
const MAX_WAIT: Duration = Duration::from_millis(50);
/// Datagrams each UDP socket buffers between polls.
const SOCKET_PACKETS: usize = 1024;

pub struct Options {
    pub interface: String,
    pub ip: Ipv4Net,
    pub mac: MacAddr,
    pub gateway: Option<Ipv4Addr>,
    pub state_dir: PathBuf,
    pub max_leases: usize,
    /// Boot targets set before any machine boots (the uplink sets them later).
    pub machine_boot: Vec<(MachineKey, BootTarget)>,
    pub quiet: bool,
}

pub fn run(opts: Options, config: Config) -> io::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    std::fs::create_dir_all(&opts.state_dir)?;
    let mut slots = vec![Slot::EMPTY; opts.max_leases.saturating_mul(2).max(2)];
    let mode = config.mode;
    let mut server = Server::new(config, LeaseTable::new(&mut slots));
    let storage = FileStorage::open(&opts.state_dir.join("leases.journal"))?;
    let (mut journal, replay) = Journal::open(storage, |lease| {
        server.restore(lease);
    })?;
    if replay.torn_bytes > 0 || journal.should_compact(server.leases().len()) {
        journal.compact(server.leases().iter())?;
    }
    let mut log = LeaseLog { journal, errors: 0 };
    let mut inventory = Box::<Inventory<MACHINES>>::default();
    for (key, target) in &opts.machine_boot {
        inventory.set_boot(*key, target.clone()).map_err(|_| {
            io::Error::other("more --machine-boot entries than the machine table holds")
        })?;
    }

    let mut device = tap::open(&opts.interface)?;
    let fd = device.as_raw_fd();
    let mut iface = Interface::new(
        smoltcp::iface::Config::new(EthernetAddress(opts.mac.0).into()),
        &mut device,
        Instant::now(),
    );
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(opts.ip.addr.into(), opts.ip.prefix));
    });
    if let Some(gw) = opts.gateway {
        iface
            .routes_mut()
            .add_default_ipv4_route(gw)
            .map_err(io::Error::other)?;
    }
    let mut sockets = SocketSet::new(vec![]);
    let ports = [SERVER_PORT, PROXY_PORT].map(|port| (port, sockets.add(udp_socket(port))));
    for (port, handle) in ports {
        sockets
            .get_mut::<udp::Socket>(handle)
            .bind(port)
            .map_err(io::Error::other)?;
    }

    let mut out = BufWriter::new(io::stdout().lock());
    let mode_name = if mode == Mode::Full { "full" } else { "proxy" };
    writeln!(
        out,
        "ready interface={} ip={} mac={} mode={mode_name} leases={}",
        opts.interface,
        opts.ip,
        opts.mac,
        server.leases().len()
    )?;
    out.flush()?;

    let mut rx = [0u8; 1500];
    let mut tx = [0u8; 1500];
    let mut frame = [0u8; 1514];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        iface.poll(now, &mut device, &mut sockets);
        let mut sent = false;
        for (port, handle) in ports {
            let socket = sockets.get_mut::<udp::Socket>(handle);
            while let Ok((len, meta)) = socket.recv_slice(&mut rx) {
                let Some(src) = ipv4_endpoint(meta.endpoint) else {
                    continue;
                };
                let dg = Datagram {
                    src,
                    port,
                    payload: &rx[..len],
                };
                let outcome = server.handle(unix_now(), &dg, &mut inventory, &mut tx);
                if !opts.quiet {
                    writeln!(out, "{}", outcome.decision)?;
                }
                if let Some(lease) = outcome.change {
                    log.record(&lease, &mut out)?;
                }
                let Some((to, len)) = outcome.reply else {
                    continue;
                };
                let link = Link {
                    device: &mut device,
                    now,
                    opts: &opts,
                    port,
                    frame: &mut frame,
                };
                match send_reply(socket, link, to, &tx[..len]) {
                    Ok(()) => sent = true,
                    Err(e) => writeln!(out, "error send to={to}: {e}")?,
                }
            }
        }
        if sent {
            iface.poll(Instant::now(), &mut device, &mut sockets);
        }
        log.sync(server.leases(), &mut out)?;
        out.flush()?;
        let wait = iface
            .poll_delay(Instant::now(), &sockets)
            .map_or(MAX_WAIT, |d| d.into())
            .min(MAX_WAIT);
        match phy::wait(fd, Some(wait.into())) {
            // A stop signal interrupts the wait; the loop condition sees it.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => other?,
        }
    }
    log.journal.flush()?;
    let s = server.stats();
    writeln!(
        out,
        "stopped leases={} received={} malformed={} ignored={} offers={} acks={} naks={} exhausted={} journal_errors={}",
        server.leases().len(),
        s.received,
        s.malformed,
        s.ignored,
        s.offers,
        s.acks,
        s.naks,
        s.exhausted,
        log.errors,
    )?;
    out.flush()
}

/// The lease journal. A failing disk is logged and counted but never stops DHCP: the
/// leases stay in memory and the next compaction rewrites them all.
struct LeaseLog {
    journal: Journal<FileStorage>,
    errors: u32,
}

impl LeaseLog {
    fn record(&mut self, lease: &Lease, out: &mut impl Write) -> io::Result<()> {
        let result = self.journal.append(lease);
        self.check(result, "append", out)
    }

    /// Writes this batch out, compacting once superseded records dominate.
    fn sync(&mut self, leases: &LeaseTable<'_>, out: &mut impl Write) -> io::Result<()> {
        let result = self.journal.flush();
        self.check(result, "flush", out)?;
        if self.journal.should_compact(leases.len()) {
            let live = leases.iter().filter(|l| l.state != LeaseState::Offered);
            let result = self.journal.compact(live);
            self.check(result, "compaction", out)?;
        }
        Ok(())
    }

    fn check(
        &mut self,
        result: io::Result<()>,
        what: &str,
        out: &mut impl Write,
    ) -> io::Result<()> {
        if let Err(e) = result {
            self.errors += 1;
            writeln!(out, "error journal {what}: {e}")?;
        }
        Ok(())
    }
}

/// What a reply needs to go out past the IP stack.
struct Link<'a> {
    device: &'a mut TunTapInterface,
    now: Instant,
    opts: &'a Options,
    port: u16,
    frame: &'a mut [u8],
}

fn send_reply(
    socket: &mut udp::Socket<'_>,
    link: Link<'_>,
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
                src_mac: link.opts.mac,
                dst_mac: mac,
                src: SocketAddrV4::new(link.opts.ip.addr, link.port),
                dst: SocketAddrV4::new(ip, CLIENT_PORT),
            };
            let len = f
                .emit(reply, link.frame)
                .map_err(|_| "frame too large".to_string())?;
            let token = link.device.transmit(link.now).ok_or("device busy")?;
            token.consume(len, |dst| dst.copy_from_slice(&link.frame[..len]));
            Ok(())
        }
    }
}

fn udp_socket(_port: u16) -> udp::Socket<'static> {
    let buffer = || {
        udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; SOCKET_PACKETS],
            vec![0u8; SOCKET_PACKETS * 600],
        )
    };
    udp::Socket::new(buffer(), buffer())
}

fn ipv4_endpoint(ep: IpEndpoint) -> Option<SocketAddrV4> {
    match ep.addr {
        smoltcp::wire::IpAddress::Ipv4(ip) => Some(SocketAddrV4::new(ip, ep.port)),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
