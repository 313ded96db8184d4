//! The firmware for QEMU's mps2-an386 board on a TAP in the rack answers ISC dhclient and
//! serves a built-in file to tftp-hpa: the board's own LAN9118 driver, embassy-net and the
//! appliance's DHCP and TFTP servers, end to end.

use std::fs;
use std::time::Duration;

use e2e::dhclient::Dhclient;
use e2e::firmware::{self, Board};
use e2e::net::ping;
use e2e::{APPLIANCE_IP, LogFile, Rack, Workdir, require_tool};

const BOOT: Duration = Duration::from_secs(20);
const BIND: Duration = Duration::from_secs(30);
const LOG: Duration = Duration::from_secs(5);
const TFTP: Duration = Duration::from_secs(20);

#[test]
fn dhclient_lease_and_tftp_from_the_firmware() {
    let Some(elf) = firmware::elf_for_test() else {
        return;
    };
    let wd = Workdir::new("fw-dhcp");
    let rack = Rack::new("fw-dhcp");
    let mut board = Board::boot(&rack, &wd, &elf, "fw0");
    // Plain -kernel, no config region loaded: the compiled-in config.
    board
        .wait_line("the config line", BOOT, |l| {
            l.contains("config: none in region, compiled-in defaults")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let up = board
        .wait_line("the firmware's start line", BOOT, |l| {
            l.contains("qemu-mps2-an386 up")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(up.contains("ip=10.77.0.1/24"), "{up}");

    let mac = "52:54:00:77:02:01";
    let ns = rack.host("c1", Some(mac), &[]);
    let mut client = Dhclient::new(&ns, &wd, "c1");
    client.start();
    let bound = client.wait_event(0, &["BOUND"], BIND);
    let host = bound
        .ip
        .strip_prefix("10.77.0.")
        .and_then(|h| h.parse::<u8>().ok());
    assert!(
        host.is_some_and(|h| (100..=199).contains(&h)),
        "address {} outside the firmware's pool",
        bound.ip
    );
    assert!(ns.ipv4_addrs("eth0").contains(&bound.ip));

    let offer = format!(
        "dhcp DISCOVER mac={mac} kind=plain -> OFFER ip={}",
        bound.ip
    );
    let ack = format!("dhcp REQUEST mac={mac} kind=plain -> ACK ip={}", bound.ip);
    for want in [&offer, &ack] {
        let line = board
            .wait_line(want, LOG, |l| l.contains(want.as_str()))
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("firmware: {line}");
    }
    // The lease works on the wire: the board answers ARP and ping at its address.
    ping(&ns, APPLIANCE_IP, 5).unwrap_or_else(|e| panic!("{e}"));
    let dhclient_log = LogFile::new(wd.file("c1.log"));
    for line in dhclient_log
        .lines()
        .iter()
        .filter(|l| l.starts_with("DHCP") || l.starts_with("bound to"))
    {
        eprintln!("dhclient: {line}");
    }

    // TFTP from the built-in file (tftp-hpa: RFC 1350, 512-byte blocks).
    require_tool("tftp", "tftp-hpa");
    let got = wd.file("got-hello.txt");
    let g = got.to_str().expect("utf-8 path");
    let args = ["-m", "binary", APPLIANCE_IP, "-c", "get", "hello.txt", g];
    let out = ns
        .run("tftp", &args, TFTP)
        .unwrap_or_else(|e| panic!("tftp get: {e}"));
    assert!(out.success(), "tftp get failed: {out:?}");
    let body = fs::read(&got).unwrap_or_else(|e| panic!("read {}: {e}", got.display()));
    assert_eq!(body, b"hello from qemu-mps2-an386\n");
    let done = board
        .wait_line("tftp DONE", LOG, |l| {
            l.contains("tftp RRQ name=hello.txt") && l.contains("-> DONE bytes=27")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("firmware: {done}");
    client.stop();
}
