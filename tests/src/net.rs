//! Network namespaces, the rack bridge, veths, TAPs and packet capture.

use std::cell::Cell;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

use crate::proc::{Child, must, run_timeout};
use crate::wait::LogFile;
use crate::{APPLIANCE_TAP, Workdir, unique_name};

/// A network namespace, removed on drop together with every process still in it (they are
/// SIGKILLed by pid: only processes this test started can be in a namespace this test made).
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace (loopback up, IPv6 off so no router solicitations or DAD add noise).
    pub fn new(name: &str) -> Netns {
        static STALE: Once = Once::new();
        STALE.call_once(remove_stale_namespaces);
        if namespace_exists(name) {
            remove_namespace(name);
        }
        must("ip", &["netns", "add", name]);
        let ns = Netns {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        for key in ["all", "default"] {
            let k = format!("net.ipv6.conf.{key}.disable_ipv6=1");
            ns.must("sysctl", &["-qw", &k]);
        }
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME args...`; panics on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", &self.name];
        a.extend_from_slice(args);
        must("ip", &a)
    }

    /// A command that runs `prog` inside the namespace (`ip netns exec`, which execs `prog`, so the
    /// pid of the spawned process is that of `prog`).
    pub fn command(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]);
        c
    }

    /// Runs a short command inside the namespace (10 s limit); panics unless it succeeds.
    pub fn must(&self, prog: &str, args: &[&str]) -> String {
        let mut a = vec!["netns", "exec", &self.name, prog];
        a.extend_from_slice(args);
        must("ip", &a)
    }

    /// Runs a command inside the namespace with a time limit, without judging its exit status.
    pub fn run(
        &self,
        prog: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<crate::proc::Output, String> {
        run_timeout(self.command(prog).args(args), timeout)
    }

    /// IPv4 addresses (without prefix) on `iface`.
    pub fn ipv4_addrs(&self, iface: &str) -> Vec<String> {
        let out = self.ip(&["-4", "-o", "addr", "show", "dev", iface]);
        out.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                w.find(|x| *x == "inet")?;
                Some(w.next()?.split('/').next()?.to_owned())
            })
            .collect()
    }

    /// A veth pair from this namespace (`local`) to `other` (`remote`), both up. `remote_mac` sets
    /// the MAC of the far end.
    pub fn veth_to(&self, local: &str, other: &Netns, remote: &str, remote_mac: Option<&str>) {
        let mut a = vec![
            "link",
            "add",
            local,
            "type",
            "veth",
            "peer",
            "name",
            remote,
            "netns",
            &other.name,
        ];
        if let Some(m) = remote_mac {
            a.extend_from_slice(&["address", m]);
        }
        self.ip(&a);
        self.ip(&["link", "set", local, "up"]);
        other.ip(&["link", "set", remote, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove_namespace(&self.name);
    }
}

fn namespace_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Kills the processes in a namespace (by pid), then deletes it. Bounded; never panics.
fn remove_namespace(name: &str) {
    for _ in 0..20 {
        let pids = run_timeout(
            Command::new("ip").args(["netns", "pids", name]),
            Duration::from_secs(5),
        )
        .map(|o| o.stdout)
        .unwrap_or_default();
        let pids: Vec<i32> = pids
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // SAFETY: plain kill(2); the pid was just listed as a member of our own namespace.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..10 {
        let ok = run_timeout(
            Command::new("ip").args(["netns", "del", name]),
            Duration::from_secs(5),
        )
        .is_ok_and(|o| o.success());
        if ok || !namespace_exists(name) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("e2e: could not delete netns {name}");
}

/// Removes namespaces `e2e-<pid>-...` left by a test process that no longer exists (killed hard).
fn remove_stale_namespaces() {
    let Ok(rd) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("e2e-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("e2e: removing stale netns {name}");
            remove_namespace(&name);
        }
    }
}

/// The rack: a namespace with bridge `br0` and host-sim's persistent TAP `apl0` in it. Hosts
/// (client namespaces) hang off the bridge by veths; VMs by TAPs.
pub struct Rack {
    test: String,
    ns: Netns,
    ports: Cell<usize>,
}

impl Rack {
    pub fn new(test: &str) -> Rack {
        let ns = Netns::new(&unique_name(test, "rack"));
        ns.ip(&["link", "add", "br0", "type", "bridge"]);
        ns.ip(&["link", "set", "br0", "up"]);
        let rack = Rack {
            test: test.to_owned(),
            ns,
            ports: Cell::new(0),
        };
        rack.add_tap(APPLIANCE_TAP);
        rack
    }

    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// A persistent TAP in the bridge, up (it has carrier once a process opens it).
    pub fn add_tap(&self, name: &str) {
        self.ns.ip(&["tuntap", "add", "dev", name, "mode", "tap"]);
        self.ns.ip(&["link", "set", name, "master", "br0"]);
        self.ns.ip(&["link", "set", name, "up"]);
    }

    /// A new namespace `<test>-<role>` whose `eth0` is a veth into the bridge, with `mac` (if
    /// given) and the given addresses (CIDR).
    pub fn host(&self, role: &str, mac: Option<&str>, addrs: &[&str]) -> Netns {
        let host = Netns::new(&unique_name(&self.test, role));
        let port = format!("p{}", self.ports.get());
        self.ports.set(self.ports.get() + 1);
        self.ns.veth_to(&port, &host, "eth0", mac);
        self.ns.ip(&["link", "set", &port, "master", "br0"]);
        for a in addrs {
            host.ip(&["addr", "add", a, "dev", "eth0"]);
        }
        host
    }

    /// Starts tcpdump on the bridge (every frame of the rack passes it).
    pub fn capture(&self, wd: &Workdir, name: &str, filter: &str) -> Capture {
        Capture::start(&self.ns, "br0", filter, &wd.file(&format!("{name}.txt")))
    }
}

/// A running tcpdump (`-n -l`, one line per packet) writing to a text file.
pub struct Capture {
    child: Child,
}

impl Capture {
    pub fn start(ns: &Netns, iface: &str, filter: &str, out: &Path) -> Capture {
        Capture::start_with(ns, iface, filter, out, &[])
    }

    /// Like [`Capture::start`] with extra tcpdump options (`-A` to print payloads, say).
    pub fn start_with(
        ns: &Netns,
        iface: &str,
        filter: &str,
        out: &Path,
        extra: &[&str],
    ) -> Capture {
        crate::require_tool("tcpdump", "tcpdump");
        let mut cmd = ns.command("tcpdump");
        cmd.args(["-i", iface, "-n", "-l", "--immediate-mode"])
            .args(extra)
            .arg(filter);
        let mut child = Child::spawn("tcpdump", &mut cmd, out);
        child
            .log()
            .clone()
            .wait_for_from(
                0,
                Duration::from_secs(10),
                |l| l.contains("listening on"),
                || child.check_alive(),
            )
            .unwrap_or_else(|e| panic!("tcpdump did not start: {e}"));
        Capture { child }
    }

    pub fn log(&self) -> &LogFile {
        self.child.log()
    }

    /// Waits for a captured packet line satisfying `pred`.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let log = self.child.log().clone();
        let child = &mut self.child;
        log.wait_for_from(0, timeout, pred, || child.check_alive())
            .map(|(_, l)| l)
    }

    /// Every packet line captured so far.
    pub fn lines(&self) -> Vec<String> {
        self.child.log().lines()
    }
}

/// Runs `f` on a new thread that has joined the namespace (setns affects only that thread), so
/// sockets it opens live in the namespace.
pub fn in_netns<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    in_named_netns(ns.name(), f)
}

/// [`in_netns`] by the namespace's name (for threads that cannot borrow the [`Netns`]).
pub fn in_named_netns<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let path = Path::new("/run/netns").join(name);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // SAFETY: setns(2) with a valid fd of a network namespace; it changes only this thread.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!(
                "setns {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        f()
    })
    .join()
    .map_err(|_| "namespace thread panicked".to_string())?
}

/// Sends ICMP echo requests from `ns` to `ip` until one is answered (at most `tries`, 1 s each).
/// (The machines have no ping binary; this is a raw ICMP socket on a thread inside the namespace.)
pub fn ping(ns: &Netns, ip: &str, tries: u16) -> Result<(), String> {
    let dst: Ipv4Addr = ip.parse().map_err(|e| format!("{ip}: {e}"))?;
    let name = ns.name().to_owned();
    in_netns(ns, move || {
        for seq in 1..=tries {
            if icmp_echo(dst, seq, Duration::from_secs(1))? {
                return Ok(());
            }
        }
        Err(format!("{dst} did not answer {tries} pings from {name}"))
    })
}

/// One echo request; `Ok(true)` when its reply came within `timeout`.
fn icmp_echo(dst: Ipv4Addr, seq: u16, timeout: Duration) -> Result<bool, String> {
    let os_err = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    if raw < 0 {
        return Err(os_err("raw ICMP socket"));
    }
    // SAFETY: `raw` is a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: valid fd, option value of the right type and size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
    let id = (std::process::id() & 0xffff) as u16;
    let mut pkt = [0u8; 24];
    pkt[0] = 8; // echo request
    pkt[4..6].copy_from_slice(&id.to_be_bytes());
    pkt[6..8].copy_from_slice(&seq.to_be_bytes());
    pkt[8..].copy_from_slice(b"e2e-ping-payload");
    let sum = inet_checksum(&pkt);
    pkt[2..4].copy_from_slice(&sum.to_be_bytes());
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(dst).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: valid fd, buffer and sockaddr_in of the stated sizes.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            (&raw const sa).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        // No route yet, for instance: the caller tries again.
        return Ok(false);
    }
    let start = std::time::Instant::now();
    let mut buf = [0u8; 1500];
    // Bounded: every recv returns within 100 ms (SO_RCVTIMEO).
    for _ in 0..1000 {
        if start.elapsed() >= timeout {
            break;
        }
        // SAFETY: valid fd and buffer.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            continue;
        }
        let p = &buf[..n as usize];
        let ihl = usize::from(p[0] & 0x0f) * 4;
        if p.len() < ihl + 8 || p[12..16] != dst.octets() {
            continue;
        }
        let icmp = &p[ihl..];
        if icmp[0] == 0 && icmp[4..6] == id.to_be_bytes() && icmp[6..8] == seq.to_be_bytes() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
