//! host-sim as a child process in the rack namespace, and its stdout protocol:
//! `ready ... leases=N`, `dhcp <REQ> k=v... -> <VERDICT> k=v...`, `stopped leases=N`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::net::Rack;
use crate::proc::Child;
use crate::wait::LogFile;
use crate::{APPLIANCE_CIDR, APPLIANCE_MAC, APPLIANCE_TAP, Workdir, host_sim};

/// One `dhcp ...` decision line, parsed loosely: `req` (DISCOVER, REQUEST, ...), `verdict` (OFFER,
/// ACK, NAK, none) and every `key=value` of both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpLine {
    pub raw: String,
    pub req: String,
    pub verdict: String,
    pub fields: BTreeMap<String, String>,
}

impl DhcpLine {
    /// Parses a line starting with `dhcp `; `None` for any other line.
    pub fn parse(line: &str) -> Option<DhcpLine> {
        let rest = line.trim_end().strip_prefix("dhcp ")?;
        let (left, right) = rest.split_once(" -> ").unwrap_or((rest, ""));
        let mut l = left.split_whitespace();
        let req = l.next()?.to_owned();
        let mut r = right.split_whitespace();
        let verdict = r.next().unwrap_or("").to_owned();
        let fields = l
            .chain(r)
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some(DhcpLine {
            raw: line.to_owned(),
            req,
            verdict,
            fields,
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    pub fn mac(&self) -> Option<&str> {
        self.get("mac")
    }

    pub fn ip(&self) -> Option<&str> {
        self.get("ip")
    }

    pub fn file(&self) -> Option<&str> {
        self.get("file")
    }

    /// Case-insensitive MAC match.
    pub fn is_mac(&self, mac: &str) -> bool {
        self.mac().is_some_and(|m| m.eq_ignore_ascii_case(mac))
    }
}

/// A running `host-sim serve` in the rack namespace on the persistent TAP `apl0`.
pub struct HostSim {
    child: Child,
    /// The `ready ...` line.
    pub ready: String,
    /// Leases restored from the state directory (from `ready ... leases=N`).
    pub restored: usize,
}

impl HostSim {
    /// Starts `host-sim serve --interface apl0 --ip 10.77.0.1/24 --mac 02:00:00:77:00:01
    /// --boot-dir <wd>/boot --state-dir <wd>/state EXTRA...` and waits (15 s) for its `ready` line.
    /// Its output goes to `<wd>/<name>.log` (appended, so a restart continues the same log).
    pub fn start(rack: &Rack, wd: &Workdir, name: &str, extra: &[&str]) -> HostSim {
        let bin = host_sim();
        let boot = wd.dir("boot");
        let state = wd.dir("state");
        let log = wd.file(&format!("{name}.log"));
        let from = LogFile::new(&log).mark();
        let mut cmd = rack.ns().command(bin.to_str().expect("utf-8 path"));
        cmd.args([
            "serve",
            "--interface",
            APPLIANCE_TAP,
            "--ip",
            APPLIANCE_CIDR,
        ])
        .args(["--mac", APPLIANCE_MAC])
        .arg("--boot-dir")
        .arg(&boot)
        .arg("--state-dir")
        .arg(&state)
        .args(extra)
        .env("RUST_BACKTRACE", "1");
        let mut child = Child::spawn(name, &mut cmd, &log);
        let lf = child.log().clone();
        let (_, ready) = lf
            .wait_for_from(
                from,
                Duration::from_secs(15),
                |l| l.starts_with("ready "),
                || child.check_alive(),
            )
            .unwrap_or_else(|e| panic!("host-sim did not get ready: {e}"));
        let restored = field(&ready, "leases")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no leases=N in {ready:?}"));
        HostSim {
            child,
            ready,
            restored,
        }
    }

    pub fn log(&self) -> &LogFile {
        self.child.log()
    }

    /// `Err` with the end of its log once host-sim has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        self.child.check_alive()
    }

    pub fn log_path(&self) -> PathBuf {
        self.child.log_path()
    }

    /// Every `dhcp` line so far.
    pub fn dhcp_lines(&self) -> Vec<DhcpLine> {
        self.log()
            .lines()
            .iter()
            .filter_map(|l| DhcpLine::parse(l))
            .collect()
    }

    /// Waits for a `dhcp` line (any so far, or a later one) satisfying `pred`; panics with the end
    /// of the log after `timeout` or when host-sim exits.
    pub fn wait_dhcp(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&DhcpLine) -> bool,
    ) -> DhcpLine {
        self.wait_dhcp_from(0, timeout, what, pred)
    }

    /// Like [`HostSim::wait_dhcp`] but only lines at index >= `from` (a [`LogFile::mark`]).
    pub fn wait_dhcp_from(
        &mut self,
        from: usize,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&DhcpLine) -> bool,
    ) -> DhcpLine {
        let lf = self.child.log().clone();
        let child = &mut self.child;
        match lf.wait_for_from(
            from,
            timeout,
            |l| DhcpLine::parse(l).is_some_and(|d| pred(&d)),
            || child.check_alive(),
        ) {
            Ok((_, l)) => DhcpLine::parse(&l).expect("matched a dhcp line"),
            Err(e) => panic!(
                "host-sim never logged {what}: {e}\n--- host-sim log ({}) ends:\n{}",
                lf.path().display(),
                lf.tail(30)
            ),
        }
    }

    /// Stops host-sim with SIGTERM (10 s), checks it exited cleanly and logged
    /// `stopped leases=N`; returns N.
    pub fn stop(&mut self) -> usize {
        let from = self.log().mark();
        self.child.signal(libc::SIGTERM);
        let status = self.child.wait_exit(Duration::from_secs(10));
        let tail = self.log().tail(20);
        let status = status.unwrap_or_else(|| panic!("host-sim ignored SIGTERM for 10 s:\n{tail}"));
        let stopped = self.log().lines()[from.min(self.log().mark())..]
            .iter()
            .find(|l| l.starts_with("stopped"))
            .cloned()
            .unwrap_or_else(|| {
                panic!("host-sim exited ({status}) without a `stopped` line:\n{tail}")
            });
        assert!(
            status.success(),
            "host-sim exited with {status} on SIGTERM:\n{tail}"
        );
        field(&stopped, "leases")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no leases=N in {stopped:?}"))
    }
}

/// The value of `key=value` in a space-separated line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decision_lines() {
        let d = DhcpLine::parse(
            "dhcp DISCOVER mac=52:54:00:aa:00:01 kind=ipxe arch=0 -> OFFER ip=10.77.0.100 \
             file=http://10.77.0.1/boot.ipxe to=52:54:00:aa:00:01",
        )
        .unwrap();
        assert_eq!(d.req, "DISCOVER");
        assert_eq!(d.verdict, "OFFER");
        assert!(d.is_mac("52:54:00:AA:00:01"));
        assert_eq!(d.get("arch"), Some("0"));
        assert_eq!(d.ip(), Some("10.77.0.100"));
        assert_eq!(d.file(), Some("http://10.77.0.1/boot.ipxe"));
        let r =
            DhcpLine::parse("dhcp RELEASE mac=aa kind=plain -> none ip=10.77.0.100 note=released")
                .unwrap();
        assert_eq!((r.req.as_str(), r.verdict.as_str()), ("RELEASE", "none"));
        assert_eq!(r.get("note"), Some("released"));
        assert!(DhcpLine::parse("ready interface=apl0 leases=0").is_none());
        assert_eq!(field("ready interface=apl0 leases=3", "leases"), Some("3"));
    }
}
