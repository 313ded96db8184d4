//! `boards/budget.txt`: one line per board, `NAME FLASH STATIC_RAM` in bytes, `#` comments.

use super::Report;
use super::render::thousands;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub flash: u64,
    pub ram: u64,
}

/// The line of `board` in the budget file's `text`. A malformed line is an error even when
/// it is another board's, so a typo cannot silently drop a board from the check.
pub fn parse(text: &str, board: &str) -> Result<Budget, String> {
    let mut found = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, flash, ram] = fields[..] else {
            return Err(format!(
                "budget line {}: want `board flash static-ram`, got `{line}`",
                n + 1
            ));
        };
        let number = |s: &str| {
            s.parse::<u64>()
                .map_err(|e| format!("budget line {}: `{s}`: {e}", n + 1))
        };
        let budget = Budget {
            flash: number(flash)?,
            ram: number(ram)?,
        };
        if name == board {
            if found.is_some() {
                return Err(format!("budget line {}: {board} listed twice", n + 1));
            }
            found = Some(budget);
        }
    }
    found.ok_or_else(|| format!("budget: no line for board {board}"))
}

/// `Ok` with the line CI prints, or `Err` naming what is over.
pub fn check(report: &Report, budget: Budget, board: &str) -> Result<String, String> {
    let (flash, ram) = (report.flash(), report.ram());
    let line = format!(
        "budget of {board}: flash {} of {} bytes, static RAM {} of {} bytes",
        thousands(flash),
        thousands(budget.flash),
        thousands(ram),
        thousands(budget.ram)
    );
    let mut over = Vec::new();
    if flash > budget.flash {
        over.push(format!(
            "flash by {} bytes",
            thousands(flash - budget.flash)
        ));
    }
    if ram > budget.ram {
        over.push(format!(
            "static RAM by {} bytes",
            thousands(ram - budget.ram)
        ));
    }
    if over.is_empty() {
        Ok(line)
    } else {
        Err(format!("{line}: over budget ({})", over.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# Firmware budgets (bytes)\n\
        # board              flash    static-ram\n\
        qemu-mps2-an386      524288   196608\n\
        \n\
        other-board 1000 2000   # trailing comment\n";

    #[test]
    fn finds_the_board() {
        assert_eq!(
            parse(FILE, "qemu-mps2-an386"),
            Ok(Budget {
                flash: 524288,
                ram: 196608
            })
        );
        assert_eq!(
            parse(FILE, "other-board"),
            Ok(Budget {
                flash: 1000,
                ram: 2000
            })
        );
    }

    #[test]
    fn the_repository_file_parses() {
        let text = include_str!("../../../boards/budget.txt");
        assert!(parse(text, "qemu-mps2-an386").is_ok());
    }

    #[test]
    fn errors() {
        assert!(parse(FILE, "nope").unwrap_err().contains("no line"));
        let bad = "qemu-mps2-an386 524288\n";
        assert!(
            parse(bad, "qemu-mps2-an386")
                .unwrap_err()
                .contains("line 1")
        );
        let bad = "x 1 2\nqemu-mps2-an386 512k 1\n";
        assert!(parse(bad, "x").unwrap_err().contains("line 2"));
        let twice = "x 1 2\nx 3 4\n";
        assert!(parse(twice, "x").unwrap_err().contains("twice"));
    }
}
