//! QEMU x86-64 VMs as PXE clients (TCG: KVM did not reach DHCP on these machines).

use std::path::Path;
use std::process::Command;

use crate::net::Rack;
use crate::proc::Child;
use crate::{Workdir, require_tool};

pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS with QEMU's iPXE option ROM for virtio-net (sends user class iPXE, arch 0).
    BiosIpxe,
    /// OVMF (q35) with EDK2's own PXE, no option ROM (arch 7).
    UefiOvmf,
}

/// A running VM whose NIC is a TAP in the rack bridge. Killed on drop.
pub struct Vm {
    pub child: Child,
}

impl Vm {
    /// Starts a VM network-booting from `tap` (created in the rack bridge here) with `mac` and the
    /// SMBIOS `uuid`, plus `extra` QEMU arguments (`-fw_cfg ...`, `-no-reboot`). Serial console
    /// to `<wd>/<name>-serial.txt`, QEMU's output to `<name>.log`.
    #[allow(clippy::too_many_arguments)]
    pub fn start_with(
        rack: &Rack,
        wd: &Workdir,
        name: &str,
        tap: &str,
        fw: Firmware,
        mac: &str,
        uuid: &str,
        extra: &[&str],
    ) -> Vm {
        rack.add_tap(tap);
        let mut cmd = Vm::command(rack, wd, name, tap, fw, mac, uuid);
        cmd.args(extra);
        let child = Child::spawn(name, &mut cmd, &wd.file(&format!("{name}.log")));
        Vm { child }
    }

    /// The command line of such a VM (run in the rack's namespace), for whoever starts it: a
    /// test, or a BMC's chassis-control program. The TAP must exist in the rack bridge.
    pub fn command(
        rack: &Rack,
        wd: &Workdir,
        name: &str,
        tap: &str,
        fw: Firmware,
        mac: &str,
        uuid: &str,
    ) -> Command {
        require_tool("qemu-system-x86_64", "qemu-system-x86");
        let serial = wd.file(&format!("{name}-serial.txt"));
        let mut cmd = rack.ns().command("qemu-system-x86_64");
        cmd.args([
            "-accel",
            "tcg",
            "-display",
            "none",
            "-nodefaults",
            "-no-user-config",
        ])
        .args(["-monitor", "none", "-boot", "n"])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-smbios")
        .arg(format!("type=1,uuid={uuid}"))
        .arg("-netdev")
        .arg(format!("tap,id=n0,ifname={tap},script=no,downscript=no"));
        match fw {
            Firmware::BiosIpxe => {
                assert!(
                    Path::new("/usr/lib/ipxe/qemu/efi-virtio.rom").exists()
                        || Path::new("/usr/lib/ipxe/qemu/pxe-virtio.rom").exists(),
                    "iPXE ROMs missing: install ipxe-qemu"
                );
                cmd.args(["-m", "256"])
                    .arg("-device")
                    .arg(format!("virtio-net-pci,netdev=n0,mac={mac}"));
            }
            Firmware::UefiOvmf => {
                assert!(
                    Path::new(OVMF_CODE).exists(),
                    "{OVMF_CODE} missing: install ovmf"
                );
                let vars = wd.file(&format!("{name}-vars.fd"));
                std::fs::copy(OVMF_VARS, &vars).expect("copy OVMF_VARS_4M.fd");
                cmd.args(["-machine", "q35", "-m", "512"])
                    .arg("-drive")
                    .arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"))
                    .arg("-drive")
                    .arg(format!("if=pflash,format=raw,file={}", vars.display()))
                    .arg("-device")
                    .arg(format!("virtio-net-pci,netdev=n0,mac={mac},romfile="));
            }
        }
        cmd
    }
}
