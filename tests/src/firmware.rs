//! The QEMU board's firmware (`boards/qemu-mps2-an386`) booted in `qemu-system-arm` on a TAP
//! in the rack bridge, with its defmt log (semihosting output) decoded on the host.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use defmt_decoder::{DecodeError, Table};

use crate::net::Rack;
use crate::proc::Child;
use crate::wait::poll_until;
use crate::{Workdir, require_tool, target_dir};

/// The firmware's MAC (fixed in the firmware; QEMU's NIC is given the same).
pub const FIRMWARE_MAC: &str = "02:00:00:77:00:01";

/// The release ELF that `tests/run-all.sh` builds, when running as root and it is there;
/// otherwise `None` after saying why the test is skipped.
pub fn elf_for_test() -> Option<PathBuf> {
    if !crate::require_root() {
        return None;
    }
    let p = target_dir().join("thumbv7em-none-eabihf/release/qemu-mps2-an386");
    if !p.is_file() {
        eprintln!(
            "skipped: firmware not built (tests/run-all.sh builds it: cargo build \
             -p qemu-mps2-an386 --release --target thumbv7em-none-eabihf)"
        );
        return None;
    }
    Some(p)
}

/// The firmware built with its uplink (feature `uplink`, profile `firmware`: optimised for
/// size, as TLS needs to fit the flash budget), when running as root and it is there.
pub fn uplink_elf_for_test() -> Option<PathBuf> {
    if !crate::require_root() {
        return None;
    }
    let p = target_dir().join("thumbv7em-none-eabihf/firmware/qemu-mps2-an386");
    if !p.is_file() {
        eprintln!(
            "skipped: firmware with the uplink not built (cargo build -p qemu-mps2-an386 \
             --profile firmware --target thumbv7em-none-eabihf --features uplink)"
        );
        return None;
    }
    Some(p)
}

/// The `images` binary (`$IMAGES_BIN`, else the debug build: `cargo build -p images`).
pub fn images() -> PathBuf {
    crate::built_binary("images", "IMAGES_BIN")
}

/// `images build` of the QEMU board from `elf` into `<wd>/image`, at 10.77.0.1/24 handing
/// out `pool`, with `extra` flags (`--token`, `--asset`, ...); returns the image directory.
pub fn build_image(wd: &Workdir, elf: &Path, pool: &str, extra: &[&str]) -> PathBuf {
    let image = wd.dir("image");
    let out = std::process::Command::new(images())
        .args(["build", "--board", "qemu-mps2-an386", "--elf"])
        .arg(elf)
        .args(["--ip", "10.77.0.1/24", "--dhcp-pool", pool])
        .args(extra)
        .arg("-o")
        .arg(&image)
        .output()
        .unwrap_or_else(|e| panic!("images build: {e}"));
    assert!(out.status.success(), "images build: {out:?}");
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    image
}

/// A running board: QEMU (killed on drop) and its log.
pub struct Board {
    pub child: Child,
    table: Table,
    /// QEMU's output: the semihosting stdout (defmt frames), and any message of QEMU's own,
    /// which the decoder skips as a malformed frame.
    raw: PathBuf,
    /// The decoded lines, rewritten on each read (kept with the test's files).
    text: PathBuf,
}

impl Board {
    /// Boots `elf` (no config region: its compiled-in config) with its NIC on `tap`
    /// (created here in the rack bridge).
    pub fn boot(rack: &Rack, wd: &Workdir, elf: &Path, tap: &str) -> Board {
        rack.add_tap(tap);
        Board::boot_again(rack, wd, elf, tap, "firmware")
    }

    /// Boots `elf` again on `tap`, which an earlier boot added to the rack (its QEMU gone),
    /// with the log in `<name>-qemu.log`. The board's flash file in the work directory
    /// (`qemu-flash.bin`, QEMU's working directory) is what the earlier boot left.
    pub fn boot_again(rack: &Rack, wd: &Workdir, elf: &Path, tap: &str, name: &str) -> Board {
        require_tool("qemu-system-arm", "qemu-system-arm");
        let mut cmd = rack.ns().command("qemu-system-arm");
        // With target=native, the firmware's writes to stdout are QEMU's own stdout.
        cmd.args(["-machine", "mps2-an386", "-nographic"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .arg("-kernel")
            .arg(elf)
            .arg("-nic")
            .arg(format!(
                "tap,ifname={tap},script=no,downscript=no,model=lan9118,mac={FIRMWARE_MAC}"
            ));
        Board::start(wd, elf, &mut cmd, name)
    }

    /// Boots the image in `dir` (made by `images build`) with `images run-qemu`, which
    /// becomes QEMU with the image's config region loaded.
    pub fn boot_image(rack: &Rack, wd: &Workdir, dir: &Path, tap: &str) -> Board {
        require_tool("qemu-system-arm", "qemu-system-arm");
        let bin = images();
        let mut cmd = rack.ns().command(bin.to_str().expect("utf-8 path"));
        cmd.arg("run-qemu").arg(dir).args(["--tap", tap]);
        rack.add_tap(tap);
        Board::start(wd, &dir.join("firmware.elf"), &mut cmd, "firmware")
    }

    /// Starts `cmd` (QEMU, or what becomes QEMU) in the work directory, where the board
    /// keeps its flash file, with its output in `<name>-qemu.log`.
    fn start(wd: &Workdir, elf: &Path, cmd: &mut Command, name: &str) -> Board {
        let bytes = fs::read(elf).unwrap_or_else(|e| panic!("read {}: {e}", elf.display()));
        let table = Table::parse(&bytes)
            .unwrap_or_else(|e| panic!("defmt table of {}: {e}", elf.display()))
            .unwrap_or_else(|| panic!("{} has no defmt data", elf.display()));
        cmd.current_dir(wd.path());
        let raw = wd.file(&format!("{name}-qemu.log"));
        let child = Child::spawn(name, cmd, &raw);
        Board {
            child,
            table,
            raw,
            text: wd.file(&format!("{name}.txt")),
        }
    }

    /// Every log line so far, as `LEVEL message`.
    pub fn lines(&self) -> Vec<String> {
        let data = fs::read(&self.raw).unwrap_or_default();
        let mut decoder = self.table.new_stream_decoder();
        decoder.received(&data);
        let mut lines = Vec::new();
        loop {
            match decoder.decode() {
                Ok(frame) => {
                    let level = frame.level().map_or("PRINT", |l| l.as_str());
                    lines.push(format!(
                        "{} {}",
                        level.to_uppercase(),
                        frame.display_message()
                    ));
                }
                Err(DecodeError::Malformed) if self.table.encoding().can_recover() => {}
                Err(_) => break,
            }
        }
        let _ = fs::write(&self.text, lines.join("\n"));
        lines
    }

    /// Waits (up to `timeout` each) until the uplink enrolled and connected; returns the
    /// appliance id the provider gave it.
    pub fn wait_enrolled_and_connected(&mut self, timeout: Duration) -> String {
        let enrolled = self
            .wait_line("enrollment", timeout, |l| {
                l.contains("uplink enrolled appliance=")
            })
            .unwrap_or_else(|e| panic!("{e}"));
        self.wait_line("the tunnel", timeout, |l| l.contains("uplink connected"))
            .unwrap_or_else(|e| panic!("{e}"));
        crate::provider::enrolled_id(&enrolled)
    }

    /// Waits for a log line that `pred` accepts; fails early if QEMU exits.
    pub fn wait_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        poll_until(what, timeout, || {
            if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
                return Ok(Some(l));
            }
            self.child.check_alive().map(|()| None)
        })
        .map_err(|e| format!("{e}\n--- firmware log:\n{}", self.lines().join("\n")))
    }
}
