//! The provider powers a machine through the QEMU board: the uplink firmware on a TAP,
//! enrolled with the provider on the host, drives OpenIPMI's ipmi_sim (file-backed chassis)
//! on the rack bridge over its own embassy-net stack (IPMI RMCP+, port 623). The provider's
//! CLI sets the BMC (credentials) and accepts the machine (a boot target and a power-on with
//! PXE once); Omni's power-off request through the API powers it off. Each step is checked
//! at the BMC (ipmitool and the chassis' call log), at the provider (observed power from the
//! board's `PowerState` events, no command outstanding) and in the firmware's log (each
//! command's result `Done`).

use std::fs;
use std::time::{Duration, Instant};

use e2e::firmware::{self, Board};
use e2e::ipmi_sim::{self, IpmiSim, PASSWORD};
use e2e::power_steps;
use e2e::provider::Provider;
use e2e::wait::poll_until;
use e2e::{Rack, Workdir, require_root};

const BMC_IP: &str = "10.77.0.4";
const MAC: &str = "52:54:00:77:06:01";
/// Key generation and two handshakes in emulated Cortex-M4 code.
const UPLINK: Duration = Duration::from_secs(60);
/// A command and its BMC work (a status read, an override, then the power-on after the
/// manager's 5 s between power operations), in emulated code.
const STEP: Duration = Duration::from_secs(60);

/// Waits for the firmware's result of a `kind` command after line `from`; it must be Done.
/// Prints how long it took since `since` (the first credentials include the stack's ARP).
fn wait_done(board: &Board, from: usize, kind: &str, since: Instant) {
    let want = format!(" {kind} -> ");
    let line = poll_until(&format!("a {kind} result"), STEP, || {
        let lines = board.lines();
        let tail = lines.get(from..).unwrap_or_default();
        Ok(tail
            .iter()
            .find(|l| l.contains("power command id=") && l.contains(&want))
            .cloned())
    })
    .unwrap_or_else(|e| panic!("{e}\n--- firmware log:\n{}", board.lines().join("\n")));
    assert!(line.ends_with("-> Done"), "{line}");
    eprintln!(
        "{line} ({:.1} s after the CLI)",
        since.elapsed().as_secs_f64()
    );
}

fn wait_observed(provider: &Provider, power: &str) {
    power_steps::wait_observed(provider, MAC, power, STEP);
}

#[test]
fn provider_powers_an_ipmi_sim_bmc_through_the_board() {
    if !require_root() || !ipmi_sim::available() {
        return;
    }
    let Some(elf) = firmware::uplink_elf_for_test() else {
        return;
    };
    let wd = Workdir::new("fw-power");
    let rack = Rack::new("fw-power");
    let provider = Provider::start(&rack, &wd);
    let token = provider.token();
    let image = firmware::build_image(&wd, &elf, "10.77.0.100-10.77.0.149", &["--token", &token]);

    let bmc_ns = rack.host("bmc", None, &[&format!("{BMC_IP}/24")]);
    let sim = IpmiSim::start_in(&bmc_ns, BMC_IP, wd.path(), 623, None);
    assert_eq!(sim.ipmitool_power(), "off");

    let mut board = Board::boot_image(&rack, &wd, &image, "fwp0");
    let appliance = board.wait_enrolled_and_connected(UPLINK);

    power_steps::make_known(&rack, &wd, &provider, &appliance, MAC);
    // Power on once managed: otherwise the finished wipe would have the provider power off.
    provider.cli(&["power", MAC, "on"]);

    // The BMC: proven by a status read, which reports the power before the command's result.
    let (mark, since) = (board.lines().len(), Instant::now());
    power_steps::set_bmc(&provider, MAC, BMC_IP);
    wait_done(&board, mark, "BmcCredentials", since);
    wait_observed(&provider, "off");

    // Accepted: the agent boot target, then power on with PXE once.
    let (mark, since) = (board.lines().len(), Instant::now());
    provider.cli(&["accept", MAC]);
    wait_done(&board, mark, "SetBootTarget", since);
    wait_done(&board, mark, "PowerCommand", since);
    assert_eq!(sim.ipmitool_power(), "on");
    wait_observed(&provider, "on");
    let calls = fs::read_to_string(sim.chassis_dir().join("calls.log")).unwrap_or_default();
    let pxe = calls.find("set boot pxe");
    let on = calls.find("set power 1");
    assert!(
        pxe.is_some() && pxe < on,
        "PXE override, then power on:\n{calls}"
    );

    // Omni asks for a power-off (the API's `power_off`; the CLI's `power off` preference
    // waits for the wipe, which needs a machine that boots the agent). The provider then
    // powers it on again for the wipe, at least the manager's 5 s later.
    let (mark, since) = (board.lines().len(), Instant::now());
    provider.change(MAC, r#"{"change":"power_off","id":"off-1"}"#);
    wait_done(&board, mark, "PowerCommand", since);
    assert_eq!(sim.ipmitool_power(), "off");
    wait_observed(&provider, "off");
    let calls = fs::read_to_string(sim.chassis_dir().join("calls.log")).unwrap_or_default();
    assert!(
        calls.contains("set power 0"),
        "power off at the BMC:\n{calls}"
    );
    poll_until("no command outstanding at the provider", STEP, || {
        Ok((provider.appliance_count("outstanding_commands") == 0).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", provider.cli(&["appliances", "--json"])));

    let log = board.lines();
    for l in log.iter().filter(|l| l.contains("power")) {
        eprintln!("{l}");
    }
    let failed: Vec<&String> = (log.iter())
        .filter(|l| l.contains("power command id=") && !l.ends_with("-> Done"))
        .collect();
    assert!(failed.is_empty(), "commands not done: {failed:?}");
    assert!(
        !log.iter().any(|l| l.contains(PASSWORD)),
        "the BMC password is in the firmware's log"
    );
    for l in log.iter().filter(|l| l.contains("high_water")) {
        eprintln!("{l}");
    }
}
