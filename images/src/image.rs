//! `images build` and what reads a built image back (`qr`, `run-qemu`).

use std::fs;
use std::path::{Path, PathBuf};

use board_config::BoardConfig;
use board_config::region::REGION_MAX;

use crate::elf::{config_region, raw_image};
use crate::manifest::{ConfigSummary, FileEntry, Manifest};

pub const ELF: &str = "firmware.elf";
pub const BIN: &str = "firmware.bin";
pub const CONFIG: &str = "config.bin";

/// A board `images` knows: its firmware package and how QEMU runs it.
pub struct Board {
    pub name: &'static str,
    /// The release ELF `cargo build --release -p NAME --target TARGET` makes.
    pub default_elf: &'static str,
    /// QEMU's `-machine`, for boards QEMU emulates.
    pub qemu_machine: Option<&'static str>,
}

pub const BOARDS: &[Board] = &[
    Board {
        name: "qemu-mps2-an386",
        default_elf: "target/thumbv7em-none-eabihf/release/qemu-mps2-an386",
        qemu_machine: Some("mps2-an386"),
    },
    // Flashed with probe-rs: firmware.elf, then config.bin at the config region's address
    // (boards/nucleo-h743zi/README.md).
    Board {
        name: "nucleo-h743zi",
        default_elf: "target/thumbv7em-none-eabihf/release/nucleo-h743zi",
        qemu_machine: None,
    },
];

pub fn board(name: &str) -> Result<&'static Board, String> {
    BOARDS.iter().find(|b| b.name == name).ok_or_else(|| {
        let known: Vec<_> = BOARDS.iter().map(|b| b.name).collect();
        format!("unknown board {name} (known: {})", known.join(", "))
    })
}

/// Writes the image of `board` with `config` from the firmware at `elf` into `out`.
pub fn build(
    board: &Board,
    elf: &Path,
    config: &BoardConfig,
    out: &Path,
) -> Result<Manifest, String> {
    let firmware = fs::read(elf).map_err(|e| {
        format!(
            "{}: {e} (build it: cargo build --release -p {} --target thumbv7em-none-eabihf, or pass --elf)",
            elf.display(),
            board.name
        )
    })?;
    let raw = raw_image(&firmware)?;
    let region = config_region(&firmware)?;
    let mut buf = vec![0u8; REGION_MAX];
    let n = board_config::encode(config, &mut buf).map_err(|e| format!("config: {e}"))?;
    buf.truncate(n);
    if n > region.size as usize {
        return Err(format!(
            "config ({n} bytes) over the firmware's region ({} bytes)",
            region.size
        ));
    }
    fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = out.join(name);
        fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(ELF, &firmware)?;
    write(BIN, &raw.bytes)?;
    write(CONFIG, &buf)?;
    let mut config_entry = FileEntry::new(CONFIG, &buf, Some(region.address));
    config_entry.region_size = Some(region.size);
    let manifest = Manifest {
        board: board.name.into(),
        files: vec![
            FileEntry::new(ELF, &firmware, None),
            FileEntry::new(BIN, &raw.bytes, Some(raw.load_address)),
            config_entry,
        ],
        config: ConfigSummary::new(config),
    };
    manifest.write(out)?;
    Ok(manifest)
}

/// The config an image holds, checked as the firmware reads it.
pub fn read_config(dir: &Path) -> Result<BoardConfig, String> {
    let path = dir.join(CONFIG);
    let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    board_config::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// `qemu-system-arm`'s arguments that boot the image in `dir` with its NIC on `tap`.
pub fn qemu_args(dir: &Path, tap: &str) -> Result<Vec<String>, String> {
    let manifest = Manifest::read(dir)?;
    let machine = board(&manifest.board)?
        .qemu_machine
        .ok_or_else(|| format!("{} is not a QEMU board", manifest.board))?;
    let address = manifest
        .file(CONFIG)?
        .load_address
        .clone()
        .ok_or_else(|| format!("manifest: {CONFIG} has no load address"))?;
    let mac = read_config(dir)?.mac;
    let path = |name: &str| -> Result<String, String> {
        let p: PathBuf = dir.join(name);
        p.into_os_string()
            .into_string()
            .map_err(|p| format!("{}: not UTF-8", PathBuf::from(p).display()))
    };
    Ok(vec![
        "-machine".into(),
        machine.into(),
        "-nographic".into(),
        "-semihosting-config".into(),
        "enable=on,target=native".into(),
        "-kernel".into(),
        path(ELF)?,
        "-device".into(),
        format!("loader,file={},addr={address}", path(CONFIG)?),
        "-nic".into(),
        format!(
            "tap,ifname={tap},script=no,downscript=no,model=lan9118,mac={}",
            appliance::net::MacAddr(mac)
        ),
    ])
}
