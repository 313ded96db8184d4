//! The site network between the rack and the provider: a host on the segment that takes
//! the appliance's TCP connections on the provider's port and relays each to the provider
//! on loopback. It can cut every relayed connection at once, as a flaky uplink would.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};

use appliance::net::MacAddr;
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;

use super::segment::Nic;

/// Connections relayed at once: the tunnel, and an enrollment or a redial overlapping the
/// close of the last one.
const RELAYS: usize = 4;
const BUFFER: usize = 64 * 1024;

struct Relay {
    socket: SocketHandle,
    upstream: Option<TcpStream>,
    /// Bytes from the appliance the provider has not taken yet.
    to_provider: Vec<u8>,
}

pub struct Gateway {
    nic: Nic,
    iface: Interface,
    sockets: SocketSet<'static>,
    relays: Vec<Relay>,
    port: u16,
    provider: SocketAddr,
    /// Connections cut so far.
    pub cuts: u32,
}

impl Gateway {
    /// A gateway at `ip` relaying its port `provider.port()` to `provider`.
    pub fn new(
        mut nic: Nic,
        mac: MacAddr,
        ip: Ipv4Addr,
        provider: SocketAddr,
        now_ms: u64,
    ) -> Gateway {
        let iface = nic.fixed_host(mac, ip, now_ms);
        let mut sockets = SocketSet::new(vec![]);
        let relays = (0..RELAYS)
            .map(|_| Relay {
                socket: sockets.add(tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; BUFFER]),
                    tcp::SocketBuffer::new(vec![0; BUFFER]),
                )),
                upstream: None,
                to_provider: Vec::new(),
            })
            .collect();
        Gateway {
            nic,
            iface,
            sockets,
            relays,
            port: provider.port(),
            provider,
            cuts: 0,
        }
    }

    /// Whether a connection is being relayed (the loop then polls often, for the provider's
    /// side has no wake-up of its own here).
    pub fn busy(&self) -> bool {
        self.relays.iter().any(|r| r.upstream.is_some())
    }

    /// Moves what each side has for the other; returns when the stack next needs a poll.
    pub fn poll(&mut self, now_ms: u64) -> u64 {
        let now = Instant::from_millis(now_ms as i64);
        self.iface.poll(now, &mut self.nic, &mut self.sockets);
        for relay in &mut self.relays {
            let socket = self.sockets.get_mut::<tcp::Socket>(relay.socket);
            if !relay.pump(socket, self.provider) {
                socket.abort();
                relay.upstream = None;
                relay.to_provider.clear();
            }
            if !socket.is_open() {
                // ok: a closed socket can always listen.
                let _ = socket.listen(self.port);
            }
        }
        self.iface.poll(now, &mut self.nic, &mut self.sockets);
        self.iface
            .poll_delay(now, &self.sockets)
            .map_or(u64::MAX, |d| now_ms + d.total_millis())
    }

    /// Drops every relayed connection on both sides without a word (the appliance sees
    /// its connection reset, the provider its connection closed).
    pub fn cut(&mut self) {
        for relay in &mut self.relays {
            if relay.upstream.take().is_some() {
                self.sockets.get_mut::<tcp::Socket>(relay.socket).abort();
                relay.to_provider.clear();
                self.cuts += 1;
            }
        }
    }
}

impl Relay {
    /// One round of relaying; `false` once either side has closed or failed.
    fn pump(&mut self, socket: &mut tcp::Socket, provider: SocketAddr) -> bool {
        if self.upstream.is_none() {
            if !socket.is_active() || socket.state() == tcp::State::Listen {
                return true;
            }
            match TcpStream::connect(provider).and_then(|s| s.set_nonblocking(true).map(|()| s)) {
                Ok(s) => self.upstream = Some(s),
                Err(_) => return false,
            }
        }
        let Some(up) = self.upstream.as_mut() else {
            return true;
        };
        if socket.can_recv() {
            let _ = socket.recv(|buf| {
                self.to_provider.extend_from_slice(buf);
                (buf.len(), ())
            });
        }
        while !self.to_provider.is_empty() {
            match up.write(&self.to_provider) {
                Ok(0) => return false,
                Ok(n) => drop(self.to_provider.drain(..n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        let room = socket.send_capacity() - socket.send_queue();
        if room > 0 {
            let mut buf = vec![0; room];
            match up.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    let _ = socket.send_slice(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return false,
            }
        }
        // Still handshaking, or open from the appliance's side.
        socket.state() == tcp::State::SynReceived
            || socket.may_recv()
            || !self.to_provider.is_empty()
    }
}
