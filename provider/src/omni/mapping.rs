//! Omni's resources and the provider's model, both ways, as pure functions: an
//! `InfraMachine` becomes the provider's [`Change`]s one at a time ([`next_change`], applied
//! until it says `None`, each followed by [`applied`]), a `BMCConfig` becomes
//! [`Change::Bmc`], and the provider's [`Machine`] becomes the `InfraMachineStatus` written
//! back ([`status`]).

use std::net::Ipv4Addr;

use crate::model::{
    Acceptance, Allocation, BmcConfig, Change, Machine, ObservedPower, PreferredPower,
};

use super::proto::{BmcConfigSpec, InfraMachineSpec, InfraMachineStatusSpec};

/// What the adapter remembers of one machine between events: Omni's requests carry Omni's
/// ids, the model makes some of its own, and a wipe fixes what Omni's status reports
/// until the next one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Omni's `requested_reboot_id` handed to the model, and the model's id for it.
    pub reboot: Option<(String, String)>,
    /// The `last_reboot_id` reported so far (from Omni's status at start, then ours).
    pub reported_reboot: String,
    /// When this adapter saw that reboot done (Unix seconds).
    pub reboot_at: Option<i64>,
    /// The model's last wipe this adapter took note of, and Omni's `node_unique_token` and
    /// `install_event_id` when it did: Omni's provider reports that token as wiped, and the
    /// machine installed once Omni counts an install after it.
    pub wiped: Option<String>,
    pub wiped_token: String,
    pub wipe_install_event: u64,
    /// Omni's `power_off_request_id` handed to the model, with Omni's `wipe_id` then: the
    /// request holds the machine off until Omni withdraws it or wipes the machine.
    pub power_off: Option<(String, String)>,
}

impl Seen {
    /// Picks up after a restart from the status Omni kept (`before`) and the store: what
    /// the store already holds of Omni's wishes was reported before.
    pub fn resume(before: &InfraMachineStatusSpec, m: &Machine, want: &InfraMachineSpec) -> Seen {
        let request = &want.power_off_request_id;
        Seen {
            reported_reboot: before.last_reboot_id.clone(),
            wiped: m
                .wiped
                .clone()
                .filter(|_| !before.wiped_node_unique_token.is_empty()),
            wiped_token: before.wiped_node_unique_token.clone(),
            wipe_install_event: if before.installed {
                0
            } else {
                want.install_event_id
            },
            power_off: (m.power_off_request_id.as_ref() == Some(request))
                .then(|| (request.clone(), want.wipe_id.clone())),
            ..Default::default()
        }
    }

    /// Takes note of a wipe the machine has done since the last call.
    fn observe(&mut self, m: &Machine, want: &InfraMachineSpec) {
        if m.wiped.is_some() && m.wiped != self.wiped {
            self.wiped = m.wiped.clone();
            self.wiped_token = want.node_unique_token.clone();
            self.wipe_install_event = want.install_event_id;
        }
    }

    /// Omni's power-off request, while it holds: set, and not outlived by a wipe under a
    /// new id (Omni's provider forgets a request at the next deallocation the same way).
    fn power_off_request<'a>(&self, want: &'a InfraMachineSpec) -> Option<&'a String> {
        let request = &want.power_off_request_id;
        let outlived = self
            .power_off
            .as_ref()
            .is_some_and(|(id, wipe)| id == request && *wipe != want.wipe_id);
        (!request.is_empty() && !outlived).then_some(request)
    }
}

fn acceptance(v: i32) -> Result<Acceptance, String> {
    match v {
        0 => Ok(Acceptance::Pending),
        1 => Ok(Acceptance::Accepted),
        2 => Ok(Acceptance::Rejected),
        other => Err(format!("acceptance_status {other}: unknown")),
    }
}

fn preferred_power(v: i32) -> Result<PreferredPower, String> {
    match v {
        0 => Ok(PreferredPower::Off),
        1 => Ok(PreferredPower::On),
        other => Err(format!("preferred_power_state {other}: unknown")),
    }
}

/// The allocation Omni asks for, if any. The provider makes its Image Factory schematic
/// from the kernel arguments and extensions (`crate::factory`).
fn allocation(want: &InfraMachineSpec) -> Option<Allocation> {
    (!want.cluster_talos_version.is_empty()).then(|| Allocation {
        talos_version: want.cluster_talos_version.clone(),
        schematic: None,
        kernel_args: want.extra_kernel_args.clone(),
        extensions: want.extensions.clone(),
    })
}

/// The next change that brings `m` toward `want`, in the order the lifecycle needs them
/// (acceptance before allocation, allocation before a wipe under Omni's id, that before
/// power), or `None` when it is there.
pub fn next_change(
    m: &Machine,
    want: &InfraMachineSpec,
    seen: &mut Seen,
) -> Result<Option<Change>, String> {
    let accept = acceptance(want.acceptance_status)?;
    let power = preferred_power(want.preferred_power_state)?;
    let wanted = allocation(want);
    seen.observe(m, want);
    let off_request = seen.power_off_request(want);
    let power = if off_request.is_some() {
        PreferredPower::Off
    } else {
        power
    };
    let change = if accept != m.acceptance && accept != Acceptance::Pending {
        Some(match accept {
            Acceptance::Rejected => Change::Reject,
            _ => Change::Accept,
        })
    } else if want.cordoned != m.cordoned {
        Some(if want.cordoned {
            Change::Cordon
        } else {
            Change::Uncordon
        })
    } else if m.acceptance != Acceptance::Accepted {
        None
    } else if wanted.is_some() && wanted != m.allocation {
        wanted.map(Change::Allocate)
    } else if wanted.is_none() && m.allocation.is_some() {
        Some(Change::Deallocate)
    } else if new_wipe(m, want) {
        Some(Change::Wipe {
            id: want.wipe_id.clone(),
        })
    } else if off_request.is_some() && m.power_off_request_id.as_ref() != off_request {
        Some(Change::PowerOff {
            id: off_request.cloned(),
        })
    } else if want.power_off_request_id.is_empty() && m.power_off_request_id.is_some() {
        Some(Change::PowerOff { id: None })
    } else if power != m.preferred_power {
        Some(Change::Power { state: power })
    } else if !want.requested_reboot_id.is_empty()
        && want.requested_reboot_id != seen.reported_reboot
        && seen.reboot.as_ref().map(|r| &r.0) != Some(&want.requested_reboot_id)
    {
        Some(Change::Reboot)
    } else {
        None
    };
    Ok(change)
}

/// Omni asks for a wipe under an id the machine has neither pending nor done. (Accepting
/// and releasing wipe under the model's own id first; Omni's id then replaces it.)
fn new_wipe(m: &Machine, want: &InfraMachineSpec) -> bool {
    let id = Some(want.wipe_id.as_str());
    !want.wipe_id.is_empty() && m.wipe_id.as_deref() != id && m.wiped.as_deref() != id
}

/// After `change`, made by [`next_change`] for `want`, was applied and gave the machine
/// `m`: links Omni's request ids to the model's.
pub fn applied(seen: &mut Seen, want: &InfraMachineSpec, change: &Change, m: &Machine) {
    match change {
        Change::Reboot => {
            if let Some(model) = &m.requested_reboot_id {
                seen.reboot = Some((want.requested_reboot_id.clone(), model.clone()));
            }
        }
        Change::PowerOff { id: Some(id) } => {
            seen.power_off = Some((id.clone(), want.wipe_id.clone()));
        }
        _ => {}
    }
}

/// The status Omni reads, as Omni's own bare-metal provider reports it: power as
/// observed; ready to use once accepted with a BMC and no wipe due; installed when Omni
/// counted an install (`install_event_id`) since the last wipe; the reboot Omni asked for
/// once the machine has done it (and when: first seen done at `now`); the power-off
/// request the machine has carried out; the node token Omni had when the machine was
/// last wiped.
pub fn status(
    m: &Machine,
    want: &InfraMachineSpec,
    seen: &mut Seen,
    now: i64,
) -> InfraMachineStatusSpec {
    seen.observe(m, want);
    if let Some((omni, model)) = &seen.reboot
        && m.last_reboot_id.as_ref() == Some(model)
        && seen.reported_reboot != *omni
    {
        seen.reported_reboot = omni.clone();
        seen.reboot_at = Some(now);
    }
    let power_state = match m.observed_power {
        ObservedPower::Unknown => 0,
        ObservedPower::Off => 1,
        ObservedPower::On => 2,
    };
    InfraMachineStatusSpec {
        power_state,
        ready_to_use: m.acceptance == Acceptance::Accepted
            && m.bmc_revision.is_some()
            && !m.wipe_due(),
        last_reboot_id: seen.reported_reboot.clone(),
        last_reboot_timestamp: seen
            .reboot_at
            .map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
        installed: want.install_event_id > seen.wipe_install_event,
        wiped_node_unique_token: seen.wiped_token.clone(),
        last_power_off_id: m.last_power_off_id.clone().unwrap_or_default(),
    }
}

/// Omni's BMC configuration as the provider's. Only IPMI: Omni's `api` address is the
/// agent's, which the appliance does not use.
pub fn bmc_change(spec: &BmcConfigSpec) -> Result<Change, String> {
    let ipmi = spec
        .config
        .as_ref()
        .and_then(|c| c.ipmi.as_ref())
        .ok_or("BMCConfig without IPMI settings")?;
    let ip: Ipv4Addr = ipmi
        .address
        .parse()
        .map_err(|_| format!("BMCConfig IPMI address `{}`: expected IPv4", ipmi.address))?;
    let port = match ipmi.port {
        0 => 623,
        p => u16::try_from(p).map_err(|_| format!("BMCConfig IPMI port {p}: out of range"))?,
    };
    Ok(Change::Bmc(BmcConfig {
        endpoint: uplink::BmcEndpoint::Ipmi {
            ip: uplink::Ipv4(ip.octets()),
            port,
        },
        user: ipmi.username.clone(),
        password: ipmi.password.clone(),
    }))
}

#[cfg(test)]
mod tests;
