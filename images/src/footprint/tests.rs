//! The report over a tiny ELF written here: sections, aliases, Thumb addresses, the
//! bracketed rows, the budget check, and malformed input.

use object::write::{Object as Writer, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, SectionKind, SymbolFlags, SymbolKind, SymbolScope,
};

use super::budget::{Budget, check};
use super::*;

const APPLIANCE_FN: &str = "_ZN9appliance4dhcp6server6handle17h0123456789abcdefE";
const SMOLTCP_FN: &str = "_RNvNtCs1234_7smoltcp5iface4poll";
const APPLIANCE_STATIC: &str = "_ZN9appliance5LEASE17h0123456789abcdefE";
const NET_STATIC: &str = "_ZN11embassy_net9RESOURCES17h0123456789abcdefE";

/// .text 64 (appliance 16 with a bare alias, smoltcp 16, a global memcpy 8, 24 uncovered),
/// .rodata 12 (an anonymous local constant of 4 in an appliance object file), .data 8
/// (appliance), .bss 100 (embassy_net 40), and debug info that is not allocated.
fn tiny_elf() -> Vec<u8> {
    let mut obj = Writer::new(BinaryFormat::Elf, Architecture::Arm, Endianness::Little);
    let text = obj.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text);
    obj.append_section_data(text, &[0; 64], 4);
    let rodata = obj.add_section(Vec::new(), b".rodata".to_vec(), SectionKind::ReadOnlyData);
    obj.append_section_data(rodata, &[0; 12], 4);
    let data = obj.add_section(Vec::new(), b".data".to_vec(), SectionKind::Data);
    obj.append_section_data(data, &[0; 8], 4);
    let bss = obj.add_section(Vec::new(), b".bss".to_vec(), SectionKind::UninitializedData);
    obj.append_section_bss(bss, 100, 4);
    let debug = obj.add_section(Vec::new(), b".debug_info".to_vec(), SectionKind::Debug);
    obj.append_section_data(debug, &[0; 500], 1);
    obj.add_file_symbol(b"appliance.66d623d4f5fd262b-cgu.05".to_vec());
    let mut sym = |name: &str, value, size, kind, section| {
        let global = name == "memcpy";
        obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value,
            size,
            kind,
            scope: if global {
                SymbolScope::Linkage
            } else {
                SymbolScope::Compilation
            },
            weak: false,
            section: SymbolSection::Section(section),
            flags: SymbolFlags::None,
        });
    };
    // Thumb: the functions' addresses carry bit 0.
    sym("__aeabi_alias", 1, 16, SymbolKind::Text, text);
    sym(APPLIANCE_FN, 1, 16, SymbolKind::Text, text);
    sym(SMOLTCP_FN, 17, 16, SymbolKind::Text, text);
    sym("memcpy", 33, 8, SymbolKind::Text, text);
    sym("$t", 0, 0, SymbolKind::Label, text); // a mapping symbol: no size
    sym(
        ".Lanon.60526c6e6a0f914d2e0df026396c754a.3",
        4,
        4,
        SymbolKind::Data,
        rodata,
    );
    sym(APPLIANCE_STATIC, 0, 8, SymbolKind::Data, data);
    sym(NET_STATIC, 8, 40, SymbolKind::Data, bss);
    obj.write().expect("the test ELF")
}

fn usage(flash: u64, ram: u64) -> Usage {
    Usage { flash, ram }
}

#[test]
fn sections_and_crates() {
    let report = analyze(&tiny_elf()).expect("report");
    let names: Vec<_> = report
        .sections
        .iter()
        .map(|s| (s.name.as_str(), s.size, s.flash, s.ram))
        .collect();
    assert_eq!(
        names,
        [
            (".text", 64, true, false),
            (".rodata", 12, true, false),
            (".data", 8, true, true),
            (".bss", 100, false, true),
        ]
    );
    assert_eq!((report.flash(), report.ram()), (64 + 12 + 8, 8 + 100));
    let rows: Vec<_> = report.crate_rows();
    assert_eq!(
        rows,
        [
            ("appliance", usage(16 + 4 + 8, 8)),
            ("smoltcp", usage(16, 0)),
            ("embassy_net", usage(0, 40)),
            (UNKNOWN, usage(8, 0)),
            (UNATTRIBUTED, usage(24 + 8, 60)),
        ]
    );
    assert_eq!(report.free_stack, None);
}

#[test]
fn renders_both_forms() {
    let report = analyze(&tiny_elf()).expect("report");
    let text = plain(&report, "tiny.elf");
    assert!(text.contains(".data (load image)"), "{text}");
    assert!(text.contains("[unattributed]"), "{text}");
    let md = markdown(&report);
    assert!(md.contains("| `appliance` | 28 | 33.3 | 8 | 7.4 |"), "{md}");
    assert!(md.contains("| **total** | **84** | | **108** | |"), "{md}");
}

#[test]
fn budget_check() {
    let report = analyze(&tiny_elf()).expect("report");
    assert!(
        check(
            &report,
            Budget {
                flash: 84,
                ram: 108
            },
            "b"
        )
        .is_ok()
    );
    let err = check(
        &report,
        Budget {
            flash: 80,
            ram: 100,
        },
        "b",
    )
    .unwrap_err();
    assert!(
        err.contains("over budget (flash by 4 bytes, static RAM by 8 bytes)"),
        "{err}"
    );
}

#[test]
fn garbage_is_an_error() {
    assert!(analyze(b"").is_err());
    assert!(analyze(b"this is not an ELF file, only some bytes").is_err());
    assert!(analyze(&[0x7f, b'E', b'L', b'F', 1, 1, 1, 0]).is_err());
}

/// Every truncation and many corruptions of a valid ELF end in a report or an error.
#[test]
fn damaged_elf_never_panics() {
    let elf = tiny_elf();
    for len in 0..elf.len() {
        let _ = analyze(&elf[..len]);
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..5000 {
        let mut bytes = elf.clone();
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state % bytes.len() as u64) as usize;
            bytes[at] = (state >> 32) as u8;
        }
        let _ = analyze(&bytes);
    }
}
