//! The power port: the [`PowerManager`] driven by the provider's commands, with an IPMI
//! client per BMC. The adapter owns one UDP socket for all of them: it hands every datagram
//! to [`PowerPort::receive`], calls [`PowerPort::process`] at [`PowerPort::poll_at`] and
//! after each, and carries out what the port asks through [`Io`] (send, ARP, report, log).
//!
//! `BmcCredentials` adds (or updates) the machine's BMC; it is answered once an operation
//! with them succeeds (the first status read), so a wrong password is a failed command and
//! the provider hears the power state before the result. `PowerCommand` becomes a one-off
//! action (with `pxe_once` the override first), answered when the manager has done it or
//! failed (`goal` says why one-offs, not a desired state). The manager reads each BMC's
//! state every 30 s and every change becomes a `PowerState` event.
//! A machine goes by its MAC and, once known, its UUID (the provider switches to the UUID):
//! commands find the BMC by either. Credentials live in memory only and are never logged;
//! after a restart the provider must send them again. Redfish is refused for now: its TLS
//! over the appliance's stack is not written yet.

use core::fmt::{self, Write as _};
use core::net::{Ipv4Addr, SocketAddrV4};

use rand_core::CryptoRng;
use uplink::{BmcCredentials, BmcEndpoint, MachineId, Outcome, Power};

use super::goal::{Goal, Waiters, Waiting};
use crate::bmc::ipmi::{Client, Config as IpmiConfig};
use crate::bmc::power::{BmcId, Config, Event, PowerManager, Slot};
use crate::bmc::{BootMode, Credentials, Error, Operation, PowerAction, PowerState, PxeBoot};
use crate::net::MacAddr;

/// An IPMI datagram: RMCP+ with the largest answer the client reads (cipher suite lists).
pub const DATAGRAM: usize = 512;
/// How often a BMC in use is ARPed again (within smoltcp's neighbour lifetime, 60 s).
const ARP_REFRESH_MS: u64 = 30_000;

/// The ids one machine goes by: its MAC and its UUID (the same id twice while only one is
/// known).
pub type Aliases = [MachineId; 2];

/// What the port tells the provider, in order: a state before the result it completes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// `at` is in seconds of the port's clock: the adapter adds its offset to Unix time.
    Power(uplink::PowerState),
    Result {
        id: u64,
        what: &'static str,
        outcome: Outcome,
    },
}

/// What the adapter does for the port.
pub trait Io {
    /// Sends `datagram` to the BMC at `to`. One the socket cannot take now may be dropped:
    /// the client retransmits.
    fn send(&mut self, to: SocketAddrV4, datagram: &[u8]);
    /// The port is about to talk to `ip` (first time, or 30 s since the last): an adapter
    /// whose stack ARPs slowly asks for the MAC itself.
    fn arp(&mut self, ip: Ipv4Addr);
    /// A report for the provider, in order.
    fn report(&mut self, report: Report);
    /// A line for the appliance's log (never holds credentials).
    fn log(&mut self, line: fmt::Arguments<'_>);
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
    /// When the port last asked for its MAC ([`Io::arp`]).
    arp_at: Option<u64>,
}

/// Up to `N` BMCs; the manager's slot table is the adapter's (a `static` on a board).
pub struct PowerPort<'a, const N: usize> {
    manager: PowerManager<'a>,
    /// Indexed by the manager's [`BmcId`].
    bmcs: heapless::Vec<Bmc, N>,
}

impl<'a, const N: usize> PowerPort<'a, N> {
    /// `slots` should hold `N` slots: the port refuses BMCs beyond the smaller of the two.
    pub fn new(slots: &'a mut [Slot]) -> PowerPort<'a, N> {
        PowerPort {
            manager: PowerManager::new(Config::default(), slots),
            bmcs: heapless::Vec::new(),
        }
    }

    /// Takes the provider's power settings: how often each BMC's state is re-read
    /// (`power_poll_secs`) and the least time between a power-on and the next power-off
    /// (`min_on_before_off_secs`).
    pub fn configure(&mut self, config: &uplink::Config, now: u64) {
        let poll_ms = u64::from(config.power_poll_secs.max(1)) * 1000;
        self.manager.set_status_interval(poll_ms, now);
        let min_on_ms = u64::from(config.min_on_before_off_secs) * 1000;
        self.manager.set_min_on_before_off(min_on_ms);
    }

    /// Takes the machine's BMC; `Err` is the command's failure, `Ok` means it is answered
    /// later through [`Io::report`] (`answer` takes a command it supersedes).
    pub fn credentials(
        &mut self,
        id: u64,
        creds: BmcCredentials,
        aliases: Aliases,
        now: u64,
        answer: &mut dyn FnMut(Report),
    ) -> Result<(), &'static str> {
        let BmcEndpoint::Ipmi { ip, port } = creds.endpoint else {
            return Err(
                "Redfish BMCs not supported yet (Redfish over TLS on the appliance's stack)",
            );
        };
        let addr = SocketAddrV4::new(ip.0.into(), port);
        let credentials = Credentials {
            user: (creds.user.as_str().try_into()).map_err(|_| "BMC user too long")?,
            password: (creds.password.0.as_str().try_into())
                .map_err(|_| "BMC password too long")?,
        };
        if (self.bmcs.iter()).any(|b| b.addr == addr && !aliases.contains(&b.machine)) {
            return Err("this BMC address belongs to another machine");
        }
        let client = Client::new(IpmiConfig::default(), credentials);
        let bmc = match self.find(aliases) {
            Some(bmc) => {
                let b = self.bmcs.get_mut(bmc).ok_or("BMC table out of step")?;
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
                    MachineId::Mac(m) => Some(MacAddr(m.0)),
                    MachineId::Uuid(_) => None,
                });
                if self.bmcs.is_full() {
                    return Err("BMC table full");
                }
                let bmc = (self.manager.add(mac, now)).map_err(|_| "BMC table full")?;
                let b = Bmc {
                    machine: creds.machine,
                    addr,
                    client,
                    replacement: None,
                    job: None,
                    waiters: Waiters::default(),
                    arp_at: None,
                };
                // Checked above: the table has room, and the manager numbers BMCs as added.
                let _ = self.bmcs.push(b);
                bmc
            }
        };
        let old = (self.bmcs.get_mut(bmc)).and_then(|b| b.waiters.credentials(id));
        superseded(old, answer);
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
        answer: &mut dyn FnMut(Report),
    ) -> Result<(), &'static str> {
        let bmc = (self.find(aliases)).ok_or("no BMC credentials for this machine")?;
        let b = self.bmcs.get_mut(bmc).ok_or("BMC table out of step")?;
        b.machine = machine;
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
        let old = b.waiters.power(id, goal);
        if old.is_some() {
            self.manager.withdraw(bmc);
        }
        match pxe {
            // The override first: the action is requested once it is set (`goal`).
            Some(pxe) => self.manager.set_boot(bmc, pxe),
            None => self.manager.request(bmc, action),
        }
        superseded(old, answer);
        Ok(())
    }

    /// When [`PowerPort::process`] must run again without traffic (milliseconds).
    pub fn poll_at(&self) -> Option<u64> {
        let clients = self.bmcs.iter().filter_map(|b| b.client.poll_at());
        clients.chain(self.manager.poll_at()).min()
    }

    /// A datagram from `from`; one from an address no BMC has is dropped.
    pub fn receive(&mut self, now: u64, from: SocketAddrV4, datagram: &[u8]) {
        if let Some(b) = self.bmcs.iter_mut().find(|b| b.addr == from) {
            b.client.receive(now, datagram);
        }
    }

    /// Sends what is due, takes finished operations and starts due ones.
    pub fn process(&mut self, now: u64, rng: &mut impl CryptoRng, io: &mut impl Io) {
        self.transmit(now, rng, io);
        for bmc in 0..self.bmcs.len() {
            let Some(b) = self.bmcs.get_mut(bmc) else {
                continue;
            };
            if let Some(op) = b.job
                && let Some(result) = b.client.poll_result()
            {
                b.job = None;
                self.complete(bmc, op, result, now, io);
            }
        }
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
                io.arp(*b.addr.ip());
            }
            match b.client.start(op, now) {
                Ok(()) => b.job = Some(op),
                Err(error) => self.complete(bmc, op, Err(error), now, io),
            }
        }
        self.transmit(now, rng, io);
    }

    /// Sends what each client has due (requests, retransmissions); a client out of tries
    /// ends its operation with a timeout, which the next `process` takes.
    fn transmit(&mut self, now: u64, rng: &mut impl CryptoRng, io: &mut impl Io) {
        let mut buf = [0u8; DATAGRAM];
        for b in &mut self.bmcs {
            while let Some(n) = b.client.poll_transmit(now, rng, &mut buf) {
                io.send(b.addr, buf.get(..n).unwrap_or(&buf));
            }
        }
    }

    /// Records a finished operation with the manager and answers the commands it settles.
    fn complete(
        &mut self,
        bmc: BmcId,
        op: Operation,
        result: Result<PowerState, Error>,
        now: u64,
        io: &mut impl Io,
    ) {
        let event = self.manager.complete(bmc, result, now);
        let Some(b) = self.bmcs.get_mut(bmc) else {
            return;
        };
        let addr = b.addr;
        if let Some(Event::PowerChanged { state, .. }) = event {
            let state = match state {
                PowerState::On => Power::On,
                PowerState::Off => Power::Off,
            };
            io.report(Report::Power(uplink::PowerState {
                machine: b.machine,
                state,
                at: now / 1000,
            }));
        }
        match result {
            Ok(state) => {
                if op != Operation::Status || event.is_some() {
                    io.log(format_args!("power bmc={addr} {op:?} -> {state:?}"));
                }
                let progress = b.waiters.succeeded(op);
                if let Some(action) = progress.request {
                    self.manager.request(bmc, action);
                }
                for (id, what) in progress.done {
                    io.report(answer(id, what, Outcome::Done));
                }
            }
            Err(error) => {
                io.log(format_args!("power bmc={addr} {op:?} -> failed: {error}"));
                let (failed, power) = b.waiters.failed();
                if power {
                    self.manager.withdraw(bmc);
                }
                let mut why = heapless::String::new();
                // A longer text is cut short: still the error's start.
                let _ = write!(why, "{error}");
                for (id, what) in failed {
                    io.report(answer(id, what, Outcome::Failed(why.clone())));
                }
            }
        }
    }

    fn find(&self, aliases: Aliases) -> Option<BmcId> {
        self.bmcs.iter().position(|b| aliases.contains(&b.machine))
    }
}

fn superseded(old: Option<Waiting>, answer: &mut dyn FnMut(Report)) {
    if let Some((id, what)) = old {
        let why = "superseded by a newer command"
            .try_into()
            .unwrap_or_default();
        answer(self::answer(id, what, Outcome::Failed(why)));
    }
}

fn answer(id: u64, what: &'static str, outcome: Outcome) -> Report {
    Report::Result { id, what, outcome }
}
