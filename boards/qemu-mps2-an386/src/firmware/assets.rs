//! The boot files: the asset region (`memory.x`: PSRAM at 0x2100_1000, filled by
//! `-device loader` with a region packed by `board_config::assets`) over the files built
//! into the firmware, and the iPXE script template (the region's `boot.ipxe`, else the
//! appliance's default).

use appliance::assets::StaticAssets;
use appliance::http::script::check_template;
use appliance::http::{DEFAULT_TEMPLATE, ScriptConfig};
use board_config::assets::{self, Assets, AssetsError};
use board_services::assets::Layered;
use core::net::Ipv4Addr;
use defmt::Display2Format;

/// A marker the e2e test fetches byte-exact, there with or without a region.
const BUILT_IN: &[(&str, &[u8])] = &[("hello.txt", b"hello from qemu-mps2-an386\n")];
/// The region file that is the script template rather than a file to serve.
const TEMPLATE: &str = "boot.ipxe";

pub type Store = Layered<Assets<'static>, StaticAssets<'static>>;

unsafe extern "C" {
    /// The asset region's bounds, defined in `memory.x` (nothing is linked there).
    static __board_assets_start: u8;
    static __board_assets_end: u8;
}

fn region_bytes() -> &'static [u8] {
    let start = &raw const __board_assets_start;
    let end = &raw const __board_assets_end;
    let len = (end as usize).saturating_sub(start as usize);
    // SAFETY: memory.x reserves [start, end) in PSRAM for the assets; it is RAM on this
    // board (readable, zeroed by QEMU when no loader fills it) and nothing writes it while
    // the firmware runs.
    unsafe { core::slice::from_raw_parts(core::ptr::with_exposed_provenance(start as usize), len) }
}

/// The region's files, checked once at boot (none, logged, when it fails a check).
pub fn region() -> Assets<'static> {
    match assets::decode(region_bytes()) {
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

/// What TFTP and HTTP serve: `region` over the built-in files.
pub fn store(region: Assets<'static>) -> Store {
    Layered {
        upper: region,
        lower: StaticAssets::new(BUILT_IN),
    }
}

/// The script settings for a board at `ip`, with the region's template when it has a good one.
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
