//! Proves the home-made test BMC (`test-bmc`) against the real ipmitool over loopback UDP:
//! cipher suite 17 (and 3 when offered), power control, boot flags, device and session info,
//! refusals (wrong password, user or suite), replayed packets and the bounded session table.
//! Needs no root; skips (passes with a message) when ipmitool is missing.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use e2e::testbmc::{TestBmc, has_line, ipmitool_missing};

const BIN: &str = env!("CARGO_BIN_EXE_test-bmc");

#[test]
fn suite17_power_boot_device_and_session_info() {
    if ipmitool_missing() {
        return;
    }
    let bmc = TestBmc::start(BIN, "suite17", "17");
    assert_eq!(
        bmc.ok(17, "chassis power status").trim(),
        "Chassis Power is off"
    );
    assert_eq!(bmc.state("power"), "off");

    assert_eq!(
        bmc.ok(17, "chassis power on").trim(),
        "Chassis Power Control: Up/On"
    );
    assert_eq!(
        bmc.ok(17, "chassis power status").trim(),
        "Chassis Power is on"
    );
    assert_eq!(
        (bmc.state("power").as_str(), bmc.state("boots").as_str()),
        ("on", "1")
    );
    assert_eq!(bmc.state("last_boot"), "default");

    assert_eq!(
        bmc.ok(17, "chassis power cycle").trim(),
        "Chassis Power Control: Cycle"
    );
    assert_eq!(
        (bmc.state("power").as_str(), bmc.state("boots").as_str()),
        ("on", "2")
    );

    assert_eq!(
        bmc.ok(17, "chassis power off").trim(),
        "Chassis Power Control: Down/Off"
    );
    assert_eq!(
        bmc.ok(17, "chassis power status").trim(),
        "Chassis Power is off"
    );
    assert_eq!(bmc.state("power"), "off");

    // The spec's D5h: no power cycle while the power is off.
    let cycle = bmc.ipmitool(17, "chassis power cycle");
    assert!(!cycle.ok, "power cycle while off should fail");
    assert!(
        cycle.err.contains("not supported in present state"),
        "{}",
        cycle.err
    );
    assert_eq!(bmc.state("power"), "off");

    assert_eq!(
        bmc.ok(17, "chassis bootdev pxe options=efiboot").trim(),
        "Set Boot Device to pxe"
    );
    assert_eq!(bmc.state("boot_device"), "pxe");
    assert_eq!(bmc.state("boot_mode"), "efi");
    assert_eq!(bmc.state("boot_valid"), "yes");
    assert_eq!(bmc.state("boot_persistent"), "no");
    let param = bmc.ok(17, "chassis bootparam get 5");
    has_line(&param, "Boot parameter 5 is valid/unlocked");
    has_line(&param, "Boot parameter data: a004000000");
    has_line(&param, "- Boot Flag Valid");
    has_line(&param, "- Options apply to only next boot");
    has_line(&param, "- BIOS EFI boot");
    has_line(&param, "- Boot Device Selector : Force PXE");

    // Powering up boots from PXE once; the next-boot-only flags are then used up.
    bmc.ok(17, "chassis power on");
    assert_eq!(bmc.state("last_boot"), "pxe/efi");
    assert_eq!(bmc.state("boot_valid"), "no");
    has_line(
        &bmc.ok(17, "chassis bootparam get 5"),
        "Boot parameter data: 2004000000",
    );

    let info = bmc.ok(17, "mc info");
    has_line(&info, "Device ID : 32");
    has_line(&info, "Firmware Revision : 1.02");
    has_line(&info, "IPMI Version : 2.0");
    has_line(&info, "Device Available : yes");
    has_line(&info, "Chassis Device");

    let guid = bmc.ok(17, "mc guid");
    has_line(&guid, "System GUID : 7b5e1711-6c0a-4d4f-9b3e-7e57b3c00017");
    has_line(&guid, "GUID Encoding : IPMI");

    let session = bmc.ok(17, "session info active");
    has_line(&session, "active sessions : 1");
    has_line(&session, "privilege level : ADMINISTRATOR");
    has_line(&session, "session type : IPMIv2/RMCP+");
    has_line(&session, "console ip : 127.0.0.1");

    let log = bmc.log();
    assert!(
        log.contains("active suite=17") && !log.contains("suite=3"),
        "{log}"
    );
    has_line(&log, "cmd chassis-control power-up");
    has_line(&log, "cmd chassis-control power-cycle refused cc=0xd5");
    assert!(
        !log.contains("password"),
        "the log shows the password:\n{log}"
    );
    // Every ipmitool run closed its session.
    assert_eq!(
        log.matches("close-session id=").count(),
        log.matches(" active suite=").count(),
        "{log}"
    );
}

#[test]
fn suite3_when_offered_and_ipmitool_picks_17() {
    if ipmitool_missing() {
        return;
    }
    let bmc = TestBmc::start(BIN, "suite3", "3,17");
    assert_eq!(
        bmc.ok(3, "chassis power status").trim(),
        "Chassis Power is off"
    );
    assert_eq!(
        bmc.ok(3, "chassis power on").trim(),
        "Chassis Power Control: Up/On"
    );
    has_line(
        &bmc.ok(3, "session info active"),
        "privilege level : ADMINISTRATOR",
    );
    assert!(bmc.log().contains("active suite=3"), "{}", bmc.log());

    let ciphers = bmc.ok(17, "channel getciphers ipmi");
    has_line(&ciphers, "3 N/A hmac_sha1 hmac_sha1_96 aes_cbc_128");
    has_line(&ciphers, "17 N/A hmac_sha256 sha256_128 aes_cbc_128");

    // Without -C, ipmitool reads the suites outside a session and takes the best, 17.
    let before = bmc.log().matches("active suite=17").count();
    let run = TestBmc::ipmitool_at(bmc.port, "admin", "password", None, "chassis power status");
    assert!(
        run.ok && run.out.contains("Chassis Power is on"),
        "{}",
        run.err
    );
    has_line(
        &bmc.log(),
        "cmd get-channel-cipher-suites index=0 (no session)",
    );
    assert_eq!(bmc.log().matches("active suite=17").count(), before + 1);
}

#[test]
fn refusals_wrong_password_user_or_suite() {
    if ipmitool_missing() {
        return;
    }
    let bmc = TestBmc::start(BIN, "refusals", "17");
    let wrong_password =
        TestBmc::ipmitool_at(bmc.port, "admin", "wrong", Some(17), "chassis power on");
    assert!(!wrong_password.ok, "a wrong password was accepted");
    let wrong_user =
        TestBmc::ipmitool_at(bmc.port, "root", "password", Some(17), "chassis power on");
    assert!(!wrong_user.ok, "a wrong user was accepted");
    let suite3 = bmc.ipmitool(3, "chassis power on");
    assert!(!suite3.ok, "suite 3 was accepted though not offered");
    has_line(&suite3.err, "invalid authentication algorithm");
    assert_eq!(bmc.state("power"), "off");

    let log = bmc.log();
    has_line(&log, "open-session refused status=0x04");
    has_line(&log, "rakp1 refused");
    has_line(&log, "unknown user name");
    // ipmitool itself finds the wrong password in RAKP 2 and gives up: no session got active.
    assert!(!log.contains(" active suite="), "{log}");
    // The right credentials still work.
    bmc.ok(17, "chassis power on");
    assert_eq!(bmc.state("power"), "on");
}

/// A UDP relay between ipmitool and the BMC that sends every client datagram twice: the BMC
/// must drop each second copy of a session packet as a replay, and ipmitool must not notice.
#[test]
fn replayed_packets_are_dropped() {
    if ipmitool_missing() {
        return;
    }
    let bmc = TestBmc::start(BIN, "replay", "17");
    let relay = UdpSocket::bind("127.0.0.1:0").expect("relay socket");
    relay
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let relay_port = relay.local_addr().expect("addr").port();
    let stop = Arc::new(AtomicBool::new(false));
    let (target, stop2) = (bmc.addr(), stop.clone());
    let worker = thread::spawn(move || {
        let (mut buf, mut client) = ([0u8; 2048], None);
        while !stop2.load(Ordering::Relaxed) {
            let Ok((n, from)) = relay.recv_from(&mut buf) else {
                continue;
            };
            if from == target {
                if let Some(c) = client {
                    let _ = relay.send_to(&buf[..n], c);
                }
            } else {
                client = Some(from);
                let _ = relay.send_to(&buf[..n], target);
                let _ = relay.send_to(&buf[..n], target);
            }
        }
    });
    let run = TestBmc::ipmitool_at(
        relay_port,
        "admin",
        "password",
        Some(17),
        "chassis power on",
    );
    stop.store(true, Ordering::Relaxed);
    worker.join().expect("relay thread");
    assert!(run.ok, "{}\nBMC log:\n{}", run.err, bmc.log());
    let log = bmc.log();
    assert_eq!(
        log.matches("cmd chassis-control power-up").count(),
        1,
        "{log}"
    );
    assert!(
        log.matches("replayed or out of window").count() >= 3,
        "{log}"
    );
    assert_eq!(bmc.state("boots"), "1");
}

/// Open Session Request for suite 17 (§13.17), RMCP + RMCP+ header, session ID 0.
fn open_session_request(console_id: u32) -> Vec<u8> {
    let mut p = vec![
        0x06, 0x00, 0xFF, 0x07, 0x06, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0,
    ];
    p.extend_from_slice(&[0, 0, 0, 0]);
    p.extend_from_slice(&console_id.to_le_bytes());
    p.extend_from_slice(&[
        0, 0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 8, 4, 0, 0, 0, 2, 0, 0, 8, 1, 0, 0, 0,
    ]);
    p
}

/// Status byte of the Open Session Response to `req`.
fn open_status(sock: &UdpSocket, req: &[u8]) -> u8 {
    sock.send(req).expect("send");
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("an Open Session Response");
    assert!(
        n > 17 && buf[5] == 0x11,
        "not an Open Session Response: {:02x?}",
        &buf[..n]
    );
    buf[17]
}

#[test]
fn hostile_input_and_bounded_session_table() {
    if ipmitool_missing() {
        return;
    }
    let bmc = TestBmc::start(BIN, "bounded", "17");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("socket");
    sock.connect(bmc.addr()).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");

    // Garbage, truncations of a valid request, a forged session packet: no reply, no crash.
    let valid = open_session_request(1);
    let mut forged = vec![
        0x06, 0x00, 0xFF, 0x07, 0x06, 0xC0, 1, 2, 3, 4, 1, 0, 0, 0, 32, 0,
    ];
    forged.extend_from_slice(&[0xAB; 32 + 2 + 2 + 16]);
    let mut hostile: Vec<Vec<u8>> = (0..valid.len()).map(|n| valid[..n].to_vec()).collect();
    hostile.extend([
        vec![0xFF; 1500],
        vec![
            0x06, 0x00, 0xFF, 0x07, 0x06, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF,
        ],
        forged,
    ]);
    for h in &hostile {
        sock.send(h).expect("send");
    }
    // The BMC still serves (and the Open Session just above is the only one answered so far).
    assert_eq!(open_status(&sock, &open_session_request(1)), 0x00);
    let mut buf = [0u8; 64];
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    assert!(
        sock.recv(&mut buf).is_err(),
        "a hostile datagram got a reply"
    );
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");

    // 32 sessions in all; the 33rd gets "insufficient resources" (01h).
    for id in 2..=32 {
        assert_eq!(
            open_status(&sock, &open_session_request(id)),
            0x00,
            "session {id}"
        );
    }
    assert_eq!(open_status(&sock, &open_session_request(33)), 0x01);
    let full = bmc.ipmitool(17, "chassis power status");
    assert!(!full.ok, "ipmitool got a session from a full table");
    has_line(&full.err, "insufficient resources");
    has_line(
        &bmc.log(),
        "open-session refused status=0x01 (session table full)",
    );
}
