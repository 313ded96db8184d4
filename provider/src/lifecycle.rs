//! The machine lifecycle, Omni's static-provider semantics as pure functions:
//! [`plan`] says what a machine should boot and how it should be powered, [`next_commands`]
//! turns that into the commands still missing, [`resolve`] takes a command's result back into
//! the machine, and [`apply_change`] applies an operator's (or Omni's) change.

use serde::{Deserialize, Serialize};
use uplink::{BmcCredentials, BootMode, BootTarget, Command, Outcome, PowerAction, Served};

use uplink::Url;

use crate::factory::{Schematic, Schematics, VANILLA};
use crate::model::{
    Acceptance, Allocation, BmcConfig, BootOverride, Change, Machine, PreferredPower,
};

/// After a failed command, how long before the machine gets another.
pub const RETRY_SECS: u64 = 30;

/// Provider-wide lifecycle settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Image Factory PXE base, e.g. `https://pxe.factory.talos.dev/pxe`.
    pub factory_url: String,
    /// Kernel arguments every factory boot carries: the join config's
    /// ([`crate::factory::join_kernel_args`]); empty without a join config.
    pub join_args: Vec<String>,
    /// The Talos the agent boots; `None`: the appliance's configured `agent_url` as it is.
    pub agent_talos_version: Option<String>,
    /// Schematic ids known, shared with the task that creates the missing ones.
    pub schematics: Schematics,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            factory_url: "https://pxe.factory.talos.dev/pxe".into(),
            join_args: Vec::new(),
            agent_talos_version: None,
            schematics: Schematics::default(),
        }
    }
}

/// What the machine boots when it next asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Boot {
    Serve(BootTarget),
    /// Cordoned: Omni answers 404 so the firmware moves on to its next boot device.
    Refuse,
}

impl Boot {
    /// The target sent to the appliance. The protocol has no "refuse" target yet, so a
    /// refusal is sent as [`BootTarget::Disk`] (`exit` from iPXE), which has the same effect
    /// as a 404: the firmware boots its next device.
    pub fn wire(&self) -> BootTarget {
        match self {
            Boot::Serve(t) => t.clone(),
            Boot::Refuse => BootTarget::Disk,
        }
    }
}

/// A power action wanted once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OneOff {
    /// Omni's power-off request id.
    PowerOff(String),
    /// Omni's reboot request id: cycle once, network boot first.
    Reboot(String),
    /// The machine is on but must boot this target (install, or agent with a wipe): cycle once.
    CycleInto(BootTarget),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub boot: Boot,
    /// The power to hold; `None`: leave power alone.
    pub power: Option<PreferredPower>,
    pub one_off: Option<OneOff>,
}

/// The schematic an allocation installs: the join arguments, then Omni's extra kernel
/// arguments, and Omni's extensions.
pub fn install_schematic(a: &Allocation, s: &Settings) -> Schematic {
    let mut args = s.join_args.clone();
    args.extend(a.kernel_args.split_whitespace().map(String::from));
    Schematic::new(args, &a.extensions)
}

/// `<factory>/<schematic>/<version>/metal-<arch>`, if it fits the wire's URL limit.
fn factory_url(s: &Settings, schematic: &str, version: &str, arch: Option<u16>) -> Option<Url> {
    let arch = match arch {
        Some(11 | 19) => "arm64",
        _ => "amd64",
    };
    let url = format!(
        "{}/{schematic}/{version}/metal-{arch}",
        s.factory_url.trim_end_matches('/')
    );
    url.as_str().try_into().ok()
}

/// The agent's factory URL once its schematic exists (amd64: the appliance has one agent
/// URL for all its machines).
pub fn agent_url(s: &Settings) -> Option<Url> {
    let version = s.agent_talos_version.as_deref()?;
    let id = s.schematics.id(&Schematic::agent(&s.join_args))?;
    factory_url(s, &id, version, None)
}

/// The Image Factory install target for an allocated machine: the allocation's own
/// schematic, else the one made of its kernel arguments and extensions once Image Factory
/// has created it (`None` until then, and the machine keeps booting the agent).
pub fn install_target(m: &Machine, s: &Settings) -> Option<BootTarget> {
    let a = m.allocation.as_ref()?;
    let id = match &a.schematic {
        Some(id) => id.clone(),
        None => s.schematics.id(&install_schematic(a, s))?,
    };
    Some(BootTarget::Install {
        url: factory_url(s, &id, &a.talos_version, m.arch)?,
        kernel_args: Default::default(),
    })
}

/// Refuses an allocation the wire cannot carry, or one that names a schematic and also asks
/// for kernel arguments or extensions (a given schematic is used as it is).
fn check_allocation(m: &Machine, a: &Allocation, s: &Settings) -> Result<(), String> {
    if a.schematic.is_some() && (!a.kernel_args.trim().is_empty() || !a.extensions.is_empty()) {
        return Err(format!(
            "{}: a given schematic carries its own kernel arguments and extensions",
            m.key
        ));
    }
    let schematic = a.schematic.as_deref().unwrap_or(VANILLA);
    if schematic.len() > VANILLA.len()
        || factory_url(s, schematic, &a.talos_version, m.arch).is_none()
    {
        return Err(format!("{}: install URL too long", m.key));
    }
    Ok(())
}

fn agent(wipe_id: Option<&str>) -> BootTarget {
    BootTarget::Agent {
        wipe_id: wipe_id.and_then(|w| w.try_into().ok()),
    }
}

/// Omni's boot decision: cordoned -> refuse; rejected -> disk; agent while pending, with no
/// BMC, with a wipe due or unallocated; install until installed; then disk. An operator's
/// override wins over all but cordon.
pub fn boot(m: &Machine, s: &Settings) -> Boot {
    if m.cordoned {
        return Boot::Refuse;
    }
    let target = match &m.boot_override {
        Some(BootOverride::Agent) => agent(None),
        Some(BootOverride::Disk) => BootTarget::Disk,
        Some(BootOverride::Install) => install_target(m, s).unwrap_or_else(|| agent(None)),
        Some(BootOverride::Url(url)) => match url.as_str().try_into() {
            Ok(u) if url.ends_with(".ipxe") => BootTarget::Script(u),
            Ok(u) => BootTarget::Url(u),
            Err(_) => agent(None),
        },
        None => match m.acceptance {
            Acceptance::Rejected => BootTarget::Disk,
            Acceptance::Pending => agent(None),
            Acceptance::Accepted if m.wipe_due() => agent(m.wipe_id.as_deref()),
            Acceptance::Accepted if m.bmc_revision.is_none() => agent(None),
            Acceptance::Accepted if m.installed => BootTarget::Disk,
            Acceptance::Accepted => install_target(m, s).unwrap_or_else(|| agent(None)),
        },
    };
    Boot::Serve(target)
}

/// The whole plan. Power is managed only for accepted, uncordoned machines with a BMC:
/// held on while a wipe is due (the agent must run), else at the preferred state; one-offs
/// in order of precedence: a power-off request, a reboot request, a cycle into a target
/// that must be booted (install, wipe) while the machine is not off.
pub fn plan(m: &Machine, s: &Settings) -> Plan {
    let boot = boot(m, s);
    let managed = m.acceptance == Acceptance::Accepted && !m.cordoned && m.bmc_revision.is_some();
    if !managed {
        return Plan {
            boot,
            power: None,
            one_off: None,
        };
    }
    let power = if m.wipe_due() {
        PreferredPower::On
    } else {
        m.preferred_power
    };
    let target = boot.wire();
    let must_boot = matches!(
        &target,
        BootTarget::Install { .. } | BootTarget::Agent { wipe_id: Some(_) }
    );
    let one_off =
        if m.power_off_request_id.is_some() && m.power_off_request_id != m.last_power_off_id {
            m.power_off_request_id.clone().map(OneOff::PowerOff)
        } else if m.requested_reboot_id.is_some() && m.requested_reboot_id != m.last_reboot_id {
            m.requested_reboot_id.clone().map(OneOff::Reboot)
        } else if must_boot
            && m.observed_power != crate::model::ObservedPower::Off
            && m.delivered.cycled_into.as_ref() != Some(&target)
        {
            Some(OneOff::CycleInto(target))
        } else {
            None
        };
    Plan {
        boot,
        power: Some(power),
        one_off,
    }
}

/// Why a command was issued: what its `Done` confirms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purpose {
    Bmc { revision: u32 },
    Boot(BootTarget),
    Power(PreferredPower),
    Reboot(String),
    PowerOff(String),
    CycleInto,
    Config,
}

impl Purpose {
    /// Commands of one kind run one at a time per machine.
    pub fn kind(&self) -> Kind {
        match self {
            Purpose::Bmc { .. } => Kind::Bmc,
            Purpose::Boot(_) => Kind::Boot,
            Purpose::Power(_) | Purpose::Reboot(_) | Purpose::PowerOff(_) | Purpose::CycleInto => {
                Kind::Power
            }
            Purpose::Config => Kind::Config,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Bmc,
    Boot,
    Power,
    Config,
}

/// A command to issue, with what it is for and the target a machine it starts will boot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    pub purpose: Purpose,
    pub into: Option<BootTarget>,
    pub command: Command,
}

/// The firmware mode for a one-time network boot, from DHCP option 93.
pub fn boot_mode(arch: Option<u16>) -> BootMode {
    match arch {
        Some(0) => BootMode::Legacy,
        _ => BootMode::Efi,
    }
}

/// The commands still missing for `m`, in the order they must run: BMC credentials, then the
/// boot target, then power (only once the appliance has confirmed the BMC and the target, so
/// a machine never boots a stale target). `busy` says which kinds already have a command
/// in flight for this machine; none is issued before `retry_after`.
pub fn next_commands(
    m: &Machine,
    plan: &Plan,
    bmc: Option<&BmcConfig>,
    busy: impl Fn(Kind) -> bool,
    now: u64,
) -> Vec<Issue> {
    let mut out = Vec::new();
    if now < m.retry_after {
        return out;
    }
    let machine = m.wire_id();
    let bmc_ready = match (m.bmc_revision, bmc) {
        (Some(rev), Some(cfg)) if m.delivered.bmc_revision != rev => {
            if !busy(Kind::Bmc) {
                out.extend(bmc_command(m, rev, cfg));
            }
            false
        }
        (Some(_), Some(_)) => true,
        _ => false,
    };
    let target = plan.boot.wire();
    let boot_ready = !m.delivered.stale && m.delivered.boot.as_ref() == Some(&target);
    if !boot_ready && !busy(Kind::Boot) {
        out.push(Issue {
            purpose: Purpose::Boot(target.clone()),
            into: None,
            command: Command::SetBootTarget {
                machine,
                target: target.clone(),
            },
        });
    }
    if !bmc_ready || !boot_ready || busy(Kind::Power) {
        return out;
    }
    let pxe_once = Some(boot_mode(m.arch));
    let power = |purpose, action, into: Option<BootTarget>| Issue {
        purpose,
        command: Command::PowerCommand {
            machine,
            action,
            pxe_once: into.as_ref().and(pxe_once),
        },
        into,
    };
    let issue = match (&plan.one_off, plan.power) {
        (Some(OneOff::PowerOff(id)), _) => {
            Some(power(Purpose::PowerOff(id.clone()), PowerAction::Off, None))
        }
        (Some(OneOff::Reboot(id)), _) => Some(power(
            Purpose::Reboot(id.clone()),
            PowerAction::Cycle,
            Some(target),
        )),
        (Some(OneOff::CycleInto(t)), _) => Some(power(
            Purpose::CycleInto,
            PowerAction::Cycle,
            Some(t.clone()),
        )),
        (None, Some(want)) if !observed_is(m, want) && m.delivered.power_attempt != Some(want) => {
            Some(match want {
                PreferredPower::On => power(Purpose::Power(want), PowerAction::On, Some(target)),
                PreferredPower::Off => power(Purpose::Power(want), PowerAction::Off, None),
            })
        }
        _ => None,
    };
    out.extend(issue);
    out
}

fn observed_is(m: &Machine, want: PreferredPower) -> bool {
    use crate::model::ObservedPower as O;
    matches!(
        (m.observed_power, want),
        (O::On, PreferredPower::On) | (O::Off, PreferredPower::Off)
    )
}

fn bmc_command(m: &Machine, revision: u32, cfg: &BmcConfig) -> Option<Issue> {
    let creds = BmcCredentials {
        machine: m.wire_id(),
        endpoint: cfg.endpoint.clone(),
        user: cfg.user.as_str().try_into().ok()?,
        password: uplink::Secret(cfg.password.as_str().try_into().ok()?),
    };
    Some(Issue {
        purpose: Purpose::Bmc { revision },
        into: None,
        command: Command::BmcCredentials(creds),
    })
}

/// Takes a command's result into the machine. `Interrupted` changes nothing, so the next
/// [`next_commands`] issues it again under a new id; `Failed` does the same after
/// [`RETRY_SECS`] and records the error.
pub fn resolve(
    m: &mut Machine,
    purpose: &Purpose,
    into: Option<BootTarget>,
    outcome: &Outcome,
    now: u64,
) {
    match outcome {
        Outcome::Interrupted => return,
        Outcome::Failed(e) => {
            m.retry_after = now + RETRY_SECS;
            m.last_error = Some(e.to_string());
            return;
        }
        Outcome::Done => m.last_error = None,
    }
    if into.is_some() {
        m.delivered.cycled_into = into;
    }
    match purpose {
        Purpose::Bmc { revision } => m.delivered.bmc_revision = *revision,
        Purpose::Boot(t) => {
            m.delivered.boot = Some(t.clone());
            m.delivered.stale = false;
        }
        Purpose::Power(p) => m.delivered.power_attempt = Some(*p),
        Purpose::Reboot(id) => m.last_reboot_id = Some(id.clone()),
        Purpose::PowerOff(id) => m.last_power_off_id = Some(id.clone()),
        Purpose::CycleInto | Purpose::Config => {}
    }
}

/// Applies a change. `fresh` is a new, unique request id (for wipes and reboots).
pub fn apply_change(
    m: &mut Machine,
    change: &Change,
    fresh: &str,
    s: &Settings,
) -> Result<(), String> {
    match change {
        Change::Power { state } => m.preferred_power = *state,
        Change::Boot { target } => {
            if target == &Some(BootOverride::Install) && m.allocation.is_none() {
                return Err(format!("{}: no allocation to install", m.key));
            }
            m.boot_override = target.clone();
        }
        Change::Accept => {
            if m.acceptance != Acceptance::Accepted {
                // A newly accepted machine's disks are unknown: wipe them first.
                m.wipe_id = Some(fresh.into());
            }
            m.acceptance = Acceptance::Accepted;
        }
        Change::Reject => m.acceptance = Acceptance::Rejected,
        Change::Allocate(a) => {
            if m.acceptance != Acceptance::Accepted {
                return Err(format!("{}: not accepted", m.key));
            }
            check_allocation(m, a, s)?;
            m.allocation = Some(a.clone());
            // Asks for its schematic now, so it is being created while the machine powers on.
            let _ = install_target(m, s);
            m.installed = false;
            m.install_event_id = 0;
            m.preferred_power = PreferredPower::On;
        }
        Change::Deallocate => {
            m.allocation = None;
            m.installed = false;
            m.wipe_id = Some(fresh.into());
            m.preferred_power = PreferredPower::Off;
        }
        Change::Reboot => m.requested_reboot_id = Some(fresh.into()),
        Change::Wipe { id } => {
            if m.acceptance != Acceptance::Accepted {
                return Err(format!("{}: not accepted", m.key));
            }
            if id.len() > uplink::message::WIPE_ID_MAX {
                return Err(format!(
                    "{}: wipe id longer than {}",
                    m.key,
                    uplink::message::WIPE_ID_MAX
                ));
            }
            m.wipe_id = Some(id.clone());
        }
        Change::PowerOff { id } => m.power_off_request_id = id.clone(),
        Change::Cordon => m.cordoned = true,
        Change::Uncordon => m.cordoned = false,
        Change::Bmc(_) => m.bmc_revision = Some(m.bmc_revision.unwrap_or(0) + 1),
    }
    Ok(())
}

/// The appliance reports the machine fetched a boot. The appliance only sees what a
/// machine fetches, so the boot its target names, once served, stands for its completion:
/// an install served marks the machine installed, an agent with a wipe order served marks it
/// wiped. Any other fetch (iPXE over TFTP, the appliance's boot script) is only a step on the
/// way: counting it would power the machine off mid-boot. Only a boot the machine was
/// powered on or cycled into counts: a boot already under way when the target changed (a
/// pending machine's agent, accepted meanwhile) is cut by that cycle. `agent_url` is the
/// appliance's (empty: its own kernel and initrd). (Omni's adapter may confirm these from
/// the agent and Talos instead.)
pub fn boot_served(m: &mut Machine, what: &Served, agent_url: &Url) {
    let target = m.delivered.boot.as_ref();
    let named = target.is_some_and(|t| names(t, what, agent_url))
        && m.delivered.cycled_into.as_ref() == target;
    match &m.delivered.boot {
        Some(BootTarget::Install { .. }) if named && m.allocation.is_some() && !m.installed => {
            m.installed = true;
            m.install_event_id += 1;
        }
        Some(BootTarget::Agent { wipe_id: Some(w) })
            if named && m.wipe_id.as_deref() == Some(w.as_str()) =>
        {
            m.wiped = m.wipe_id.clone();
        }
        _ => {}
    }
    m.last_boot = Some(match what {
        Served::TftpFile(f) => format!("tftp {f}"),
        Served::Script(u) => format!("script {u}"),
        Served::KernelUrl(u) => format!("kernel {u}"),
    });
}

/// Whether `what` is the boot `target` names: the chain to the install's URL or to the
/// agent URL, or with no agent URL the appliance's own agent kernel or initrd.
fn names(target: &BootTarget, what: &Served, agent_url: &Url) -> bool {
    match (target, what) {
        (BootTarget::Install { url, .. }, Served::Script(s)) => s == url,
        (BootTarget::Agent { .. }, Served::Script(s)) => !agent_url.is_empty() && s == agent_url,
        (BootTarget::Agent { .. }, Served::KernelUrl(_)) => agent_url.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
