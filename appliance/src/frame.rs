//! Frames sent past the IP stack: a DHCP reply to a client that has no address yet and no
//! broadcast flag, sent straight to its MAC; and ARP requests for hosts the appliance must
//! reach before they ever speak (BMCs), as smoltcp sends at most one ARP request a second
//! for the whole interface, so discovering dozens of BMCs through it takes longer than an
//! IPMI client waits.

use core::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

use crate::net::MacAddr;

const HEADERS: usize = 14 + 20 + 8;

/// The output buffer is too small for the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooSmall;

/// Writes a broadcast ARP request for `target` from `src_mac`/`src_ip` into `out`; returns
/// the frame length. The reply is addressed to us, so the IP stack learns the neighbour.
pub fn arp_request(
    src_mac: MacAddr,
    src_ip: Ipv4Addr,
    target: Ipv4Addr,
    out: &mut [u8],
) -> Result<usize, TooSmall> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(src_mac.0),
        source_protocol_addr: src_ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let len = 14 + arp.buffer_len();
    if out.len() < len {
        return Err(TooSmall);
    }
    let mut eth = EthernetFrame::new_unchecked(&mut out[..len]);
    EthernetRepr {
        src_addr: EthernetAddress(src_mac.0),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut eth);
    arp.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    Ok(len)
}

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

#[cfg(test)]
mod tests;
