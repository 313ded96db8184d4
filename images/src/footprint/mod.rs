//! `images footprint`: a firmware's flash and static RAM by output section and by crate,
//! from the ELF's section headers and symbol table, so a size change can be traced to the
//! crate that made it (`llvm-size` only gives the totals).

pub mod budget;
mod crates;
mod render;

use std::collections::BTreeMap;

use object::elf::{SHF_ALLOC, SHF_WRITE};
use object::{
    Architecture, Object, ObjectSection, ObjectSymbol, SectionFlags, SectionIndex, SectionKind,
    SymbolKind,
};

pub use render::{markdown, plain};

/// Crate row for symbols that are not Rust or name no crate (C, assembly, vector table).
pub const UNKNOWN: &str = "[unknown]";
/// Crate row for section bytes no symbol covers (string literals, padding, merged constants).
pub const UNATTRIBUTED: &str = "[unattributed]";

/// An allocated output section: where its bytes count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub size: u64,
    /// Has contents in the image: code, constants, the load image of `.data`.
    pub flash: bool,
    /// Writable at run time: `.data`, `.bss`, `.uninit`, a `.stack` reservation.
    pub ram: bool,
}

/// Bytes of flash and of static RAM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub flash: u64,
    pub ram: u64,
}

/// The stack cortex-m-rt places between the statics' end and the top of RAM when the
/// linker script reserves none: shown, not counted (its size is whatever RAM is left).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeStack {
    pub bottom: u64,
    pub top: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub sections: Vec<Section>,
    /// By crate, including [`UNKNOWN`] and [`UNATTRIBUTED`].
    pub crates: BTreeMap<String, Usage>,
    pub free_stack: Option<FreeStack>,
}

impl Report {
    pub fn flash(&self) -> u64 {
        self.sections
            .iter()
            .filter(|s| s.flash)
            .map(|s| s.size)
            .sum()
    }

    pub fn ram(&self) -> u64 {
        self.sections.iter().filter(|s| s.ram).map(|s| s.size).sum()
    }

    /// Crates by flash, then static RAM, largest first; the two bracketed rows last.
    pub fn crate_rows(&self) -> Vec<(&str, Usage)> {
        let mut rows: Vec<_> = self
            .crates
            .iter()
            .filter(|(name, _)| !name.starts_with('['))
            .map(|(name, usage)| (name.as_str(), *usage))
            .collect();
        rows.sort_by(|a, b| (b.1.flash, b.1.ram, a.0).cmp(&(a.1.flash, a.1.ram, b.0)));
        for name in [UNKNOWN, UNATTRIBUTED] {
            if let Some(usage) = self.crates.get(name) {
                rows.push((name, *usage));
            }
        }
        rows
    }
}

/// A sized symbol inside an allocated section, with its crate.
struct Sym {
    address: u64,
    size: u64,
    krate: Option<String>,
}

/// Reads the report from an ELF's bytes; malformed input is an error, never a panic.
pub fn analyze(elf: &[u8]) -> Result<Report, String> {
    let file = object::File::parse(elf).map_err(|e| format!("ELF: {e}"))?;
    let mut sections = Vec::new();
    let mut ranges: BTreeMap<usize, (usize, u64, u64)> = BTreeMap::new();
    for section in file.sections() {
        let SectionFlags::Elf { sh_flags } = section.flags() else {
            return Err("not an ELF file".into());
        };
        if sh_flags & u64::from(SHF_ALLOC) == 0 || (section.size() == 0 && !is_ram(sh_flags)) {
            continue;
        }
        let name = section
            .name()
            .map_err(|e| format!("ELF section name: {e}"))?;
        let nobits = matches!(
            section.kind(),
            SectionKind::UninitializedData | SectionKind::UninitializedTls
        );
        ranges.insert(
            section.index().0,
            (sections.len(), section.address(), section.size()),
        );
        sections.push(Section {
            name: name.to_string(),
            size: section.size(),
            flash: !nobits,
            ram: is_ram(sh_flags),
        });
    }
    if sections.is_empty() {
        return Err("ELF: no allocated section (not a firmware image?)".into());
    }

    // Thumb functions' addresses have bit 0 set; their code starts one byte lower.
    let thumb = file.architecture() == Architecture::Arm;
    let mut by_section: BTreeMap<usize, Vec<Sym>> = BTreeMap::new();
    // Local symbols follow their object file's STT_FILE symbol (lld groups them so), which
    // names the crate of anonymous constants and switch tables (`.Lanon.*`, `anon.*`).
    let mut file_crate: Option<String> = None;
    for symbol in file.symbols() {
        if symbol.kind() == SymbolKind::File {
            let name = symbol.name().map_err(|e| format!("ELF symbol name: {e}"))?;
            file_crate = crates::cgu_crate(name).map(str::to_string);
            continue;
        }
        let Some(SectionIndex(index)) = symbol.section_index() else {
            continue;
        };
        if symbol.size() == 0 || !ranges.contains_key(&index) {
            continue;
        }
        let name = symbol.name().map_err(|e| format!("ELF symbol name: {e}"))?;
        let mut address = symbol.address();
        if thumb && symbol.kind() == SymbolKind::Text {
            address &= !1;
        }
        by_section.entry(index).or_default().push(Sym {
            address,
            size: symbol.size(),
            krate: crates::crate_of(name)
                .or_else(|| symbol.is_local().then(|| file_crate.clone()).flatten()),
        });
    }

    let mut crates: BTreeMap<String, Usage> = BTreeMap::new();
    for (index, (at, start, size)) in &ranges {
        let section = &sections[*at];
        let syms = by_section.remove(index).unwrap_or_default();
        let mut covered = 0u64;
        for (krate, bytes) in attribute(syms, *start, *size) {
            covered = covered.saturating_add(bytes);
            add(&mut crates, &krate, section, bytes);
        }
        add(
            &mut crates,
            UNATTRIBUTED,
            section,
            size.saturating_sub(covered),
        );
    }
    crates.retain(|_, u| *u != Usage::default());

    let free_stack = if sections.iter().any(|s| s.name == ".stack") {
        None
    } else {
        free_stack(&file)
    };
    Ok(Report {
        sections,
        crates,
        free_stack,
    })
}

/// Sizes come from the file, so a crafted one could overflow a plain sum.
pub fn saturating_sum(sizes: impl Iterator<Item = u64>) -> u64 {
    sizes.fold(0, u64::saturating_add)
}

fn is_ram(sh_flags: u64) -> bool {
    sh_flags & u64::from(SHF_WRITE) != 0
}

fn add(crates: &mut BTreeMap<String, Usage>, krate: &str, section: &Section, bytes: u64) {
    let usage = crates.entry(krate.to_string()).or_default();
    if section.flash {
        usage.flash = usage.flash.saturating_add(bytes);
    }
    if section.ram {
        usage.ram = usage.ram.saturating_add(bytes);
    }
}

/// Bytes per crate of one section's symbols, each byte counted once: aliases (one address,
/// several names) and overlaps go to the first symbol there, a Rust one before a bare one.
fn attribute(mut syms: Vec<Sym>, start: u64, size: u64) -> BTreeMap<String, u64> {
    syms.sort_by(|a, b| {
        (a.address, a.krate.is_none(), std::cmp::Reverse(a.size)).cmp(&(
            b.address,
            b.krate.is_none(),
            std::cmp::Reverse(b.size),
        ))
    });
    let end = start.saturating_add(size);
    let mut done = start;
    let mut out = BTreeMap::new();
    for sym in syms {
        let from = sym.address.max(done);
        let to = sym.address.saturating_add(sym.size).min(end);
        if to <= from {
            continue;
        }
        let krate = sym.krate.unwrap_or_else(|| UNKNOWN.to_string());
        let bytes: &mut u64 = out.entry(krate).or_default();
        *bytes = bytes.saturating_add(to - from);
        done = to;
    }
    out
}

/// cortex-m-rt's `_stack_end..._stack_start`, when both are defined.
fn free_stack(file: &object::File) -> Option<FreeStack> {
    let at = |name: &str| {
        file.symbols()
            .find(|s| s.name() == Ok(name))
            .map(|s| s.address())
    };
    let (bottom, top) = (at("_stack_end")?, at("_stack_start")?);
    (top > bottom).then_some(FreeStack { bottom, top })
}

#[cfg(test)]
mod tests;
