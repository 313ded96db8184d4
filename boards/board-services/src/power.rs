//! The provider's commands on a board (feature `uplink`): [`appliance::provider`]'s command
//! runner and power port, the same code host-sim runs, as one task over one embassy-net
//! UDP socket to the BMCs (IPMI RMCP+, port 623). The uplink task hands it each command
//! ([`COMMANDS`]) and turns what comes back ([`REPORTS`]: results, `PowerState` events) into
//! session events. Boot targets go into the DHCP task's [`INVENTORY`], the join config to
//! HTTP's [`crate::http::JOIN_CONFIG`].
//!
//! ARP: embassy-net owns the driver and offers no raw frame, so the BMCs are resolved by the
//! stack's own ARP (one request a second per interface; a datagram to an unresolved BMC waits
//! in the socket, and the IPMI client retransmits after a second). That suffices for the few
//! BMCs a board drives ([`BMCS`]); host-sim ARPs past its stack for 64.

use core::error::Error;
use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::task::{Context, Poll, Waker};

use appliance::bmc::power::Slot;
use appliance::provider::Applied;
use appliance::provider::power::{DATAGRAM, Io, PowerPort, Report};
use defmt::{Debug2Format, Display2Format};
use embassy_futures::select::{Either3, select3};
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{IpAddress, Stack};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_time::{Duration, Instant, Timer};
use rand_core::{TryCryptoRng, TryRng, UnwrapErr};
use static_cell::StaticCell;
use uplink::{Command, Outcome};
use uplink_tls::{Entropy, RandomSource};

use crate::dhcp::{INVENTORY, MACHINES};

/// BMCs a board drives: about 1.2 KiB of RAM each (its IPMI client, and room for the one
/// that replaces it when credentials change mid-operation); the task is 16 KiB in all.
pub const BMCS: usize = 8;
/// Commands from the uplink; the uplink waits while the port has two unread.
pub static COMMANDS: Channel<CriticalSectionRawMutex, (u64, Command), 2> = Channel::new();
/// Results and power states for the uplink, oldest first. The uplink drains it every 200 ms
/// (a pass yields at most a state and two results per BMC finishing an operation); when full
/// a report is dropped and logged, and the provider resends the command after a reconnect.
pub static REPORTS: Channel<CriticalSectionRawMutex, Report, 16> = Channel::new();
/// Datagrams the socket buffers each way: one in flight per BMC (a retransmission replaces
/// its lost original), in a ring of [`SOCKET_BYTES`] (most IPMI datagrams are under 100
/// bytes; a full ring drops, and the client retransmits).
const PACKETS: usize = BMCS;
const SOCKET_BYTES: usize = 4 * DATAGRAM;
const FIRST_LOCAL_PORT: u16 = 40_000;

static SLOTS: StaticCell<[Slot; BMCS]> = StaticCell::new();

/// Runs the provider's commands for ever; `random` is the board's entropy (IPMI session ids,
/// RAKP randoms, IVs).
pub async fn serve(stack: Stack<'static>, random: &'static dyn RandomSource) -> ! {
    let mut port = PowerPort::<BMCS>::new(SLOTS.init(core::array::from_fn(|_| Slot::default())));
    let mut applied = Applied::<MACHINES>::default();
    let mut rng = UnwrapErr(BoardRng(random));
    let mut rx_meta = [PacketMetadata::EMPTY; PACKETS];
    let mut rx_buf = [0u8; SOCKET_BYTES];
    let mut tx_meta = [PacketMetadata::EMPTY; PACKETS];
    let mut tx_buf = [0u8; SOCKET_BYTES];
    let mut socket = UdpSocket::new(stack, &mut rx_meta, &mut rx_buf, &mut tx_meta, &mut tx_buf);
    // A random local port, so a rebooted board does not meet answers meant for the last.
    let offset = (rng.0.try_next_u32()).map_or(0, |r| (r % 8192) as u16);
    defmt::unwrap!(socket.bind(FIRST_LOCAL_PORT + offset), "power: bind"); // ok: boot-time init, nothing else binds there
    defmt::info!("power port up bmcs={}", BMCS);
    let mut buf = [0u8; DATAGRAM];
    loop {
        let now = Instant::now().as_millis();
        port.process(now, &mut rng, &mut BoardIo(&socket));
        let wake = (port.poll_at()).map_or(Instant::now() + Duration::from_secs(60), |at| {
            Instant::from_millis(at)
        });
        let event = select3(
            socket.recv_from(&mut buf),
            COMMANDS.receive(),
            Timer::at(wake),
        )
        .await;
        let now = Instant::now().as_millis();
        match event {
            Either3::First(Ok((n, meta))) => {
                let IpAddress::Ipv4(ip) = meta.endpoint.addr;
                let from = SocketAddrV4::new(ip, meta.endpoint.port);
                port.receive(now, from, buf.get(..n).unwrap_or(&buf));
            }
            // Longer than any IPMI answer the client reads: dropped.
            Either3::First(Err(_)) => {}
            Either3::Second((id, command)) => {
                let what = kind(&command);
                let config_update = matches!(command, Command::ConfigUpdate(_));
                let answer = &mut |r| report(r);
                let outcome = INVENTORY.lock(|inventory| {
                    let inventory = &mut inventory.borrow_mut();
                    applied.run(id, command, inventory, &mut port, now, answer)
                });
                if let Some(c) = applied.config.as_ref().filter(|_| config_update) {
                    crate::http::publish_join_config(&c.join_config);
                }
                if let Some(outcome) = outcome {
                    report(Report::Result { id, what, outcome });
                }
            }
            Either3::Third(()) => {}
        }
    }
}

/// The command's kind, for the log.
fn kind(command: &Command) -> &'static str {
    match command {
        Command::SetBootTarget { .. } => "SetBootTarget",
        Command::ConfigUpdate(_) => "ConfigUpdate",
        Command::PowerCommand { .. } => "PowerCommand",
        Command::BmcCredentials(_) => "BmcCredentials",
    }
}

fn report(report: Report) {
    if let Report::Result { id, what, outcome } = &report {
        match outcome {
            Outcome::Done => defmt::info!("power command id={} {} -> Done", id, what),
            other => defmt::warn!(
                "power command id={} {} -> {}",
                id,
                what,
                Debug2Format(other)
            ),
        }
    }
    if REPORTS.try_send(report).is_err() {
        defmt::warn!("power: report queue full, report dropped");
    }
}

/// The port's [`Io`] over the socket: sends never wait (a full buffer drops the datagram,
/// which the client retransmits).
struct BoardIo<'a, 's>(&'a UdpSocket<'s>);

impl Io for BoardIo<'_, '_> {
    fn send(&mut self, to: SocketAddrV4, datagram: &[u8]) {
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(Err(e)) = self.0.poll_send_to(datagram, to, &mut cx) {
            defmt::warn!("power send to={}: {}", Display2Format(&to), e);
        }
    }

    /// The stack's own ARP resolves the BMC (module doc).
    fn arp(&mut self, _ip: Ipv4Addr) {}

    fn report(&mut self, r: Report) {
        report(r);
    }

    fn log(&mut self, line: fmt::Arguments<'_>) {
        defmt::info!("{}", Display2Format(&line));
    }
}

/// The board's entropy as the IPMI client's RNG; a failure ends in `UnwrapErr`'s panic, as
/// an IPMI session without randomness would be unsafe.
struct BoardRng(&'static dyn RandomSource);

#[derive(Debug)]
struct NoEntropy;

impl fmt::Display for NoEntropy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the board's entropy source failed")
    }
}

impl Error for NoEntropy {}

impl TryRng for BoardRng {
    type Error = NoEntropy;

    fn try_next_u32(&mut self) -> Result<u32, NoEntropy> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b).map(|()| u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, NoEntropy> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b).map(|()| u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), NoEntropy> {
        Entropy::fill(self.0, dst).map_err(|_| NoEntropy)
    }
}

impl TryCryptoRng for BoardRng {}
