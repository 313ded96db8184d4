//! The appliance's services over one smoltcp interface, whatever the NIC: a TAP device for
//! `serve`, a simulated segment for `rack`. Each service owns its sockets; `poll` runs
//! them all once and says when to poll again.

mod dhcp;
mod http;
mod power;
mod tftp;
mod uplink;

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use appliance::assets::AssetStore;
use appliance::dhcp::pxe::BootTarget;
use appliance::dhcp::{Config, Server};
use appliance::frame::UdpFrame;
use appliance::http::ScriptConfig;
use appliance::inventory::{Inventory, MachineKey};
use appliance::net::{Ipv4Net, MacAddr};
use smoltcp::iface::{Interface, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::udp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpCidr, IpEndpoint};

use dhcp::DhcpPort;
use http::HttpPort;
pub use power::BMCS;
use power::PowerPort;
use tftp::TftpPort;
pub use uplink::UplinkSettings;
use uplink::{Observation, Tables, UplinkPort};

/// Machines the host simulator remembers (a board picks its own, smaller, number).
pub const MACHINES: usize = 1024;
/// The longest the loop sleeps, so signals and journal flushes are timely.
const MAX_WAIT: Duration = Duration::from_millis(50);
/// Datagrams each DHCP socket buffers between polls.
const SOCKET_PACKETS: usize = 1024;

/// Where the appliance sits and how big its tables are.
pub struct Settings {
    pub ip: Ipv4Net,
    pub mac: MacAddr,
    pub gateway: Option<Ipv4Addr>,
    pub state_dir: PathBuf,
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
    /// Do not log each decision, transfer and request.
    pub quiet: bool,
}

/// A NIC that can send a train of UDP datagrams of one size (the last may be shorter)
/// between the same two endpoints in one go.
pub trait UdpBurst {
    /// Whether [`UdpBurst::send_burst`] can ever succeed; when not, callers send one by one.
    fn can_burst(&self) -> bool;
    /// Sends `payload` as datagrams of `segment` bytes; `Ok(false)` if it cannot (e.g. the
    /// peer's MAC is unknown) and the caller should send them one by one.
    fn send_burst(
        &mut self,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        segment: usize,
        payload: &[u8],
    ) -> io::Result<bool>;
}

/// What every service needs from the loop for one pass.
pub struct Ctx<'a, D: Device, S: AssetStore> {
    pub now: Instant,
    pub sockets: &'a mut SocketSet<'static>,
    pub device: &'a mut D,
    /// The appliance's own addressing, for frames sent past the IP stack.
    pub link: &'a UdpFrame,
    pub inventory: &'a mut Inventory<MACHINES>,
    pub store: &'a mut S,
    pub out: &'a mut dyn Write,
    pub quiet: bool,
    /// What the services did that the uplink reports (cleared each pass without one).
    pub observed: &'a mut Vec<Observation>,
}

pub struct Runtime<S: AssetStore> {
    iface: Interface,
    sockets: SocketSet<'static>,
    dhcp: DhcpPort,
    tftp: TftpPort,
    http: HttpPort,
    inventory: Box<Inventory<MACHINES>>,
    store: S,
    link: UdpFrame,
    quiet: bool,
    /// With the uplink: the power port its commands drive.
    uplink: Option<(UplinkPort, PowerPort)>,
    observed: Vec<Observation>,
}

impl<S: AssetStore> Runtime<S> {
    pub fn new<D: Device>(
        settings: Settings,
        config: Config,
        store: S,
        device: &mut D,
        now: Instant,
    ) -> io::Result<Runtime<S>> {
        std::fs::create_dir_all(&settings.state_dir)?;
        let mut inventory = Box::<Inventory<MACHINES>>::default();
        for (key, target) in &settings.machine_boot {
            inventory.set_boot(*key, target.clone()).map_err(|_| {
                io::Error::other("more --machine-boot entries than the machine table holds")
            })?;
        }
        let mut iface = Interface::new(
            smoltcp::iface::Config::new(EthernetAddress(settings.mac.0).into()),
            device,
            now,
        );
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(settings.ip.addr.into(), settings.ip.prefix));
        });
        if let Some(gw) = settings.gateway {
            iface
                .routes_mut()
                .add_default_ipv4_route(gw)
                .map_err(io::Error::other)?;
        }
        let mut sockets = SocketSet::new(vec![]);
        let dhcp = DhcpPort::open(
            config,
            settings.max_leases,
            &settings.state_dir,
            &mut sockets,
        )?;
        // The device's MTU counts the Ethernet header.
        let ip_mtu = device.capabilities().max_transmission_unit - 14;
        let tftp = TftpPort::open(settings.tftp_transfers, ip_mtu, &mut sockets)?;
        let http = HttpPort::open(
            settings.http_port,
            settings.http_connections,
            settings.script,
            &mut sockets,
        );
        let link = UdpFrame {
            src_mac: settings.mac,
            dst_mac: MacAddr::BROADCAST,
            src: SocketAddrV4::new(settings.ip.addr, 0),
            dst: SocketAddrV4::new(Ipv4Addr::BROADCAST, 0),
        };
        Ok(Runtime {
            iface,
            sockets,
            dhcp,
            tftp,
            http,
            inventory,
            store,
            link,
            quiet: settings.quiet,
            uplink: None,
            observed: Vec::new(),
        })
    }

    /// Starts the provider uplink, and the power port it drives, if the state dir holds an
    /// identity or a token is given.
    pub fn open_uplink(&mut self, settings: UplinkSettings, out: &mut dyn Write) -> io::Result<()> {
        if let Some(uplink) = UplinkPort::open(settings, &mut self.sockets, out)? {
            self.uplink = Some((uplink, PowerPort::open(&mut self.sockets)?));
        }
        Ok(())
    }

    pub fn dhcp(&self) -> &Server<'static> {
        self.dhcp.server()
    }

    /// Runs every service once; returns how long until the next poll is needed.
    pub fn poll<D: Device + UdpBurst>(
        &mut self,
        now: Instant,
        device: &mut D,
        out: &mut dyn Write,
    ) -> io::Result<Duration> {
        self.iface.poll(now, device, &mut self.sockets);
        let mut cx = Ctx {
            now,
            sockets: &mut self.sockets,
            device: &mut *device,
            link: &self.link,
            inventory: &mut self.inventory,
            store: &mut self.store,
            out: &mut *out,
            quiet: self.quiet,
            observed: &mut self.observed,
        };
        // Every service runs every pass: `|`, not `||`.
        let mut sent = self.dhcp.process(&mut cx)? | self.tftp.process(&mut cx)?;
        let dhcp = &self.dhcp;
        let leases = |ip| dhcp.server().leases().by_ip(ip).map(|l| l.mac);
        let join_config = self.uplink.as_ref().and_then(|(u, _)| u.join_config());
        sent |= self.http.process(&mut cx, &leases, join_config)?;
        match &mut self.uplink {
            Some((uplink, power)) => {
                let ms = now.total_millis() as u64;
                power.process(ms, &mut self.sockets, device, &self.link, out)?;
                uplink.report(ms, &mut self.observed, &leases);
                let (iface, sockets) = (&mut self.iface, &mut self.sockets);
                let mut tables = Tables {
                    inventory: &mut self.inventory,
                    power,
                };
                uplink.process(ms, iface, sockets, &mut tables, out)?;
                sent = true;
            }
            None => self.observed.clear(),
        }
        if sent {
            // Egress only: a frame that arrived meanwhile stays queued on the device, so the
            // wait below wakes for it (a full poll would take it in unseen and then sleep).
            self.iface.poll_egress(now, device, &mut self.sockets);
        }
        if self.dhcp.pending(&self.sockets) {
            return Ok(Duration::ZERO);
        }
        let due = |at: u64| Duration::from_millis(at.saturating_sub(now.total_millis() as u64));
        Ok([
            self.iface
                .poll_delay(now, &self.sockets)
                .map(Duration::from),
            self.tftp.poll_at().map(due),
            self.http.poll_at().map(due),
            self.uplink.as_ref().and_then(|(u, _)| u.poll_at()).map(due),
            self.uplink.as_ref().and_then(|(_, p)| p.poll_at()).map(due),
        ]
        .into_iter()
        .flatten()
        .fold(MAX_WAIT, Duration::min))
    }

    /// Flushes the lease journal and logs the counters.
    pub fn shutdown(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.dhcp.flush()?;
        let s = self.dhcp.server().stats();
        writeln!(
            out,
            "stopped leases={} received={} malformed={} ignored={} offers={} acks={} naks={} exhausted={} journal_errors={}",
            self.dhcp.server().leases().len(),
            s.received,
            s.malformed,
            s.ignored,
            s.offers,
            s.acks,
            s.naks,
            s.exhausted,
            self.dhcp.journal_errors(),
        )?;
        writeln!(out, "{}", self.tftp.stats())
    }
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
