//! An image made by `images build` with its own config (a pool of .150-.160 instead of the
//! firmware's compiled-in .100-.199), booted by `images run-qemu` on a TAP in the rack:
//! dhclient gets an address from the image's pool, so the firmware read its config region.

use std::time::Duration;

use e2e::dhclient::Dhclient;
use e2e::firmware::{self, Board};
use e2e::{Rack, Workdir};

const BOOT: Duration = Duration::from_secs(20);
const BIND: Duration = Duration::from_secs(30);
const LOG: Duration = Duration::from_secs(5);

#[test]
fn dhclient_lease_from_the_image_config() {
    let Some(elf) = firmware::elf_for_test() else {
        return;
    };
    let wd = Workdir::new("fw-image");
    let image = firmware::build_image(
        &wd,
        &elf,
        "10.77.0.150-10.77.0.160",
        &["--lease-time", "600"],
    );

    let rack = Rack::new("fw-image");
    let mut board = Board::boot_image(&rack, &wd, &image, "fwi0");
    let from_region = board
        .wait_line("the config line", BOOT, |l| l.contains("config: "))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        from_region.contains("config: from region addr=0x21000000"),
        "{from_region}"
    );
    board
        .wait_line("the firmware's start line", BOOT, |l| {
            l.contains("qemu-mps2-an386 up ip=10.77.0.1/24")
        })
        .unwrap_or_else(|e| panic!("{e}"));

    let mac = "52:54:00:77:03:01";
    let ns = rack.host("c1", Some(mac), &[]);
    let mut client = Dhclient::new(&ns, &wd, "c1");
    client.start();
    let bound = client.wait_event(0, &["BOUND"], BIND);
    let host = bound
        .ip
        .strip_prefix("10.77.0.")
        .and_then(|h| h.parse::<u8>().ok());
    assert!(
        host.is_some_and(|h| (150..=160).contains(&h)),
        "address {} outside the image's pool 10.77.0.150-160",
        bound.ip
    );
    let ack = format!("dhcp REQUEST mac={mac} kind=plain -> ACK ip={}", bound.ip);
    let line = board
        .wait_line(&ack, LOG, |l| l.contains(ack.as_str()))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("firmware: {from_region}\nfirmware: {line}");
    client.stop();
}
