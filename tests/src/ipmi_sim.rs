//! OpenIPMI's `ipmi_sim` as a BMC on a loopback UDP port (or on an address in a namespace on
//! the rack bridge, where the appliance reaches it), with a chassis whose power and boot
//! device live in files (or a chassis control program of the caller's, e.g. one that starts a
//! QEMU VM). Killed when dropped; its files live in the caller's work directory.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use std::{fs, os::unix::fs::PermissionsExt};

use crate::net::{Netns, in_named_netns};
use crate::proc::{Child, Output, run_timeout};
use crate::wait::poll_until;

/// The BMC's user (administrator) in every instance.
pub const USER: &str = "admin";
pub const PASSWORD: &str = "password";

/// How long an instance may take to answer its first packet.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The default chassis: `<dir>/power` holds 0 or 1, `<dir>/boot` the next boot device
/// (`default`, `pxe`, ...), `<dir>/calls.log` every call. ipmi_sim runs
/// `PROGRAM get|set PARAM [VALUE]...` (after the words of the configured command).
/// `bench/bmc.sh` uses the same script.
const CHASSIS_SCRIPT: &str = include_str!("../fixtures/chassis-file.sh");

/// ipmi_sim's chassis control: `DIR/chassis.sh <dev> get|set PARAM [VALUE]...`. Power 1 starts
/// the VM from `qemu.args` (one argument per line; `BOOTDEV` becomes `n` after a PXE
/// override, else `c`), and a one-time override is consumed by that power-on, as firmware
/// does; power 0 kills it.
const VM_CHASSIS: &str = r#"#!/bin/bash
D=$(dirname "$0"); shift; op=$1; shift
running() { [ -f "$D/qemu.pid" ] && kill -0 "$(cat "$D/qemu.pid")" 2>/dev/null; }
start_vm() {
  boot=$(cat "$D/boot" 2>/dev/null || echo default)
  mapfile -t args < "$D/qemu.args"
  for i in "${!args[@]}"; do
    [ "${args[$i]}" = BOOTDEV ] && { [ "$boot" = pxe ] && args[$i]=n || args[$i]=c; }
  done
  echo "power on boot=$boot" >> "$D/events.log"
  "${args[@]}" -pidfile "$D/qemu.pid" -daemonize >> "$D/qemu.log" 2>&1
  [ "$boot" = pxe ] && echo default > "$D/boot"
}
stop_vm() { running && kill "$(cat "$D/qemu.pid")"; rm -f "$D/qemu.pid"; echo "power off" >> "$D/events.log"; }
case $op in
get) for p in "$@"; do case $p in
       power) running && echo "power:1" || echo "power:0";;
       boot) echo "boot:$(cat "$D/boot" 2>/dev/null || echo default)";;
       *) exit 1;; esac; done;;
set) while [ $# -ge 2 ]; do case $1 in
       power) if [ "$2" = 1 ]; then running || start_vm; else stop_vm; fi;;
       reset) stop_vm; start_vm;;
       boot) echo "$2" > "$D/boot"; echo "boot=$2" >> "$D/events.log";;
       *) exit 1;; esac; shift 2; done;;
*) exit 1;;
esac
"#;

/// The management controller ipmi_sim emulates (as in shared/reference/peer-configs/bmc.emu).
const BMC_EMU: &str = "mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
";

/// True when ipmi_sim and ipmitool are installed; otherwise prints why the test is skipped.
pub fn available() -> bool {
    let missing: Vec<&str> = ["ipmi_sim", "ipmitool"]
        .into_iter()
        .filter(|p| crate::which(p).is_none())
        .collect();
    if missing.is_empty() {
        true
    } else {
        eprintln!(
            "skipped: {} not installed (Debian packages openipmi, ipmitool)",
            missing.join(", ")
        );
        false
    }
}

/// One running ipmi_sim.
pub struct IpmiSim {
    child: Child,
    ip: String,
    port: u16,
    dir: PathBuf,
    /// The namespace it runs in (by name), `None`: the test's own.
    ns: Option<String>,
}

impl IpmiSim {
    /// An instance on 127.0.0.1:`port` with the file-backed chassis, files in `parent`.
    pub fn start(parent: &Path, port: u16) -> IpmiSim {
        IpmiSim::start_with(parent, port, None)
    }

    /// Like `start`, with `chassis_control` (a command line; ipmi_sim appends
    /// `get|set PARAM [VALUE]...`) instead of the file-backed chassis.
    pub fn start_with(parent: &Path, port: u16, chassis_control: Option<&str>) -> IpmiSim {
        IpmiSim::spawn(None, "127.0.0.1", parent, port, chassis_control)
    }

    /// Like `start_with`, listening on `ip` inside `ns` (e.g. a host on the rack bridge); its
    /// `ipmitool` runs there too.
    pub fn start_in(
        ns: &Netns,
        ip: &str,
        parent: &Path,
        port: u16,
        chassis_control: Option<&str>,
    ) -> IpmiSim {
        IpmiSim::spawn(Some(ns.name()), ip, parent, port, chassis_control)
    }

    fn spawn(
        ns: Option<&str>,
        ip: &str,
        parent: &Path,
        port: u16,
        chassis_control: Option<&str>,
    ) -> IpmiSim {
        let dir = parent.join(format!("ipmi_sim-{port}"));
        let state = dir.join("state");
        let chassis = dir.join("chassis");
        for d in [&state, &chassis] {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        let control = match chassis_control {
            Some(c) => c.to_owned(),
            None => {
                let script = dir.join("chassisctl.sh");
                write(&script, CHASSIS_SCRIPT);
                fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
                    .unwrap_or_else(|e| panic!("chmod {}: {e}", script.display()));
                format!("{} {} 0x20", script.display(), chassis.display())
            }
        };
        let conf = format!(
            "name \"bmc{port}\"
set_working_mc 0x20
  startlan 1
    addr {ip} {port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control \"{control}\"
  user 2 true \"{USER}\" \"{PASSWORD}\" admin 10 none md2 md5 straight
"
        );
        write(&dir.join("lan.conf"), &conf);
        write(&dir.join("bmc.emu"), BMC_EMU);
        let mut cmd = command(ns, "ipmi_sim");
        cmd.arg("-c")
            .arg(dir.join("lan.conf"))
            .arg("-f")
            .arg(dir.join("bmc.emu"))
            .arg("-s")
            .arg(&state)
            .arg("-n");
        let child = Child::spawn(
            &format!("ipmi_sim:{port}"),
            &mut cmd,
            &dir.join("ipmi_sim.log"),
        );
        let mut sim = IpmiSim {
            child,
            ip: ip.to_owned(),
            port,
            dir,
            ns: ns.map(str::to_owned),
        };
        sim.wait_ready();
        sim
    }

    /// `n` instances on ports `base..base + n` (started one after the other).
    pub fn start_many(
        parent: &Path,
        base: u16,
        n: u16,
        chassis_control: Option<&str>,
    ) -> Vec<IpmiSim> {
        (0..n)
            .map(|i| IpmiSim::start_with(parent, base + i, chassis_control))
            .collect()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `IP:PORT`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// The file-backed chassis' directory (`power`, `boot`, `calls.log`).
    pub fn chassis_dir(&self) -> PathBuf {
        self.dir.join("chassis")
    }

    /// Runs `ipmitool -I lanplus -C 3` against this BMC as the administrator (15 s limit).
    pub fn ipmitool(&self, args: &[&str]) -> Output {
        let port = self.port.to_string();
        let mut cmd = command(self.ns.as_deref(), "ipmitool");
        cmd.args([
            "-I", "lanplus", "-H", &self.ip, "-p", &port, "-U", USER, "-P", PASSWORD,
        ])
        .args(["-C", "3", "-N", "1", "-R", "3"])
        .args(args);
        run_timeout(&mut cmd, Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// "on" or "off" as ipmitool reads the chassis power.
    pub fn ipmitool_power(&self) -> String {
        let out = self.ipmitool(&["chassis", "power", "status"]);
        assert!(
            out.success(),
            "ipmitool power status: {}{}",
            out.stdout,
            out.stderr
        );
        match out.stdout.trim() {
            "Chassis Power is on" => "on".into(),
            "Chassis Power is off" => "off".into(),
            other => panic!("ipmitool said {other:?}"),
        }
    }

    /// Waits until the BMC answers Get Channel Authentication Capabilities (IPMI v1.5
    /// format, as ipmitool sends it first).
    fn wait_ready(&mut self) {
        let probe: [u8; 23] = [
            0x06, 0x00, 0xFF, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x09, 0x20, 0x18, 0xC8, 0x81,
            0x04, 0x38, 0x8E, 0x04, 0xB1,
        ];
        let addr = self.addr();
        let send = move || -> Result<bool, String> {
            let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("probe socket: {e}"))?;
            sock.connect(&addr)
                .map_err(|e| format!("probe {addr}: {e}"))?;
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .map_err(|e| e.to_string())?;
            let _ = sock.send(&probe);
            let mut buf = [0u8; 64];
            Ok(sock.recv(&mut buf).is_ok_and(|n| n > 0))
        };
        let what = format!("ipmi_sim on {} to answer", self.addr());
        let (child, ns) = (&mut self.child, self.ns.clone());
        poll_until(&what, READY_TIMEOUT, || {
            child.check_alive()?;
            let answered = match &ns {
                // The socket must live in the namespace: a thread that joined it sends.
                Some(ns) => in_named_netns(ns, send.clone())?,
                None => send()?,
            };
            Ok(answered.then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// `prog`, run inside namespace `ns` if given.
fn command(ns: Option<&str>, prog: &str) -> Command {
    match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, prog]);
            c
        }
        None => Command::new(prog),
    }
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Sets up a QEMU VM behind ipmi_sim's chassis in `dir`: `qemu` (e.g. `Vm::command`) with its
/// `-boot` device left to the script (network only after a PXE override) and `-no-reboot`.
/// Returns the `chassis_control` command line and a guard that kills the VM when dropped.
pub fn vm_chassis(dir: &Path, qemu: &Command) -> (String, VmGuard) {
    let mut args: Vec<String> = std::iter::once(qemu.get_program())
        .chain(qemu.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let boot = args
        .iter()
        .position(|a| a == "-boot")
        .expect("-boot in the VM's arguments");
    args[boot + 1] = "BOOTDEV".into();
    args.push("-no-reboot".into());
    write(&dir.join("qemu.args"), &(args.join("\n") + "\n"));
    let script = dir.join("chassis.sh");
    write(&script, VM_CHASSIS);
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", script.display()));
    let control = format!("{} 0x20", script.display());
    (control, VmGuard(dir.join("qemu.pid")))
}

/// Kills the daemonized VM of a [`vm_chassis`], whatever the test's outcome.
pub struct VmGuard(PathBuf);

impl Drop for VmGuard {
    fn drop(&mut self) {
        if let Ok(pid) = fs::read_to_string(&self.0) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}
