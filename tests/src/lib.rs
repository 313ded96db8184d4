//! Harness for the end-to-end tests: host-sim against real peers, each test in network namespaces of
//! its own that are removed again (with every process in them) when the test ends, failed or not.
//!
//! Topology of every test (see README.md):
//! ```text
//!   netns <test>-rack:  br0 ── apl0 (persistent TAP; host-sim's smoltcp stack is its far side, 10.77.0.1)
//!                        ├── p0 ══ veth ══ eth0 in netns <test>-<host>   (dhclient, perfdhcp, dnsmasq, router)
//!                        └── vm0 (TAP of a QEMU VM)
//! ```
//! No address exists outside these namespaces and nothing is routed out of them.

pub mod boot;
pub mod curl;
pub mod dhclient;
pub mod dnsmasq;
pub mod firmware;
pub mod hostsim;
pub mod ipmi_sim;
pub mod net;
pub mod perfdhcp;
pub mod power_steps;
pub mod proc;
pub mod provider;
pub mod qemu;
pub mod sushy;
pub mod testbmc;
pub mod wait;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::{env, fs, thread};

pub use hostsim::{DhcpLine, HostSim};
pub use net::{Capture, Netns, Rack};
pub use proc::Child;
pub use wait::{LogFile, wait_for_line};

/// The appliance's address in every test.
pub const APPLIANCE_IP: &str = "10.77.0.1";
/// The appliance's address with its prefix.
pub const APPLIANCE_CIDR: &str = "10.77.0.1/24";
/// The appliance's MAC in every test.
pub const APPLIANCE_MAC: &str = "02:00:00:77:00:01";
/// Name of host-sim's TAP inside the rack namespace.
pub const APPLIANCE_TAP: &str = "apl0";

/// True when running as root; otherwise prints "skipped: needs root" and the test should return
/// (so the suite passes trivially for developers who are not root).
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        true
    } else {
        eprintln!("skipped: needs root");
        false
    }
}

/// Panics with an install hint unless `prog` is on PATH (or an existing absolute path).
pub fn require_tool(prog: &str, package: &str) {
    if which(prog).is_none() {
        panic!("{prog} not found: install the Debian package {package}");
    }
}

/// Where `prog` is on PATH (also /usr/sbin and /sbin, which a non-login root shell may lack).
pub fn which(prog: &str) -> Option<PathBuf> {
    let p = Path::new(prog);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(prog))
        .find(|c| c.is_file())
}

/// The host-sim binary: `$HOST_SIM_BIN` if set, else `$CARGO_TARGET_DIR/debug/host-sim`, else
/// `<workspace>/target/debug/host-sim`. Panics with a hint when it is missing.
pub fn host_sim() -> PathBuf {
    built_binary("host-sim", "HOST_SIM_BIN")
}

/// The provider service's binary, found like [`host_sim`] (`$PROVIDER_BIN`; build it with
/// `cargo build -p provider`).
pub fn provider() -> PathBuf {
    built_binary("provider", "PROVIDER_BIN")
}

fn built_binary(name: &str, var: &str) -> PathBuf {
    if let Some(p) = env::var_os(var) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{var}={} is not a file: build {name} first (`cargo build -p {name}`)",
            p.display()
        );
        return p;
    }
    let p = target_dir().join("debug").join(name);
    assert!(
        p.is_file(),
        "{name} binary not found at {}: run `cargo build -p {name}` first (or set {var})",
        p.display()
    );
    p
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A name unique to this test process and test: `e2e-<pid>-<test>-<role>`. Namespaces are named
/// this way, so tests of one binary can run in parallel and leftovers of a dead run are recognised.
pub fn unique_name(test: &str, role: &str) -> String {
    format!("e2e-{}-{test}-{role}", std::process::id())
}

/// A scratch directory for one test's files and logs. Removed when dropped, unless the test is
/// panicking (then the path and the end of every log in it are printed) or `E2E_KEEP` is set.
pub struct Workdir {
    path: PathBuf,
}

impl Workdir {
    pub fn new(test: &str) -> Workdir {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = env::temp_dir().join(format!("e2e-{}-{test}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Workdir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of a file in the work directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates (if needed) and returns a sub-directory.
    pub fn dir(&self, name: &str) -> PathBuf {
        let d = self.path.join(name);
        fs::create_dir_all(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        d
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("e2e: test failed; files kept in {}", self.path.display());
            let mut logs: Vec<PathBuf> = fs::read_dir(&self.path)
                .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default();
            logs.sort();
            for p in logs.iter().filter(|p| {
                p.extension()
                    .is_some_and(|e| e == "log" || e == "txt" || e == "events")
            }) {
                eprintln!(
                    "----- {} (last 40 lines)\n{}",
                    p.display(),
                    LogFile::new(p).tail(40)
                );
            }
        } else if env::var_os("E2E_KEEP").is_some() {
            eprintln!("e2e: files kept in {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
