//! Boot chain fixtures and boot servers.
//!
//! The fixture ([`fixture`]): Debian's kernel (the package `linux-image-amd64` depends on, fetched
//! with `apt-get download` and unpacked with `dpkg-deb -x`, never installed), a tiny initramfs
//! built here (busybox-static and `tests/fixtures/init`, which prints [`MARKER`] on the serial
//! console and powers off) and Debian's iPXE binaries (package `ipxe`). It is built once into
//! `target/boot-fixture/` and reused by later runs; a lock file makes parallel test binaries wait
//! for one build.
//!
//! The server ([`BootServer`]): host-sim serving DHCP, TFTP and HTTP from its `--boot-dir`, or, until
//! host-sim serves files (or with `E2E_BOOT_SERVER=standin`), a stand-in at the same address:
//! dnsmasq (DHCP with host-sim's boot decisions, TFTP) and `tests/fixtures/standin_http.py`.
//! The tests talk to 10.77.0.1 either way; only the server behind it changes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::dnsmasq::Dnsmasq;
use crate::hostsim::HostSim;
use crate::net::{Netns, Rack};
use crate::proc::{Child, run_timeout};
use crate::wait::poll_until;
use crate::{
    APPLIANCE_CIDR, APPLIANCE_IP, APPLIANCE_MAC, Workdir, host_sim, require_tool, target_dir,
};

/// What the initramfs's /init prints on the console once the served kernel runs it.
pub const MARKER: &str = "APPLIANCE-BOOT-OK";
/// The initramfs's /init.
const INIT: &str = include_str!("../fixtures/init");
/// The stand-in HTTP server.
const STANDIN_HTTP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/standin_http.py");
/// Header deadline of the stand-in HTTP server, seconds.
pub const STANDIN_HEADER_DEADLINE: u64 = 10;

/// The iPXE script host-sim serves at `/boot.ipxe` by default (and the stand-in too).
pub const DEFAULT_SCRIPT: &[&str] = &[
    "#!ipxe",
    "kernel http://10.77.0.1/vmlinuz initrd=initrd.img console=ttyS0",
    "initrd http://10.77.0.1/initrd.img",
    "boot",
];

/// Debian's iPXE binaries the fixture carries (package `ipxe`).
pub const IPXE_FILES: &[&str] = &["undionly.kpxe", "ipxe.efi", "snponly.efi"];
const IPXE_DIR: &str = "/usr/lib/ipxe";
/// Where Debian's busybox-static puts its binary.
const BUSYBOX: &str = "/bin/busybox";

/// An exclusive flock(2) on a file, held until dropped. Works across processes (parallel test
/// binaries) and across threads (each lock opens its own file description).
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Waits (bounded by `timeout`) for the lock on `path`, creating the file if needed.
    pub fn acquire(path: &Path, timeout: Duration) -> FileLock {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open lock {}: {e}", path.display()));
        let what = format!("the lock {}", path.display());
        poll_until(&what, timeout, || {
            // SAFETY: flock(2) on an fd we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            Ok((rc == 0).then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e}"));
        FileLock { _file: file }
    }
}

/// Serialises QEMU VMs across test binaries too (two cores, TCG: one VM at a time).
pub fn vm_lock() -> FileLock {
    let dir = target_dir();
    fs::create_dir_all(&dir).expect("mkdir target");
    FileLock::acquire(&dir.join("e2e-qemu.lock"), Duration::from_secs(30 * 60))
}

/// The built boot fixture: a directory holding `vmlinuz`, `initrd.img` and [`IPXE_FILES`].
#[derive(Debug)]
pub struct Fixture {
    pub dir: PathBuf,
    /// The kernel package, e.g. `linux-image-6.1.0-56-amd64`.
    pub kernel_package: String,
    /// `uname -r` of the kernel, e.g. `6.1.0-56-amd64`.
    pub kernel_release: String,
}

impl Fixture {
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Puts every fixture file into `dir` (hard links; copies across file systems).
    pub fn install(&self, dir: &Path) {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        for name in ["vmlinuz", "initrd.img"].iter().chain(IPXE_FILES) {
            let (from, to) = (self.file(name), dir.join(name));
            let _ = fs::remove_file(&to);
            if fs::hard_link(&from, &to).is_err() {
                fs::copy(&from, &to)
                    .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", from.display(), to.display()));
            }
        }
    }
}

/// The boot fixture, built (or found in the cache) once per process, and once per cache across
/// processes. Panics with an install hint when a tool or package is missing.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build_fixture)
}

fn build_fixture() -> Fixture {
    for f in IPXE_FILES {
        assert!(
            Path::new(IPXE_DIR).join(f).is_file(),
            "{IPXE_DIR}/{f} missing: install the Debian package ipxe"
        );
    }
    assert!(
        Path::new(BUSYBOX).is_file(),
        "{BUSYBOX} missing: install busybox-static"
    );
    let busybox = fs::read(BUSYBOX).expect("read busybox");
    assert!(
        is_static_elf(&busybox),
        "{BUSYBOX} is dynamically linked: install busybox-static (it replaces busybox)"
    );
    let root = target_dir().join("boot-fixture");
    let debs = root.join("debs");
    fs::create_dir_all(&debs).unwrap_or_else(|e| panic!("mkdir {}: {e}", debs.display()));
    let _lock = FileLock::acquire(&root.join(".lock"), Duration::from_secs(20 * 60));

    let deb = kernel_deb(&debs);
    let stem = deb
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("deb name")
        .to_owned();
    let kernel_package = stem.split('_').next().expect("package name").to_owned();
    // The cache key: which kernel, and what goes into the initramfs and next to it.
    let mut key = Fnv::new();
    key.add(stem.as_bytes());
    key.add(INIT.as_bytes());
    key.add(&busybox);
    for f in IPXE_FILES {
        key.add(&fs::read(Path::new(IPXE_DIR).join(f)).expect("read iPXE binary"));
    }
    let dir = root.join(format!("{stem}-{:016x}", key.0));
    let stamp = dir.join("COMPLETE");
    if let Ok(release) = fs::read_to_string(&stamp) {
        return Fixture {
            dir,
            kernel_package,
            kernel_release: release.trim().to_owned(),
        };
    }

    let t0 = Instant::now();
    let tmp = root.join(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).expect("mkdir fixture tmp");
    // The kernel: unpack the package next to the fixture, keep /boot/vmlinuz-*, drop the rest.
    require_tool("dpkg-deb", "dpkg");
    let unpacked = tmp.join("unpacked");
    let out = run_timeout(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked),
        Duration::from_secs(300),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.success(),
        "dpkg-deb -x {} failed: {}",
        deb.display(),
        out.stderr
    );
    let vmlinuz = fs::read_dir(unpacked.join("boot"))
        .expect("the kernel package has /boot")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .unwrap_or_else(|| panic!("no /boot/vmlinuz-* in {}", deb.display()));
    let release = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .expect("vmlinuz-RELEASE")
        .to_owned();
    fs::copy(&vmlinuz, tmp.join("vmlinuz")).expect("copy vmlinuz");
    fs::remove_dir_all(&unpacked).expect("remove the unpacked kernel package");
    fs::write(tmp.join("initrd.img"), initramfs(&busybox)).expect("write initrd.img");
    for f in IPXE_FILES {
        fs::copy(Path::new(IPXE_DIR).join(f), tmp.join(f)).expect("copy iPXE binary");
    }
    fs::write(tmp.join("COMPLETE"), format!("{release}\n")).expect("write stamp");
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&tmp, &dir).expect("move the fixture into place");
    // Older fixtures and kernel packages are of no more use.
    for e in fs::read_dir(&root).into_iter().flatten().flatten() {
        let p = e.path();
        if p != dir && p != debs && p.is_dir() {
            let _ = fs::remove_dir_all(&p);
        }
    }
    for e in fs::read_dir(&debs).into_iter().flatten().flatten() {
        if e.path() != deb {
            let _ = fs::remove_file(e.path());
        }
    }
    eprintln!(
        "boot fixture built in {:.1} s: {} (kernel {release})",
        t0.elapsed().as_secs_f64(),
        dir.display()
    );
    Fixture {
        dir,
        kernel_package,
        kernel_release: release,
    }
}

/// The kernel package `linux-image-amd64` depends on, downloaded into `debs` unless already
/// there. Offline, the newest package already downloaded is used.
fn kernel_deb(debs: &Path) -> PathBuf {
    let cached = |pkg: &str| -> Option<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(debs)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb"))
            })
            .collect();
        v.sort();
        v.pop()
    };
    let deps = run_timeout(
        Command::new("apt-cache").args(["depends", "linux-image-amd64"]),
        Duration::from_secs(60),
    );
    let pkg = deps.ok().filter(|o| o.success()).and_then(|o| {
        o.stdout
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|d| d.starts_with("linux-image-"))
            .map(str::to_owned)
    });
    let Some(pkg) = pkg else {
        return cached("linux-image-").unwrap_or_else(|| {
            panic!(
                "cannot resolve linux-image-amd64 (apt-cache depends) and no kernel package in {}: \
                 run apt-get update",
                debs.display()
            )
        });
    };
    if let Some(deb) = cached(&pkg) {
        return deb;
    }
    eprintln!(
        "boot fixture: apt-get download {pkg} (once; cached in {})",
        debs.display()
    );
    let out = run_timeout(
        Command::new("apt-get")
            .args(["download", "-q", &pkg])
            .current_dir(debs),
        Duration::from_secs(600),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.success(),
        "apt-get download {pkg} failed: {}{}",
        out.stdout,
        out.stderr
    );
    cached(&pkg)
        .unwrap_or_else(|| panic!("apt-get download {pkg} left no .deb in {}", debs.display()))
}

/// True when `elf` is an ELF file without a program interpreter (statically linked).
fn is_static_elf(elf: &[u8]) -> bool {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[32..40].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        // PT_INTERP = 3
        o + 4 <= elf.len() && u32::from_le_bytes(elf[o..o + 4].try_into().expect("4 bytes")) != 3
    })
}

/// A newc cpio archive (what the kernel unpacks as its initramfs): /init, /bin/busybox, /bin/sh,
/// /dev/console and the mount points. Built here, so no device node is made on the host.
pub fn initramfs(busybox: &[u8]) -> Vec<u8> {
    let mut c = Cpio::default();
    for d in ["bin", "dev", "proc", "sys"] {
        c.entry(d, 0o040755, (0, 0), b"");
    }
    c.entry("bin/busybox", 0o100755, (0, 0), busybox);
    c.entry("bin/sh", 0o120777, (0, 0), b"busybox");
    c.entry("dev/console", 0o020600, (5, 1), b"");
    c.entry("init", 0o100755, (0, 0), INIT.as_bytes());
    c.finish()
}

#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            if mode & 0o170000 == 0o040000 { 2 } else { 1 },
            0, // mtime
            data.len() as u32,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), b"");
        self.out
    }
}

/// FNV-1a, 64 bits: the fixture's cache key.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn add(&mut self, data: &[u8]) {
        for b in data {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so ("ab","c") and ("a","bc") differ.
        self.0 = (self.0 ^ 0xff).wrapping_mul(0x0100_0000_01b3);
    }
}

/// Writes `len` pseudo-random bytes (xorshift64*, from `seed`) to `path`.
pub fn random_file(path: &Path, len: usize, seed: u64) {
    let mut x = seed | 1;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        data.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    data.truncate(len);
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Panics unless the files `got` and `want` hold the same bytes (names the first difference).
pub fn assert_same_file(got: &Path, want: &Path) {
    let g = fs::read(got).unwrap_or_else(|e| panic!("read {}: {e}", got.display()));
    let w = fs::read(want).unwrap_or_else(|e| panic!("read {}: {e}", want.display()));
    if g != w {
        let at = g
            .iter()
            .zip(&w)
            .position(|(a, b)| a != b)
            .unwrap_or(g.len().min(w.len()));
        panic!(
            "{} ({} bytes) differs from {} ({} bytes) first at byte {at}",
            got.display(),
            g.len(),
            want.display(),
            w.len()
        );
    }
}

/// Who serves DHCP, TFTP and HTTP at 10.77.0.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// `host-sim serve`, the appliance itself.
    HostSim,
    /// dnsmasq (DHCP and TFTP) and standin_http.py in a namespace of their own at 10.77.0.1.
    StandIn,
}

impl ServerKind {
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::HostSim => "host-sim",
            ServerKind::StandIn => "stand-in (dnsmasq + standin_http.py)",
        }
    }
}

/// `E2E_BOOT_SERVER=host-sim|standin`, else host-sim once `host-sim serve --help` shows it
/// serves files (`--ipxe-script` / `--kernel`), else the stand-in.
pub fn server_kind() -> ServerKind {
    static KIND: OnceLock<ServerKind> = OnceLock::new();
    *KIND.get_or_init(|| {
        let kind = match std::env::var("E2E_BOOT_SERVER").as_deref() {
            Ok("host-sim") => ServerKind::HostSim,
            Ok("standin") => ServerKind::StandIn,
            Ok(other) => panic!("E2E_BOOT_SERVER={other}: expected host-sim or standin"),
            Err(_) if host_sim_serves_files() => ServerKind::HostSim,
            Err(_) => ServerKind::StandIn,
        };
        eprintln!("boot server: {}", kind.name());
        kind
    })
}

/// Whether this host-sim build has the TFTP and HTTP servers (judged from its `--help`).
pub fn host_sim_serves_files() -> bool {
    let out = run_timeout(
        Command::new(host_sim()).args(["serve", "--help"]),
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    out.stdout.contains("--ipxe-script") || out.stdout.contains("--kernel")
}

/// How the boot server hands out addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DhcpMode {
    /// The boot server is the DHCP server (pool 10.77.0.100-149).
    Full,
    /// The site's dnsmasq (10.77.0.2, pool .150-.199, no boot options) gives the address; the
    /// boot server answers as proxyDHCP.
    Proxy,
}

/// A per-machine boot target (host-sim's `--machine-boot MAC=...`).
#[derive(Clone, Debug)]
pub enum Override {
    /// Firmware PXE (and HTTP boot) of `mac` loads this file instead of iPXE.
    File { mac: String, name: String },
    /// iPXE on `mac` chains this script URL instead of /boot.ipxe.
    Script { mac: String, url: String },
}

/// The boot server at 10.77.0.1 with its boot directory `<wd>/boot` (the fixture and whatever
/// the test put there), and in proxy mode the site's dnsmasq beside it.
pub struct BootServer {
    pub kind: ServerKind,
    pub mode: DhcpMode,
    hs: Option<HostSim>,
    standin: Option<StandIn>,
    site: Option<Dnsmasq>,
    _site_ns: Option<Netns>,
    boot_dir: PathBuf,
}

struct StandIn {
    dnsmasq: Dnsmasq,
    http: Child,
    _ns: Netns,
}

impl BootServer {
    /// Starts the server of [`server_kind`]. `hostsim_extra` are extra arguments for host-sim only.
    pub fn start(
        rack: &Rack,
        wd: &Workdir,
        mode: DhcpMode,
        overrides: &[Override],
        hostsim_extra: &[&str],
    ) -> BootServer {
        let boot_dir = wd.dir("boot");
        let (site, site_ns) = match mode {
            DhcpMode::Full => (None, None),
            DhcpMode::Proxy => {
                let ns = rack.host("dnsmasq", None, &["10.77.0.2/24"]);
                let d = Dnsmasq::start(
                    &ns,
                    wd,
                    "dnsmasq",
                    &["dhcp-range=10.77.0.150,10.77.0.199,255.255.255.0,10m"],
                );
                (Some(d), Some(ns))
            }
        };
        let kind = server_kind();
        let (hs, standin) = match kind {
            ServerKind::HostSim => {
                let mut args: Vec<String> = match mode {
                    DhcpMode::Full => vec!["--dhcp-pool".into(), "10.77.0.100-10.77.0.149".into()],
                    DhcpMode::Proxy => vec!["--proxy-dhcp".into()],
                };
                for o in overrides {
                    args.push("--machine-boot".into());
                    args.push(match o {
                        Override::File { mac, name } => format!("{mac}=file:{name}"),
                        Override::Script { mac, url } => format!("{mac}=script:{url}"),
                    });
                }
                args.extend(hostsim_extra.iter().map(|s| s.to_string()));
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                (Some(HostSim::start(rack, wd, "host-sim", &a)), None)
            }
            ServerKind::StandIn => (None, Some(StandIn::start(rack, wd, mode, overrides))),
        };
        BootServer {
            kind,
            mode,
            hs,
            standin,
            site,
            _site_ns: site_ns,
            boot_dir,
        }
    }

    pub fn boot_dir(&self) -> &Path {
        &self.boot_dir
    }

    pub fn host_sim(&mut self) -> Option<&mut HostSim> {
        self.hs.as_mut()
    }

    /// The site's DHCP server (proxy mode).
    pub fn site(&mut self) -> Option<&mut Dnsmasq> {
        self.site.as_mut()
    }

    /// `Err` with the end of its log when a server process has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        if let Some(hs) = self.hs.as_mut() {
            hs.check_alive()?;
        }
        if let Some(s) = self.standin.as_mut() {
            s.dnsmasq.check_alive()?;
            s.http.check_alive()?;
        }
        Ok(())
    }

    /// Stops host-sim cleanly (SIGTERM, `stopped` line, exit 0); the stand-in is just killed.
    pub fn stop(&mut self) {
        if let Some(hs) = self.hs.as_mut() {
            hs.stop();
        }
    }
}

impl StandIn {
    fn start(rack: &Rack, wd: &Workdir, mode: DhcpMode, overrides: &[Override]) -> StandIn {
        let boot = wd.dir("boot");
        let ns = rack.host("standin", Some(APPLIANCE_MAC), &[APPLIANCE_CIDR]);
        let mut lines = vec![
            "enable-tftp".to_string(),
            format!("tftp-root={}", boot.display()),
            "dhcp-match=set:ipxe,175".into(),
            "dhcp-userclass=set:ipxe,iPXE".into(),
            "dhcp-match=set:efi64,option:client-arch,7".into(),
            "dhcp-match=set:efi64,option:client-arch,9".into(),
            "dhcp-match=set:httpboot,option:client-arch,16".into(),
            "dhcp-option-force=tag:httpboot,60,HTTPClient".into(),
        ];
        // host-sim's decision table (appliance/src/dhcp/pxe.rs), with at most one override.
        let (mut file_tag, mut script_tag) = ("", "");
        for o in overrides {
            match o {
                Override::File { mac, name } => {
                    lines.push(format!("dhcp-host={mac},set:ovrfile"));
                    lines.push(format!(
                        "dhcp-boot=tag:ovrfile,tag:!ipxe,tag:!httpboot,{name}"
                    ));
                    lines.push(format!(
                        "dhcp-boot=tag:ovrfile,tag:!ipxe,tag:httpboot,http://{APPLIANCE_IP}/{name}"
                    ));
                    file_tag = "tag:!ovrfile,";
                }
                Override::Script { mac, url } => {
                    lines.push(format!("dhcp-host={mac},set:ovrscript"));
                    lines.push(format!("dhcp-boot=tag:ovrscript,tag:ipxe,{url}"));
                    script_tag = "tag:!ovrscript,";
                }
            }
        }
        match mode {
            DhcpMode::Full => {
                lines.push("dhcp-range=10.77.0.100,10.77.0.149,255.255.255.0,10m".into());
                lines.push(format!(
                    "dhcp-boot={script_tag}tag:ipxe,http://{APPLIANCE_IP}/boot.ipxe"
                ));
                lines.push(format!(
                    "dhcp-boot={file_tag}tag:!ipxe,tag:httpboot,http://{APPLIANCE_IP}/ipxe.efi"
                ));
                lines.push(format!("dhcp-boot={file_tag}tag:!ipxe,tag:efi64,ipxe.efi"));
                lines.push(format!(
                    "dhcp-boot={file_tag}tag:!ipxe,tag:!efi64,tag:!httpboot,undionly.kpxe"
                ));
            }
            DhcpMode::Proxy => {
                lines.push("dhcp-range=10.77.0.0,proxy,255.255.255.0".into());
                lines.push(format!(
                    "dhcp-boot={script_tag}tag:ipxe,http://{APPLIANCE_IP}/boot.ipxe"
                ));
                lines.push("pxe-service=tag:!ipxe,x86PC,\"bios\",undionly.kpxe".into());
                lines.push("pxe-service=tag:!ipxe,X86-64_EFI,\"uefi\",ipxe.efi".into());
            }
        }
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let dnsmasq = Dnsmasq::start(&ns, wd, "standin-dnsmasq", &refs);

        require_tool("/usr/bin/python3", "python3");
        let mut cmd = ns.command("/usr/bin/python3");
        cmd.args(["-u", STANDIN_HTTP, APPLIANCE_IP, "80"])
            .arg(&boot)
            .arg(STANDIN_HEADER_DEADLINE.to_string());
        let mut http = Child::spawn("standin-http", &mut cmd, &wd.file("standin-http.log"));
        let log = http.log().clone();
        log.wait_for_from(
            0,
            Duration::from_secs(10),
            |l| l.starts_with("listening on"),
            || http.check_alive(),
        )
        .unwrap_or_else(|e| panic!("standin_http.py did not start: {e}"));
        StandIn {
            dnsmasq,
            http,
            _ns: ns,
        }
    }
}

/// The client namespace's address in [`ClientBench`].
pub const CLIENT_IP: &str = "10.77.0.10";
/// Upper bound for one client command in [`ClientBench::fetch`].
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(240);

/// A boot server (full DHCP mode) with random files in its boot directory, and a client
/// namespace at [`CLIENT_IP`] for TFTP and HTTP clients.
pub struct ClientBench {
    pub srv: BootServer,
    pub cli: Netns,
    pub wd: Workdir,
    pub rack: Rack,
}

impl ClientBench {
    /// `files`: (name, length, seed) of random files put into the boot directory.
    pub fn new(test: &str, files: &[(&str, usize, u64)], overrides: &[Override]) -> ClientBench {
        let wd = Workdir::new(test);
        let boot = wd.dir("boot");
        for (name, len, seed) in files {
            random_file(&boot.join(name), *len, *seed);
        }
        let rack = Rack::new(test);
        let srv = BootServer::start(&rack, &wd, DhcpMode::Full, overrides, &[]);
        let cli = rack.host("cli", None, &[&format!("{CLIENT_IP}/24")]);
        ClientBench { srv, cli, wd, rack }
    }

    /// A file of the boot directory.
    pub fn served(&self, name: &str) -> PathBuf {
        self.srv.boot_dir().join(name)
    }

    /// Runs a client in the client namespace and panics unless it exits 0 and `got` holds the
    /// bytes of the served file `want`, and the server still runs. Returns the seconds taken.
    pub fn fetch(&mut self, what: &str, prog: &str, args: &[&str], got: &Path, want: &str) -> f64 {
        let start = Instant::now();
        let out = self
            .cli
            .run(prog, args, CLIENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let secs = start.elapsed().as_secs_f64();
        assert!(
            out.success(),
            "{what} failed ({}): {}{}",
            out.status,
            out.stdout,
            out.stderr
        );
        assert_same_file(got, &self.served(want));
        let len = fs::metadata(got).map(|m| m.len()).unwrap_or(0);
        eprintln!(
            "{what}: {len} bytes byte-exact in {secs:.2} s ({:.1} MB/s)",
            len as f64 / secs / 1e6
        );
        self.srv
            .check_alive()
            .unwrap_or_else(|e| panic!("after {what}: {e}"));
        secs
    }
}

/// Writes a text file (an iPXE script, say) into `dir`, mode 0644; returns its path.
pub fn write_text(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    let mut f = File::create(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
    f.write_all(text.as_bytes()).expect("write");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_is_newc_and_aligned() {
        let a = initramfs(b"\x7fELFbusybox");
        assert!(a.starts_with(b"070701"));
        assert_eq!(a.len() % 4, 0);
        let text = String::from_utf8_lossy(&a);
        for name in ["bin/busybox", "dev/console", "init", "TRAILER!!!"] {
            assert!(text.contains(name), "{name}");
        }
        assert!(text.contains(MARKER.trim_end_matches("OK")));
    }

    #[test]
    fn random_files_are_deterministic() {
        let dir = std::env::temp_dir().join(format!("e2e-rand-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        random_file(&dir.join("a"), 1001, 7);
        random_file(&dir.join("b"), 1001, 7);
        random_file(&dir.join("c"), 1001, 8);
        assert_same_file(&dir.join("a"), &dir.join("b"));
        assert_ne!(
            fs::read(dir.join("a")).unwrap(),
            fs::read(dir.join("c")).unwrap()
        );
        assert_eq!(fs::metadata(dir.join("a")).unwrap().len(), 1001);
        fs::remove_dir_all(&dir).unwrap();
    }
}
