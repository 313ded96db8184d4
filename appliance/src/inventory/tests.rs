use super::*;

fn mac(n: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, n])
}

#[test]
fn override_by_uuid_before_first_boot_applies_at_boot() {
    let mut inv = Inventory::<4>::default();
    let uuid = Uuid([7; 16]);
    inv.set_boot(MachineKey::Uuid(uuid), BootTarget::Local)
        .unwrap();
    assert_eq!(
        inv.observe(10, mac(1), Some(uuid), Some(7)),
        BootTarget::Local
    );
    let m = inv.iter().next().unwrap();
    assert_eq!((m.mac, m.arch, m.first_seen), (Some(mac(1)), Some(7), 10));
    assert_eq!(inv.boot_target(mac(1), None), BootTarget::Local);
}

#[test]
fn full_table_evicts_the_stalest_machine_without_override() {
    let mut inv = Inventory::<2>::default();
    inv.set_boot(MachineKey::Mac(mac(1)), BootTarget::Local)
        .unwrap();
    inv.observe(5, mac(2), None, None);
    inv.observe(6, mac(3), None, None);
    assert!(inv.iter().any(|m| m.mac == Some(mac(1))));
    assert!(inv.iter().any(|m| m.mac == Some(mac(3))));
    assert!(!inv.iter().any(|m| m.mac == Some(mac(2))));
    // All remaining entries with overrides: newcomers are counted, not recorded.
    inv.set_boot(MachineKey::Mac(mac(3)), BootTarget::Local)
        .unwrap();
    assert_eq!(inv.observe(7, mac(4), None, None), BootTarget::Default);
    assert_eq!(inv.dropped(), 1);
    assert!(
        inv.set_boot(MachineKey::Mac(mac(5)), BootTarget::Local)
            .is_err()
    );
}
