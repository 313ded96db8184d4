//! The CLI against a running `provider serve`: listings (human and JSON), machine changes,
//! tokens, revocation, and clear errors with non-zero exits.
mod support;

use std::process::{Child, Command, Output};
use std::time::Duration;

use provider::store::{Store, StoreConfig};
use support::{seen, state_dir};
use uplink::Sequenced;

const BIN: &str = env!("CARGO_BIN_EXE_provider");

/// Kills the service when the test ends, however it ends.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn cli(api: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--api")
        .arg(api)
        .args(args)
        .output()
        .unwrap()
}

fn ok(api: &str, args: &[&str]) -> String {
    let out = cli(api, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn fails(api: &str, args: &[&str]) -> String {
    let out = cli(api, args);
    assert!(!out.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
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
    let api = format!("127.0.0.1:{}", free_port());
    let _service = Service(
        Command::new(BIN)
            .args(["serve", "--state-dir"])
            .arg(&dir)
            .args(["--api", &api, "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut up = false;
    for _ in 0..100 {
        if cli(&api, &["appliances"]).status.success() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(up, "the API came up");

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
