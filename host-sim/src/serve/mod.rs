//! `host-sim serve`: the appliance on a TAP device, through smoltcp (its own IP stack).
//! One poll loop drives every service; each service owns its sockets.

mod dhcp;
mod http;
mod tftp;

use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use appliance::dhcp::pxe::BootTarget;
use appliance::dhcp::{Config, Mode};
use appliance::frame::UdpFrame;
use appliance::http::ScriptConfig;
use appliance::inventory::{Inventory, MachineKey};
use appliance::net::{Ipv4Net, MacAddr};
use smoltcp::iface::{Interface, SocketSet};
use smoltcp::phy::{self, Device, TunTapInterface};
use smoltcp::socket::udp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpCidr, IpEndpoint};

use crate::assets_dir::DirStore;
use crate::tap;
use dhcp::DhcpPort;
use http::HttpPort;
use tftp::TftpPort;

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
    pub boot_dir: PathBuf,
    pub max_leases: usize,
    /// Concurrent TFTP transfers.
    pub tftp_transfers: usize,
    pub http_port: u16,
    /// Concurrent HTTP connections.
    pub http_connections: usize,
    /// What `/boot.ipxe` renders.
    pub script: ScriptConfig<'static>,
    /// Boot targets set before any machine boots (the uplink sets them later).
    pub machine_boot: Vec<(MachineKey, BootTarget)>,
    pub quiet: bool,
}

/// What every service needs from the loop for one pass.
pub struct Ctx<'a> {
    pub now: Instant,
    pub sockets: &'a mut SocketSet<'static>,
    pub device: &'a mut TunTapInterface,
    /// The appliance's own addressing, for frames sent past the IP stack.
    pub link: &'a UdpFrame,
    pub inventory: &'a mut Inventory<MACHINES>,
    pub store: &'a mut DirStore,
    pub out: &'a mut dyn Write,
    pub quiet: bool,
}

pub fn run(opts: Options, config: Config) -> io::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    std::fs::create_dir_all(&opts.state_dir)?;
    let mode = config.mode;
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
    let mut dhcp = DhcpPort::open(config, opts.max_leases, &opts.state_dir, &mut sockets)?;
    // The TAP's MTU counts the Ethernet header.
    let ip_mtu = device.capabilities().max_transmission_unit - 14;
    let mut tftp = TftpPort::open(opts.tftp_transfers, ip_mtu, &mut sockets)?;
    let mut store = DirStore::new(opts.boot_dir.clone());
    let mut http = HttpPort::open(
        opts.http_port,
        opts.http_connections,
        opts.script.clone(),
        &mut sockets,
    );
    let link = UdpFrame {
        src_mac: opts.mac,
        dst_mac: MacAddr::BROADCAST,
        src: SocketAddrV4::new(opts.ip.addr, 0),
        dst: SocketAddrV4::new(Ipv4Addr::BROADCAST, 0),
    };

    let mut out = BufWriter::new(io::stdout().lock());
    let mode_name = if mode == Mode::Full { "full" } else { "proxy" };
    writeln!(
        out,
        "ready interface={} ip={} mac={} mode={mode_name} leases={}",
        opts.interface,
        opts.ip,
        opts.mac,
        dhcp.server().leases().len()
    )?;
    out.flush()?;

    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        iface.poll(now, &mut device, &mut sockets);
        let mut cx = Ctx {
            now,
            sockets: &mut sockets,
            device: &mut device,
            link: &link,
            inventory: &mut inventory,
            store: &mut store,
            out: &mut out,
            quiet: opts.quiet,
        };
        // Every service runs every pass: `|`, not `||`.
        let mut sent = dhcp.process(&mut cx)? | tftp.process(&mut cx)?;
        let leases = |ip| dhcp.server().leases().by_ip(ip).map(|l| l.mac);
        sent |= http.process(&mut cx, &leases)?;
        if sent {
            iface.poll(Instant::now(), &mut device, &mut sockets);
        }
        out.flush()?;
        let now = Instant::now();
        let due = |at: u64| Duration::from_millis(at.saturating_sub(now.total_millis() as u64));
        let wait = [
            iface.poll_delay(now, &sockets).map(Duration::from),
            tftp.poll_at().map(due),
            http.poll_at().map(due),
        ]
        .into_iter()
        .flatten()
        .fold(MAX_WAIT, Duration::min);
        match phy::wait(fd, Some(wait.into())) {
            // A stop signal interrupts the wait; the loop condition sees it.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => other?,
        }
    }
    dhcp.flush()?;
    let s = dhcp.server().stats();
    writeln!(
        out,
        "stopped leases={} received={} malformed={} ignored={} offers={} acks={} naks={} exhausted={} journal_errors={}",
        dhcp.server().leases().len(),
        s.received,
        s.malformed,
        s.ignored,
        s.offers,
        s.acks,
        s.naks,
        s.exhausted,
        dhcp.journal_errors(),
    )?;
    writeln!(out, "{}", tftp.stats())?;
    out.flush()
}

fn udp_socket() -> udp::Socket<'static> {
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
