//! `host-sim bmc --redfish` against sushy-emulator (fake driver) on loopback: status, on,
//! off, cycle and pxe-once, each checked by reading the emulator's own view with curl;
//! wrong password; HTTPS with the CA file, with the pinned certificate fingerprint, and
//! refused with a wrong fingerprint. sushy applies a Reset 1-11 s after answering it, so
//! the state read right after the command returns shows that the client waited for it.

use std::process::Command;
use std::time::{Duration, Instant};

use e2e::proc::run_timeout;
use e2e::sushy::{self, PASSWORD, Sushy, USER};
use e2e::{Workdir, host_sim, require_root};

/// Runs `host-sim bmc --redfish URL … COMMAND`: (success, stdout, stderr).
fn bmc(s: &Sushy, password: &str, trust: &[&str], command: &str) -> (bool, String, String) {
    let mut cmd = Command::new(host_sim());
    cmd.args([
        "bmc",
        "--redfish",
        &s.url,
        "--user",
        USER,
        "--password",
        password,
    ]);
    cmd.args(trust).args(["--timeout", "60", command]);
    let out = run_timeout(&mut cmd, Duration::from_secs(90)).expect("host-sim bmc");
    (
        out.status.success(),
        out.stdout.trim().to_string(),
        out.stderr.clone(),
    )
}

/// Runs a command that must succeed; its output (`on` or `off`).
fn must(s: &Sushy, command: &str) -> String {
    let (ok, out, err) = bmc(s, PASSWORD, &[], command);
    assert!(ok, "host-sim bmc {command} failed: {out} {err}");
    out
}

fn ready(test: &str) -> Option<Workdir> {
    (require_root() && sushy::available()).then(|| Workdir::new(test))
}

#[test]
fn power_and_pxe_against_the_emulator() {
    let Some(work) = ready("redfish-power") else {
        return;
    };
    let s = Sushy::start(&work, false);
    // The first member (node-1) starts on.
    assert_eq!(s.field("PowerState"), "On");
    assert_eq!(must(&s, "status"), "on");

    for (command, word, state) in [
        ("off", "off", "Off"),
        ("status", "off", "Off"),
        ("on", "on", "On"),
        ("cycle", "on", "On"),
        ("off", "off", "Off"),
        ("cycle", "on", "On"),
    ] {
        let t = Instant::now();
        assert_eq!(must(&s, command), word, "{command}");
        // Read at once: the delayed change must already be applied.
        assert_eq!(s.field("PowerState"), state, "{command}");
        eprintln!("{command}: {word} in {:?}", t.elapsed());
    }

    assert_eq!(s.field("BootSourceOverrideTarget"), "Hdd");
    assert_eq!(must(&s, "pxe-once"), "on");
    assert_eq!(s.field("BootSourceOverrideTarget"), "Pxe");
    // sushy reads Once back as Continuous (see peers.md).
    let enabled = s.field("BootSourceOverrideEnabled");
    assert!(enabled == "Once" || enabled == "Continuous", "{enabled}");
    assert_eq!(s.field("BootSourceOverrideMode"), "UEFI");

    // A reset type the fake driver lacks is answered 501 (the client never sends one: it
    // maps to the types sushy implements; its 501 handling is a unit test with this answer).
    assert_eq!(s.reset_status("Nmi"), 501);
}

#[test]
fn wrong_password_is_a_clear_error() {
    let Some(work) = ready("redfish-auth") else {
        return;
    };
    let s = Sushy::start(&work, false);
    let (ok, out, err) = bmc(&s, "not-the-password", &[], "off");
    assert!(!ok, "{out}");
    assert!(err.contains("refused the credentials"), "{err}");
    assert_eq!(s.field("PowerState"), "On", "nothing changed");
}

#[test]
fn https_with_ca_file_and_pinned_fingerprint() {
    let Some(work) = ready("redfish-tls") else {
        return;
    };
    let s = Sushy::start(&work, true);
    let tls = s.tls.as_ref().expect("TLS files");
    let ca = tls.ca.to_str().expect("UTF-8 path");

    let (ok, out, err) = bmc(&s, PASSWORD, &["--ca", ca], "status");
    assert!(ok, "--ca: {err}");
    assert_eq!(out, "on");
    let (ok, out, err) = bmc(&s, PASSWORD, &["--fingerprint", &tls.fingerprint], "off");
    assert!(ok, "--fingerprint: {err}");
    assert_eq!(out, "off");
    assert_eq!(s.field("PowerState"), "Off");

    // One bit off: refused before any request.
    let mut wrong = tls.fingerprint.clone();
    let flipped = if wrong.starts_with('0') { "1" } else { "0" };
    wrong.replace_range(..1, flipped);
    let (ok, out, err) = bmc(&s, PASSWORD, &["--fingerprint", &wrong], "on");
    assert!(!ok, "{out}");
    assert!(err.contains("certificate"), "{err}");
    assert_eq!(s.field("PowerState"), "Off", "nothing changed");

    // No trust given for HTTPS: refused with a hint.
    let (ok, _, err) = bmc(&s, PASSWORD, &[], "status");
    assert!(!ok);
    assert!(err.contains("--ca"), "{err}");
}
