extern crate std;

use std::string::String;

use super::*;
use crate::bmc::redfish::reset::ResetType;

/// sushy-emulator's ComputerSystem (fake driver), shortened.
pub const SUSHY_SYSTEM: &str = r##"{
    "@odata.type": "#ComputerSystem.v1_1_0.ComputerSystem",
    "Id": "27946b59-9e44-4fa7-8e91-f3527a1ef094",
    "Name": "node-0",
    "UUID": "27946b59-9e44-4fa7-8e91-f3527a1ef094",
    "Status": {"State": "Enabled", "Health": "OK"},
    "PowerState": "Off",
    "Boot": {
        "BootSourceOverrideEnabled": "Continuous",
        "BootSourceOverrideTarget": "Hdd",
        "BootSourceOverrideTarget@Redfish.AllowableValues": ["Pxe", "Cd", "Hdd"],
        "BootSourceOverrideMode": "UEFI",
        "UefiTargetBootSourceOverride": "/0x31/0x33/0x01/0x01"
    },
    "ProcessorSummary": {"Count": 2, "Status": {"State": "Enabled"}},
    "MemorySummary": {"TotalSystemMemoryGiB": 1.5},
    "Links": {"Chassis": [{"@odata.id": "/redfish/v1/Chassis/15693887"}], "ManagedBy": []},
    "Actions": {
        "#ComputerSystem.Reset": {
            "target": "/redfish/v1/Systems/27946b59-9e44-4fa7-8e91-f3527a1ef094/Actions/ComputerSystem.Reset",
            "ResetType@Redfish.AllowableValues": ["On", "ForceOff", "GracefulShutdown",
                "GracefulRestart", "ForceRestart", "Nmi", "ForceOn"]
        }
    },
    "@odata.id": "/redfish/v1/Systems/27946b59-9e44-4fa7-8e91-f3527a1ef094"
}"##;

#[test]
fn computer_system() {
    let s: ComputerSystem = parse(SUSHY_SYSTEM.as_bytes()).unwrap();
    assert_eq!(s.power(), Ok((PowerState::Off, true)));
    let boot = s.boot.as_ref().unwrap();
    assert_eq!(boot.target, Some("Hdd"));
    assert_eq!(boot.enabled, Some("Continuous"));
    assert_eq!(boot.mode, Some("UEFI"));
    let reset = s.reset().unwrap();
    assert!(reset.target.ends_with("/Actions/ComputerSystem.Reset"));
    let allowed = reset.allowed.unwrap();
    assert!(allowed.contains(ResetType::GracefulShutdown));
    assert!(!allowed.contains(ResetType::PowerCycle));
}

#[test]
fn power_states() {
    for (json, want) in [
        (
            r#"{"PowerState":"PoweringOn"}"#,
            Ok((PowerState::On, false)),
        ),
        (r#"{"PowerState":"Paused"}"#, Ok((PowerState::On, true))),
        (r#"{"PowerState":null}"#, Err(Error::Malformed)),
        (r#"{}"#, Err(Error::Malformed)),
        (r#"{"PowerState":"Exploded"}"#, Err(Error::Malformed)),
    ] {
        let s: ComputerSystem = parse(json.as_bytes()).unwrap();
        assert_eq!(s.power(), want, "{json}");
    }
}

#[test]
fn root_and_collection() {
    let root: ServiceRoot = parse(
        br#"{"Systems":{"@odata.id":"/redfish/v1/Systems"},"Oem":{"a":[1,{"b":null}]},
            "SessionService":{"@odata.id":"/redfish/v1/SessionService"},
            "Links":{"Sessions":{"@odata.id":"/redfish/v1/SessionService/Sessions"}}}"#,
    )
    .unwrap();
    assert_eq!(root.systems.unwrap().id, "/redfish/v1/Systems");
    assert_eq!(
        root.links.unwrap().sessions.unwrap().id,
        "/redfish/v1/SessionService/Sessions"
    );
    let mut big = String::from(r#"{"Members@odata.count":40,"Members":["#);
    for i in 0..40 {
        if i > 0 {
            big.push(',');
        }
        big.push_str(&std::format!(
            r#"{{"@odata.id":"/redfish/v1/Systems/n{i}"}}"#
        ));
    }
    big.push_str("]}");
    let c: Collection = parse(big.as_bytes()).unwrap();
    let m = c.members.unwrap();
    assert_eq!(m.find(None), Some("/redfish/v1/Systems/n0"));
    assert_eq!(m.find(Some("n7")), Some("/redfish/v1/Systems/n7"));
    assert_eq!(m.find(Some("n39")), None, "past MAX_MEMBERS");
    assert_eq!(m.find(Some("n")), None);
}

#[test]
fn deep_truncated_and_wrong_types_are_malformed() {
    let deep = String::from("[").repeat(100_000);
    assert_eq!(
        parse::<ComputerSystem>(deep.as_bytes()).err(),
        Some(Error::Malformed)
    );
    let nested = std::format!(r#"{{"Oem":{}{}}}"#, "[".repeat(30), "]".repeat(30));
    assert_eq!(
        parse::<ComputerSystem>(nested.as_bytes()).err(),
        Some(Error::Malformed)
    );
    // Brackets inside strings do not count.
    let quoted = std::format!(
        r#"{{"Name":"{}\"{}","PowerState":"On"}}"#,
        "[".repeat(40),
        "{"
    );
    assert!(parse::<ComputerSystem>(quoted.as_bytes()).is_ok());
    for bad in [
        &br#"{"PowerState":"On""#[..],
        br#"{"PowerState":1}"#,
        br##"{"Actions":{"#ComputerSystem.Reset":{}}}"##,
        b"",
        b"\xff\xfe",
    ] {
        assert_eq!(parse::<ComputerSystem>(bad).err(), Some(Error::Malformed));
    }
}

#[test]
fn bodies() {
    let b = login("ad\"min", "p\\w\u{1}").unwrap();
    assert_eq!(
        core::str::from_utf8(&b).unwrap(),
        r#"{"UserName":"ad\"min","Password":"p\\w\u0001"}"#
    );
    let b = boot_pxe(
        PxeBoot {
            persistent: false,
            mode: BootMode::Efi,
        },
        true,
    )
    .unwrap();
    assert_eq!(
        core::str::from_utf8(&b).unwrap(),
        r#"{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once","BootSourceOverrideMode":"UEFI"}}"#
    );
    let b = boot_pxe(
        PxeBoot {
            persistent: true,
            mode: BootMode::Legacy,
        },
        false,
    )
    .unwrap();
    assert_eq!(
        core::str::from_utf8(&b).unwrap(),
        r#"{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Continuous"}}"#
    );
    assert_eq!(
        &reset(ResetType::ForceRestart).unwrap()[..],
        br#"{"ResetType":"ForceRestart"}"#
    );
}
