//! `images`: builds a board's flashable image with its config region, prints the image's
//! enrollment QR, boots a QEMU-board image on a TAP (the simulator a user tries before
//! flashing), and reports a firmware's footprint by section and crate. See README.md.

mod assets;
mod config;
mod elf;
mod footprint;
mod image;
mod manifest;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use qrcode::render::unicode;
use qrcode::{EcLevel, QrCode};

use crate::config::NetworkArgs;

#[derive(Parser)]
#[command(about = "Flashable images for the appliance's boards")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes DIR/firmware.elf, firmware.bin, config.bin and manifest.json.
    Build {
        #[arg(long)]
        board: String,
        /// The firmware ELF (default: the board's release build under target/).
        #[arg(long)]
        elf: Option<PathBuf>,
        /// The config as JSON with the flags' names, instead of the flags.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        network: NetworkArgs,
        /// Enrollment token (`rack1:...`, from `provider token create`).
        #[arg(long)]
        token: Option<String>,
        /// A boot file for the asset region (`undionly.kpxe=/usr/lib/ipxe/undionly.kpxe`; a
        /// `boot.ipxe` is the script template); repeatable. Written to DIR/assets.bin.
        #[arg(long = "asset", value_name = "NAME=PATH")]
        assets: Vec<String>,
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Prints the enrollment QR code of the image's token.
    Qr { dir: PathBuf },
    /// Boots a QEMU-board image with its NIC on TAP (replaces this process with QEMU).
    RunQemu {
        dir: PathBuf,
        #[arg(long)]
        tap: String,
        /// Print the QEMU command instead of running it.
        #[arg(long)]
        print: bool,
    },
    /// Flash and static RAM of a firmware ELF by section and by crate.
    Footprint {
        elf: PathBuf,
        /// Budget file (`boards/budget.txt`): fail if the board is over its line.
        #[arg(long, requires = "board")]
        budget: Option<PathBuf>,
        /// The board whose budget line applies.
        #[arg(long, requires = "budget")]
        board: Option<String>,
        /// Markdown tables (for BENCHMARKS.md) instead of the plain table.
        #[arg(long)]
        markdown: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("images: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Build {
            board,
            elf,
            config,
            network,
            token,
            assets,
            out,
        } => {
            let board = image::board(&board)?;
            let network = match config {
                Some(_) if network.any() => {
                    return Err("--config and the network flags exclude each other".into());
                }
                Some(path) => NetworkArgs::from_file(&path)?,
                None => network,
            };
            let config = network.board_config(token.as_deref())?;
            let elf = elf.unwrap_or_else(|| PathBuf::from(board.default_elf));
            let manifest = image::build(board, &elf, &config, &out)?;
            let manifest = assets::add(&out, manifest, &assets)?;
            println!("image {} for {}:", out.display(), manifest.board);
            for f in &manifest.files {
                let at = f.load_address.as_deref().unwrap_or("-");
                println!(
                    "  {:<13} {:>9} bytes  at {at:<10}  sha256 {}",
                    f.name, f.size, f.sha256
                );
            }
            println!(
                "  config: ip={} dhcp={}",
                manifest.config.ip, manifest.config.dhcp
            );
            Ok(())
        }
        Command::Qr { dir } => print_qr(&dir),
        Command::RunQemu { dir, tap, print } => {
            let mut args = image::qemu_args(&dir, &tap)?;
            args.extend(assets::qemu_args(&dir)?);
            if print {
                println!("qemu-system-arm {}", args.join(" "));
                return Ok(());
            }
            exec_qemu(&args)
        }
        Command::Footprint {
            elf,
            budget,
            board,
            markdown,
        } => print_footprint(&elf, budget.as_deref().zip(board.as_deref()), markdown),
    }
}

/// Prints the report, then checks the budget, so an over-budget run still shows by whom.
fn print_footprint(
    elf: &Path,
    budget: Option<(&Path, &str)>,
    markdown: bool,
) -> Result<(), String> {
    let bytes = std::fs::read(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    let report = footprint::analyze(&bytes).map_err(|e| format!("{}: {e}", elf.display()))?;
    if markdown {
        print!("{}", footprint::markdown(&report));
    } else {
        print!("{}", footprint::plain(&report, &elf.display().to_string()));
    }
    if let Some((file, board)) = budget {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let limits = footprint::budget::parse(&text, board)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        println!("\n{}", footprint::budget::check(&report, limits, board)?);
    }
    Ok(())
}

fn print_qr(dir: &Path) -> Result<(), String> {
    let config = image::read_config(dir)?;
    let token = config
        .token
        .ok_or_else(|| format!("{}: the image has no enrollment token", dir.display()))?;
    // Medium error correction, inverted for dark terminals: as `provider token create`.
    let code = QrCode::with_error_correction_level(token.as_bytes(), EcLevel::M)
        .map_err(|e| format!("QR code: {e}"))?;
    let terminal = code
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    println!("Enrollment token of {}:\n\n{terminal}", dir.display());
    Ok(())
}

/// Becomes QEMU, so Ctrl-a x, signals and the exit status are QEMU's own.
fn exec_qemu(args: &[String]) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let e = std::process::Command::new("qemu-system-arm")
        .args(args)
        .exec();
    Err(format!(
        "qemu-system-arm: {e} (Debian: apt-get install qemu-system-arm)"
    ))
}
