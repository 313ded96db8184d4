//! The provider service (`provider serve`) in a namespace of its own on the rack bridge, and
//! its CLI run in that namespace against the API on loopback.

use std::path::PathBuf;
use std::time::Duration;

use crate::hostsim::field;
use crate::net::{Netns, Rack};
use crate::proc::Child;
use crate::{Workdir, provider};

/// The provider's address on the rack segment (the appliance dials it through its TAP).
pub const PROVIDER_IP: &str = "10.77.0.3";
/// Its TLS port for tunnels and enrollment.
pub const PROVIDER_PORT: u16 = 7443;
const API: &str = "127.0.0.1:8790";

/// A running `provider serve`, restartable on the same state dir.
pub struct Provider {
    pub ns: Netns,
    /// The address in its tokens (`--server-name`), so appliances dial it there.
    dial_ip: String,
    state: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// More `serve` flags (e.g. `--join-config FILE`).
    extra: Vec<String>,
}

impl Provider {
    pub fn start(rack: &Rack, wd: &Workdir) -> Provider {
        Provider::start_dialed_at(rack, wd, PROVIDER_IP)
    }

    /// Like [`Provider::start`], with tokens that send appliances to `dial_ip` (on the same
    /// port) instead: where a test puts something between them.
    pub fn start_dialed_at(rack: &Rack, wd: &Workdir, dial_ip: &str) -> Provider {
        Provider::start_with(rack, wd, dial_ip, &[])
    }

    /// Like [`Provider::start_dialed_at`], with more `serve` flags.
    pub fn start_with(rack: &Rack, wd: &Workdir, dial_ip: &str, extra: &[&str]) -> Provider {
        let ns = rack.host("prov", None, &[&format!("{PROVIDER_IP}/24")]);
        let mut p = Provider {
            ns,
            dial_ip: dial_ip.to_owned(),
            state: wd.dir("provider"),
            log: wd.file("provider.log"),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        p.restart();
        p
    }

    /// (Re)starts the service and waits (15 s) for its `ready` line.
    pub fn restart(&mut self) {
        let bin = provider();
        let listen = format!("{PROVIDER_IP}:{PROVIDER_PORT}");
        let mut cmd = self.ns.command(bin.to_str().expect("utf-8 path"));
        cmd.args(["--api", API, "serve", "--state-dir"])
            .arg(&self.state)
            .args(["--listen", &listen, "--server-name", &self.dial_ip]);
        if self.dial_ip != PROVIDER_IP {
            cmd.args(["--server-name", PROVIDER_IP]);
        }
        // Omni's 15 min between a power-on and the next power-off would outlast every test:
        // the hold itself is unit-tested in the appliance's power manager.
        cmd.args(["--min-on-before-off", "0"]);
        cmd.args(&self.extra);
        let from = crate::LogFile::new(&self.log).mark();
        let mut child = Child::spawn("provider", &mut cmd, &self.log);
        let lf = child.log().clone();
        lf.wait_for_from(
            from,
            Duration::from_secs(15),
            |l| l.starts_with("ready "),
            || child.check_alive(),
        )
        .unwrap_or_else(|e| panic!("provider did not get ready: {e}"));
        self.child = Some(child);
    }

    /// Kills the service (SIGKILL: no goodbye to the tunnel).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// Runs the CLI (10 s); panics unless it succeeds; returns its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let bin = provider();
        let mut all = vec!["--api", API];
        all.extend_from_slice(args);
        let out = self
            .ns
            .run(
                bin.to_str().expect("utf-8 path"),
                &all,
                Duration::from_secs(10),
            )
            .unwrap_or_else(|e| panic!("provider {args:?}: {e}"));
        assert!(
            out.success(),
            "provider {args:?}: {}\n{}",
            out.status,
            out.stderr
        );
        out.stdout
    }

    /// POSTs one change to a machine in the API's JSON (for a change the CLI has no verb for,
    /// such as Omni's `power_off`); panics unless it is applied; returns the machine's JSON.
    pub fn change(&self, machine: &str, change: &str) -> String {
        let url = format!("http://{API}/api/machines/{machine}");
        let json = "content-type: application/json";
        let args = [
            "-sS",
            "--fail-with-body",
            "-X",
            "POST",
            "-H",
            json,
            "-d",
            change,
            &url,
        ];
        let out = (self.ns)
            .run("curl", &args, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("curl {url}: {e}"));
        assert!(
            out.success(),
            "{change} to {machine}: {}{}",
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// A new enrollment token's text.
    pub fn token(&self) -> String {
        self.token_with(&[])
    }

    /// A new token with more `token create` flags (`--expires 1s`).
    pub fn token_with(&self, flags: &[&str]) -> String {
        let out = self.cli(&[&["token", "create"], flags].concat());
        out.lines()
            .map(str::trim)
            .find(|l| l.starts_with("rack1:"))
            .unwrap_or_else(|| panic!("no rack1: token in:\n{out}"))
            .to_owned()
    }

    /// Whether `provider machines --json` lists `mac` as a machine of appliance `appliance`.
    pub fn has_machine(&self, appliance: &str, mac: &str) -> bool {
        self.machine_json(mac)
            .is_some_and(|m| m.contains(&format!("\"appliance\":{appliance}")))
    }

    /// The machine with `mac` in `provider machines --json`, as its JSON text without
    /// whitespace (from after its `"key":`), e.g. to look for `"observed_power":"on"`.
    pub fn machine_json(&self, mac: &str) -> Option<String> {
        let json: String = self
            .cli(&["machines", "--json"])
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        // One object per machine, each starting with its key; the MAC as text or as bytes.
        let bytes: Vec<String> = mac
            .split(':')
            .map(|h| u8::from_str_radix(h, 16).map_or_else(|_| h.into(), |b| b.to_string()))
            .collect();
        let as_array = format!("[{}]", bytes.join(","));
        json.split("{\"key\":")
            .find(|m| {
                m.to_ascii_lowercase().contains(&mac.to_ascii_lowercase()) || m.contains(&as_array)
            })
            .map(str::to_owned)
    }

    /// A number in the first appliance's `provider appliances --json` entry
    /// (`applied_events`, `last_applied_seq`, `outstanding_commands`, ...).
    pub fn appliance_count(&self, key: &str) -> u64 {
        let json = self.cli(&["appliances", "--json"]);
        let pat = format!("\"{key}\":");
        json.split_once(&pat)
            .and_then(|(_, rest)| {
                let digits: String = rest
                    .trim_start()
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse().ok()
            })
            .unwrap_or_else(|| panic!("no number {key} in:\n{json}"))
    }
}

/// The appliance id in host-sim's `uplink enrolled appliance=ID` line.
pub fn enrolled_id(line: &str) -> String {
    field(line, "appliance")
        .unwrap_or_else(|| panic!("no appliance= in {line:?}"))
        .to_owned()
}
