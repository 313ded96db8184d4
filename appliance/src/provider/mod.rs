//! The provider's commands run against the appliance's tables, the same in host-sim and on
//! every board; the adapters bring the uplink session, a UDP socket for the BMCs and a log.
//! Every command ends in an [`Outcome`], so nothing stays pending at the provider: at once,
//! or (power and BMC commands) when the power port has done them ([`power::Report`]).
//!
//! Boot targets map onto the DHCP/iPXE boot decision ([`BootTarget`]):
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

mod goal;
pub mod power;
#[cfg(test)]
mod tests;

use uplink::{BootTarget as Wanted, Command, Config, MachineId, Outcome, Url};

use crate::dhcp::pxe::{BootFile, BootTarget};
use crate::inventory::{Inventory, MachineKey};
use crate::net::{MacAddr, Uuid};
use power::{Aliases, PowerPort, Report};

/// What commands change besides the inventory: the provider's run-time configuration, and
/// which of the inventory's `M` machines boot the agent.
#[derive(Default)]
pub struct Applied<const M: usize> {
    pub config: Option<Config>,
    /// Machines booting the agent, re-pointed when the agent URL changes.
    agents: heapless::Vec<MachineKey, M>,
}

impl<const M: usize> Applied<M> {
    /// `None`: the command runs on and its outcome comes through the port's
    /// [`power::Io::report`]; `answer` takes the outcome of a command this one supersedes.
    pub fn run<const N: usize>(
        &mut self,
        id: u64,
        command: Command,
        inventory: &mut Inventory<M>,
        power: &mut PowerPort<'_, N>,
        now: u64,
        answer: &mut dyn FnMut(Report),
    ) -> Option<Outcome> {
        let result = match command {
            Command::SetBootTarget { machine, target } => {
                let key = machine_key(machine);
                self.agents.retain(|k| *k != key);
                let agent = matches!(target, Wanted::Agent { .. });
                let room = !agent || self.agents.push(key).is_ok();
                (self.boot_target(&target))
                    .and_then(|t| {
                        room.then_some(t)
                            .ok_or("too many machines booting the agent")
                    })
                    .and_then(|t| set(inventory, key, t))
            }
            Command::ConfigUpdate(config) => {
                power.configure(&config, now);
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
                let result = power.command(id, machine, aliases, action, pxe_once, answer);
                return result.err().map(failed);
            }
            Command::BmcCredentials(creds) => {
                let aliases = aliases(inventory, creds.machine);
                let result = power.credentials(id, creds, aliases, now, answer);
                return result.err().map(failed);
            }
        };
        Some(result.map_or_else(failed, |()| Outcome::Done))
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

fn failed(why: &str) -> Outcome {
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

fn set<const M: usize>(
    inventory: &mut Inventory<M>,
    key: MachineKey,
    target: BootTarget,
) -> Result<(), &'static str> {
    inventory
        .set_boot(key, target)
        .map_err(|_| "machine table full of boot overrides")
}

/// The ids the inventory knows `machine` by: the provider names a machine by its MAC until
/// it learns its UUID, by the UUID after.
fn aliases<const M: usize>(inventory: &Inventory<M>, machine: MachineId) -> Aliases {
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
