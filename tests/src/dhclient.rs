//! ISC dhclient in a client namespace, with a tiny script of ours (the stock dhclient-script would
//! rewrite the host's /etc/resolv.conf) and its lease and pid files in the test's work directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use crate::net::Netns;
use crate::proc::Child;
use crate::wait::LogFile;
use crate::{Workdir, require_tool};

/// One dhclient "machine": its namespace's `eth0`, its files, and the daemon while it runs.
pub struct Dhclient {
    ns: String,
    name: String,
    conf: PathBuf,
    script: PathBuf,
    leases: PathBuf,
    pidfile: PathBuf,
    events: LogFile,
    log: PathBuf,
    daemon: Option<Child>,
}

/// One line the script appended: `<reason> <new_ip_address>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub reason: String,
    pub ip: String,
}

impl Dhclient {
    pub fn new(ns: &Netns, wd: &Workdir, name: &str) -> Dhclient {
        require_tool("dhclient", "isc-dhcp-client");
        let events = wd.file(&format!("{name}.events"));
        let script = wd.file(&format!("{name}-script.sh"));
        // dhclient clears the environment of its script, so the paths are written into it.
        let body = format!(
            r#"#!/bin/sh
# e2e dhclient script: addresses only, never resolv.conf; logs "$reason $new_ip_address".
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT)
    [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$new_ip_address" ] &&
      ip -4 addr del "$old_ip_address/24" dev "$interface" 2>/dev/null
    ip -4 addr replace "$new_ip_address/24" dev "$interface" ;;
  EXPIRE|FAIL|RELEASE|STOP)
    [ -n "$old_ip_address" ] && ip -4 addr del "$old_ip_address/24" dev "$interface" 2>/dev/null ;;
esac
echo "$reason $new_ip_address" >> '{}'
exit 0
"#,
            events.display()
        );
        fs::write(&script, body).expect("write dhclient script");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod script");
        let conf = wd.file(&format!("{name}.conf"));
        fs::write(
            &conf,
            "initial-interval 1;\nbackoff-cutoff 2;\ntimeout 60;\nretry 1;\n\
             request subnet-mask, broadcast-address, routers, domain-name-servers, domain-name,\n  \
             dhcp-lease-time, dhcp-renewal-time, dhcp-rebinding-time;\n",
        )
        .expect("write dhclient.conf");
        Dhclient {
            ns: ns.name().to_owned(),
            name: name.to_owned(),
            conf,
            script,
            leases: wd.file(&format!("{name}.leases")),
            pidfile: wd.file(&format!("{name}.pid")),
            events: LogFile::new(events),
            log: wd.file(&format!("{name}.log")),
            daemon: None,
        }
    }

    fn args(&self) -> Vec<String> {
        let p = |p: &PathBuf| p.to_string_lossy().into_owned();
        vec![
            "-4".into(),
            "-v".into(),
            "-cf".into(),
            p(&self.conf),
            "-sf".into(),
            p(&self.script),
            "-lf".into(),
            p(&self.leases),
            "-pf".into(),
            p(&self.pidfile),
        ]
    }

    fn command(&self) -> std::process::Command {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &self.ns, "dhclient"]);
        c
    }

    /// Starts the daemon in the foreground (`-d`) on `eth0`.
    pub fn start(&mut self) {
        assert!(self.daemon.is_none(), "{} already running", self.name);
        let mut cmd = self.command();
        cmd.arg("-d").args(self.args()).arg("eth0");
        self.daemon = Some(Child::spawn(&self.name, &mut cmd, &self.log));
    }

    pub fn events(&self) -> &LogFile {
        &self.events
    }

    pub fn lease_file(&self) -> &PathBuf {
        &self.leases
    }

    /// Waits for a script event whose reason is one of `reasons`, at event index >= `from`.
    pub fn wait_event(&mut self, from: usize, reasons: &[&str], timeout: Duration) -> Event {
        let ev = self.events.clone();
        let log = LogFile::new(&self.log);
        let name = self.name.clone();
        let daemon = &mut self.daemon;
        let res = ev.wait_for_from(
            from,
            timeout,
            |l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|r| reasons.contains(&r))
            },
            || daemon.as_mut().map_or(Ok(()), |d| d.check_alive()),
        );
        match res {
            Ok((_, l)) => {
                let mut w = l.split_whitespace();
                Event {
                    reason: w.next().unwrap_or("").to_owned(),
                    ip: w.next().unwrap_or("").to_owned(),
                }
            }
            Err(e) => panic!(
                "dhclient {name}: no {reasons:?} event: {e}\n--- events:\n{}\n--- dhclient log:\n{}",
                ev.tail(20),
                log.tail(30)
            ),
        }
    }

    /// `dhclient -r`: the running daemon is stopped and a DHCPRELEASE sent (20 s limit).
    pub fn release(&mut self) {
        let mut cmd = self.command();
        cmd.arg("-r").args(self.args()).arg("eth0");
        let out = crate::proc::run_timeout(&mut cmd, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("dhclient -r: {e}"));
        assert!(out.success(), "dhclient -r failed: {out:?}");
        fs::write(
            self.log.with_extension("release.log"),
            format!("{}{}", out.stdout, out.stderr),
        )
        .ok();
        if let Some(mut d) = self.daemon.take() {
            assert!(
                d.wait_exit(Duration::from_secs(5)).is_some(),
                "dhclient -r did not stop the daemon of {}",
                self.name
            );
        }
    }

    /// Stops the daemon without releasing (SIGTERM): the lease stays in its lease file.
    pub fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.terminate(Duration::from_secs(5));
        }
    }
}
