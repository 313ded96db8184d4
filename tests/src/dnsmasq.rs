//! dnsmasq as the site's own (address-only) DHCP server, beside host-sim in proxy mode.

use std::time::Duration;

use crate::net::Netns;
use crate::proc::Child;
use crate::wait::LogFile;
use crate::{Workdir, require_tool};

pub struct Dnsmasq {
    child: Child,
}

impl Dnsmasq {
    /// Starts dnsmasq in `ns` on its `eth0` (DNS off, leases in memory, logging every DHCP
    /// exchange to `<wd>/<name>.log`) with the extra config `lines`; waits for it to bind.
    pub fn start(ns: &Netns, wd: &Workdir, name: &str, lines: &[&str]) -> Dnsmasq {
        require_tool("dnsmasq", "dnsmasq-base");
        let conf = wd.file(&format!("{name}.conf"));
        let mut body = format!(
            "port=0\ninterface=eth0\nbind-interfaces\nlog-dhcp\nleasefile-ro\npid-file={}\n",
            wd.file(&format!("{name}.pid")).display()
        );
        for l in lines {
            body.push_str(l);
            body.push('\n');
        }
        std::fs::write(&conf, body).expect("write dnsmasq.conf");
        let mut cmd = ns.command("dnsmasq");
        cmd.arg(format!("--conf-file={}", conf.display()))
            .args(["--keep-in-foreground", "--log-facility=-"]);
        let mut child = Child::spawn(name, &mut cmd, &wd.file(&format!("{name}.log")));
        let log = child.log().clone();
        log.wait_for_from(
            0,
            Duration::from_secs(10),
            |l| l.contains("sockets bound exclusively"),
            || child.check_alive(),
        )
        .unwrap_or_else(|e| panic!("dnsmasq did not start: {e}"));
        Dnsmasq { child }
    }

    pub fn log(&self) -> &LogFile {
        self.child.log()
    }

    /// `Err` with the end of its log once dnsmasq has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        self.child.check_alive()
    }

    /// Waits for `DHCPACK(eth0) <ip> <mac>` and returns the address.
    pub fn wait_ack(&mut self, mac: &str, timeout: Duration) -> Result<String, String> {
        let log = self.child.log().clone();
        let child = &mut self.child;
        let mac = mac.to_ascii_lowercase();
        let (_, line) = log.wait_for_from(
            0,
            timeout,
            |l| l.contains("DHCPACK(") && l.to_ascii_lowercase().contains(&mac),
            || child.check_alive(),
        )?;
        line.split_whitespace()
            .skip_while(|w| !w.starts_with("DHCPACK("))
            .nth(1)
            .map(str::to_owned)
            .ok_or_else(|| format!("no address in {line:?}"))
    }
}
