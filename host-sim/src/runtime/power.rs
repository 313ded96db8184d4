//! The power port in `serve`: [`appliance::provider::power::PowerPort`] (the manager, an IPMI
//! client per BMC, the commands waiting on them) over one smoltcp UDP socket of the
//! appliance's own stack, so the BMC traffic leaves through the TAP like a board's.
//! Randomness from getrandom. BMCs never speak first and smoltcp sends at most one ARP
//! request a second per interface, so this glue ARPs each BMC itself
//! ([`appliance::frame::arp_request`]) when the port asks; without that, 8 or more BMCs
//! timed out.

use std::fmt;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4};

use appliance::bmc::power::Slot;
use appliance::frame::{UdpFrame, arp_request};
use appliance::provider::power::{self, DATAGRAM, Io, Report};
use getrandom::SysRng;
use rand_core::UnwrapErr;
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::phy::{Device, TxToken};
use smoltcp::socket::udp;
use smoltcp::time::Instant;

use super::ipv4_endpoint;

/// BMCs the appliance drives (a board's table is as fixed).
pub const BMCS: usize = 64;
/// Datagrams the BMC socket buffers each way (one in flight per BMC, plus retransmissions).
const SOCKET_PACKETS: usize = 2 * BMCS;
const FIRST_LOCAL_PORT: u16 = 40_000;

pub struct PowerPort {
    pub(super) port: power::PowerPort<'static, BMCS>,
    socket: SocketHandle,
    /// For the uplink, oldest first; drained every poll.
    pub(super) reports: Vec<Report>,
    /// The OS's random numbers (IPMI session ids, RAKP randoms, IVs); failing is fatal.
    rng: UnwrapErr<SysRng>,
}

impl PowerPort {
    pub fn open(sockets: &mut SocketSet<'static>) -> io::Result<PowerPort> {
        // The manager borrows its table for the port's whole life, as a board's static one.
        let slots: &'static mut [Slot] = Box::leak(vec![Slot::default(); BMCS].into_boxed_slice());
        let buffer = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; SOCKET_PACKETS],
                vec![0u8; SOCKET_PACKETS * DATAGRAM],
            )
        };
        let mut socket = udp::Socket::new(buffer(), buffer());
        socket
            .bind(local_port())
            .map_err(|e| io::Error::other(format!("BMC socket: {e}")))?;
        Ok(PowerPort {
            port: power::PowerPort::new(slots),
            socket: sockets.add(socket),
            reports: Vec::new(),
            rng: UnwrapErr(SysRng),
        })
    }

    /// Reports for the provider, oldest first.
    pub fn reports(&mut self) -> std::vec::Drain<'_, Report> {
        self.reports.drain(..)
    }

    /// When `process` must run again without traffic (milliseconds, smoltcp time).
    pub fn poll_at(&self) -> Option<u64> {
        self.port.poll_at()
    }

    /// Moves datagrams, starts due operations and takes finished ones.
    pub fn process<D: Device>(
        &mut self,
        now: u64,
        sockets: &mut SocketSet<'static>,
        device: &mut D,
        link: &UdpFrame,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let socket = sockets.get_mut::<udp::Socket>(self.socket);
        while let Ok((datagram, meta)) = socket.recv() {
            if let Some(from) = ipv4_endpoint(meta.endpoint) {
                self.port.receive(now, from, datagram);
            }
        }
        let mut io = Glue {
            socket,
            device,
            link,
            now,
            out,
            reports: &mut self.reports,
            error: Ok(()),
        };
        self.port.process(now, &mut self.rng, &mut io);
        io.error
    }
}

/// The port's [`Io`] for one `process`: the socket, the device for ARP, the log.
struct Glue<'a, D> {
    socket: &'a mut udp::Socket<'static>,
    device: &'a mut D,
    link: &'a UdpFrame,
    now: u64,
    out: &'a mut dyn Write,
    reports: &'a mut Vec<Report>,
    /// The first log write that failed, returned by `process`.
    error: io::Result<()>,
}

impl<D: Device> Io for Glue<'_, D> {
    fn send(&mut self, to: SocketAddrV4, datagram: &[u8]) {
        // A full buffer loses the datagram; the client's retransmission covers it.
        let _ = self.socket.send_slice(datagram, to);
    }

    fn arp(&mut self, ip: Ipv4Addr) {
        arp(self.device, self.link, ip, self.now);
    }

    fn report(&mut self, report: Report) {
        self.reports.push(report);
    }

    fn log(&mut self, line: fmt::Arguments<'_>) {
        if self.error.is_ok() {
            self.error = writeln!(self.out, "{line}");
        }
    }
}

/// A random local port, so a restarted appliance does not meet answers meant for the last.
fn local_port() -> u16 {
    let mut r = [0u8; 2];
    let offset = getrandom::fill(&mut r).map_or(0, |()| u16::from_le_bytes(r) % 8192);
    FIRST_LOCAL_PORT + offset
}

/// Asks for `ip`'s MAC past the IP stack, so many BMCs are found at once rather than one a
/// second; a frame the device cannot take now is left to the stack's own ARP.
fn arp<D: Device>(device: &mut D, link: &UdpFrame, ip: Ipv4Addr, now: u64) {
    let mut frame = [0u8; 64];
    let Ok(len) = arp_request(link.src_mac, *link.src.ip(), ip, &mut frame) else {
        return;
    };
    if let Some(token) = device.transmit(Instant::from_millis(now as i64)) {
        token.consume(len, |dst| dst.copy_from_slice(&frame[..len]));
    }
}
