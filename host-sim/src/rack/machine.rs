//! A simulated rack machine: its NIC on the segment, its own smoltcp stack, and the boot
//! chain PXE firmware and iPXE run on every power-on: DHCP, TFTP for the iPXE binary, DHCP
//! again, HTTP for the script and what it names. Boot order is network first, as in a rack
//! the appliance provisions: the appliance's answer decides between its kernel, a chain
//! elsewhere (an installer) and the disk.

use std::net::{Ipv4Addr, SocketAddrV4};

use appliance::frame::UdpFrame;
use appliance::net::{MacAddr, Uuid};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpCidr};

use super::dhcp_client::{Bound, DhcpClient, Firmware, Reply, Stage};
use super::http_client::HttpClient;
use super::segment::Nic;
use super::tftp_client::TftpClient;

/// DHCP retransmission: 4 s as PXE firmware does, doubling.
const DHCP_TIMEOUT_MS: u64 = 4000;
const HTTP_PORT: u16 = 80;
const HTTP_RETRY_MS: u64 = 1000;

/// What a boot ended in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Booted {
    /// The kernel and initrd the appliance serves (its agent mode while no agent URL is set).
    Kernel,
    /// An iPXE chain to a URL off the segment (an Image Factory installer), not followed.
    Chain(String),
    /// No boot offer, or the script's `exit`: the firmware went on to the disk.
    Disk,
}

enum Phase {
    Off,
    Dhcp,
    Tftp(TftpClient),
    Http(HttpClient),
    Up,
    Failed(String),
}

pub struct Machine {
    pub mac: MacAddr,
    pub uuid: Uuid,
    pub firmware: Firmware,
    seed: u64,
    nic: Nic,
    iface: Interface,
    sockets: SocketSet<'static>,
    udp: SocketHandle,
    tcp: SocketHandle,
    local_port: u16,
    dhcp: DhcpClient,
    dhcp_deadline: u64,
    dhcp_tries: u32,
    http_retry_at: u64,
    phase: Phase,
    /// When the current (or last) boot started.
    pub powered_on: u64,
    /// When the first boot ended (the boot storm's measure).
    pub booted_at: Option<u64>,
    /// Every boot that ended, with when it ended.
    pub boots: Vec<(u64, Booted)>,
    pub firmware_file: Option<String>,
    pub script: Option<String>,
    pub ip: Option<Ipv4Addr>,
    pub retries: u32,
    /// What the last boot fetched over HTTP and TFTP.
    pub http: Vec<(String, usize, super::Digest)>,
    pub tftp: Option<(String, super::Digest)>,
}

impl Machine {
    /// A machine that powers on at `powered_on` (virtual or real milliseconds).
    pub fn new(
        mac: MacAddr,
        uuid: Uuid,
        firmware: Firmware,
        seed: u64,
        mut nic: Nic,
        powered_on: u64,
    ) -> Machine {
        let iface = interface(mac, seed, &mut nic, powered_on);
        let mut sockets = SocketSet::new(vec![]);
        let udp = sockets.add(udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 32], vec![0; 32 * 1500]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 8], vec![0; 8 * 1500]),
        ));
        let tcp = sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
            tcp::SocketBuffer::new(vec![0; 2048]),
        ));
        let mut machine = Machine {
            mac,
            uuid,
            firmware,
            seed,
            nic,
            iface,
            sockets,
            udp,
            tcp,
            local_port: 0,
            dhcp: DhcpClient::new(mac, uuid, firmware, seed as u32),
            dhcp_deadline: 0,
            dhcp_tries: 0,
            http_retry_at: 0,
            phase: Phase::Off,
            powered_on,
            booted_at: None,
            boots: Vec::new(),
            firmware_file: None,
            script: None,
            ip: None,
            retries: 0,
            http: Vec::new(),
            tftp: None,
        };
        machine.power_on(powered_on);
        machine
    }

    pub fn port(&self) -> usize {
        self.nic.port()
    }

    /// Not in the middle of a boot: up, off or failed.
    pub fn settled(&self) -> bool {
        matches!(self.phase, Phase::Off | Phase::Up | Phase::Failed(_))
    }

    pub fn is_on(&self) -> bool {
        !matches!(self.phase, Phase::Off)
    }

    pub fn failure(&self) -> Option<&str> {
        match &self.phase {
            Phase::Failed(why) => Some(why),
            _ => None,
        }
    }

    /// Power-on or reset: the firmware starts the boot chain at `at`, from a fresh stack: no
    /// address, an empty ARP cache, and a new local port, so nothing of the last boot's
    /// connections is taken for this one's.
    pub fn power_on(&mut self, at: u64) {
        self.iface = interface(self.mac, self.seed, &mut self.nic, at);
        self.sockets.get_mut::<tcp::Socket>(self.tcp).abort();
        self.sockets.get_mut::<udp::Socket>(self.udp).close();
        let boot = self.boots.len() as u64;
        self.local_port = 49152 + ((self.seed + boot * 7919) % 16000) as u16;
        self.dhcp = DhcpClient::new(
            self.mac,
            self.uuid,
            self.firmware,
            (self.seed as u32).wrapping_add(boot as u32 * 0x1000),
        );
        self.dhcp_deadline = at;
        self.dhcp_tries = 0;
        self.http_retry_at = 0;
        self.powered_on = at;
        self.phase = Phase::Dhcp;
    }

    /// The power is cut: whatever was in flight is lost.
    pub fn power_off(&mut self) {
        self.phase = Phase::Off;
    }

    /// Runs the machine at `now_ms`; returns when it next needs to run.
    pub fn poll(&mut self, now_ms: u64, server: Ipv4Addr) -> u64 {
        if !self.is_on() {
            while self.nic.take().is_some() {}
            return u64::MAX;
        }
        let now = Instant::from_millis(now_ms as i64);
        for _ in 0..2 {
            if let Err(why) = self.step(now_ms, server) {
                self.phase = Phase::Failed(why);
            }
            self.iface.poll(now, &mut self.nic, &mut self.sockets);
        }
        let stack = self
            .iface
            .poll_delay(now, &self.sockets)
            .map_or(u64::MAX, |d| now_ms + d.total_millis());
        let own = match &self.phase {
            Phase::Dhcp => self.dhcp_deadline,
            Phase::Tftp(t) => t.deadline().unwrap_or(u64::MAX),
            Phase::Http(_) => self.http_retry_at,
            _ => u64::MAX,
        };
        stack.min(own).max(now_ms + 1)
    }

    fn up(&mut self, now_ms: u64, booted: Booted) {
        self.booted_at.get_or_insert(now_ms);
        self.boots.push((now_ms, booted));
        self.phase = Phase::Up;
    }

    fn step(&mut self, now_ms: u64, server: Ipv4Addr) -> Result<(), String> {
        self.take_dhcp_replies(now_ms)?;
        match &mut self.phase {
            Phase::Dhcp if now_ms >= self.dhcp_deadline => {
                if self.dhcp_tries > 0 {
                    self.retries += 1;
                }
                if self.dhcp_tries > 5 {
                    return Err("no DHCP answer".into());
                }
                let payload = self
                    .dhcp
                    .request()
                    .ok_or("DHCP client has nothing to send")?;
                let frame = UdpFrame {
                    src_mac: self.mac,
                    dst_mac: MacAddr::BROADCAST,
                    src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
                    dst: SocketAddrV4::new(Ipv4Addr::BROADCAST, 67),
                };
                let mut buf = vec![0u8; 1514];
                let len = frame
                    .emit(&payload, &mut buf)
                    .map_err(|_| "DHCP frame too large")?;
                buf.truncate(len);
                self.nic
                    .send_frame(Instant::from_millis(now_ms as i64), buf);
                self.dhcp_deadline = now_ms + (DHCP_TIMEOUT_MS << self.dhcp_tries.min(3));
                self.dhcp_tries += 1;
            }
            Phase::Tftp(client) => {
                let socket = self.sockets.get_mut::<udp::Socket>(self.udp);
                self.retries += client.poll(now_ms, socket)?;
                if client.done {
                    self.tftp = Some((client.name().to_owned(), client.received));
                    // iPXE is loaded: it runs DHCP again, as iPXE.
                    self.dhcp.restart_as_ipxe();
                    self.dhcp_tries = 0;
                    self.dhcp_deadline = now_ms;
                    self.phase = Phase::Dhcp;
                }
            }
            Phase::Http(client) => {
                let socket = self.sockets.get_mut::<tcp::Socket>(self.tcp);
                if !socket.is_open() {
                    // Refused (every server socket busy) or not yet tried: connect again,
                    // a second apart, as a TCP client's SYN retries would.
                    if now_ms < self.http_retry_at {
                        return Ok(());
                    }
                    if self.http_retry_at > 0 {
                        self.retries += 1;
                    }
                    self.http_retry_at = now_ms + HTTP_RETRY_MS;
                    socket
                        .connect(self.iface.context(), (server, HTTP_PORT), self.local_port)
                        .map_err(|e| format!("connect: {e}"))?;
                }
                client.poll(socket)?;
                if let Some(booted) = client.booted.take() {
                    self.http = std::mem::take(&mut client.fetched);
                    socket.close();
                    self.up(now_ms, booted);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// DHCP replies arrive before the machine has an address: they are taken off the NIC
    /// here, everything else is left to the IP stack.
    fn take_dhcp_replies(&mut self, now_ms: u64) -> Result<(), String> {
        let mut others = Vec::new();
        while let Some(frame) = self.nic.take() {
            match UdpFrame::parse(&frame) {
                Some((f, payload)) if f.dst.port() == 68 => match self.dhcp.receive(payload)? {
                    Reply::Ignored => {}
                    Reply::Advanced => {
                        self.dhcp_tries = 0;
                        self.dhcp_deadline = now_ms;
                    }
                    Reply::Bound(bound) => self.bind(now_ms, bound)?,
                },
                _ => others.push(frame),
            }
        }
        for frame in others.into_iter().rev() {
            self.nic.put_back(frame);
        }
        Ok(())
    }

    fn bind(&mut self, now_ms: u64, bound: Bound) -> Result<(), String> {
        if self.ip.is_some_and(|ip| ip != bound.ip) {
            return Err(format!(
                "address changed from {:?} to {}",
                self.ip, bound.ip
            ));
        }
        if self.iface.ip_addrs().is_empty() {
            self.iface.update_ip_addrs(|a| {
                let _ = a.push(IpCidr::new(bound.ip.into(), 16));
            });
            self.nic.set_ip(bound.ip);
            self.ip = Some(bound.ip);
        }
        let Some(file) = bound.file else {
            self.up(now_ms, Booted::Disk);
            return Ok(());
        };
        self.phase = match bound.stage {
            Stage::Firmware => {
                self.firmware_file = Some(file.clone());
                let socket = self.sockets.get_mut::<udp::Socket>(self.udp);
                socket.bind(self.local_port).map_err(|e| e.to_string())?;
                let window = if self.firmware == Firmware::Bios {
                    1
                } else {
                    4
                };
                Phase::Tftp(TftpClient::start(
                    &file,
                    bound.server,
                    window,
                    now_ms,
                    socket,
                ))
            }
            Stage::Ipxe => {
                self.script = Some(file.clone());
                if !HttpClient::on_server(&file, bound.server) {
                    // Somewhere off the segment (an installer): the rack does not follow.
                    self.up(now_ms, Booted::Chain(file));
                    return Ok(());
                }
                Phase::Http(HttpClient::new(&file)?)
            }
        };
        Ok(())
    }
}

/// The stack a machine's firmware starts with.
fn interface(mac: MacAddr, seed: u64, nic: &mut Nic, now_ms: u64) -> Interface {
    let mut config = smoltcp::iface::Config::new(EthernetAddress(mac.0).into());
    config.random_seed = seed;
    Interface::new(config, nic, Instant::from_millis(now_ms as i64))
}
