//! A simulated machine's TFTP client, as PXE firmware behaves: RRQ with blksize (and
//! windowsize for UEFI, as EDK2 asks), ACK per window, retransmission on timeout. Written
//! from RFC 1350/2347/2348/7440 directly, not with the appliance's codec.

use std::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::socket::udp;

use super::Digest;

const BLKSIZE: usize = 1468;
const TIMEOUT_MS: u64 = 1000;
const MAX_RETRIES: u32 = 5;
/// How long a refused client waits before asking again.
const BUSY_BACKOFF_MS: u64 = 3000;

pub struct TftpClient {
    name: String,
    window: u16,
    /// Port 69 until the server's first reply names its TID.
    server: SocketAddrV4,
    expected: u16,
    last_sent: Vec<u8>,
    deadline: u64,
    retries: u32,
    pub received: Digest,
    pub done: bool,
}

impl TftpClient {
    pub fn start(
        name: &str,
        server: Ipv4Addr,
        window: u16,
        now_ms: u64,
        socket: &mut udp::Socket<'_>,
    ) -> TftpClient {
        let mut rrq = vec![0, 1];
        for part in [name, "octet", "blksize", &BLKSIZE.to_string()] {
            rrq.extend_from_slice(part.as_bytes());
            rrq.push(0);
        }
        if window > 1 {
            for part in ["windowsize", &window.to_string()] {
                rrq.extend_from_slice(part.as_bytes());
                rrq.push(0);
            }
        }
        let mut client = TftpClient {
            name: name.to_owned(),
            window,
            server: SocketAddrV4::new(server, 69),
            expected: 1,
            last_sent: rrq,
            deadline: 0,
            retries: 0,
            received: Digest::default(),
            done: false,
        };
        client.transmit(now_ms, socket);
        client
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn deadline(&self) -> Option<u64> {
        (!self.done).then_some(self.deadline)
    }

    fn transmit(&mut self, now_ms: u64, socket: &mut udp::Socket<'_>) {
        let _ = socket.send_slice(&self.last_sent, self.server);
        self.deadline = now_ms + TIMEOUT_MS;
    }

    fn ack(&mut self, block: u16, now_ms: u64, socket: &mut udp::Socket<'_>) {
        let [hi, lo] = block.to_be_bytes();
        self.last_sent = vec![0, 4, hi, lo];
        self.transmit(now_ms, socket);
    }

    /// Handles what arrived and the timer; returns how many retransmissions it made, or
    /// the server's error.
    pub fn poll(&mut self, now_ms: u64, socket: &mut udp::Socket<'_>) -> Result<u32, String> {
        let mut buf = vec![0u8; 4 + BLKSIZE];
        while let Ok((len, meta)) = socket.recv_slice(&mut buf) {
            let smoltcp::wire::IpAddress::Ipv4(ip) = meta.endpoint.addr;
            let from = SocketAddrV4::new(ip, meta.endpoint.port);
            if self.server.port() == 69 && ip == *self.server.ip() {
                self.server = from;
            }
            if from != self.server || len < 4 {
                continue;
            }
            let arg = u16::from_be_bytes([buf[2], buf[3]]);
            match u16::from_be_bytes([buf[0], buf[1]]) {
                // OACK: accept what the server chose (blksize cannot exceed ours).
                6 => self.ack(0, now_ms, socket),
                3 if arg == self.expected => {
                    self.received.update(&buf[4..len]);
                    self.retries = 0;
                    let last = len - 4 < BLKSIZE;
                    if last || arg.is_multiple_of(self.window) {
                        self.ack(arg, now_ms, socket);
                    }
                    self.expected = self.expected.wrapping_add(1);
                    if last {
                        self.done = true;
                        return Ok(0);
                    }
                }
                // A gap or a duplicate: acknowledge what we have, the server resends.
                3 => self.ack(self.expected.wrapping_sub(1), now_ms, socket),
                // Busy (ERROR 0 before any data): firmware tries the boot again a little
                // later; the timer resends the RRQ to port 69.
                5 if arg == 0 && self.expected == 1 && self.retries < MAX_RETRIES => {
                    self.server = SocketAddrV4::new(*self.server.ip(), 69);
                    self.deadline = now_ms + BUSY_BACKOFF_MS;
                }
                5 => {
                    let msg = String::from_utf8_lossy(&buf[4..len])
                        .trim_end_matches('\0')
                        .to_owned();
                    return Err(format!("TFTP error {arg} for {}: {msg}", self.name));
                }
                _ => {}
            }
        }
        if now_ms < self.deadline {
            return Ok(0);
        }
        self.retries += 1;
        if self.retries > MAX_RETRIES {
            return Err(format!(
                "TFTP {}: no answer after {MAX_RETRIES} retries",
                self.name
            ));
        }
        self.transmit(now_ms, socket);
        Ok(1)
    }
}
