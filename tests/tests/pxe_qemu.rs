//! QEMU PXE clients against host-sim: SeaBIOS + iPXE ROM (BIOS, user class iPXE) and OVMF's own
//! UEFI PXE (arch 7), in full-DHCP mode and in proxy mode beside dnsmasq. Each must get the boot
//! file for its architecture and then ask 10.77.0.1 for it (seen with tcpdump on the rack bridge:
//! a TCP SYN to :80 from iPXE, a TFTP RRQ for ipxe.efi from OVMF; nothing serves them yet).
//!
//! The VMs run one at a time (two cores, TCG).

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use e2e::dnsmasq::Dnsmasq;
use e2e::qemu::{Firmware, Vm};
use e2e::{APPLIANCE_IP, DhcpLine, HostSim, Rack, Workdir, require_root};

static QEMU: Mutex<()> = Mutex::new(());

fn qemu_lock() -> MutexGuard<'static, ()> {
    QEMU.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long one VM may take from power-on to asking for its boot file.
const VM_TIMEOUT: Duration = Duration::from_secs(90);
const CAPTURE: &str =
    "arp or udp port 67 or udp port 68 or udp port 4011 or udp port 69 or tcp port 80";

struct Expect {
    file: &'static str,
    kind: &'static str,
    arch: &'static str,
}

fn expect(fw: Firmware) -> Expect {
    match fw {
        Firmware::BiosIpxe => Expect {
            file: "http://10.77.0.1/boot.ipxe",
            kind: "ipxe",
            arch: "0",
        },
        Firmware::UefiOvmf => Expect {
            file: "ipxe.efi",
            kind: "pxe",
            arch: "7",
        },
    }
}

fn remaining(start: Instant) -> Duration {
    VM_TIMEOUT.saturating_sub(start.elapsed())
}

fn boot(test: &str, fw: Firmware, proxy: bool, mac: &str, uuid: &str) {
    if !require_root() {
        return;
    }
    let _serial = qemu_lock();
    let wd = Workdir::new(test);
    let rack = Rack::new(test);
    let mut cap = rack.capture(&wd, "tcpdump", CAPTURE);
    let mut site = None;
    let _site_ns;
    let mut hs = if proxy {
        // The site's DHCP server: addresses only, no boot options.
        let ns = rack.host("dnsmasq", None, &["10.77.0.2/24"]);
        site = Some(Dnsmasq::start(
            &ns,
            &wd,
            "dnsmasq",
            &["dhcp-range=10.77.0.150,10.77.0.199,255.255.255.0,10m"],
        ));
        _site_ns = Some(ns);
        HostSim::start(&rack, &wd, "host-sim", &["--proxy-dhcp"])
    } else {
        _site_ns = None;
        HostSim::start(
            &rack,
            &wd,
            "host-sim",
            &["--dhcp-pool", "10.77.0.100-10.77.0.149"],
        )
    };
    let want_mode = if proxy { "mode=proxy" } else { "mode=full" };
    assert!(hs.ready.contains(want_mode), "{}", hs.ready);

    let start = Instant::now();
    let mut vm = Vm::start_with(&rack, &wd, "vm", "vm0", fw, mac, uuid, &[]);
    let want = expect(fw);
    let reply: DhcpLine = hs.wait_dhcp(
        remaining(start),
        &format!("a reply with file={}", want.file),
        |d| {
            d.is_mac(mac)
                && d.file() == Some(want.file)
                && (d.verdict == "ACK" || (proxy && d.verdict == "OFFER"))
        },
    );
    eprintln!(
        "{test}: {:.1} s to {}",
        start.elapsed().as_secs_f64(),
        reply.raw
    );
    assert_eq!(reply.get("kind"), Some(want.kind), "{}", reply.raw);
    assert_eq!(reply.get("arch"), Some(want.arch), "{}", reply.raw);
    let client_ip = if proxy {
        // The address comes from the site's server.
        site.as_mut()
            .expect("site DHCP")
            .wait_ack(mac, remaining(start))
            .unwrap_or_else(|e| panic!("dnsmasq never acked {mac}: {e}"))
    } else {
        let ip = reply.ip().expect("ACK with ip").to_owned();
        let host: Option<u8> = ip.strip_prefix("10.77.0.").and_then(|h| h.parse().ok());
        assert!(
            host.is_some_and(|h| (100..=149).contains(&h)),
            "{}",
            reply.raw
        );
        ip
    };

    // The VM understood the reply: it asks the appliance for the file.
    let from = format!(" IP {client_ip}.");
    let (to, what) = match fw {
        Firmware::BiosIpxe => (format!("> {APPLIANCE_IP}.80: Flags [S]"), String::new()),
        Firmware::UefiOvmf => (
            format!("> {APPLIANCE_IP}.69: "),
            format!("RRQ \"{}\"", want.file),
        ),
    };
    let pkt = cap
        .wait_for(remaining(start), |l| {
            l.contains(&from) && l.contains(&to) && l.contains(&what)
        })
        .unwrap_or_else(|e| {
            panic!(
                "the VM at {client_ip} never asked {APPLIANCE_IP} for {}: {e}",
                want.file
            )
        });
    eprintln!("{test}: {:.1} s to {pkt}", start.elapsed().as_secs_f64());
    vm.child.kill();

    // What host-sim logged about this VM, start to end.
    let mine: Vec<DhcpLine> = hs
        .dhcp_lines()
        .into_iter()
        .filter(|d| d.is_mac(mac))
        .collect();
    if proxy {
        // No address from the proxy: every yiaddr it logged is 0.0.0.0, or the one the site's
        // server gave (echoed on port 4011).
        for d in &mine {
            if let Some(ip) = d.ip() {
                assert!(
                    ip == "0.0.0.0" || ip == client_ip,
                    "proxy handed out an address: {}",
                    d.raw
                );
            }
        }
        let on_4011 = mine.iter().any(|d| d.get("port") == Some("4011"));
        eprintln!(
            "{test}: proxy answer via port {}",
            if on_4011 { 4011 } else { 67 }
        );
    } else {
        let offered = mine
            .iter()
            .any(|d| d.req == "DISCOVER" && d.verdict == "OFFER" && d.file() == Some(want.file));
        assert!(
            offered,
            "no OFFER with file={} for {mac}: {mine:?}",
            want.file
        );
    }
    // Last, since it is the least essential: the machine's SMBIOS UUID is on its lines.
    let uuids: Vec<&str> = mine.iter().filter_map(|d| d.get("uuid")).collect();
    assert!(
        uuids.iter().any(|u| u.eq_ignore_ascii_case(uuid)),
        "SMBIOS uuid {uuid} not in host-sim's lines for {mac} (uuids seen: {uuids:?})"
    );

    hs.stop();
}

#[test]
fn bios_ipxe_full_dhcp_gets_script_url() {
    boot(
        "pxe-bios-full",
        Firmware::BiosIpxe,
        false,
        "52:54:00:aa:01:01",
        "12345678-9abc-4def-8123-0000000b1051",
    );
}

#[test]
fn uefi_ovmf_full_dhcp_gets_ipxe_efi() {
    boot(
        "pxe-uefi-full",
        Firmware::UefiOvmf,
        false,
        "52:54:00:aa:01:02",
        "87654321-fedc-4ba9-8765-00000e0f1052",
    );
}

#[test]
fn bios_ipxe_proxy_dhcp_gets_script_url() {
    boot(
        "pxe-bios-proxy",
        Firmware::BiosIpxe,
        true,
        "52:54:00:aa:02:01",
        "0a1b2c3d-4e5f-4a6b-9c8d-00000b102011",
    );
}

#[test]
fn uefi_ovmf_proxy_dhcp_gets_ipxe_efi() {
    boot(
        "pxe-uefi-proxy",
        Firmware::UefiOvmf,
        true,
        "52:54:00:aa:02:02",
        "d3c2b1a0-5f4e-4b6a-8d9c-00000e0f2022",
    );
}
