//! The power port: the appliance's [`PowerManager`] in `serve`, driven by the provider's
//! commands, with an IPMI client per BMC over one smoltcp UDP socket (the appliance's own
//! stack, so the BMC traffic leaves through the TAP like a board's).
//!
//! `BmcCredentials` adds (or updates) the machine's BMC; it is answered once an operation
//! with them succeeds (the first status read), so a wrong password is a failed command and
//! the provider hears the power state before the result. `PowerCommand` becomes a one-off
//! action (with `pxe_once` the override first), answered when the manager has done it or
//! failed (`goal` says why one-offs, not a desired state). The manager reads each BMC's
//! state every 30 s and every change becomes a `PowerState` event.
//! A machine goes by its MAC and, once known, its UUID (the provider switches to the UUID):
//! commands find the BMC by either. Credentials live in memory only and are never logged; after a restart
//! the provider must send them again. Redfish is refused for now: its TLS over smoltcp is
//! not written yet.

mod goal;

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4};

use appliance::bmc::ipmi::{Client, Config as IpmiConfig};
use appliance::bmc::power::{BmcId, Config, Event, PowerManager, Slot};
use appliance::bmc::{BootMode, Credentials, Error, Operation, PowerAction, PowerState, PxeBoot};
use appliance::frame::{UdpFrame, arp_request};
use getrandom::SysRng;
use rand_core::UnwrapErr;
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::phy::{Device, TxToken};
use smoltcp::socket::udp;
use smoltcp::time::Instant;
use uplink::{BmcCredentials, BmcEndpoint, MachineId, Outcome, Power};

use super::ipv4_endpoint;
use goal::{Goal, Waiters, Waiting};

/// BMCs the appliance drives (a board's table is as fixed).
pub const BMCS: usize = 64;
/// Datagrams the BMC socket buffers each way (one in flight per BMC, plus retransmissions).
const SOCKET_PACKETS: usize = 2 * BMCS;
/// An IPMI datagram: RMCP+ with the largest answer the client reads (cipher suite lists).
const DATAGRAM: usize = 512;
const FIRST_LOCAL_PORT: u16 = 40_000;
/// How often a BMC in use is ARPed by the port itself, within smoltcp's neighbour lifetime
/// (60 s).
const ARP_REFRESH_MS: u64 = 30_000;

/// The ids one machine goes by: its MAC and its UUID (the same id twice while only one is
/// known).
pub type Aliases = [MachineId; 2];

/// What the port tells the provider, in order: a state before the result it completes.
#[derive(Debug)]
pub enum Report {
    Power(uplink::PowerState),
    Result {
        id: u64,
        what: &'static str,
        outcome: Outcome,
    },
}

/// One BMC and the machine it powers.
struct Bmc {
    /// The id the provider last named the machine by, for its events.
    machine: MachineId,
    addr: SocketAddrV4,
    client: Client,
    /// Credentials or address sent while an operation was in flight: used from the next one.
    replacement: Option<(SocketAddrV4, Client)>,
    job: Option<Operation>,
    waiters: Waiters,
    /// When we last asked for its MAC ourselves (see [`appliance::frame::arp_request`]).
    arp_at: Option<u64>,
}

pub struct PowerPort {
    manager: PowerManager<'static>,
    socket: SocketHandle,
    /// Indexed by the manager's [`BmcId`].
    bmcs: Vec<Bmc>,
    reports: Vec<Report>,
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
            manager: PowerManager::new(Config::default(), slots),
            socket: sockets.add(socket),
            bmcs: Vec::new(),
            reports: Vec::new(),
            rng: UnwrapErr(SysRng),
        })
    }

    /// How often each BMC's state is re-read (the provider's `power_poll_secs`).
    pub fn set_status_interval(&mut self, interval_ms: u64, now: u64) {
        self.manager.set_status_interval(interval_ms, now);
    }

    /// Takes the machine's BMC; `Err` is the command's failure, `Ok` means it is answered
    /// later through [`PowerPort::reports`].
    pub fn credentials(
        &mut self,
        id: u64,
        creds: BmcCredentials,
        aliases: Aliases,
        now: u64,
    ) -> Result<(), &'static str> {
        let BmcEndpoint::Ipmi { ip, port } = creds.endpoint else {
            return Err("Redfish BMCs not yet supported in serve (Redfish over TLS on smoltcp)");
        };
        let addr = SocketAddrV4::new(ip.0.into(), port);
        let credentials = Credentials {
            user: creds
                .user
                .as_str()
                .try_into()
                .map_err(|_| "BMC user too long")?,
            password: (creds.password.0.as_str().try_into())
                .map_err(|_| "BMC password too long")?,
        };
        if self
            .bmcs
            .iter()
            .any(|b| b.addr == addr && !aliases.contains(&b.machine))
        {
            return Err("this BMC address belongs to another machine");
        }
        let client = Client::new(IpmiConfig::default(), credentials);
        let bmc = match self.find(aliases) {
            Some(bmc) => {
                let b = &mut self.bmcs[bmc];
                b.machine = creds.machine;
                match b.job {
                    Some(_) => b.replacement = Some((addr, client)),
                    None => (b.addr, b.client) = (addr, client),
                }
                self.manager.refresh(bmc, now);
                bmc
            }
            None => {
                let mac = aliases.iter().find_map(|a| match a {
                    MachineId::Mac(m) => Some(appliance::net::MacAddr(m.0)),
                    MachineId::Uuid(_) => None,
                });
                let bmc = (self.manager.add(mac, now)).map_err(|_| "BMC table full (64 BMCs)")?;
                self.bmcs.push(Bmc {
                    machine: creds.machine,
                    addr,
                    client,
                    replacement: None,
                    job: None,
                    waiters: Waiters::default(),
                    arp_at: None,
                });
                bmc
            }
        };
        let old = self.bmcs[bmc].waiters.credentials(id);
        self.superseded(old);
        Ok(())
    }

    /// Hands a power command to the manager; `Err` and `Ok` as for credentials.
    pub fn command(
        &mut self,
        id: u64,
        machine: MachineId,
        aliases: Aliases,
        action: uplink::PowerAction,
        pxe_once: Option<uplink::BootMode>,
    ) -> Result<(), &'static str> {
        let bmc = (self.find(aliases)).ok_or("no BMC credentials for this machine")?;
        self.bmcs[bmc].machine = machine;
        let action = match action {
            uplink::PowerAction::On => PowerAction::On,
            uplink::PowerAction::Off => PowerAction::Off,
            uplink::PowerAction::SoftOff => PowerAction::SoftOff,
            uplink::PowerAction::Cycle => PowerAction::Cycle,
            uplink::PowerAction::Reset => PowerAction::HardReset,
        };
        let pxe = pxe_once.map(|mode| PxeBoot {
            persistent: false,
            mode: match mode {
                uplink::BootMode::Efi => BootMode::Efi,
                uplink::BootMode::Legacy => BootMode::Legacy,
            },
        });
        let goal = Goal {
            action,
            pxe: pxe.is_some(),
        };
        let old = self.bmcs[bmc].waiters.power(id, goal);
        if old.is_some() {
            self.manager.withdraw(bmc);
        }
        match pxe {
            // The override first: the action is requested once it is set (`goal`).
            Some(pxe) => self.manager.set_boot(bmc, pxe),
            None => self.manager.request(bmc, action),
        }
        self.superseded(old);
        Ok(())
    }

    /// Reports for the provider, oldest first.
    pub fn reports(&mut self) -> std::vec::Drain<'_, Report> {
        self.reports.drain(..)
    }

    /// When `process` must run again without traffic (milliseconds, smoltcp time).
    pub fn poll_at(&self) -> Option<u64> {
        let clients = self.bmcs.iter().filter_map(|b| b.client.poll_at());
        clients.chain(self.manager.poll_at()).min()
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
            let from = ipv4_endpoint(meta.endpoint);
            if let Some(b) = self.bmcs.iter_mut().find(|b| Some(b.addr) == from) {
                b.client.receive(now, datagram);
            }
        }
        self.transmit(now, socket);
        self.finish(now, out)?;
        while let Some((bmc, op)) = self.manager.poll_job(now) {
            let Some(b) = self.bmcs.get_mut(bmc) else {
                continue;
            };
            if let Some((addr, client)) = b.replacement.take() {
                (b.addr, b.client) = (addr, client);
                b.arp_at = None;
            }
            if b.arp_at.is_none_or(|at| now >= at + ARP_REFRESH_MS) {
                b.arp_at = Some(now);
                arp(device, link, *b.addr.ip(), now);
            }
            match b.client.start(op, now) {
                Ok(()) => b.job = Some(op),
                Err(error) => self.complete(bmc, op, Err(error), now, out)?,
            }
        }
        self.transmit(now, sockets.get_mut::<udp::Socket>(self.socket));
        Ok(())
    }

    /// Sends what each client has due (requests, retransmissions); a client out of tries
    /// ends its operation with a timeout, which `finish` takes next.
    fn transmit(&mut self, now: u64, socket: &mut udp::Socket) {
        let mut buf = [0u8; DATAGRAM];
        for b in &mut self.bmcs {
            while let Some(n) = b.client.poll_transmit(now, &mut self.rng, &mut buf) {
                // A full buffer loses the datagram; the client's retransmission covers it.
                let _ = socket.send_slice(&buf[..n.min(DATAGRAM)], b.addr);
            }
        }
    }

    fn finish(&mut self, now: u64, out: &mut dyn Write) -> io::Result<()> {
        for bmc in 0..self.bmcs.len() {
            let b = &mut self.bmcs[bmc];
            if let Some(op) = b.job
                && let Some(result) = b.client.poll_result()
            {
                b.job = None;
                self.complete(bmc, op, result, now, out)?;
            }
        }
        Ok(())
    }

    /// Records a finished operation with the manager and answers the commands it settles.
    fn complete(
        &mut self,
        bmc: BmcId,
        op: Operation,
        result: Result<PowerState, Error>,
        now: u64,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let event = self.manager.complete(bmc, result, now);
        let b = &mut self.bmcs[bmc];
        let addr = b.addr;
        if let Some(Event::PowerChanged { state, .. }) = event {
            let state = match state {
                PowerState::On => Power::On,
                PowerState::Off => Power::Off,
            };
            self.reports.push(Report::Power(uplink::PowerState {
                machine: b.machine,
                state,
                at: now / 1000,
            }));
        }
        match result {
            Ok(state) => {
                if op != Operation::Status || event.is_some() {
                    writeln!(out, "power bmc={addr} {op:?} -> {state:?}")?;
                }
                let progress = b.waiters.succeeded(op);
                if let Some(action) = progress.request {
                    self.manager.request(bmc, action);
                }
                for (id, what) in progress.done {
                    self.answer(id, what, Outcome::Done);
                }
            }
            Err(error) => {
                writeln!(out, "power bmc={addr} {op:?} -> failed: {error}")?;
                let (failed, power) = b.waiters.failed();
                if power {
                    self.manager.withdraw(bmc);
                }
                let text = error.to_string();
                for (id, what) in failed {
                    let why = text.as_str().try_into().unwrap_or_default();
                    self.answer(id, what, Outcome::Failed(why));
                }
            }
        }
        Ok(())
    }

    fn superseded(&mut self, old: Option<Waiting>) {
        if let Some((id, what)) = old {
            let why = "superseded by a newer command"
                .try_into()
                .unwrap_or_default();
            self.answer(id, what, Outcome::Failed(why));
        }
    }

    fn answer(&mut self, id: u64, what: &'static str, outcome: Outcome) {
        self.reports.push(Report::Result { id, what, outcome });
    }

    fn find(&self, aliases: Aliases) -> Option<BmcId> {
        self.bmcs.iter().position(|b| aliases.contains(&b.machine))
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
