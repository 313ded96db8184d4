use uplink::{Mac, Uuid};

use super::*;
use crate::lifecycle::{Settings, apply_change};
use crate::model::ApplianceId;
use crate::omni::proto::{BmcConfig as OmniBmc, Ipmi};

fn machine() -> Machine {
    Machine::new(
        ApplianceId(1),
        Mac([2, 0, 0, 0, 0, 1]),
        Some(Uuid([7; 16])),
        10,
    )
}

/// Applies `next_change` until it says `None` (at most 10 times); returns the changes.
fn converge(m: &mut Machine, want: &InfraMachineSpec, seen: &mut Seen) -> Vec<Change> {
    let mut out = Vec::new();
    for n in 0..10 {
        let Some(c) = next_change(m, want, seen).unwrap() else {
            return out;
        };
        apply_change(m, &c, &format!("r{n}"), &Settings::default()).unwrap();
        if c == Change::Reboot {
            reboot_requested(seen, want, m);
        }
        out.push(c);
    }
    panic!("no convergence: {out:?}");
}

#[test]
fn accept_then_allocate() {
    let mut m = machine();
    let mut seen = Seen::default();
    let mut want = InfraMachineSpec {
        acceptance_status: 1,
        ..Default::default()
    };
    assert_eq!(converge(&mut m, &want, &mut seen), vec![Change::Accept]);
    want.cluster_talos_version = "v1.9.0".into();
    want.preferred_power_state = 1;
    let changes = converge(&mut m, &want, &mut seen);
    assert!(matches!(&changes[..], [Change::Allocate(a)] if a.talos_version == "v1.9.0"));
    assert_eq!(m.preferred_power, PreferredPower::On);
    want.cluster_talos_version.clear();
    want.preferred_power_state = 0;
    assert_eq!(converge(&mut m, &want, &mut seen), vec![Change::Deallocate]);
    assert!(m.wipe_due());
}

#[test]
fn pending_machines_are_left_alone() {
    let mut m = machine();
    let want = InfraMachineSpec {
        cluster_talos_version: "v1.9.0".into(),
        preferred_power_state: 1,
        ..Default::default()
    };
    assert_eq!(next_change(&m, &want, &Seen::default()).unwrap(), None);
    m.cordoned = true;
    assert_eq!(
        next_change(&m, &want, &Seen::default()).unwrap(),
        Some(Change::Uncordon)
    );
}

#[test]
fn a_reboot_is_requested_once_and_reported_when_done() {
    let mut m = machine();
    let mut seen = Seen::default();
    let want = InfraMachineSpec {
        acceptance_status: 1,
        requested_reboot_id: "omni-1".into(),
        ..Default::default()
    };
    assert_eq!(
        converge(&mut m, &want, &mut seen),
        vec![Change::Accept, Change::Reboot]
    );
    assert_eq!(status(&m, &want, &mut seen, 100).last_reboot_id, "");
    m.last_reboot_id = m.requested_reboot_id.clone();
    let s = status(&m, &want, &mut seen, 100);
    assert_eq!(s.last_reboot_id, "omni-1");
    assert_eq!(s.last_reboot_timestamp.map(|t| t.seconds), Some(100));
    let later = status(&m, &want, &mut seen, 200).last_reboot_timestamp;
    assert_eq!(
        later.map(|t| t.seconds),
        Some(100),
        "the time it was first seen done"
    );
    assert_eq!(converge(&mut m, &want, &mut seen), vec![]);
}

#[test]
fn status_fields() {
    let mut m = machine();
    let mut seen = Seen::default();
    let want = InfraMachineSpec {
        node_unique_token: "tok".into(),
        ..Default::default()
    };
    let s = status(&m, &want, &mut seen, 100);
    assert_eq!(
        (s.power_state, s.ready_to_use, s.installed),
        (0, false, false)
    );
    apply_change(&mut m, &Change::Accept, "w1", &Settings::default()).unwrap();
    assert!(
        !status(&m, &want, &mut seen, 100).ready_to_use,
        "wipe due after accept"
    );
    m.wiped = m.wipe_id.clone();
    m.observed_power = ObservedPower::On;
    let s = status(&m, &want, &mut seen, 100);
    assert_eq!((s.power_state, s.ready_to_use), (2, true));
    assert_eq!(s.wiped_node_unique_token, "tok");
}

#[test]
fn bad_wire_values_are_errors() {
    let want = InfraMachineSpec {
        acceptance_status: 9,
        ..Default::default()
    };
    assert!(next_change(&machine(), &want, &Seen::default()).is_err());
    let bmc = |address: &str, port| BmcConfigSpec {
        config: Some(OmniBmc {
            ipmi: Some(Ipmi {
                address: address.into(),
                port,
                username: "u".into(),
                password: "p".into(),
            }),
            api: None,
        }),
    };
    assert!(bmc_change(&bmc("10.0.0.9", 0)).is_ok());
    assert!(bmc_change(&bmc("bmc.example", 623)).is_err());
    assert!(bmc_change(&bmc("10.0.0.9", 70000)).is_err());
    assert!(bmc_change(&BmcConfigSpec::default()).is_err());
}
