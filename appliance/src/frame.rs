//! Ethernet/IPv4/UDP framing for the one case an IP stack cannot do: a DHCP reply to a
//! client that has no address yet and no broadcast flag, sent straight to its MAC.

use core::net::SocketAddrV4;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Packet,
    Ipv4Repr, UdpPacket, UdpRepr,
};

use crate::net::MacAddr;

const HEADERS: usize = 14 + 20 + 8;

/// The output buffer is too small for the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooSmall;

/// A UDP datagram's addressing at the link layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpFrame {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
}

impl UdpFrame {
    /// Writes the frame around `payload` into `out`; returns the frame length.
    pub fn emit(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, TooSmall> {
        let len = HEADERS + payload.len();
        let udp_len = 8 + payload.len();
        if out.len() < len || udp_len > usize::from(u16::MAX) - 20 {
            return Err(TooSmall);
        }
        let checksums = ChecksumCapabilities::default();
        let mut eth = EthernetFrame::new_unchecked(&mut out[..len]);
        EthernetRepr {
            src_addr: EthernetAddress(self.src_mac.0),
            dst_addr: EthernetAddress(self.dst_mac.0),
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut eth);
        let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
        Ipv4Repr {
            src_addr: *self.src.ip(),
            dst_addr: *self.dst.ip(),
            next_header: IpProtocol::Udp,
            payload_len: udp_len,
            hop_limit: 64,
        }
        .emit(&mut ip, &checksums);
        let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
        UdpRepr {
            src_port: self.src.port(),
            dst_port: self.dst.port(),
        }
        .emit(
            &mut udp,
            &(*self.src.ip()).into(),
            &(*self.dst.ip()).into(),
            payload.len(),
            |buf| buf.copy_from_slice(payload),
            &checksums,
        );
        Ok(len)
    }

    /// Parses an Ethernet frame carrying an IPv4 UDP datagram, checking checksums.
    /// `None` for anything else.
    pub fn parse(frame: &[u8]) -> Option<(UdpFrame, &[u8])> {
        let checksums = ChecksumCapabilities::default();
        let eth = EthernetFrame::new_checked(frame).ok()?;
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            return None;
        }
        let ip_packet = Ipv4Packet::new_checked(eth.payload()).ok()?;
        let ip = Ipv4Repr::parse(&ip_packet, &checksums).ok()?;
        if ip.next_header != IpProtocol::Udp {
            return None;
        }
        let udp_packet = UdpPacket::new_checked(ip_packet.payload()).ok()?;
        let src = ip.src_addr.into();
        let dst = ip.dst_addr.into();
        let udp = UdpRepr::parse(&udp_packet, &src, &dst, &checksums).ok()?;
        let addressing = UdpFrame {
            src_mac: MacAddr(eth.src_addr().0),
            dst_mac: MacAddr(eth.dst_addr().0),
            src: SocketAddrV4::new(ip.src_addr, udp.src_port),
            dst: SocketAddrV4::new(ip.dst_addr, udp.dst_port),
        };
        Some((addressing, udp_packet.payload()))
    }
}
