//! A simulated Ethernet segment with delay, jitter and loss, deterministic for a seed, and
//! the NIC (a smoltcp `Device`) each host on it uses.
//!
//! Broadcasts reach only the hosts whose stack would keep them (the one a DHCP reply's
//! `chaddr` names, the one an ARP request asks for, the appliance): the others' stacks
//! would drop them anyway, and copying every broadcast to a thousand hosts would make the
//! simulation quadratic.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::Ipv4Addr;
use std::rc::Rc;

use appliance::frame::UdpFrame;
use appliance::net::MacAddr;
use smoltcp::iface::Interface;
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpCidr};

use super::Rng;

pub const MTU: usize = 1514;

/// How the segment mistreats frames.
#[derive(Clone, Copy, Debug)]
pub struct Impairment {
    pub delay_ms: u64,
    pub jitter_ms: u64,
    /// Frames lost per million.
    pub loss_ppm: u32,
}

struct Port {
    mac: MacAddr,
    ip: Option<Ipv4Addr>,
    /// Takes every broadcast (the appliance).
    promiscuous: bool,
    inbox: VecDeque<Vec<u8>>,
    /// When the last frame for this port lands: a switch port is a FIFO, so jitter delays
    /// frames but never reorders them.
    last_delivery: u64,
}

pub struct Segment {
    ports: Vec<Port>,
    /// Frames in flight: (delivery time, sequence, port).
    in_flight: BinaryHeap<Reverse<(u64, u64, usize)>>,
    frames: std::collections::HashMap<u64, Vec<u8>>,
    seq: u64,
    impairment: Impairment,
    rng: Rng,
    /// Where unicast frames for a MAC not on the segment go: the port bridged to a real
    /// network, if any.
    bridge: Option<usize>,
    pub sent: u64,
    pub lost: u64,
}

impl Segment {
    pub fn new(impairment: Impairment, seed: u64) -> Rc<RefCell<Segment>> {
        Rc::new(RefCell::new(Segment {
            ports: Vec::new(),
            in_flight: BinaryHeap::new(),
            frames: Default::default(),
            seq: 0,
            impairment,
            rng: Rng(seed | 1),
            bridge: None,
            sent: 0,
            lost: 0,
        }))
    }

    pub fn attach(this: &Rc<RefCell<Segment>>, mac: MacAddr, promiscuous: bool) -> Nic {
        let mut s = this.borrow_mut();
        s.ports.push(Port {
            mac,
            ip: None,
            promiscuous,
            inbox: VecDeque::new(),
            last_delivery: 0,
        });
        Nic {
            segment: Rc::clone(this),
            port: s.ports.len() - 1,
        }
    }

    /// A port for a real network: every broadcast, and unicast for MACs not on the segment.
    pub fn attach_bridge(this: &Rc<RefCell<Segment>>) -> Nic {
        let nic = Segment::attach(this, MacAddr([0; 6]), true);
        this.borrow_mut().bridge = Some(nic.port);
        nic
    }

    /// When the next frame lands, if any is in flight.
    pub fn next_delivery(&self) -> Option<u64> {
        self.in_flight.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Moves every frame due by `now_ms` into its port's inbox; returns the ports reached.
    pub fn deliver(&mut self, now_ms: u64, reached: &mut Vec<usize>) {
        while let Some(&Reverse((at, seq, port))) = self.in_flight.peek() {
            if at > now_ms {
                break;
            }
            self.in_flight.pop();
            if let Some(frame) = self.frames.remove(&seq) {
                self.ports[port].inbox.push_back(frame);
                reached.push(port);
            }
        }
    }

    fn send(&mut self, from: usize, now_ms: u64, frame: Vec<u8>) {
        self.sent += 1;
        let Some(dst) = frame
            .get(..6)
            .map(|d| MacAddr(d.try_into().unwrap_or_default()))
        else {
            return;
        };
        let targets: Vec<usize> = if dst == MacAddr::BROADCAST {
            let wanted = broadcast_target(&frame);
            (0..self.ports.len())
                .filter(|&p| p != from)
                .filter(|&p| {
                    let port = &self.ports[p];
                    port.promiscuous
                        || match wanted {
                            Wanted::Mac(m) => port.mac == m,
                            Wanted::Ip(ip) => port.ip == Some(ip),
                            Wanted::All => true,
                        }
                })
                .collect()
        } else {
            self.ports
                .iter()
                .position(|p| p.mac == dst)
                .or(self.bridge.filter(|&b| b != from))
                .into_iter()
                .collect()
        };
        for port in targets {
            if self.rng.below(1_000_000) < u64::from(self.impairment.loss_ppm) {
                self.lost += 1;
                continue;
            }
            let jitter = self.rng.below(self.impairment.jitter_ms + 1);
            let at =
                (now_ms + self.impairment.delay_ms + jitter).max(self.ports[port].last_delivery);
            self.ports[port].last_delivery = at;
            self.seq += 1;
            self.frames.insert(self.seq, frame.clone());
            self.in_flight.push(Reverse((at, self.seq, port)));
        }
    }
}

enum Wanted {
    Mac(MacAddr),
    Ip(Ipv4Addr),
    All,
}

/// Which host's stack keeps a broadcast: a DHCP reply's client, an ARP request's target.
fn broadcast_target(frame: &[u8]) -> Wanted {
    if frame.get(12..14) == Some(&[0x08, 0x06])
        && let Some(t) = frame.get(38..42)
    {
        return Wanted::Ip(Ipv4Addr::new(t[0], t[1], t[2], t[3]));
    }
    match UdpFrame::parse(frame) {
        Some((f, payload)) if f.dst.port() == 68 && payload.len() >= 34 => {
            Wanted::Mac(MacAddr(payload[28..34].try_into().unwrap_or_default()))
        }
        _ => Wanted::All,
    }
}

/// One host's attachment to the segment.
pub struct Nic {
    segment: Rc<RefCell<Segment>>,
    port: usize,
}

impl Nic {
    /// Tells the segment the host's address, so ARP requests for it reach it.
    pub fn set_ip(&self, ip: Ipv4Addr) {
        self.segment.borrow_mut().ports[self.port].ip = Some(ip);
    }

    pub fn port(&self) -> usize {
        self.port
    }

    /// The stack of a host with a fixed address in the segment's /16 (a BMC, the gateway).
    pub fn fixed_host(&mut self, mac: MacAddr, ip: Ipv4Addr, now_ms: u64) -> Interface {
        let config = smoltcp::iface::Config::new(EthernetAddress(mac.0).into());
        let mut iface = Interface::new(config, self, Instant::from_millis(now_ms as i64));
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(ip.into(), 16));
        });
        self.set_ip(ip);
        iface
    }

    /// Takes the next received frame out of the inbox, bypassing the IP stack.
    pub fn take(&mut self) -> Option<Vec<u8>> {
        self.segment.borrow_mut().ports[self.port].inbox.pop_front()
    }

    /// Puts a frame back at the head of the inbox for the IP stack.
    pub fn put_back(&mut self, frame: Vec<u8>) {
        self.segment.borrow_mut().ports[self.port]
            .inbox
            .push_front(frame);
    }

    pub fn send_frame(&mut self, now: Instant, frame: Vec<u8>) {
        self.segment
            .borrow_mut()
            .send(self.port, now.total_millis() as u64, frame);
    }
}

/// The simulated segment carries frames one by one.
impl crate::runtime::UdpBurst for Nic {
    fn can_burst(&self) -> bool {
        false
    }

    fn send_burst(
        &mut self,
        _src: std::net::SocketAddrV4,
        _dst: std::net::SocketAddrV4,
        _segment: usize,
        _payload: &[u8],
    ) -> std::io::Result<bool> {
        Ok(false)
    }
}

impl Device for Nic {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, now: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let frame = self.take()?;
        Some((RxToken(frame), TxToken { nic: self, now }))
    }

    fn transmit(&mut self, now: Instant) -> Option<TxToken<'_>> {
        Some(TxToken { nic: self, now })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.max_transmission_unit = MTU;
        caps.medium = Medium::Ethernet;
        caps
    }
}

pub struct RxToken(Vec<u8>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

pub struct TxToken<'a> {
    nic: &'a mut Nic,
    now: Instant,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.nic.send_frame(self.now, frame);
        r
    }
}
