//! Whole boot chains in QEMU, from power-on to the served Linux kernel running the served initrd:
//! the initrd's /init prints `APPLIANCE-BOOT-OK kernel=... uuid=... cmdline=...` on the serial
//! console and powers the VM off.
//!
//! - BIOS: SeaBIOS + QEMU's iPXE ROM (user class iPXE) -> /boot.ipxe -> kernel + initrd.
//! - BIOS undionly: the same ROM, sent (per-machine script) to chain `undionly.kpxe` over TFTP;
//!   undionly.kpxe runs over the ROM's PXE/UNDI API, asks DHCP again and boots /boot.ipxe. (QEMU has
//!   no non-iPXE BIOS PXE ROM, so this is how undionly.kpxe gets onto a BIOS VM.)
//! - UEFI: OVMF's own PXE -> TFTP ipxe.efi (or snponly.efi, per machine) -> /boot.ipxe -> kernel.
//! - UEFI HTTP boot: OVMF with its PXE boot options switched off (fw_cfg), so it goes on to HTTP
//!   boot (arch 16): http://10.77.0.1/ipxe.efi -> /boot.ipxe -> kernel.
//!
//! Full DHCP and proxyDHCP beside an address-only dnsmasq. The server at 10.77.0.1 is host-sim, or
//! the stand-in until host-sim serves files (see `e2e::boot`). A capture on the rack bridge shows
//! the TFTP requests and HTTP requests; VMs run one at a time (a lock file across test binaries).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::boot::{self, BootServer, DhcpMode, Fixture, MARKER, Override, ServerKind};
use e2e::net::Capture;
use e2e::proc::Child;
use e2e::qemu::{Firmware, Vm};
use e2e::wait::LogFile;
use e2e::{APPLIANCE_IP, Rack, Workdir, require_root, require_tool};

/// Power-on to the marker, for one VM (TCG on two cores).
const VM_TIMEOUT: Duration = Duration::from_secs(240);
/// Marker to QEMU's exit (`poweroff -f`).
const POWEROFF: Duration = Duration::from_secs(60);
const DHCP_TFTP: &str = "udp port 67 or udp port 68 or udp port 4011 or udp port 69";
/// TCP segments to :80 whose payload starts with `GET ` or `HEAD`.
const HTTP_REQUESTS: &str = "tcp dst port 80 and (tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420 \
                             or tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x48454144)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chain {
    /// What the server hands out by default.
    Default,
    /// UEFI: `--machine-boot MAC=file:snponly.efi`.
    SnpOnly,
    /// BIOS: the ROM chains undionly.kpxe, which then boots /boot.ipxe.
    Undionly,
    /// UEFI HTTP boot (PXE switched off in OVMF).
    HttpBoot,
}

/// The /boot.ipxe template (host-sim's `--ipxe-script`) that makes the BIOS ROM chain
/// undionly.kpxe over TFTP, while undionly.kpxe (whose network device's driver is "undionly")
/// boots the machine's target. (A per-machine `script:` target would not do: /boot.ipxe renders
/// the machine's target, so it would chain that script again.)
const UNDIONLY_TEMPLATE: &str = "#!ipxe\n\
    iseq ${net0/chip} undionly || chain tftp://{{server}}/undionly.kpxe\n\
    {{target}}\n";

/// The marker line, parsed.
#[derive(Debug)]
struct Marker {
    line: String,
    kernel: String,
    uuid: String,
    cmdline: String,
}

impl Marker {
    fn parse(line: &str) -> Marker {
        let rest = &line[line.find(MARKER).expect("marker")..];
        let get = |key: &str| -> String {
            let k = format!(" {key}=");
            rest.find(&k)
                .map(|i| &rest[i + k.len()..])
                .map(|v| match key {
                    "cmdline" => v.trim_end(),
                    _ => v.split_whitespace().next().unwrap_or(""),
                })
                .unwrap_or("")
                .to_owned()
        };
        Marker {
            line: rest.trim_end().to_owned(),
            kernel: get("kernel"),
            uuid: get("uuid"),
            cmdline: get("cmdline"),
        }
    }

    fn check(&self, fx: &Fixture, uuid: Option<&str>) {
        assert_eq!(self.kernel, fx.kernel_release, "{}", self.line);
        if let Some(u) = uuid {
            assert!(self.uuid.eq_ignore_ascii_case(u), "{}", self.line);
        }
        for w in ["initrd=initrd.img", "console=ttyS0"] {
            assert!(
                self.cmdline.split_whitespace().any(|x| x == w),
                "{w} not on the kernel command line: {}",
                self.line
            );
        }
    }
}

/// Steps of a boot, each waited for in order, with the time since power-on.
struct Steps {
    test: String,
    start: Instant,
    seen: Vec<(String, f64)>,
}

impl Steps {
    fn wait(
        &mut self,
        what: &str,
        log: &LogFile,
        from: usize,
        pred: impl Fn(&str) -> bool,
        alive: impl FnMut() -> Result<(), String>,
    ) -> (usize, String) {
        let left = VM_TIMEOUT.saturating_sub(self.start.elapsed());
        let (i, line) = log
            .wait_for_from(from, left, pred, alive)
            .unwrap_or_else(|e| {
                panic!(
                    "{}: never saw {what} (steps so far: {:?}): {e}",
                    self.test, self.seen
                )
            });
        let t = self.start.elapsed().as_secs_f64();
        eprintln!("{}: {t:6.1} s  {what}", self.test);
        self.seen.push((what.to_owned(), t));
        (i, line)
    }
}

fn rrq(name: &str) -> impl Fn(&str) -> bool {
    let to = format!("> {APPLIANCE_IP}.69: ");
    let what = format!("RRQ \"{name}\"");
    move |l: &str| l.contains(&to) && l.contains(&what)
}

fn http_get(path: &str) -> impl Fn(&str) -> bool {
    let get = format!("GET /{path}");
    move |l: &str| l.contains(&get)
}

fn boot(test: &str, fw: Firmware, mode: DhcpMode, chain: Chain, mac: &str, uuid: &str) {
    if !require_root() {
        return;
    }
    let fx = boot::fixture();
    let _vm = boot::vm_lock();
    let wd = Workdir::new(test);
    fx.install(&wd.dir("boot"));
    let mut overrides = Vec::new();
    let mut hostsim_extra: Vec<String> = Vec::new();
    let mut standin_files: Vec<(&str, String)> = Vec::new();
    match chain {
        Chain::SnpOnly => overrides.push(Override::File {
            mac: mac.into(),
            name: "snponly.efi".into(),
        }),
        Chain::Undionly => {
            let template = boot::write_text(wd.path(), "undionly.ipxe", UNDIONLY_TEMPLATE);
            hostsim_extra.push("--ipxe-script".into());
            hostsim_extra.push(template.to_str().expect("utf-8").into());
            // The stand-in serves boot/boot.ipxe as it is: the template, rendered.
            let rendered = UNDIONLY_TEMPLATE
                .replace("{{server}}", APPLIANCE_IP)
                .replace("{{target}}", &boot::DEFAULT_SCRIPT[1..].join("\n"));
            standin_files.push(("boot.ipxe", rendered));
        }
        Chain::Default | Chain::HttpBoot => {}
    }
    if boot::server_kind() == ServerKind::StandIn
        && mode == DhcpMode::Proxy
        && (fw == Firmware::BiosIpxe || chain == Chain::HttpBoot)
    {
        // dnsmasq's proxy answer on port 4011 has no PXE boot menu (option 43.9), and iPXE
        // ignores such an answer and asks again until it gives up; the stand-in's proxy config
        // has no HTTP boot answer. host-sim's proxy answers are what these tests are for.
        eprintln!("{test}: skipped with the stand-in (dnsmasq's proxyDHCP cannot do this)");
        return;
    }
    let rack = Rack::new(test);
    // One capture (payloads printed, for the HTTP request lines), so its line order is the order
    // of the requests.
    let cap = Capture::start_with(
        rack.ns(),
        "br0",
        &format!("{DHCP_TFTP} or ({HTTP_REQUESTS})"),
        &wd.file("tcpdump.txt"),
        &["-A"],
    );
    let extra_args: Vec<&str> = hostsim_extra.iter().map(String::as_str).collect();
    let mut srv = BootServer::start(&rack, &wd, mode, &overrides, &extra_args);
    if srv.kind == ServerKind::StandIn {
        for (name, text) in &standin_files {
            boot::write_text(srv.boot_dir(), name, text);
        }
    }
    eprintln!("{test}: server {}, {mode:?} DHCP", srv.kind.name());

    let mut extra = vec!["-no-reboot"];
    if chain == Chain::HttpBoot {
        extra.extend([
            "-fw_cfg",
            "name=opt/org.tianocore/IPv4PXESupport,string=no",
            "-fw_cfg",
            "name=opt/org.tianocore/IPv6PXESupport,string=no",
        ]);
    }
    let mut steps = Steps {
        test: test.to_owned(),
        start: Instant::now(),
        seen: Vec::new(),
    };
    let mut vm = Vm::start_with(&rack, &wd, "vm", "vm0", fw, mac, uuid, &extra);
    let serial = LogFile::new(wd.file("vm-serial.txt"));
    let net = cap.log().clone();
    macro_rules! step {
        ($what:expr, $log:expr, $from:expr, $pred:expr) => {
            steps.wait($what, $log, $from, $pred, || {
                vm.child.check_alive()?;
                srv.check_alive()
            })
        };
    }

    // The first file the firmware fetches, then the script, the kernel and the initrd, in order.
    let mut at = 0;
    match (fw, chain) {
        (Firmware::UefiOvmf, Chain::HttpBoot) => {
            at = step!("HTTP boot: GET /ipxe.efi", &net, at, http_get("ipxe.efi")).0;
        }
        (Firmware::UefiOvmf, Chain::SnpOnly) => {
            at = step!("TFTP RRQ snponly.efi", &net, at, rrq("snponly.efi")).0;
        }
        (Firmware::UefiOvmf, _) => {
            at = step!("TFTP RRQ ipxe.efi", &net, at, rrq("ipxe.efi")).0;
        }
        (Firmware::BiosIpxe, Chain::Undionly) => {
            at = step!("ROM: GET /boot.ipxe", &net, at, http_get("boot.ipxe")).0;
            at = step!(
                "ROM: TFTP RRQ undionly.kpxe",
                &net,
                at,
                rrq("undionly.kpxe")
            )
            .0;
        }
        (Firmware::BiosIpxe, _) => {}
    }
    at = step!("GET /boot.ipxe", &net, at, http_get("boot.ipxe")).0;
    at = step!("GET /vmlinuz", &net, at, http_get("vmlinuz")).0;
    step!("GET /initrd.img", &net, at, http_get("initrd.img"));
    let (_, line) = step!("the marker on the serial console", &serial, 0, |l: &str| l
        .contains(MARKER));
    let marker = Marker::parse(&line);
    eprintln!("{test}: {}", marker.line);
    marker.check(fx, Some(uuid));
    let off = vm.child.wait_exit(POWEROFF);
    assert!(
        off.is_some(),
        "the VM did not power off within {POWEROFF:?} of the marker"
    );
    eprintln!(
        "{test}: {:6.1} s  powered off",
        steps.start.elapsed().as_secs_f64()
    );

    if mode == DhcpMode::Proxy {
        // The address came from the site's DHCP server.
        let ip = srv
            .site()
            .expect("site DHCP")
            .wait_ack(mac, Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("dnsmasq never acked {mac}: {e}"));
        eprintln!("{test}: address {ip} from the site's dnsmasq");
    }
    if srv.kind == ServerKind::HostSim {
        let mine: Vec<String> = srv
            .host_sim()
            .expect("host-sim")
            .dhcp_lines()
            .into_iter()
            .filter(|d| d.is_mac(mac) && !d.verdict.is_empty() && d.verdict != "none")
            .map(|d| d.raw)
            .collect();
        assert!(!mine.is_empty(), "host-sim logged no reply to {mac}");
        // And what it served (one VM per test: every transfer is this VM's).
        let served: Vec<String> = srv
            .host_sim()
            .expect("host-sim")
            .log()
            .lines()
            .into_iter()
            .filter(|l| l.starts_with("tftp ") || l.starts_with("http "))
            .collect();
        for l in mine.iter().chain(&served) {
            eprintln!("{test}: {l}");
        }
        if fw == Firmware::UefiOvmf && chain != Chain::HttpBoot {
            // EDK2 asks for windowsize 4 (RFC 7440): the transfer that booted was windowed.
            let file = if chain == Chain::SnpOnly {
                "snponly.efi"
            } else {
                "ipxe.efi"
            };
            let windowed = served.iter().any(|l| {
                l.contains(&format!("name={file} "))
                    && l.contains("DONE")
                    && e2e::hostsim::field(l, "windowsize")
                        .and_then(|w| w.parse::<u16>().ok())
                        .is_some_and(|w| w > 1)
            });
            assert!(
                windowed,
                "no windowed TFTP transfer of {file} to OVMF: {served:?}"
            );
        }
    }
    srv.stop();
}

/// The fixture on its own: QEMU boots the kernel and initrd directly (no network), so a broken
/// fixture shows up here rather than as a network boot timing out.
#[test]
fn fixture_kernel_boots_directly() {
    if !require_root() {
        return;
    }
    require_tool("qemu-system-x86_64", "qemu-system-x86");
    let fx = boot::fixture();
    let _vm = boot::vm_lock();
    let wd = Workdir::new("boot-direct");
    let serial = wd.file("serial.txt");
    let start = Instant::now();
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-accel",
        "tcg",
        "-m",
        "256",
        "-display",
        "none",
        "-nodefaults",
    ])
    .args(["-no-user-config", "-monitor", "none", "-no-reboot"])
    .arg("-serial")
    .arg(format!("file:{}", serial.display()))
    .arg("-kernel")
    .arg(fx.file("vmlinuz"))
    .arg("-initrd")
    .arg(fx.file("initrd.img"))
    .args(["-append", "initrd=initrd.img console=ttyS0"]);
    let mut vm = Child::spawn("qemu", &mut cmd, &wd.file("qemu.log"));
    let (_, line) = LogFile::new(&serial)
        .wait_for_from(0, VM_TIMEOUT, |l| l.contains(MARKER), || vm.check_alive())
        .unwrap_or_else(|e| panic!("no marker: {e}"));
    let marker = Marker::parse(&line);
    eprintln!(
        "boot-direct: {:.1} s: {}",
        start.elapsed().as_secs_f64(),
        marker.line
    );
    marker.check(fx, None);
    assert!(vm.wait_exit(POWEROFF).is_some(), "no poweroff");
    assert!(Path::new(&fx.file("initrd.img")).is_file());
}

#[test]
fn bios_ipxe_rom_full_dhcp_boots_kernel() {
    boot(
        "boot-bios-full",
        Firmware::BiosIpxe,
        DhcpMode::Full,
        Chain::Default,
        "52:54:00:ab:01:01",
        "11111111-2222-4333-8444-0000b0071011",
    );
}

#[test]
fn bios_ipxe_rom_proxy_dhcp_boots_kernel() {
    boot(
        "boot-bios-proxy",
        Firmware::BiosIpxe,
        DhcpMode::Proxy,
        Chain::Default,
        "52:54:00:ab:02:01",
        "11111111-2222-4333-8444-0000b0072011",
    );
}

#[test]
fn bios_undionly_kpxe_full_dhcp_boots_kernel() {
    boot(
        "boot-bios-undi",
        Firmware::BiosIpxe,
        DhcpMode::Full,
        Chain::Undionly,
        "52:54:00:ab:01:03",
        "11111111-2222-4333-8444-0000b0071031",
    );
}

#[test]
fn uefi_pxe_ipxe_efi_full_dhcp_boots_kernel() {
    boot(
        "boot-uefi-full",
        Firmware::UefiOvmf,
        DhcpMode::Full,
        Chain::Default,
        "52:54:00:ab:01:02",
        "22222222-3333-4444-8555-0000e0071021",
    );
}

#[test]
fn uefi_pxe_ipxe_efi_proxy_dhcp_boots_kernel() {
    boot(
        "boot-uefi-proxy",
        Firmware::UefiOvmf,
        DhcpMode::Proxy,
        Chain::Default,
        "52:54:00:ab:02:02",
        "22222222-3333-4444-8555-0000e0072021",
    );
}

#[test]
fn uefi_pxe_snponly_efi_full_dhcp_boots_kernel() {
    boot(
        "boot-uefi-snp",
        Firmware::UefiOvmf,
        DhcpMode::Full,
        Chain::SnpOnly,
        "52:54:00:ab:01:04",
        "22222222-3333-4444-8555-0000e0071041",
    );
}

#[test]
fn uefi_http_boot_full_dhcp_boots_kernel() {
    boot(
        "boot-uefi-http",
        Firmware::UefiOvmf,
        DhcpMode::Full,
        Chain::HttpBoot,
        "52:54:00:ab:01:05",
        "22222222-3333-4444-8555-0000e0071051",
    );
}

#[test]
fn uefi_http_boot_proxy_dhcp_boots_kernel() {
    boot(
        "boot-uefi-http-proxy",
        Firmware::UefiOvmf,
        DhcpMode::Proxy,
        Chain::HttpBoot,
        "52:54:00:ab:02:05",
        "22222222-3333-4444-8555-0000e0072051",
    );
}
