//! A QEMU x86-64 VM PXE-boots from the QEMU board's firmware into the Linux kernel marker
//! (issue 6, "Prove it"): the firmware on a TAP in the rack bridge, the VM (SeaBIOS and
//! QEMU's iPXE ROM) on another. The image is made by `images build` with the boot files in its
//! asset region (`--asset`) and booted by `images run-qemu`.
//!
//! The chain: the ROM's DHCP (user class iPXE) gets `http://10.77.0.1/boot.ipxe` from the
//! firmware; the firmware's HTTP renders the script from the asset region's template, which
//! sends the ROM to `tftp://10.77.0.1/undionly.kpxe` (Debian's, from the asset region, over the
//! firmware's TFTP); undionly.kpxe asks DHCP again, fetches the script again and, now on the
//! `undionly` driver, boots the kernel and initrd. Those do not fit a board, so the template
//! points them at a plain HTTP server on the host side (busybox httpd at 10.77.0.2:8080).

use std::time::{Duration, Instant};

use e2e::boot::{self, MARKER};
use e2e::firmware::{self, Board};
use e2e::proc::Child;
use e2e::qemu::{Firmware, Vm};
use e2e::wait::{LogFile, poll_until};
use e2e::{Rack, Workdir, which};

/// Where the kernel and initrd are served from (a host in the rack).
const FILES_IP: &str = "10.77.0.2";
const FILES_PORT: u16 = 8080;
/// Firmware boot to its start line.
const BOOT: Duration = Duration::from_secs(20);
/// VM power-on to the marker (TCG on two cores; the initrd comes over the bridge).
const VM_TIMEOUT: Duration = Duration::from_secs(240);
const MAC: &str = "52:54:00:77:06:01";
const UUID: &str = "6b1e0d3c-7a4f-4c55-9d0e-000000000601";

/// The region's script template: the ROM chains undionly.kpxe from the board; undionly.kpxe
/// (network driver `undionly`) boots the kernel from the host's server.
fn template() -> String {
    let base = format!("http://{FILES_IP}:{FILES_PORT}");
    format!(
        "#!ipxe\n\
         iseq ${{net0/chip}} undionly || chain tftp://{{{{server}}}}/undionly.kpxe\n\
         kernel {base}/vmlinuz initrd=initrd.img console=ttyS0\n\
         initrd {base}/initrd.img\n\
         boot\n"
    )
}

#[test]
fn vm_pxe_boots_from_the_firmware() {
    let Some(elf) = firmware::elf_for_test() else {
        return;
    };
    if which("qemu-system-x86_64").is_none() {
        eprintln!(
            "skipped: qemu-system-x86_64 not found (install the Debian package qemu-system-x86)"
        );
        return;
    }
    let fx = boot::fixture();
    let _vm = boot::vm_lock();
    let wd = Workdir::new("fw-pxe-vm");

    // The image, its asset region holding undionly.kpxe and the template (`images build
    // --asset`, as an operator makes it).
    let template = boot::write_text(wd.path(), "boot.ipxe", &template());
    let undionly = format!("undionly.kpxe={}", fx.file("undionly.kpxe").display());
    let script = format!("boot.ipxe={}", template.display());
    let image = firmware::build_image(
        &wd,
        &elf,
        "10.77.0.100-10.77.0.199",
        &["--asset", &undionly, "--asset", &script],
    );

    let rack = Rack::new("fw-pxe-vm");
    let mut board = Board::boot_image(&rack, &wd, &image, "fwp0");
    board
        .wait_line("the firmware's start line", BOOT, |l| {
            l.contains("qemu-mps2-an386 up ip=10.77.0.1/24")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    for want in [
        "assets: file undionly.kpxe",
        "http: script template from the region",
    ] {
        let line = board.lines().into_iter().find(|l| l.contains(want));
        assert!(
            line.is_some(),
            "no `{want}` in the firmware log:\n{}",
            board.lines().join("\n")
        );
    }

    // The kernel and initrd, on a host in the rack.
    let files_ns = rack.host("files", None, &[&format!("{FILES_IP}/24")]);
    let dir = wd.dir("files");
    fx.install(&dir);
    let mut httpd_cmd = files_ns.command("/bin/busybox");
    httpd_cmd
        .args(["httpd", "-f", "-vv", "-p", &FILES_PORT.to_string(), "-h"])
        .arg(&dir);
    let mut httpd = Child::spawn("httpd", &mut httpd_cmd, &wd.file("httpd.log"));

    // Everything but the kernel download, for the record (`<workdir>/net.txt`).
    let _cap = rack.capture(&wd, "net", &format!("not host {FILES_IP}"));
    let start = Instant::now();
    let mut vm = Vm::start_with(
        &rack,
        &wd,
        "vm",
        "vm0",
        Firmware::BiosIpxe,
        MAC,
        UUID,
        &["-no-reboot"],
    );
    let serial = LogFile::new(wd.file("vm-serial.txt"));
    // The firmware's side of the chain, in order, with the time since power-on: the n-th
    // line with the text (the second DHCP ACK and script are undionly.kpxe's).
    let ack = format!("dhcp REQUEST mac={MAC}");
    let steps: [(&str, [&str; 2], usize); 6] = [
        ("ROM: DHCP ACK", [&ack, "kind=ipxe arch=0 -> ACK"], 1),
        ("ROM: GET /boot.ipxe", ["http GET /boot.ipxe", "-> 200"], 1),
        (
            "ROM: TFTP undionly.kpxe",
            ["name=undionly.kpxe", "-> START"],
            1,
        ),
        (
            "ROM: TFTP undionly.kpxe done",
            ["name=undionly.kpxe", "-> DONE"],
            1,
        ),
        ("undionly: DHCP ACK", [&ack, "kind=ipxe arch=0 -> ACK"], 2),
        (
            "undionly: GET /boot.ipxe",
            ["http GET /boot.ipxe", "-> 200"],
            2,
        ),
    ];
    for (what, needles, n) in &steps {
        let left = VM_TIMEOUT.saturating_sub(start.elapsed());
        let line = poll_until(what, left, || {
            let lines = board.lines();
            let mut hits = lines
                .iter()
                .filter(|l| needles.iter().all(|w| l.contains(w)));
            if let Some(l) = hits.nth(n - 1) {
                return Ok(Some(l.clone()));
            }
            vm.child.check_alive()?;
            board.child.check_alive().map(|()| None)
        })
        .unwrap_or_else(|e| panic!("{e}\n--- firmware log:\n{}", board.lines().join("\n")));
        eprintln!("{:6.1} s  {what}: {line}", start.elapsed().as_secs_f64());
    }
    let left = VM_TIMEOUT.saturating_sub(start.elapsed());
    let (_, line) = serial
        .wait_for_from(
            0,
            left,
            |l| l.contains(MARKER),
            || {
                vm.child.check_alive()?;
                httpd.check_alive()?;
                board.child.check_alive()
            },
        )
        .unwrap_or_else(|e| {
            panic!(
                "no marker: {e}\n--- firmware log:\n{}\n--- serial:\n{}",
                board.lines().join("\n"),
                serial.tail(30)
            )
        });
    eprintln!(
        "{:6.1} s  marker: {}",
        start.elapsed().as_secs_f64(),
        line.trim_end()
    );
    assert!(
        line.contains(&format!("kernel={}", fx.kernel_release)),
        "{line}"
    );
    assert!(line.contains("initrd=initrd.img"), "{line}");
    let _ = vm.child.wait_exit(Duration::from_secs(60));
    let log = board.lines();
    for l in log
        .iter()
        .filter(|l| l.contains("http ") || l.contains("tftp ") || l.contains("kind=ipxe"))
    {
        eprintln!("firmware: {l}");
    }
}
