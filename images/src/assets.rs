//! Boot assets in their own region: `images build --asset NAME=PATH` (repeatable) packs the
//! files with `board_config::assets` into `assets.bin`, placed at the firmware's
//! `__board_assets_start` and listed in the manifest like `config.bin`; `run-qemu` loads it
//! beside the config. iPXE binaries and a `boot.ipxe` script template go here: they are not
//! part of the firmware's flash budget.

use std::fs;
use std::path::Path;

use object::{Object, ObjectSymbol};

use crate::image::ELF;
use crate::manifest::{FileEntry, Manifest};

pub const ASSETS: &str = "assets.bin";

/// The asset region the firmware was linked with: address and size.
fn region(elf: &[u8]) -> Result<(u32, u32), String> {
    let file = object::File::parse(elf).map_err(|e| format!("ELF: {e}"))?;
    let symbol = |name: &str| {
        file.symbol_by_name(name)
            .map(|s| s.address())
            .ok_or_else(|| format!("ELF has no {name}: the firmware has no asset region"))
    };
    let (start, end) = (
        symbol("__board_assets_start")?,
        symbol("__board_assets_end")?,
    );
    let address = u32::try_from(start).map_err(|e| e.to_string())?;
    let size = end
        .checked_sub(start)
        .and_then(|s| u32::try_from(s).ok())
        .ok_or("ELF: asset region ends before it starts")?;
    Ok((address, size))
}

/// Packs `specs` (`NAME=PATH`) into `dir`'s image as `assets.bin` and adds it to `manifest`
/// (written again); nothing when there are none.
pub fn add(dir: &Path, mut manifest: Manifest, specs: &[String]) -> Result<Manifest, String> {
    if specs.is_empty() {
        return Ok(manifest);
    }
    let mut files = Vec::new();
    for spec in specs {
        let (name, path) = spec
            .split_once('=')
            .ok_or_else(|| format!("--asset {spec}: expected NAME=PATH"))?;
        let bytes = fs::read(path).map_err(|e| format!("--asset {spec}: {e}"))?;
        files.push((name.to_owned(), bytes));
    }
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let mut packed = vec![0; board_config::assets::encoded_len(&refs)];
    board_config::assets::encode(&refs, &mut packed).map_err(|e| format!("assets: {e}"))?;
    let elf = fs::read(dir.join(ELF)).map_err(|e| format!("{ELF}: {e}"))?;
    let (address, size) = region(&elf)?;
    if packed.len() > size as usize {
        return Err(format!(
            "assets ({} bytes) over the firmware's asset region ({size} bytes)",
            packed.len()
        ));
    }
    let path = dir.join(ASSETS);
    fs::write(&path, &packed).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut entry = FileEntry::new(ASSETS, &packed, Some(address));
    entry.region_size = Some(size);
    manifest.files.push(entry);
    manifest.write(dir)?;
    Ok(manifest)
}

/// QEMU's arguments that load the image's assets, if it has any.
pub fn qemu_args(dir: &Path) -> Result<Vec<String>, String> {
    let manifest = Manifest::read(dir)?;
    let Some(entry) = manifest.files.iter().find(|f| f.name == ASSETS) else {
        return Ok(Vec::new());
    };
    let address = (entry.load_address.as_deref())
        .ok_or_else(|| format!("manifest: {ASSETS} has no load address"))?;
    let path = dir.join(ASSETS);
    let path = path.to_str().ok_or("image directory: not UTF-8")?;
    Ok(vec![
        "-device".into(),
        format!("loader,file={path},addr={address},force-raw=on"),
    ])
}
