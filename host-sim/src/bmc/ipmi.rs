//! The appliance's IPMI v2.0 client over a non-blocking UDP socket connected to one BMC.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use appliance::bmc::ipmi::{Client, Config};
use appliance::bmc::{Credentials, Error, Operation, PowerState};
use getrandom::SysRng;
use rand_core::UnwrapErr;

use super::Link;

/// Datagrams taken from the socket per `poll`, so one chatty BMC cannot starve the others.
const RECV_BATCH: usize = 64;

/// One BMC over IPMI v2.0 (RMCP+). The client's clock is milliseconds since the link was made.
pub struct IpmiLink {
    socket: UdpSocket,
    client: Client,
    epoch: Instant,
    /// The OS's random numbers (getrandom); failing to get any is fatal, as it should be.
    rng: UnwrapErr<SysRng>,
}

impl IpmiLink {
    /// A link to the BMC at `addr` (its RMCP port, usually 623); `cipher_suite` forces a
    /// suite instead of the best one the BMC lists. Nothing is sent until `start`.
    pub fn new(
        addr: SocketAddr,
        creds: Credentials,
        cipher_suite: Option<u8>,
    ) -> io::Result<IpmiLink> {
        let local: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(addr)?;
        socket.set_nonblocking(true)?;
        let config = Config {
            cipher_suite,
            ..Config::default()
        };
        Ok(IpmiLink {
            socket,
            client: Client::new(config, creds),
            epoch: Instant::now(),
            rng: UnwrapErr(SysRng),
        })
    }

    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Sends whatever the client has to send now. A failed send is left to the client's
    /// retransmission (a full socket buffer or an ICMP error are both transient here).
    fn flush(&mut self, now: Instant) {
        let ms = self.ms(now);
        let mut buf = [0u8; 512];
        while let Some(n) = self.client.poll_transmit(ms, &mut self.rng, &mut buf) {
            if let Some(datagram) = buf.get(..n) {
                let _ = self.socket.send(datagram);
            }
        }
    }
}

impl Link for IpmiLink {
    fn start(&mut self, op: Operation, now: Instant) -> Result<(), Error> {
        self.client.start(op, self.ms(now))?;
        self.flush(now);
        Ok(())
    }

    fn poll(&mut self, now: Instant) -> Option<Result<PowerState, Error>> {
        let ms = self.ms(now);
        let mut buf = [0u8; 1024];
        for _ in 0..RECV_BATCH {
            match self.socket.recv(&mut buf) {
                Ok(n) => self.client.receive(ms, buf.get(..n).unwrap_or(&[])),
                // WouldBlock: drained. ConnectionRefused (ICMP port unreachable) and the
                // like: nothing to read; the client's timeout decides.
                Err(_) => break,
            }
        }
        self.flush(now);
        self.client.poll_result()
    }

    fn poll_at(&self) -> Option<Instant> {
        self.client
            .poll_at()
            .map(|ms| self.epoch + Duration::from_millis(ms))
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.socket.as_raw_fd())
    }

    fn close(&mut self, now: Instant) {
        self.client.close(self.ms(now));
        self.flush(now);
    }

    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BMC address where nothing answers: the operation ends with `Timeout` after the
    /// client's three tries (about 3 s), and the link counts as closed.
    #[test]
    fn silent_bmc_times_out() {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let creds = Credentials {
            user: "admin".try_into().unwrap(),
            password: "password".try_into().unwrap(),
        };
        let mut link = IpmiLink::new(silent.local_addr().unwrap(), creds, None).unwrap();
        let start = Instant::now();
        link.start(Operation::Status, start).unwrap();
        let result = loop {
            let now = Instant::now();
            if let Some(r) = link.poll(now) {
                break r;
            }
            let at = link.poll_at().expect("a deadline while in flight");
            std::thread::sleep(
                at.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50)),
            );
            assert!(start.elapsed() < Duration::from_secs(5));
        };
        assert_eq!(result, Err(Error::Timeout));
        assert!(start.elapsed() >= Duration::from_millis(2900));
        assert!(link.is_closed());
        let mut buf = [0u8; 64];
        silent.set_nonblocking(true).unwrap();
        assert!(silent.recv(&mut buf).is_ok(), "the requests went out");
    }
}
