//! What the image needs from the firmware ELF: the raw binary a flasher writes (as
//! `objcopy -O binary` makes it) and the config region's place (`memory.x` symbols).

use object::elf::{FileHeader32, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol};

/// Largest raw binary: a segment far from the others (data linked to load in RAM) would
/// otherwise make a file of the whole gap.
const RAW_MAX: usize = 16 << 20;

/// The firmware's loadable bytes laid out from `load_address`, gaps zero-filled.
pub struct RawImage {
    pub load_address: u32,
    pub bytes: Vec<u8>,
}

/// Where the firmware reads its config (`__board_config_start..__board_config_end`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigRegion {
    pub address: u32,
    pub size: u32,
}

/// The raw binary of `elf`'s loadable segments at their load (physical) addresses, so
/// initialised data sits in flash where the startup code copies it from.
pub fn raw_image(elf: &[u8]) -> Result<RawImage, String> {
    let header = FileHeader32::<Endianness>::parse(elf).map_err(|e| format!("ELF: {e}"))?;
    let endian = header.endian().map_err(|e| format!("ELF: {e}"))?;
    let segments = header
        .program_headers(endian, elf)
        .map_err(|e| format!("ELF program headers: {e}"))?;
    let mut loads = Vec::new();
    for ph in segments {
        if ph.p_type(endian) != PT_LOAD || ph.p_filesz(endian) == 0 {
            continue;
        }
        let data = ph
            .data(endian, elf)
            .map_err(|()| "ELF: segment outside the file".to_string())?;
        loads.push((ph.p_paddr(endian), data));
    }
    let start = loads
        .iter()
        .map(|(at, _)| *at)
        .min()
        .ok_or("ELF: no loadable segment")?;
    let mut bytes = Vec::new();
    for (at, data) in loads {
        let from = usize::try_from(at - start).map_err(|e| e.to_string())?;
        let to = from + data.len();
        if to > RAW_MAX {
            return Err(format!(
                "ELF: loadable segments span over {RAW_MAX} bytes (segment at {at:#x})"
            ));
        }
        if to > bytes.len() {
            bytes.resize(to, 0);
        }
        bytes[from..to].copy_from_slice(data);
    }
    Ok(RawImage {
        load_address: start,
        bytes,
    })
}

/// The config region the firmware was linked with.
pub fn config_region(elf: &[u8]) -> Result<ConfigRegion, String> {
    let file = object::File::parse(elf).map_err(|e| format!("ELF: {e}"))?;
    let symbol = |name: &str| {
        file.symbol_by_name(name)
            .map(|s| s.address())
            .ok_or_else(|| format!("ELF has no {name}: not a firmware with a config region"))
    };
    let (start, end) = (
        symbol("__board_config_start")?,
        symbol("__board_config_end")?,
    );
    let address = u32::try_from(start).map_err(|e| e.to_string())?;
    let size = end
        .checked_sub(start)
        .and_then(|s| u32::try_from(s).ok())
        .ok_or("ELF: config region ends before it starts")?;
    Ok(ConfigRegion { address, size })
}
