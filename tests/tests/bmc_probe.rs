//! `host-sim bmc --bmc HOST`: the protocol is found by probing, Redfish first. Against
//! sushy-emulator over HTTPS the Redfish answer is used; where no Redfish answers, the same
//! command falls back to IPMI (ipmi_sim) and ipmitool agrees with the result.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use e2e::ipmi_sim::{self, IpmiSim};
use e2e::proc::{Output, run_timeout};
use e2e::sushy::{self, Sushy};
use e2e::{Workdir, host_sim, require_root};

/// Both emulators use the same administrator.
const USER: &str = ipmi_sim::USER;
const PASSWORD: &str = ipmi_sim::PASSWORD;
const IPMI_PORT: u16 = 16460;

fn probe(redfish_port: u16, ipmi_port: u16, trust: &[&str], command: &str) -> Output {
    let mut cmd = Command::new(host_sim());
    cmd.args([
        "bmc",
        "--bmc",
        "127.0.0.1",
        "--user",
        USER,
        "--password",
        PASSWORD,
    ])
    .args(["--redfish-port", &redfish_port.to_string()])
    .args(["--ipmi-port", &ipmi_port.to_string()])
    .args(trust)
    .args(["--timeout", "60", command]);
    run_timeout(&mut cmd, Duration::from_secs(90)).unwrap_or_else(|e| panic!("{e}"))
}

/// A loopback TCP port where nothing listens (bound, then released).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn redfish_answers_first_else_ipmi() {
    if !require_root() || !ipmi_sim::available() || !sushy::available() {
        return;
    }
    assert_eq!((sushy::USER, sushy::PASSWORD), (USER, PASSWORD));
    let work = Workdir::new("bmc-probe");
    let sim = IpmiSim::start(work.path(), IPMI_PORT);

    // No Redfish: IPMI takes over, and ipmitool sees the power-on.
    let out = probe(closed_port(), IPMI_PORT, &["--insecure"], "on");
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.trim(), "on");
    assert_eq!(sim.ipmitool_power(), "on");

    // Redfish over HTTPS answers: it is used (the emulator's own view changes), IPMI is not.
    let s = Sushy::start(&work, true);
    let tls = s.tls.as_ref().expect("TLS files");
    let port: u16 = s
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let ca = tls.ca.to_str().expect("UTF-8 path");
    let out = probe(port, IPMI_PORT, &["--ca", ca], "off");
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.trim(), "off");
    assert_eq!(s.field("PowerState"), "Off");
    assert_eq!(sim.ipmitool_power(), "on", "IPMI was not touched");

    // A Redfish BMC that refuses our trust is not silently driven over IPMI instead.
    let wrong = "00".repeat(32);
    let out = probe(port, IPMI_PORT, &["--fingerprint", &wrong], "off");
    assert!(!out.success(), "{}", out.stdout);
    assert_eq!(sim.ipmitool_power(), "on");
}
