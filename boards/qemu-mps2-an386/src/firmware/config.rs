//! The board's config, read once at boot from the config region (`memory.x`: PSRAM at
//! 0x2100_0000, filled by `-device loader` from an image's `config.bin`). Without a valid
//! config there the board runs on its compiled-in defaults and says so in the log.

use board_config::{BoardConfig, RegionError};
use defmt::Display2Format;

unsafe extern "C" {
    /// The config region's bounds, defined in `memory.x` (nothing is linked there).
    static __board_config_start: u8;
    static __board_config_end: u8;
}

/// The region's bytes.
fn region() -> &'static [u8] {
    let start = &raw const __board_config_start;
    let end = &raw const __board_config_end;
    let len = (end as usize).saturating_sub(start as usize);
    // SAFETY: memory.x reserves [start, end) in PSRAM for the config; it is RAM on this
    // board (readable, zeroed by QEMU when no loader fills it) and nothing writes it while
    // the firmware runs. The pointer is the linker's address, exposed as plain memory.
    unsafe { core::slice::from_raw_parts(core::ptr::with_exposed_provenance(start as usize), len) }
}

/// The config in the region, or the compiled-in defaults when there is none or it fails a
/// check (logged: a bad region should be seen, not silently half-used).
pub fn load() -> BoardConfig {
    let region = region();
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
