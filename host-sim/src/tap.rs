//! The TAP device the appliance's own IP stack runs on, as a smoltcp [`Device`].
//!
//! Frames carry a virtio-net header (`IFF_VNET_HDR`), which lets one write hand the kernel a
//! train of equal-sized UDP datagrams (UDP segmentation offload, Linux 6.2+): a TFTP window
//! of eight DATA blocks costs one syscall and one trip through the bridge instead of eight.
//! Offloads towards us stay off, so every frame read is complete and checksummed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};

use appliance::frame::UdpFrame;
use appliance::net::MacAddr;
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet};

use crate::runtime::UdpBurst;

/// `struct virtio_net_hdr` (legacy, 10 bytes, host byte order).
const VNET_HDR: usize = 10;
const VNET_F_NEEDS_CSUM: u8 = 1;
const VNET_GSO_UDP_L4: u8 = 5;
/// Ethernet + IPv4 (no options) + UDP.
const HEADERS: usize = 14 + 20 + 8;
/// The largest IPv4 datagram a burst may be before the kernel splits it.
const MAX_BURST: usize = 65_535 - 20 - 8;

pub struct Tap {
    file: File,
    mtu: usize,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Source MAC of each IPv4 sender seen, so bursts need no ARP of their own.
    neighbours: HashMap<Ipv4Addr, MacAddr>,
    mac: MacAddr,
}

impl Tap {
    /// Attaches to (or creates) the TAP device and brings its link up. The kernel side gets
    /// no address: it is a port of whatever bridge the operator or test put it in.
    pub fn open(name: &str, mac: MacAddr) -> io::Result<Tap> {
        let context = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("opening TAP {name}: {e} (needs root or CAP_NET_ADMIN)"),
            )
        };
        let file = File::options()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(context)?;
        let mut req = ifreq(name);
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as i16;
        // SAFETY: TUNSETIFF on the tun fd we own, with an initialised ifreq.
        if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &req) } < 0 {
            return Err(context(io::Error::last_os_error()));
        }
        set_nonblocking(file.as_raw_fd())?;
        let mtu = interface_mtu_and_up(name)? + 14;
        Ok(Tap {
            file,
            mtu,
            rx: vec![0; VNET_HDR + 65_536],
            tx: vec![0; VNET_HDR + 65_536],
            neighbours: HashMap::new(),
            mac,
        })
    }

    fn learn(&mut self, frame_len: usize) {
        let Some(frame) = self.rx.get(VNET_HDR..VNET_HDR + frame_len) else {
            return;
        };
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            return;
        }
        if let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) {
            let src = ip.src_addr();
            if !src.is_unspecified() && !src.is_broadcast() {
                self.neighbours.insert(src, MacAddr(eth.src_addr().0));
            }
        }
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl Device for Tap {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        loop {
            let len = match self.file.read(&mut self.rx) {
                Ok(len) => len,
                // Would block, or the link went away: nothing to read now.
                Err(_) => return None,
            };
            // Segmented frames cannot arrive (no offloads were offered); skip if one does.
            if len <= VNET_HDR || self.rx[1] != 0 {
                continue;
            }
            self.learn(len - VNET_HDR);
            let Tap { file, rx, tx, .. } = self;
            return Some((
                RxToken(&rx[VNET_HDR..len]),
                TxToken {
                    file: &*file,
                    buf: tx,
                },
            ));
        }
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            file: &self.file,
            buf: &mut self.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.max_transmission_unit = self.mtu;
        caps.medium = Medium::Ethernet;
        caps
    }
}

impl UdpBurst for Tap {
    fn can_burst(&self) -> bool {
        true
    }

    fn send_burst(
        &mut self,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        segment: usize,
        payload: &[u8],
    ) -> io::Result<bool> {
        let Some(&dst_mac) = self.neighbours.get(dst.ip()) else {
            return Ok(false);
        };
        if payload.len() > MAX_BURST || segment == 0 {
            return Ok(false);
        }
        let frame = UdpFrame {
            src_mac: self.mac,
            dst_mac,
            src,
            dst,
        };
        let out = &mut self.tx;
        let len = frame
            .emit(payload, &mut out[VNET_HDR..])
            .map_err(|_| io::Error::other("burst larger than the TAP buffer"))?;
        // The kernel fills in each segment's UDP checksum from the pseudo-header sum.
        let udp_len = (8 + payload.len()) as u16;
        let partial = pseudo_header_sum(*src.ip(), *dst.ip(), udp_len);
        let check = VNET_HDR + HEADERS - 2;
        out[check..check + 2].copy_from_slice(&partial.to_be_bytes());
        let fields: [u16; 4] = [HEADERS as u16, segment as u16, 14 + 20, 6];
        out[0] = VNET_F_NEEDS_CSUM;
        out[1] = VNET_GSO_UDP_L4;
        for (i, field) in fields.iter().enumerate() {
            out[2 + 2 * i..4 + 2 * i].copy_from_slice(&field.to_ne_bytes());
        }
        match (&self.file).write(&out[..VNET_HDR + len]) {
            Ok(_) => Ok(true),
            // A full queue drops the burst like a lost packet: the transfer's timer resends.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(true),
            Err(e) => Err(e),
        }
    }
}

pub struct RxToken<'a>(&'a [u8]);

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

pub struct TxToken<'a> {
    file: &'a File,
    buf: &'a mut Vec<u8>,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let end = (VNET_HDR + len).min(self.buf.len());
        self.buf[..VNET_HDR].fill(0);
        let result = f(&mut self.buf[VNET_HDR..end]);
        // Lost like on a wire if the queue is full or the link is down: the protocols retry.
        let mut file = self.file;
        let _ = file.write(&self.buf[..end]);
        result
    }
}

/// The UDP pseudo-header's ones'-complement sum, folded, not inverted: what a checksum
/// field holds when the NIC (here the kernel) is to finish the checksum.
fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, udp_len: u16) -> u16 {
    let words = |ip: Ipv4Addr| {
        let o = ip.octets();
        u32::from(u16::from_be_bytes([o[0], o[1]])) + u32::from(u16::from_be_bytes([o[2], o[3]]))
    };
    let mut sum =
        words(src) + words(dst) + u32::from(u8::from(IpProtocol::Udp)) + u32::from(udp_len);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Brings the link up; returns its IP MTU.
fn interface_mtu_and_up(name: &str) -> io::Result<usize> {
    // SAFETY: plain ioctls on a socket we own, with an ifreq we initialise.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if sock < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req = ifreq(name);
        let result = if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) < 0 {
            Err(io::Error::last_os_error())
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) < 0 {
                Err(io::Error::last_os_error())
            } else {
                let mut req = ifreq(name);
                if libc::ioctl(sock, libc::SIOCGIFMTU, &mut req) < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(req.ifr_ifru.ifru_mtu as usize)
                }
            }
        };
        libc::close(sock);
        result
    }
}
