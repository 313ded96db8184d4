//! Omni's resources and the provider's model, both ways, as pure functions: an
//! `InfraMachine` becomes the provider's [`Change`]s one at a time ([`next_change`], applied
//! until it says `None`), a `BMCConfig` becomes [`Change::Bmc`], and the provider's
//! [`Machine`] becomes the `InfraMachineStatus` written back ([`status`]).

use std::net::Ipv4Addr;

use crate::model::{
    Acceptance, Allocation, BmcConfig, Change, Machine, ObservedPower, PreferredPower,
};

use super::proto::{BmcConfigSpec, InfraMachineSpec, InfraMachineStatusSpec};

/// What the adapter remembers of one machine between events: Omni's reboot requests carry
/// Omni's ids, the model makes its own, so the pair links a request to its completion.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Omni's `requested_reboot_id` handed to the model, and the model's id for it.
    pub reboot: Option<(String, String)>,
    /// The `last_reboot_id` reported so far (from Omni's status at start, then ours).
    pub reported_reboot: String,
    /// When this adapter saw that reboot done (Unix seconds).
    pub reboot_at: Option<i64>,
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
    })
}

/// The next change that brings `m` toward `want`, in the order the lifecycle needs them
/// (acceptance before allocation, allocation before power), or `None` when it is there.
pub fn next_change(
    m: &Machine,
    want: &InfraMachineSpec,
    seen: &Seen,
) -> Result<Option<Change>, String> {
    let accept = acceptance(want.acceptance_status)?;
    let power = preferred_power(want.preferred_power_state)?;
    let wanted = allocation(want);
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

/// After [`Change::Reboot`] for `want` was applied and gave the machine `m`.
pub fn reboot_requested(seen: &mut Seen, want: &InfraMachineSpec, m: &Machine) {
    if let Some(model) = &m.requested_reboot_id {
        seen.reboot = Some((want.requested_reboot_id.clone(), model.clone()));
    }
}

/// The status Omni reads: power as observed, ready while no wipe is due, installed, the
/// reboot Omni asked for once the machine has done it (and when: first seen done at `now`),
/// and the node token it was wiped for.
pub fn status(
    m: &Machine,
        extensions: want.extensions.clone(),
    want: &InfraMachineSpec,
    seen: &mut Seen,
    now: i64,
) -> InfraMachineStatusSpec {
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
    let wiped = m.wiped.is_some() && !m.wipe_due();
    InfraMachineStatusSpec {
        power_state,
        ready_to_use: m.acceptance == Acceptance::Accepted && !m.wipe_due(),
        last_reboot_id: seen.reported_reboot.clone(),
        last_reboot_timestamp: seen
            .reboot_at
            .map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
        installed: m.installed && m.allocation.is_some(),
        wiped_node_unique_token: if wiped {
            want.node_unique_token.clone()
        } else {
            String::new()
        },
        last_power_off_id: String::new(),
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
