//! Runs the provider's commands against the appliance's tables. Every command ends in an
//! [`Outcome`], so nothing stays pending at the provider: at once, or (power and BMC
//! commands) when the power port has done them ([`deliver`]).
//!
//! Boot targets map onto the DHCP/iPXE boot decision ([`appliance::dhcp::pxe::BootTarget`]):
//!
//! | uplink | appliance | what the machine does |
//! |---|---|---|
//! | `Agent` | `Script(agent_url)`, or `Default` while no agent URL is configured | chains the agent, or boots the appliance's own kernel and initrd |
//! | `Install { url, kernel_args: "" }` | `Script(url)` | chains the installer (an Image Factory PXE URL is an iPXE script) |
//! | `Install` with kernel args | refused | the script template has no place for them yet |
//! | `Disk` | `Local` | no boot offer: firmware falls through to the disk; iPXE `exit`s |
//! | `Script(url)` | `Script(url)` | chains the script |
//! | `Url(url)` | `Script(url)` | iPXE's `chain` boots a kernel or EFI image as well as a script |
//!
//! Firmware PXE still gets iPXE from the appliance first in every case but `Disk`, so the
//! chain runs where the script decides. An agent's `wipe_id` is not passed on (no field for
//! it in the appliance's target yet).

use std::io::{self, Write};

use appliance::dhcp::pxe::{BootFile, BootTarget};
use appliance::inventory::{Inventory, MachineKey};
use appliance::net::{MacAddr, Uuid};
use uplink::{BootTarget as Wanted, Command, Config, MachineId, Outcome, Url};

use super::UplinkPort;
use crate::runtime::MACHINES;
use crate::runtime::power::{Aliases, PowerPort, Report};

/// What commands act on.
pub struct Tables<'a> {
    pub inventory: &'a mut Inventory<MACHINES>,
    pub power: &'a mut PowerPort,
}

/// What commands change besides the inventory: the provider's run-time configuration.
#[derive(Default)]
pub struct Applied {
    pub config: Option<Config>,
    /// Machines booting the agent, re-pointed when the agent URL changes.
    agents: Vec<MachineKey>,
}

impl Applied {
    /// `None`: the command runs on and its outcome comes through [`deliver`].
    pub fn run(
        &mut self,
        id: u64,
        command: Command,
        tables: &mut Tables<'_>,
        now: u64,
    ) -> Option<Outcome> {
        let inventory = &mut *tables.inventory;
        let result = match command {
            Command::SetBootTarget { machine, target } => {
                let key = machine_key(machine);
                self.agents.retain(|k| *k != key);
                if matches!(target, Wanted::Agent { .. }) {
                    self.agents.push(key);
                }
                self.boot_target(&target)
                    .and_then(|t| set(inventory, key, t))
            }
            Command::ConfigUpdate(config) => {
                let poll_ms = u64::from(config.power_poll_secs.max(1)) * 1000;
                tables.power.set_status_interval(poll_ms, now);
                self.config = Some(config);
                let agent = self.boot_target(&Wanted::Agent { wipe_id: None });
                agent.and_then(|t| {
                    (self.agents.iter()).try_for_each(|k| set(inventory, *k, t.clone()))
                })
            }
            Command::PowerCommand {
                machine,
                action,
                pxe_once,
            } => {
                let aliases = aliases(inventory, machine);
                let power = &mut tables.power;
                return failed(power.command(id, machine, aliases, action, pxe_once));
            }
            Command::BmcCredentials(creds) => {
                let aliases = aliases(inventory, creds.machine);
                return failed(tables.power.credentials(id, creds, aliases, now));
            }
        };
        Some(match result {
            Ok(()) => Outcome::Done,
            Err(why) => outcome(why),
        })
    }

    fn boot_target(&self, target: &Wanted) -> Result<BootTarget, &'static str> {
        match target {
            Wanted::Agent { .. } => match self.config.as_ref().map(|c| &c.agent_url) {
                Some(url) if !url.is_empty() => script(url),
                _ => Ok(BootTarget::Default),
            },
            Wanted::Install { url, kernel_args } if kernel_args.is_empty() => script(url),
            Wanted::Install { .. } => Err("install kernel arguments are not supported yet"),
            Wanted::Disk => Ok(BootTarget::Local),
            Wanted::Script(url) | Wanted::Url(url) => script(url),
        }
    }
}

impl UplinkPort {
    /// Hands the power port's reports to the session, in order: a state before the result
    /// it explains. Queued like every event, so they are stored and logged with their number.
    pub(super) fn deliver(&mut self, power: &mut PowerPort, out: &mut dyn Write) -> io::Result<()> {
        for report in power.reports() {
            match report {
                Report::Power(state) => self.queue(uplink::Event::PowerState(state)),
                Report::Result { id, what, outcome } => {
                    writeln!(out, "uplink command id={id} {what} -> {outcome:?}")?;
                    // Only a command this session handed out reaches the power port.
                    if let Some(Ok(seq)) = self.session.as_mut().map(|s| s.complete(id, outcome)) {
                        self.queued
                            .push(format!("uplink event seq={seq} CommandResult"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A command that failed at once, or `None` while it runs on.
fn failed(result: Result<(), &'static str>) -> Option<Outcome> {
    result.err().map(outcome)
}

fn outcome(why: &str) -> Outcome {
    Outcome::Failed(why.try_into().unwrap_or_default())
}

fn script(url: &Url) -> Result<BootTarget, &'static str> {
    if url.is_empty() || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("boot URL is empty or has spaces");
    }
    BootFile::try_from(url.as_str())
        .map(BootTarget::Script)
        .map_err(|_| "boot URL too long")
}

fn set(
    inventory: &mut Inventory<MACHINES>,
    key: MachineKey,
    target: BootTarget,
) -> Result<(), &'static str> {
    inventory
        .set_boot(key, target)
        .map_err(|_| "machine table full of boot overrides")
}

/// The ids the inventory knows `machine` by: the provider names a machine by its MAC until
/// it learns its UUID, by the UUID after.
fn aliases(inventory: &Inventory<MACHINES>, machine: MachineId) -> Aliases {
    let (mac, uuid) = match machine_key(machine) {
        MachineKey::Mac(m) => (Some(m), None),
        MachineKey::Uuid(u) => (None, Some(u)),
    };
    let known = inventory
        .iter()
        .find(|m| (mac.is_some() && m.mac == mac) || (uuid.is_some() && m.uuid == uuid));
    let other = match (machine, known) {
        (MachineId::Mac(_), Some(m)) => m.uuid.map(|u| MachineId::Uuid(uplink::Uuid(u.0))),
        (MachineId::Uuid(_), Some(m)) => m.mac.map(|a| MachineId::Mac(uplink::Mac(a.0))),
        (_, None) => None,
    };
    [machine, other.unwrap_or(machine)]
}

fn machine_key(machine: MachineId) -> MachineKey {
    match machine {
        MachineId::Mac(m) => MachineKey::Mac(MacAddr(m.0)),
        MachineId::Uuid(u) => MachineKey::Uuid(Uuid(u.0)),
    }
}
