//! The board's regions, read in place at boot: the config (`board_config::region`) and the
//! boot files (`board_config::assets`), written by the host (`images build`, a test, or QEMU's
//! `-device loader`). Every board's `memory.x` places them and defines the symbols
//! `__board_config_start/_end` and `__board_assets_start/_end`; nothing is linked there.
//! Without a valid region the board says so in its log and runs on what it has built in.

use core::net::Ipv4Addr;

use appliance::assets::StaticAssets;
use appliance::http::script::check_template;
use appliance::http::{DEFAULT_TEMPLATE, ScriptConfig};
use board_config::assets::{Assets, AssetsError};
use board_config::{BoardConfig, RegionError};
use defmt::Display2Format;

use crate::assets::Layered;

/// What TFTP and HTTP serve: the asset region over the files built into the firmware.
pub type Store = Layered<Assets<'static>, StaticAssets<'static>>;

/// The asset region's file that is the script template rather than a file to serve.
const TEMPLATE: &str = "boot.ipxe";

unsafe extern "C" {
    static __board_config_start: u8;
    static __board_config_end: u8;
    static __board_assets_start: u8;
    static __board_assets_end: u8;
}

/// The bytes between two linker symbols.
///
/// # Safety
/// `[start, end)` must be memory the board can read (RAM, or memory-mapped flash) that
/// nothing writes while the firmware runs.
unsafe fn between(start: *const u8, end: *const u8) -> &'static [u8] {
    let len = (end as usize).saturating_sub(start as usize);
    // SAFETY: the caller's contract; the pointer is the linker's address, exposed as plain
    // memory.
    unsafe { core::slice::from_raw_parts(core::ptr::with_exposed_provenance(start as usize), len) }
}

/// The config in the config region, or the compiled-in defaults when there is none or it
/// fails a check (logged: a bad region should be seen, not silently half-used).
pub fn config() -> BoardConfig {
    // SAFETY: memory.x reserves the config region for this (readable; zeroed RAM in QEMU
    // without a loader, erased flash on a part) and the firmware never writes it.
    let region = unsafe {
        between(
            &raw const __board_config_start,
            &raw const __board_config_end,
        )
    };
    match board_config::decode(region) {
        Ok(config) => {
            defmt::info!(
                "config: from region addr={=usize:#x} token={}",
                region.as_ptr() as usize,
                if config.token.is_some() {
                    "present"
                } else {
                    "absent"
                }
            );
            config
        }
        Err(RegionError::Empty) => {
            defmt::info!("config: none in region, compiled-in defaults");
            BoardConfig::default()
        }
        Err(e) => {
            defmt::warn!(
                "config: region invalid ({}), compiled-in defaults",
                Display2Format(&e)
            );
            BoardConfig::default()
        }
    }
}

/// The asset region's files, checked once at boot (none, logged, when it fails a check).
pub fn assets() -> Assets<'static> {
    // SAFETY: as in `config`, for the asset region.
    let region = unsafe {
        between(
            &raw const __board_assets_start,
            &raw const __board_assets_end,
        )
    };
    match board_config::assets::decode(region) {
        Ok(a) => {
            defmt::info!("assets: region files={}", a.len());
            for (name, data) in a.iter() {
                defmt::info!("assets: file {} bytes={}", name, data.len());
            }
            a
        }
        Err(AssetsError::Empty) => {
            defmt::info!("assets: none in region, built-in files only");
            Assets::EMPTY
        }
        Err(e) => {
            defmt::warn!(
                "assets: region invalid ({}), built-in files only",
                Display2Format(&e)
            );
            Assets::EMPTY
        }
    }
}

/// `region` over `built_in`.
pub fn store(region: Assets<'static>, built_in: &'static [(&'static str, &'static [u8])]) -> Store {
    Layered {
        upper: region,
        lower: StaticAssets::new(built_in),
    }
}

/// The script settings for a board at `ip`, with the region's template when it passes the
/// appliance's check (a site points the kernel and initrd at its own server this way: they
/// do not fit a board).
pub fn script(ip: Ipv4Addr, region: &Assets<'static>) -> ScriptConfig<'static> {
    let template = match region.get(TEMPLATE).map(core::str::from_utf8) {
        Some(Ok(t)) if check_template(t).is_ok() => {
            defmt::info!("http: script template from the region");
            t
        }
        Some(_) => {
            defmt::warn!(
                "http: the region's {} is not a template, the default",
                TEMPLATE
            );
            DEFAULT_TEMPLATE
        }
        None => DEFAULT_TEMPLATE,
    };
    ScriptConfig {
        template,
        ..ScriptConfig::new(ip)
    }
}
