//! The CLI against a running `provider serve`: listings (human and JSON), machine changes,
//! tokens, revocation, and clear errors with non-zero exits.
mod support;

use provider::store::{Store, StoreConfig};
use support::service::{Service, fails, ok};
use support::{seen, state_dir};
use uplink::Sequenced;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn cli_against_a_running_service() {
    let dir = state_dir("cli");
    {
        // A rack with one machine, as a tunnel would have left it.
        let store = Store::open(&dir, StoreConfig::default()).unwrap();
        let id = store.register_appliance("fp-a", "rack-a").unwrap();
        let event = Sequenced {
            seq: 1,
            event: seen(1),
        };
        store.apply_events(id, &[event], 1).unwrap();
    }
    let service = Service::start(&dir);
    let api = service.api.clone();

    let table = ok(&api, &["appliances"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("rack-a") && table.contains("offline"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&api, &["appliances", "--json"])).unwrap();
    assert_eq!(json[0]["name"], "rack-a");
    assert_eq!(json[0]["machines"], 1);

    let machine = "01010101-0101-0101-0101-010101010101";
    assert!(ok(&api, &["machines"]).contains("pending"));
    ok(&api, &["accept", "02:00:00:00:00:01"]);
    ok(
        &api,
        &[
            "bmc",
            machine,
            "--ipmi",
            "10.0.0.9",
            "--user",
            "admin",
            "--password",
            "hunter2",
        ],
    );
    ok(&api, &["allocate", machine, "--talos-version", "v1.9.0"]);
    ok(&api, &["power", machine, "on"]);
    ok(&api, &["boot", machine, "disk"]);
    ok(&api, &["reboot", machine]);
    ok(&api, &["cordon", machine]);
    let listing = ok(&api, &["machines", "--json"]);
    assert!(!listing.contains("hunter2"), "no BMC password in listings");
    let json: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let m = &json[0];
    assert_eq!(m["key"], machine);
    assert_eq!(m["acceptance"], "accepted");
    assert_eq!(m["allocation"]["talos_version"], "v1.9.0");
    assert_eq!(m["bmc"], "configured");
    assert_eq!(m["cordoned"], true);
    assert_eq!(m["preferred_power"], "on");
    ok(&api, &["uncordon", machine]);
    ok(&api, &["deallocate", machine]);
    assert!(ok(&api, &["machines"]).contains("accepted,wiping"));

    let token = ok(&api, &["token", "create", "--expires", "30m"]);
    assert!(token.contains("\nrack1:"), "{token}");

    assert!(fails(&api, &["accept", "nosuch"]).contains("not found"));
    assert!(fails(&api, &["power", machine, "sideways"]).contains("on or off"));
    assert!(fails(&api, &["boot", machine, "floppy"]).contains("expected agent"));
    assert!(fails(&api, &["token", "create", "--expires", "3w"]).contains("unit"));
    ok(&api, &["reject", machine]);
    assert!(fails(&api, &["allocate", machine, "--talos-version", "v1"]).contains("not accepted"));

    ok(&api, &["revoke", "rack-a"]);
    assert!(ok(&api, &["appliances"]).contains("revoked"));
    assert!(fails(&api, &["revoke", "rack-z"]).contains("not found"));

    let gone = format!("127.0.0.1:{}", free_port());
    assert!(fails(&gone, &["machines"]).contains("provider API at"));
}
