//! `host-sim bmc --ipmi` against OpenIPMI's ipmi_sim on loopback, each result checked with
//! ipmitool reading the same BMC: status, on, off, cycle, pxe-once; a wrong password and a
//! BMC that never answers fail cleanly and in bounded time. ipmi_sim offers suites 0-3
//! (not 17), so the client picks 3 on its own.

use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::ipmi_sim::{self, IpmiSim, PASSWORD, USER};
use e2e::proc::{Output, run_timeout};
use e2e::{Workdir, host_sim, require_root};

/// Ports of this file's BMCs (one per test, so tests run in parallel).
const PORT_BASE: u16 = 16400;

fn ready() -> bool {
    require_root() && ipmi_sim::available()
}

/// `host-sim bmc --ipmi 127.0.0.1:PORT --user admin --password PASSWORD EXTRA... COMMAND`.
fn bmc(addr: &str, password: &str, extra: &[&str], command: &str) -> Output {
    let mut cmd = Command::new(host_sim());
    cmd.args([
        "bmc",
        "--ipmi",
        addr,
        "--user",
        USER,
        "--password",
        password,
    ])
    .args(extra)
    .arg(command);
    run_timeout(&mut cmd, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `command` and returns what it printed (`on` or `off`), failing on an error.
fn bmc_ok(sim: &IpmiSim, command: &str) -> String {
    let out = bmc(&sim.addr(), PASSWORD, &[], command);
    assert!(
        out.success(),
        "host-sim bmc {command} failed ({}): {}{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out.stdout.trim().to_owned()
}

#[test]
fn status_on_off_cycle_match_ipmitool() {
    if !ready() {
        return;
    }
    let work = Workdir::new("ipmi-power");
    let sim = IpmiSim::start(work.path(), PORT_BASE);
    assert_eq!(bmc_ok(&sim, "status"), "off");
    assert_eq!(sim.ipmitool_power(), "off");
    assert_eq!(bmc_ok(&sim, "on"), "on");
    assert_eq!(sim.ipmitool_power(), "on");
    assert_eq!(bmc_ok(&sim, "status"), "on");
    assert_eq!(bmc_ok(&sim, "off"), "off");
    assert_eq!(sim.ipmitool_power(), "off");
    // Forced suite 3 gives the same.
    let out = bmc(&sim.addr(), PASSWORD, &["--cipher-suite", "3"], "on");
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.trim(), "on");
    assert_eq!(sim.ipmitool_power(), "on");
    // ipmi_sim's cycle is a power-down through the chassis program: the BMC reports what
    // the chassis then says, and so does ipmitool.
    let cycled = bmc_ok(&sim, "cycle");
    assert_eq!(sim.ipmitool_power(), cycled);
    let calls = std::fs::read_to_string(sim.chassis_dir().join("calls.log")).unwrap_or_default();
    assert!(
        calls.contains("set power 1") && calls.contains("set power 0"),
        "chassis calls:\n{calls}"
    );
}

#[test]
fn pxe_once_sets_boot_flags() {
    if !ready() {
        return;
    }
    let work = Workdir::new("ipmi-pxe");
    let sim = IpmiSim::start(work.path(), PORT_BASE + 1);
    let before = sim.ipmitool(&["chassis", "bootparam", "get", "5"]);
    assert!(!before.stdout.contains("Force PXE"), "{}", before.stdout);
    assert_eq!(bmc_ok(&sim, "pxe-once"), "off");
    let after = sim.ipmitool(&["chassis", "bootparam", "get", "5"]);
    assert!(after.success(), "{}{}", after.stdout, after.stderr);
    assert!(
        after.stdout.contains("Force PXE"),
        "boot flags after pxe-once:\n{}",
        after.stdout
    );
    let boot = std::fs::read_to_string(sim.chassis_dir().join("boot")).unwrap_or_default();
    assert_eq!(boot.trim(), "pxe");
}

#[test]
fn wrong_password_fails_clearly() {
    if !ready() {
        return;
    }
    let work = Workdir::new("ipmi-auth");
    let sim = IpmiSim::start(work.path(), PORT_BASE + 2);
    let t = Instant::now();
    let out = bmc(&sim.addr(), "not-the-password", &[], "status");
    assert!(!out.success(), "accepted a wrong password: {}", out.stdout);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("credentials"), "no clear message: {text}");
    assert!(
        !text.contains("not-the-password"),
        "the password was printed: {text}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    // The refused login left no session behind: ipmitool still gets in.
    assert_eq!(sim.ipmitool_power(), "off");
}

#[test]
fn silent_bmc_times_out_in_bounded_time() {
    if !require_root() {
        return;
    }
    // A bound socket that never answers (no ICMP error either).
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    let t = Instant::now();
    let out = bmc(&addr, PASSWORD, &[], "status");
    let took = t.elapsed();
    assert!(
        !out.success(),
        "succeeded against a silent BMC: {}",
        out.stdout
    );
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("did not answer"),
        "no timeout message: {text}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "took {took:?}"
    );
}
