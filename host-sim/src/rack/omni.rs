//! `rack --omni`: the scenario's steps as Omni's user takes them, through the stand-in Omni
//! the provider's adapter follows, instead of on the provider's store. Each step waits for
//! the machine's own boots and the provider's record as the operator's scenario does, and
//! for the InfraMachineStatus the adapter wrote back. Also the two figures issue 7 asks
//! for: allocation to install request, and Omni calls while idle.

use std::net::Ipv4Addr;
use std::time::Duration;

use omni_standin::Omni;
use provider::model::{BmcConfig, Machine as Record, fmt_uuid};
use uplink::{BmcEndpoint, BootTarget};

use super::machine::{Booted, Machine};
use super::scenario::{Stage, TALOS, Track, booted, is_on, wiped_and_off};

/// The allocation's extensions and kernel arguments: they make the install's schematic.
const EXTENSIONS: &[&str] = &["siderolabs/iscsi-tools"];
const KERNEL_ARGS: &str = "console=ttyS0";

/// The install's schematic (its `POST /schematics` body) and an id for it. No Image Factory
/// is reachable from the rack, so the provider is given the id up front, made as the
/// provider tests' factory stand-in makes ids (SHA-256 of the body); the install URL the
/// machine is served must carry it.
pub fn schematic() -> (String, String) {
    let extensions: Vec<String> = EXTENSIONS.iter().map(|e| e.to_string()).collect();
    let args = KERNEL_ARGS.split_whitespace().map(String::from).collect();
    let yaml = provider::factory::Schematic::new(args, &extensions).yaml();
    let digest = ring::digest::digest(&ring::digest::SHA256, yaml.as_bytes());
    let id = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    (yaml, id)
}
/// InfraMachineStatus.power_state OFF.
const OFF: i32 = 1;

/// What the stand-in asked of one machine.
#[derive(Debug, Default)]
pub struct Requests {
    /// Its InfraMachine id: its UUID, as Omni names machines.
    id: String,
    /// When the allocation was written, and when the machine was then powered on (Unix ms).
    allocated_at: Option<u64>,
    install_power_on: Option<u64>,
    reboot: String,
    power_off: String,
    wipe: String,
}

/// The node token a machine has: the agent's (`n` = 1) when it joins, Talos's after the
/// install.
fn token(id: &str, n: u32) -> String {
    format!("{id}/node-token-{n}")
}

/// Omni's user's next step for `t`'s machine, if the current stage is over: done on the
/// stand-in; the stage it leads to.
pub fn next(
    t: &mut Track,
    m: Option<&Machine>,
    r: &Record,
    bmc: &BmcConfig,
    omni: &Omni,
) -> Result<Option<Stage>, String> {
    let q = &mut t.omni;
    let status = omni.status(&q.id).unwrap_or_default();
    let next = match t.stage {
        Stage::Discovered if booted(m, 1) && r.last_boot.is_some() => {
            q.id = fmt_uuid(r.uuid.ok_or("the machine's UUID is not known")?);
            omni.join(&q.id, &token(&q.id, 1));
            let BmcEndpoint::Ipmi { ip, port } = &bmc.endpoint else {
                return Err("the rack's BMCs are IPMI".into());
            };
            let address = Ipv4Addr::from(ip.0).to_string();
            omni.set_bmc(&q.id, &address, (*port).into(), &bmc.user, &bmc.password);
            omni.accept(&q.id);
            Stage::Accepted
        }
        Stage::Accepted
            if wiped_and_off(m, r, 2)
                && status.ready_to_use
                && status.power_state == OFF
                && status.wiped_node_unique_token == token(&q.id, 1) =>
        {
            q.allocated_at = Some(super::lifecycle::unix_ms());
            omni.allocate(&q.id, TALOS, EXTENSIONS, KERNEL_ARGS);
            Stage::Allocated
        }
        // The installer was served; Talos would install and join, and Omni count it.
        Stage::Allocated
            if booted(m, 3) && r.installed && r.delivered.boot == Some(BootTarget::Disk) =>
        {
            let id = schematic().1;
            let chain = match m {
                Some(m) => {
                    matches!(m.boots.get(2), Some((_, Booted::Chain(url))) if url.contains(&id))
                }
                None => r.last_boot.as_ref().is_some_and(|b| b.contains(&id)),
            };
            if !chain {
                let boots = m.map(|m| &m.boots);
                return Err(format!(
                    "installer boot without schematic {id}: {boots:?}, last {:?}",
                    r.last_boot
                ));
            }
            q.install_power_on = m.map(|m| m.powered_on);
            omni.install_event(&q.id, &token(&q.id, 2));
            Stage::Installed
        }
        Stage::Installed if status.installed && status.ready_to_use => {
            q.reboot = omni.reboot(&q.id);
            Stage::Rebooting
        }
        Stage::Rebooting
            if booted(m, 4)
                && is_on(m, r)
                && status.last_reboot_id == q.reboot
                && status.last_reboot_timestamp.is_some() =>
        {
            q.power_off = omni.power_off(&q.id);
            Stage::PoweredOff
        }
        Stage::PoweredOff
            if booted(m, 4)
                && !is_on(m, r)
                && status.last_power_off_id == q.power_off
                && status.power_state == OFF =>
        {
            q.wipe = omni.deallocate(&q.id);
            Stage::Released
        }
        Stage::Released
            if wiped_and_off(m, r, 5)
                && r.wiped.as_ref() == Some(&q.wipe)
                && status.wiped_node_unique_token == token(&q.id, 2)
                && !status.installed
                && status.ready_to_use
                && status.power_state == OFF =>
        {
            omni.cordon(&q.id, true);
            Stage::Cordoned
        }
        Stage::Cordoned if r.cordoned => Stage::Done,
        _ => return Ok(None),
    };
    Ok(Some(next))
}

/// From the stand-in's allocation write to the machine's power-on, and to its request for
/// the installer (the end of its third boot: the script that chains Image Factory), in
/// milliseconds.
fn install_latency(t: &Track, m: &Machine) -> Option<(u64, u64)> {
    let (at, booted) = m.boots.get(2)?;
    let allocated = t.omni.allocated_at?;
    let chain = matches!(booted, Booted::Chain(url) if url.contains(TALOS));
    let power_on = t.omni.install_power_on?.checked_sub(allocated)?;
    chain.then(|| Some((power_on, at.checked_sub(allocated)?)))?
}

/// Prints the allocation-to-install figures over the machines that got there.
pub fn report_install(tracks: &[Track], machines: &[Machine]) {
    let (mut power_on, mut request): (Vec<u64>, Vec<u64>) = (tracks.iter().zip(machines))
        .filter_map(|(t, m)| install_latency(t, m))
        .unzip();
    power_on.sort_unstable();
    request.sort_unstable();
    let median_max = |v: &[u64]| Some((*v.get(v.len() / 2)?, *v.last()?));
    if let (Some((mid, max)), Some((on_mid, on_max))) =
        (median_max(&request), median_max(&power_on))
    {
        println!(
            "omni: InfraMachine allocation to PXE install request: median {mid} ms, max {max} ms over {} machines (to its power-on: median {on_mid} ms, max {on_max} ms)",
            request.len()
        );
    }
}

/// Omni calls while nothing changes: counted by the stand-in over `window` once the
/// statuses have settled, and scaled to Omni's 30 s heartbeat (the rack beats every
/// `heartbeat` to keep the run short).
pub fn report_idle(omni: &Omni, machines: usize, heartbeat: Duration, window: Duration) {
    let lifecycle = omni.total_calls();
    println!(
        "omni: {lifecycle} calls for the lifecycle of {machines} machines ({:.1} per machine, heartbeats included)",
        lifecycle as f64 / machines as f64
    );
    std::thread::sleep(2 * heartbeat);
    let before = omni.calls();
    std::thread::sleep(window);
    let after = omni.calls();
    let mut by_call = Vec::new();
    let mut total = 0;
    for (key, n) in &after {
        let d = n - before.get(key).copied().unwrap_or(0);
        if d > 0 {
            by_call.push(format!(
                "{} {} {d}",
                key.0.rsplit('/').next().unwrap_or(""),
                key.1
            ));
            total += d;
        }
    }
    let beats = window.as_secs_f64() / heartbeat.as_secs_f64();
    let per_beat = total as f64 / beats;
    let per_hour = per_beat * 3600.0 / 30.0;
    println!(
        "omni: idle {:.0} s ({beats:.0} heartbeats): {total} calls [{}]; {per_beat:.2} per heartbeat",
        window.as_secs_f64(),
        by_call.join(", ")
    );
    println!(
        "omni: idle at Omni's 30 s heartbeat: {per_hour:.0} calls/hour for {machines} machines = {:.1} per machine-hour (Omni's bare-metal provider polls power every 30 s: 120 per machine-hour)",
        per_hour / machines as f64
    );
}
