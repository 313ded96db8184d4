//! The report as a plain table (CI logs) and as Markdown (BENCHMARKS.md).

use std::fmt::Write;

use super::{Report, Section, Usage, saturating_sum};

/// One line per row, columns aligned, for a terminal or a CI log.
pub fn plain(report: &Report, elf: &str) -> String {
    let rows = report.crate_rows();
    let width = rows
        .iter()
        .map(|(name, _)| name.len())
        .chain(report.sections.iter().map(|s| label(s, true).len()))
        .max()
        .unwrap_or(0)
        .max(24);
    let (flash, ram) = (report.flash(), report.ram());
    let mut out = format!("footprint of {elf}\n");
    for (title, in_flash, total) in [("flash", true, flash), ("static RAM", false, ram)] {
        let _ = writeln!(
            out,
            "\n{:<w$}  {:>11}",
            format!("{title} by section"),
            "bytes",
            w = width + 2
        );
        for s in sections(report, in_flash) {
            let _ = writeln!(
                out,
                "  {:<width$}  {:>11}",
                label(s, in_flash),
                thousands(s.size)
            );
        }
        let _ = writeln!(
            out,
            "  {:<width$}  {:>11}  ({})",
            "total",
            thousands(total),
            kib(total)
        );
    }
    if let Some(line) = stack_line(report) {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(
        out,
        "\n{:<w$}  {:>11}  {:>5}  {:>11}  {:>5}",
        "by crate",
        "flash",
        "%",
        "static RAM",
        "%",
        w = width + 2
    );
    for (name, u) in rows.iter().copied().chain([("total", total(report))]) {
        let _ = writeln!(
            out,
            "  {name:<width$}  {:>11}  {:>5}  {:>11}  {:>5}",
            thousands(u.flash),
            percent(u.flash, flash),
            thousands(u.ram),
            percent(u.ram, ram),
        );
    }
    out
}

/// The same tables in Markdown, to paste into BENCHMARKS.md.
pub fn markdown(report: &Report) -> String {
    let (flash, ram) = (report.flash(), report.ram());
    let mut out = String::new();
    for (title, in_flash, total) in [("flash", true, flash), ("static RAM", false, ram)] {
        let _ = writeln!(out, "| {title} by section | bytes |\n|---|---:|");
        for s in sections(report, in_flash) {
            let _ = writeln!(out, "| `{}` | {} |", label(s, in_flash), thousands(s.size));
        }
        let _ = writeln!(
            out,
            "| **total** | **{}** ({}) |\n",
            thousands(total),
            kib(total)
        );
    }
    if let Some(line) = stack_line(report) {
        let _ = writeln!(out, "{line}\n");
    }
    let _ = writeln!(
        out,
        "| crate | flash | % | static RAM | % |\n|---|---:|---:|---:|---:|"
    );
    for (name, u) in report.crate_rows() {
        let name = if name.starts_with('[') {
            name.to_string()
        } else {
            format!("`{name}`")
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} |",
            thousands(u.flash),
            percent(u.flash, flash),
            thousands(u.ram),
            percent(u.ram, ram),
        );
    }
    let t = total(report);
    let _ = writeln!(
        out,
        "| **total** | **{}** | | **{}** | |",
        thousands(t.flash),
        thousands(t.ram)
    );
    out
}

fn sections(report: &Report, in_flash: bool) -> impl Iterator<Item = &Section> {
    report
        .sections
        .iter()
        .filter(move |s| if in_flash { s.flash } else { s.ram })
}

/// `.data` is in both lists: in flash as the image the startup code copies into RAM.
fn label(s: &Section, in_flash: bool) -> String {
    match (s.name.as_str(), in_flash) {
        (name, true) if s.ram => format!("{name} (load image)"),
        (".stack", false) => ".stack (stack reservation)".into(),
        (name, _) => name.into(),
    }
}

fn total(report: &Report) -> Usage {
    Usage {
        flash: saturating_sum(report.crates.values().map(|u| u.flash)),
        ram: saturating_sum(report.crates.values().map(|u| u.ram)),
    }
}

fn stack_line(report: &Report) -> Option<String> {
    let s = report.free_stack?;
    Some(format!(
        "stack: no reservation; {} bytes from {:#x} up to {:#x} (the rest of RAM), not counted",
        thousands(s.top - s.bottom),
        s.bottom,
        s.top
    ))
}

pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn kib(n: u64) -> String {
    format!("{:.1} KiB", n as f64 / 1024.0)
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{:.1}", part as f64 * 100.0 / whole as f64)
}
