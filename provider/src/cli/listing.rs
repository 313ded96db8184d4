//! The listings' output: JSON for scripts, aligned columns for people.

use serde::Serialize;

use crate::api::{ApplianceView, MachineView};
use crate::model::{Machine, fmt_mac};
use crate::store::now;

/// Prints a listing as JSON or as aligned columns.
pub(super) fn output<T: Serialize>(
    json: bool,
    list: &[T],
    rows: fn(&[T]) -> Vec<Vec<String>>,
) -> Result<(), String> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(list).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    let rows = rows(list);
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
    Ok(())
}

fn ago(t: Option<u64>) -> String {
    let Some(t) = t else { return "-".into() };
    let secs = now().saturating_sub(t);
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s if s < 172_800 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86400),
    }
}

pub(super) fn appliance_rows(list: &[ApplianceView]) -> Vec<Vec<String>> {
    let head = [
        "ID",
        "NAME",
        "FIRMWARE",
        "STATE",
        "LAST SEEN",
        "EVENTS",
        "REFUSED",
        "MACHINES",
    ];
    let mut rows = vec![head.map(String::from).to_vec()];
    for v in list {
        let a = &v.appliance;
        let state = match (a.revoked, v.connected) {
            (true, _) => "revoked",
            (false, true) => "connected",
            (false, false) => "offline",
        };
        rows.push(vec![
            a.id.to_string(),
            a.name.clone(),
            a.firmware.clone().unwrap_or_else(|| "-".into()),
            state.into(),
            ago(a.last_seen),
            v.applied_events.to_string(),
            v.refused_events.to_string(),
            v.machines.to_string(),
        ]);
    }
    rows
}

pub(super) fn machine_rows(list: &[MachineView]) -> Vec<Vec<String>> {
    let head = [
        "MACHINE",
        "RACK",
        "MAC",
        "STATE",
        "ALLOCATION",
        "POWER",
        "BOOT",
        "IP",
        "LAST SEEN",
        "BMC",
    ];
    let mut rows = vec![head.map(String::from).to_vec()];
    for v in list {
        let m = &v.machine;
        rows.push(vec![
            m.key.to_string(),
            m.appliance.to_string(),
            fmt_mac(m.mac),
            state(m),
            m.allocation
                .as_ref()
                .map_or("-".into(), |a| a.talos_version.clone()),
            format!("{:?}/{:?}", m.preferred_power, m.observed_power).to_lowercase(),
            m.delivered.boot.as_ref().map_or("-".into(), boot_name),
            m.lease_ip
                .map_or("-".into(), |ip| std::net::Ipv4Addr::from(ip).to_string()),
            ago(Some(m.last_seen)),
            v.bmc.clone(),
        ]);
    }
    rows
}

fn state(m: &Machine) -> String {
    let mut s = format!("{:?}", m.acceptance).to_lowercase();
    for (flag, name) in [
        (m.installed, "installed"),
        (m.wipe_due(), "wiping"),
        (m.cordoned, "cordoned"),
    ] {
        if flag {
            s.push(',');
            s.push_str(name);
        }
    }
    s
}

fn boot_name(t: &uplink::BootTarget) -> String {
    match t {
        uplink::BootTarget::Agent { wipe_id: Some(_) } => "agent+wipe".into(),
        uplink::BootTarget::Agent { wipe_id: None } => "agent".into(),
        uplink::BootTarget::Install { .. } => "install".into(),
        uplink::BootTarget::Disk => "disk".into(),
        uplink::BootTarget::Script(u) | uplink::BootTarget::Url(u) => u.to_string(),
    }
}
