//! The provider powers a machine through host-sim's power port: a QEMU VM behind OpenIPMI's
//! ipmi_sim (its chassis-control program starts the VM, from the network only after a PXE
//! override), the BMC on the rack bridge where host-sim's own stack reaches it over the TAP.
//! The provider's CLI sets the BMC and accepts the machine; the lifecycle sends the
//! credentials, the boot target and a power-on with PXE once; the VM boots from host-sim.
//! Then the provider powers it off. Each step is checked at the BMC (ipmitool), in the
//! provider's listing (the observed power host-sim reported) and in host-sim's command log.

use std::fs;
use std::time::Duration;

use e2e::boot::{self, MARKER};
use e2e::ipmi_sim::{self, IpmiSim, PASSWORD};
use e2e::power_steps;
use e2e::provider::{Provider, enrolled_id};
use e2e::qemu::{Firmware, Vm};
use e2e::wait::{LogFile, poll_until};
use e2e::{HostSim, Rack, Workdir, require_root};

const POOL: &str = "10.77.0.100-10.77.0.149";
const BMC_IP: &str = "10.77.0.4";
const MAC: &str = "52:54:00:77:04:01";
const UUID: &str = "33333333-4444-4555-8666-0000b3c00401";
/// Enrollment, a tunnel, a command and its BMC work (a status read, an override, then the
/// power-on after the manager's 5 s between power operations).
const STEP: Duration = Duration::from_secs(45);
/// Power-on to the marker (TCG on two shared cores).
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

/// Waits for a host-sim line at index >= `from` that `matches`.
fn wait_line(hs: &mut HostSim, from: usize, what: &str, matches: impl Fn(&str) -> bool) -> String {
    let lf = hs.log().clone();
    lf.wait_for_from(from, STEP, matches, || hs.check_alive())
        .map(|(_, l)| l)
        .unwrap_or_else(|e| panic!("host-sim never logged {what}: {e}\n{}", lf.tail(30)))
}

/// Waits for a line starting with `prefix`.
fn wait_prefix(hs: &mut HostSim, from: usize, prefix: &str) -> String {
    wait_line(hs, from, prefix, |l| l.starts_with(prefix))
}

/// Waits for the result of a `kind` command (not its `-> running`), which must be Done.
fn wait_done(hs: &mut HostSim, from: usize, kind: &str) {
    let result = |l: &str| {
        l.starts_with("uplink command id=")
            && l.contains(&format!(" {kind} -> "))
            && !l.ends_with("running")
    };
    let line = wait_line(hs, from, &format!("a {kind} result"), result);
    assert!(line.ends_with("-> Done"), "{line}");
    eprintln!("{line}");
}

fn wait_observed(provider: &Provider, power: &str) {
    power_steps::wait_observed(provider, MAC, power, STEP);
}

#[test]
fn provider_powers_a_vm_on_with_pxe_through_host_sim() {
    if !require_root() || !ipmi_sim::available() {
        return;
    }
    let test = "uplink-power";
    let fx = boot::fixture();
    let _vm_lock = boot::vm_lock();
    let wd = Workdir::new(test);
    fx.install(&wd.dir("boot"));
    let rack = Rack::new(test);
    let provider = Provider::start(&rack, &wd);
    let token = provider.token();

    // The machine: a VM the BMC's chassis starts. The BMC: a host on the bridge.
    rack.add_tap("vm0");
    let qemu = Vm::command(&rack, &wd, "vm", "vm0", Firmware::BiosIpxe, MAC, UUID);
    let chassis = wd.dir("chassis");
    let (control, _vm) = ipmi_sim::vm_chassis(&chassis, &qemu);
    let bmc_ns = rack.host("bmc", None, &[&format!("{BMC_IP}/24")]);
    let sim = IpmiSim::start_in(&bmc_ns, BMC_IP, wd.path(), 623, Some(&control));
    assert_eq!(sim.ipmitool_power(), "off");

    let mut hs = HostSim::start(
        &rack,
        &wd,
        "host-sim",
        &["--dhcp-pool", POOL, "--enroll-token", &token],
    );
    let appliance = enrolled_id(&wait_prefix(&mut hs, 0, "uplink enrolled appliance="));
    wait_prefix(&mut hs, 0, "uplink connected");

    power_steps::make_known(&rack, &wd, &provider, &appliance, MAC);
    // Power on once managed: otherwise the finished wipe would have the provider power off.
    provider.cli(&["power", MAC, "on"]);

    // The BMC: proven by a status read, which reports the power before the command's result.
    let mark = hs.log().mark();
    power_steps::set_bmc(&provider, MAC, BMC_IP);
    wait_done(&mut hs, mark, "BmcCredentials");
    wait_observed(&provider, "off");

    // Accepted: the agent boot target, then power on with PXE once.
    let mark = hs.log().mark();
    provider.cli(&["accept", MAC]);
    wait_done(&mut hs, mark, "SetBootTarget");
    wait_done(&mut hs, mark, "PowerCommand");
    assert_eq!(sim.ipmitool_power(), "on");
    wait_observed(&provider, "on");
    let events = fs::read_to_string(chassis.join("events.log")).unwrap_or_default();
    assert!(events.contains("power on boot=pxe"), "{events}");

    // The VM boots from host-sim (firmware PXE, iPXE, the default kernel and initrd).
    let serial = LogFile::new(wd.file("vm-serial.txt"));
    let line = serial
        .wait_for_from(0, BOOT_TIMEOUT, |l| l.contains(MARKER), || hs.check_alive())
        .map(|(_, l)| l)
        .unwrap_or_else(|e| panic!("no marker on the VM's console: {e}"));
    eprintln!("{test}: {}", line.trim());
    assert!(line.to_lowercase().contains(UUID), "{line}");

    // The provider powers it off. The VM's /init powers off too: the BMC may read it off
    // before the provider's command (then host-sim reports the change and nothing is sent).
    let mark = hs.log().mark();
    provider.cli(&["power", MAC, "off"]);
    poll_until("the BMC to read off", STEP, || {
        Ok((sim.ipmitool_power() == "off").then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    wait_observed(&provider, "off");

    for l in &hs.log().lines()[mark..] {
        if l.starts_with("power ") || l.starts_with("uplink command") {
            eprintln!("{l}");
        }
    }
    let log = fs::read_to_string(hs.log_path()).unwrap_or_default();
    assert!(
        !log.contains(PASSWORD),
        "the BMC password is in host-sim's log"
    );
    let failed: Vec<&str> = (log.lines())
        .filter(|l| l.starts_with("uplink command") && l.contains("Failed"))
        .collect();
    assert!(failed.is_empty(), "failed commands:\n{}", failed.join("\n"));
    // No more commands reach the BMC while the VM is killed (`_vm`) after host-sim.
    hs.stop();
}
