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
        applied(seen, want, &c, m);
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
    assert_eq!(next_change(&m, &want, &mut Seen::default()).unwrap(), None);
    m.cordoned = true;
    assert_eq!(
        next_change(&m, &want, &mut Seen::default()).unwrap(),
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
    assert_eq!((s.power_state, s.ready_to_use), (2, false), "no BMC yet");
    assert_eq!(s.wiped_node_unique_token, "tok");
    m.bmc_revision = Some(1);
    assert!(status(&m, &want, &mut seen, 100).ready_to_use);
}

#[test]
fn bad_wire_values_are_errors() {
    let want = InfraMachineSpec {
        acceptance_status: 9,
        ..Default::default()
    };
    assert!(next_change(&machine(), &want, &mut Seen::default()).is_err());
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

/// An accepted, wiped machine with a BMC, allocated as Omni wants it (`want`).
fn allocated(want: &mut InfraMachineSpec, seen: &mut Seen) -> Machine {
    let mut m = machine();
    m.bmc_revision = Some(1);
    want.acceptance_status = 1;
    converge(&mut m, want, seen);
    m.wiped = m.wipe_id.clone();
    want.cluster_talos_version = "v1.9.0".into();
    want.preferred_power_state = 1;
    converge(&mut m, want, seen);
    m
}

#[test]
fn a_new_wipe_id_is_the_wipe_and_the_token_it_had_is_reported() {
    let mut seen = Seen::default();
    let mut want = InfraMachineSpec {
        node_unique_token: "token-1".into(),
        wipe_id: "omni-w1".into(),
        ..Default::default()
    };
    let mut m = allocated(&mut want, &mut seen);
    // Accepting wiped under Omni's id, not the model's own.
    assert_eq!(m.wiped.as_deref(), Some("omni-w1"));
    assert_eq!(
        status(&m, &want, &mut seen, 1).wiped_node_unique_token,
        "token-1"
    );

    // Omni counts the install; Talos now has a token of its own.
    want.install_event_id = 1;
    want.node_unique_token = "token-2".into();
    let s = status(&m, &want, &mut seen, 1);
    assert!(s.installed);
    assert_eq!(s.wiped_node_unique_token, "token-1");

    // Released with a new wipe id: wiped under it, once; the token is Talos's.
    want.cluster_talos_version.clear();
    want.preferred_power_state = 0;
    want.wipe_id = "omni-w2".into();
    let changes = converge(&mut m, &want, &mut seen);
    let wipe = Change::Wipe {
        id: "omni-w2".into(),
    };
    assert_eq!(changes, vec![Change::Deallocate, wipe]);
    assert!(m.wipe_due());
    let s = status(&m, &want, &mut seen, 1);
    assert!(s.installed && !s.ready_to_use, "installed until wiped");
    m.wiped = m.wipe_id.clone();
    let s = status(&m, &want, &mut seen, 1);
    assert_eq!(s.wiped_node_unique_token, "token-2");
    assert!(!s.installed && s.ready_to_use);
    assert_eq!(
        converge(&mut m, &want, &mut seen),
        vec![],
        "not wiped twice"
    );

    // Omni releasing without a new id: the model's own wipe, not the old id again.
    want.cluster_talos_version = "v1.9.0".into();
    converge(&mut m, &want, &mut seen);
    want.cluster_talos_version.clear();
    assert_eq!(converge(&mut m, &want, &mut seen), vec![Change::Deallocate]);
    assert!(m.wipe_due() && m.wipe_id.as_deref() != Some("omni-w2"));
}

#[test]
fn a_power_off_request_holds_the_machine_off_until_withdrawn_or_wiped() {
    let mut seen = Seen::default();
    let mut want = InfraMachineSpec {
        wipe_id: "w1".into(),
        ..Default::default()
    };
    let mut m = allocated(&mut want, &mut seen);
    assert_eq!(m.preferred_power, PreferredPower::On);
    want.power_off_request_id = "off-1".into();
    let changes = converge(&mut m, &want, &mut seen);
    let request = Change::PowerOff {
        id: Some("off-1".into()),
    };
    let off = Change::Power {
        state: PreferredPower::Off,
    };
    assert_eq!(changes, vec![request, off]);
    assert_eq!(status(&m, &want, &mut seen, 1).last_power_off_id, "");
    // The appliance carried it out.
    m.last_power_off_id = m.power_off_request_id.clone();
    assert_eq!(status(&m, &want, &mut seen, 1).last_power_off_id, "off-1");

    // Omni's power on: the request cleared.
    want.power_off_request_id.clear();
    let on = Change::Power {
        state: PreferredPower::On,
    };
    let changes = converge(&mut m, &want, &mut seen);
    assert_eq!(changes, vec![Change::PowerOff { id: None }, on.clone()]);
    assert_eq!(status(&m, &want, &mut seen, 1).last_power_off_id, "off-1");

    // A request outlived by a release and a wipe under a new id no longer holds.
    want.power_off_request_id = "off-2".into();
    converge(&mut m, &want, &mut seen);
    want.wipe_id = "w2".into();
    want.cluster_talos_version.clear();
    want.preferred_power_state = 0;
    converge(&mut m, &want, &mut seen);
    m.wiped = m.wipe_id.clone();
    want.cluster_talos_version = "v1.9.0".into();
    want.preferred_power_state = 1;
    converge(&mut m, &want, &mut seen);
    assert_eq!(m.preferred_power, PreferredPower::On);
}

#[test]
fn resumed_after_a_restart_nothing_is_asked_twice() {
    let mut seen = Seen::default();
    let mut want = InfraMachineSpec {
        wipe_id: "w1".into(),
        node_unique_token: "tok".into(),
        power_off_request_id: "off-1".into(),
        ..Default::default()
    };
    let mut m = allocated(&mut want, &mut seen);
    want.install_event_id = 1;
    m.last_power_off_id = m.power_off_request_id.clone();
    let before = status(&m, &want, &mut seen, 1);
    assert!(before.installed);
    let mut again = Seen::resume(&before, &m, &want);
    assert_eq!(next_change(&m, &want, &mut again).unwrap(), None);
    assert_eq!(status(&m, &want, &mut again, 1), before);
}
