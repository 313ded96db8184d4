//! A machine's BMC on the segment: its own smoltcp stack and the home-made RMCP+ BMC of
//! `sim-bmc` on UDP 623. What the appliance's IPMI client makes the chassis do comes back
//! as events the rack applies to the machine.

use std::net::{Ipv4Addr, SocketAddr};

use appliance::net::MacAddr;
use sim_bmc::{Bmc, ChassisEvent};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::udp;
use smoltcp::time::Instant;

use super::segment::Nic;

pub const IPMI_PORT: u16 = 623;

pub struct BmcHost {
    nic: Nic,
    iface: Interface,
    sockets: SocketSet<'static>,
    udp: SocketHandle,
    pub bmc: Bmc,
    pub ip: Ipv4Addr,
}

impl BmcHost {
    pub fn new(mut nic: Nic, mac: MacAddr, ip: Ipv4Addr, bmc: Bmc, now_ms: u64) -> BmcHost {
        let iface = nic.fixed_host(mac, ip, now_ms);
        let mut sockets = SocketSet::new(vec![]);
        let buffer =
            || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 8], vec![0; 8 * 1024]);
        let mut socket = udp::Socket::new(buffer(), buffer());
        // ok: a fresh socket binds to any port.
        let _ = socket.bind(IPMI_PORT);
        let udp = sockets.add(socket);
        BmcHost {
            nic,
            iface,
            sockets,
            udp,
            bmc,
            ip,
        }
    }

    /// Answers every datagram that arrived; returns what the chassis did meanwhile.
    pub fn poll(&mut self, now_ms: u64) -> Vec<ChassisEvent> {
        let now = Instant::from_millis(now_ms as i64);
        self.iface.poll(now, &mut self.nic, &mut self.sockets);
        let socket = self.sockets.get_mut::<udp::Socket>(self.udp);
        let mut buf = [0u8; 1024];
        while let Ok((len, meta)) = socket.recv_slice(&mut buf) {
            let smoltcp::wire::IpAddress::Ipv4(ip) = meta.endpoint.addr;
            let peer = SocketAddr::from((ip, meta.endpoint.port));
            if let Some(reply) = self
                .bmc
                .handle(&buf[..len], peer, std::time::Instant::now())
            {
                // A full transmit buffer drops the reply, as a busy BMC would.
                let _ = socket.send_slice(&reply, meta.endpoint);
            }
        }
        self.iface.poll(now, &mut self.nic, &mut self.sockets);
        self.bmc.chassis.take_events()
    }
}
