//! A real machine powered through a real BMC: OpenIPMI's ipmi_sim, whose chassis-control
//! program starts and stops a QEMU VM (BIOS with the iPXE ROM) on the rack bridge. The
//! appliance's client (`host-sim bmc`) sets PXE once and powers the machine on; the VM, off
//! until then, boots from the network, gets its kernel from host-sim and prints the marker.
//! The VM's disk-less `-boot c` would never reach the network: the override is what boots it.

use std::fs;
use std::process::Command;
use std::time::Duration;

use e2e::boot::{self, BootServer, DhcpMode, MARKER};
use e2e::ipmi_sim::{self, IpmiSim, PASSWORD, USER};
use e2e::net::Capture;
use e2e::proc::{Output, run_timeout};
use e2e::qemu::{Firmware, Vm};
use e2e::wait::LogFile;
use e2e::{Rack, Workdir, host_sim, require_root};

const MAC: &str = "52:54:00:bb:00:01";
const UUID: &str = "33333333-4444-4555-8666-0000b3c00001";
const PORT: u16 = 16450;
/// Power-on to the marker (TCG on two shared cores).
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

fn bmc(sim: &IpmiSim, command: &str) -> Output {
    let mut cmd = Command::new(host_sim());
    cmd.args([
        "bmc",
        "--ipmi",
        &sim.addr(),
        "--user",
        USER,
        "--password",
        PASSWORD,
    ])
    .args(["--boot-mode", "legacy", command]);
    run_timeout(&mut cmd, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"))
}

fn bmc_ok(sim: &IpmiSim, command: &str) -> String {
    let out = bmc(sim, command);
    assert!(
        out.success(),
        "host-sim bmc {command}: {}{}",
        out.stdout,
        out.stderr
    );
    out.stdout.trim().to_owned()
}

#[test]
fn pxe_once_and_power_on_boots_the_vm_from_the_appliance() {
    if !require_root() || !ipmi_sim::available() {
        return;
    }
    let test = "bmc-vm-boot";
    let fx = boot::fixture();
    let _vm = boot::vm_lock();
    let wd = Workdir::new(test);
    fx.install(&wd.dir("boot"));
    let rack = Rack::new(test);
    // For the record of a failed run: the DHCP and HTTP traffic on the bridge.
    let cap = Capture::start(
        rack.ns(),
        "br0",
        "udp port 67 or tcp port 80",
        &wd.file("tcpdump.txt"),
    );
    let mut srv = BootServer::start(&rack, &wd, DhcpMode::Full, &[], &[]);

    // The VM, started by the chassis script with the boot device it chooses.
    rack.add_tap("vm0");
    let qemu = Vm::command(&rack, &wd, "vm", "vm0", Firmware::BiosIpxe, MAC, UUID);
    let chassis = wd.dir("chassis");
    let (control, _vm) = ipmi_sim::vm_chassis(&chassis, &qemu);
    let sim = IpmiSim::start_with(wd.path(), PORT, Some(&control));

    assert_eq!(bmc_ok(&sim, "status"), "off");
    assert_eq!(bmc_ok(&sim, "pxe-once"), "off");
    let param = sim.ipmitool(&["chassis", "bootparam", "get", "5"]);
    assert!(param.stdout.contains("Force PXE"), "{}", param.stdout);
    assert_eq!(bmc_ok(&sim, "on"), "on");
    assert_eq!(sim.ipmitool_power(), "on");
    let events = fs::read_to_string(chassis.join("events.log")).unwrap_or_default();
    assert!(events.contains("power on boot=pxe"), "{events}");

    // The VM, powered on by the BMC, boots from the appliance.
    let serial = LogFile::new(wd.file("vm-serial.txt"));
    let line = serial
        .wait_for_from(
            0,
            BOOT_TIMEOUT,
            |l: &str| l.contains(MARKER),
            || srv.check_alive(),
        )
        .map(|(_, l)| l)
        .unwrap_or_else(|e| panic!("no marker on the VM's console: {e}"));
    eprintln!("{test}: {}", line.trim());
    assert!(line.contains(&fx.kernel_release), "{line}");
    assert!(line.to_lowercase().contains(UUID), "{line}");
    let dhcp = srv.host_sim().map(|hs| hs.dhcp_lines()).unwrap_or_default();
    assert!(
        dhcp.iter().any(|l| l.is_mac(MAC) && l.file().is_some()),
        "host-sim gave the VM no boot file"
    );
    let log = srv
        .host_sim()
        .map(|hs| fs::read_to_string(hs.log_path()).unwrap_or_default())
        .unwrap_or_default();
    for path in ["/boot.ipxe", "/vmlinuz", "/initrd.img"] {
        assert!(
            log.lines()
                .any(|l| l.starts_with(&format!("http GET {path}"))),
            "host-sim served no {path}:\n{log}"
        );
    }
    drop(cap);

    // The initrd powered the VM off (`-no-reboot`): the BMC now reads it as off.
    let off = (0..60).any(|_| {
        std::thread::sleep(Duration::from_secs(1));
        bmc_ok(&sim, "status") == "off"
    });
    assert!(off, "the BMC still reads the VM as on after it powered off");
    assert_eq!(sim.ipmitool_power(), "off");
}
