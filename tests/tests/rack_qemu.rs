//! Issue 7's lifecycle against the stand-in Omni with a real machine in the simulated rack
//! (`host-sim rack --omni --tap --external`): a QEMU VM (SeaBIOS + iPXE ROM) behind
//! OpenIPMI's ipmi_sim, on a bridge the rack's segment is bridged to, goes through Omni's
//! lifecycle beside simulated machines. The stand-in Omni drives the provider's adapter, the
//! provider drives the VM's power through the appliance's IPMI client and ipmi_sim, and the
//! VM PXE-boots from the appliance each time: the agent (the appliance's kernel and initrd,
//! whose /init prints the marker and powers off) when found, wiped after acceptance and after
//! release; the Image Factory installer (a chain the VM cannot follow: no DNS, no way out);
//! the disk (no boot offer) on Omni's reboot. Checked on the VM's serial console (appended
//! over its power-ons), ipmi_sim's chassis log and the appliance's DHCP decisions.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::boot::{self, MARKER};
use e2e::ipmi_sim::{self, IpmiSim, PASSWORD};
use e2e::proc::Child;
use e2e::qemu::{Firmware, Vm};
use e2e::wait::LogFile;
use e2e::{APPLIANCE_TAP, Rack, Workdir, host_sim, require_root};

const BMC_IP: &str = "10.77.0.4";
const MAC: &str = "52:54:00:77:0a:01";
const UUID: &str = "33333333-4444-4555-8666-0000b3c00a01";
/// Simulated machines beside the VM.
const SIMULATED: &str = "3";
/// Kept on at least this long after a power-on: the VM's agent boot under TCG on shared
/// cores reaches its marker well within it.
const MIN_ON_SECS: &str = "60";
/// The rack up (enrolled, tunnel open) before the VM is switched on.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The whole run: five VM boots under TCG, three of them kept on for `MIN_ON_SECS`.
const RUN_TIMEOUT: Duration = Duration::from_secs(720);

/// `qemu`'s command with its serial console appended to instead of truncated at every power-on
/// (ipmi_sim's chassis script starts QEMU anew each time).
fn appending_serial(qemu: &Command) -> Command {
    let mut cmd = Command::new(qemu.get_program());
    let mut args = qemu.get_args().map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("-serial", Some(file)) => {
                let path = file.strip_prefix("file:").expect("a serial file");
                cmd.arg("-chardev")
                    .arg(format!("file,id=ser0,path={path},append=on"))
                    .args(["-serial", "chardev:ser0"]);
            }
            (_, next) => {
                cmd.arg(&a);
                cmd.args(next);
            }
        }
    }
    cmd
}

#[test]
fn a_qemu_vm_goes_through_omnis_lifecycle_with_the_simulated_rack() {
    if !require_root() || !ipmi_sim::available() {
        return;
    }
    let test = "rack-qemu";
    let fx = boot::fixture();
    let _vm_lock = boot::vm_lock();
    let wd = Workdir::new(test);
    let boot_dir = wd.dir("boot");
    fx.install(&boot_dir);
    let rack = Rack::new(test);

    rack.add_tap("vm0");
    let qemu = Vm::command(&rack, &wd, "vm", "vm0", Firmware::BiosIpxe, MAC, UUID);
    let qemu = appending_serial(&qemu);
    let chassis = wd.dir("chassis");
    let (control, _vm) = ipmi_sim::vm_chassis(&chassis, &qemu);
    let bmc_ns = rack.host("bmc", None, &[&format!("{BMC_IP}/24")]);
    let sim = IpmiSim::start_in(&bmc_ns, BMC_IP, wd.path(), 623, Some(&control));

    let started = Instant::now();
    let external = format!("{MAC}@{BMC_IP}");
    let log = wd.file("rack.log");
    let mut cmd = rack.ns().command(host_sim().to_str().expect("utf-8 path"));
    cmd.args(["rack", "--omni", "--machines", SIMULATED, "--seed", "5"])
        .args(["--kernel-kib", "128", "--min-on-secs", MIN_ON_SECS])
        .args(["--tap", APPLIANCE_TAP, "--external", &external])
        .args(["--bmc-password", PASSWORD, "--verbose"])
        .arg("--boot-dir")
        .arg(&boot_dir);
    let mut child = Child::spawn("rack", &mut cmd, &log);
    LogFile::new(&log)
        .wait_for(START_TIMEOUT, |l| {
            l.contains("tunnel: appliance 1 connected")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    // Switched on by hand, from the network: it shows up as a pending machine.
    assert!(sim.ipmitool(&["chassis", "bootdev", "pxe"]).success());
    assert!(sim.ipmitool(&["chassis", "power", "on"]).success());
    let status = child.wait_exit(RUN_TIMEOUT);
    let took = started.elapsed();

    let text = fs::read_to_string(&log).unwrap_or_default();
    let events = fs::read_to_string(chassis.join("events.log")).unwrap_or_default();
    let serial = fs::read_to_string(wd.file("vm-serial.txt")).unwrap_or_default();
    let acks = |what: &str| {
        (text.lines())
            .filter(|l| l.starts_with(&format!("dhcp REQUEST mac={MAC}")))
            .filter(|l| l.contains("-> ACK") && l.contains(what))
            .count()
    };
    let (agent, installer, disk) = (
        acks("file=http://10.77.0.1/boot.ipxe"),
        acks("pxe.factory.talos.dev"),
        // The disk: an address, no boot file (iPXE exits to the next boot device).
        acks("-> ACK ip=") - acks("file="),
    );
    let markers = (serial.lines())
        .filter(|l| l.starts_with(MARKER) && l.contains(&format!("uuid={UUID}")))
        .count();
    let pxe_on = events.matches("power on boot=pxe").count();
    eprintln!("{test}: BMC events:\n{events}");
    eprintln!(
        "{test}: {:.0} s; the VM's iPXE got the agent's script {agent} times, the installer {installer}, the disk (no boot file) {disk}; markers on its console {markers}; PXE power-ons {pxe_on}",
        took.as_secs_f64()
    );
    for l in (text.lines()).filter(|l| {
        ["rack:", "provider:", "faults:", "omni:"]
            .iter()
            .any(|p| l.starts_with(p))
    }) {
        eprintln!("{l}");
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "the rack did not get every machine through: {status:?}"
    );
    assert!(text.contains("rack: 4/4 machines through the lifecycle"));
    // Pending, the wipe after acceptance, the wipe after release; the installer once.
    assert!(
        agent >= 3,
        "the VM's iPXE got the agent's script {agent} times"
    );
    assert_eq!(
        installer, 1,
        "the VM's iPXE got the installer {installer} times"
    );
    assert!(disk >= 1, "the VM's iPXE never got the disk's answer");
    // The two wipes ran the agent to its end; the pending boot may be cut by the first.
    assert!(markers >= 2, "{markers} markers:\n{serial}");
    // Found (by hand), the wipe, the installer, Omni's reboot, the wipe after release.
    assert!(pxe_on >= 4, "{events}");
    assert_eq!(sim.ipmitool_power(), "off", "the VM is left off: {events}");
}
