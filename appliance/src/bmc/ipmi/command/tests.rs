use super::*;

#[test]
fn encodings() {
    assert_eq!(Command::chassis_control(PowerAction::SoftOff).data(), &[5]);
    assert_eq!(Command::close_session(0x01020304).data(), &[4, 3, 2, 1]);
    let once_legacy = PxeBoot {
        persistent: false,
        mode: BootMode::Legacy,
    };
    assert_eq!(
        Command::boot_flags_pxe(once_legacy).data(),
        &[5, 0x80, 0x04, 0, 0, 0]
    );
    let always_efi = PxeBoot {
        persistent: true,
        mode: BootMode::Efi,
    };
    assert_eq!(
        Command::boot_flags_pxe(always_efi).data(),
        &[5, 0xE0, 0x04, 0, 0, 0]
    );
    assert_eq!(Command::channel_cipher_suites(65).data(), &[0x0E, 0, 0x81]);
}

#[test]
fn cipher_suite_records() {
    // ipmi_sim's list as ipmitool shows it (0-3 standard), plus an OEM record and a
    // record cut short at the end of the data.
    let recs = [
        0xC0, 0x00, 0x00, 0x40, 0x80, 0xC0, 0x01, 0x01, 0x40, 0x80, 0xC0, 0x03, 0x01, 0x41, 0x81,
        0xC1, 0x30, 0x11, 0x22, 0x33, 0x01, 0xC0, 0x11, 0x03, 0x44, 0x81, 0xC0,
    ];
    let ids: heapless::Vec<u8, 8> = cipher_suite_ids(&recs).collect();
    assert_eq!(ids, [0, 1, 3, 17]);
    for i in 0..recs.len() {
        assert!(cipher_suite_ids(&recs[..i]).count() <= 4);
    }
}

#[test]
fn responses() {
    assert_eq!(power_state(&[0x01, 0, 0x40]), Ok(PowerState::On));
    assert_eq!(power_state(&[0x20, 0, 0]), Ok(PowerState::Off));
    assert_eq!(power_state(&[]), Err(Error::Malformed));
    assert_eq!(supports_v2(&[1, 0x97, 0x04, 0x03, 0, 0, 0, 0]), Ok(true));
    assert_eq!(supports_v2(&[1, 0x17, 0x04, 0x01, 0, 0, 0, 0]), Ok(false));
    let dev = [
        0x23, 0x09, 0x08, 0x9f, 0x51, 0x00, 0x91, 0x12, 0x00, 0x02, 0x0f,
    ];
    let d = DeviceId::parse(&dev).unwrap();
    assert_eq!(
        (d.device_id, d.firmware, d.manufacturer, d.product),
        (0x23, (8, 0x9f), 0x1291, 0x0f02)
    );
    for i in 0..dev.len() {
        assert!(DeviceId::parse(&dev[..i]).is_err());
    }
    assert_eq!(completion_error(0xC1), Error::Unsupported);
    assert_eq!(completion_error(0xCC), Error::Refused(0xCC));
}
