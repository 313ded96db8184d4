//! `host-sim bmc --ipmi` with cipher suite 17 (HMAC-SHA256, OpenBMC's only default). No real
//! BMC we can run implements 17, so the peer is the home-made `test-bmc`, itself proven
//! against ipmitool in `test_bmc_ipmitool.rs`; ipmitool also reads the result back here.
//! Loopback UDP only; needs no root.

use std::process::Command;
use std::time::Duration;

use e2e::host_sim;
use e2e::proc::{Output, run_timeout};
use e2e::testbmc::{TestBmc, has_line, ipmitool_missing};

const BIN: &str = env!("CARGO_BIN_EXE_test-bmc");

fn bmc(bmc: &TestBmc, password: &str, extra: &[&str], command: &str) -> Output {
    let addr = bmc.addr().to_string();
    let mut cmd = Command::new(host_sim());
    cmd.args([
        "bmc",
        "--ipmi",
        &addr,
        "--user",
        "admin",
        "--password",
        password,
    ])
    .args(extra)
    .arg(command);
    run_timeout(&mut cmd, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"))
}

fn bmc_ok(peer: &TestBmc, extra: &[&str], command: &str) -> String {
    let out = bmc(peer, "password", extra, command);
    assert!(
        out.success(),
        "host-sim bmc {command} failed: {}{}\nBMC log:\n{}",
        out.stdout,
        out.stderr,
        peer.log()
    );
    out.stdout.trim().to_owned()
}

#[test]
fn suite17_only_bmc_power_and_pxe_once() {
    if ipmitool_missing() {
        return;
    }
    let peer = TestBmc::start(BIN, "client17", "17");
    assert_eq!(bmc_ok(&peer, &[], "status"), "off");
    assert_eq!(bmc_ok(&peer, &[], "pxe-once"), "off");
    assert_eq!(peer.state("boot_device"), "pxe");
    assert_eq!(peer.state("boot_mode"), "efi");
    assert_eq!(peer.state("boot_valid"), "yes");
    assert_eq!(peer.state("boot_persistent"), "no");
    assert_eq!(bmc_ok(&peer, &[], "on"), "on");
    // The BMC's firmware took the one-time override at power-up.
    assert_eq!(peer.state("last_boot"), "pxe/efi");
    assert_eq!(
        peer.ok(17, "chassis power status").trim(),
        "Chassis Power is on"
    );
    assert_eq!(bmc_ok(&peer, &[], "cycle"), "on");
    assert_eq!(bmc_ok(&peer, &[], "off"), "off");
    assert_eq!(
        peer.ok(17, "chassis power status").trim(),
        "Chassis Power is off"
    );

    let log = peer.log();
    assert!(!log.contains("suite=3"), "only 17 is offered:\n{log}");
    has_line(&log, "cmd chassis-control power-up");
    has_line(&log, "cmd chassis-control power-cycle");
    // Every session our client opened was closed again.
    let opened = log.matches("open-session id=").count();
    let active = peer.ok(17, "session info active");
    has_line(&active, "active sessions : 1");
    assert!(opened >= 5, "one session per command:\n{log}");
}

#[test]
fn client_prefers_17_over_3() {
    if ipmitool_missing() {
        return;
    }
    let peer = TestBmc::start(BIN, "prefer17", "3,17");
    assert_eq!(bmc_ok(&peer, &[], "status"), "off");
    has_line(&peer.log(), "suite=17");
    assert!(!peer.log().contains("suite=3 "), "{}", peer.log());
    // Insisting on 3 works where the BMC offers it.
    assert_eq!(bmc_ok(&peer, &["--cipher-suite", "3"], "status"), "off");
    has_line(&peer.log(), "suite=3");
}

#[test]
fn suite17_wrong_password_and_forced_missing_suite_fail_clearly() {
    if ipmitool_missing() {
        return;
    }
    let peer = TestBmc::start(BIN, "refuse17", "17");
    let wrong = bmc(&peer, "wrong", &[], "status");
    assert!(!wrong.success());
    assert!(wrong.stderr.contains("credentials"), "{}", wrong.stderr);
    let forced = bmc(&peer, "password", &["--cipher-suite", "3"], "status");
    assert!(!forced.success());
    assert!(forced.stderr.contains("cipher suite"), "{}", forced.stderr);
    // The failed handshakes left no open session behind.
    has_line(&peer.ok(17, "session info active"), "active sessions : 1");
}
