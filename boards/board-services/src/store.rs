//! The lease store: the lease journal (`flash-store`) on the board's NOR flash, restored
//! into the lease table at boot. Everything the test of power loss checks is logged here:
//! `store: CORRUPT ...` for anything a power cut cannot explain, the restored leases one
//! per line.

use appliance::dhcp::LeaseState;
use appliance::dhcp::{Lease, LeaseTable};
use appliance::journal::Record;
use defmt::Display2Format;
use embedded_storage::nor_flash::NorFlash;
use flash_store::journal::{Formatted, NorJournal};
use flash_store::leases::LeaseLog;

/// A journal frame: the lease record and its CRC-32.
const FRAME: usize = <Lease as Record>::LEN + 4;

/// Where the leases live: two banks of `bank_len` bytes from `base` in `flash` (both
/// multiples of the part's erase size; a bank should hold more frames than the board keeps
/// leases, so a compaction fits).
pub struct LeaseFlash<F> {
    pub flash: F,
    pub base: u32,
    pub bank_len: u32,
}

pub type Log<F> = LeaseLog<NorJournal<F>>;

/// Mounts the store and replays it into `table`; `None` (leases in RAM only) when there is
/// no flash (the board logs why) or it cannot be used (logged here).
pub fn open<F>(flash: Option<LeaseFlash<F>>, table: &mut LeaseTable<'_>) -> Option<Log<F>>
where
    F: NorFlash,
    F::Error: defmt::Format,
{
    let LeaseFlash {
        flash,
        base,
        bank_len,
    } = flash?;
    let (journal, mount) = NorJournal::mount(flash, base, bank_len, FRAME)
        .map_err(|e| defmt::warn!("store: mount failed ({}), leases in RAM only", e))
        .ok()?;
    match mount.formatted {
        Some(Formatted::Blank) => defmt::info!("store: blank, formatted"),
        Some(Formatted::Unreadable) => {
            defmt::error!("store: CORRUPT no valid bank header, formatted")
        }
        None => {}
    }
    if mount.stray_bytes > 0 {
        defmt::error!(
            "store: CORRUPT stray_bytes={} after the log",
            mount.stray_bytes
        );
    }
    if mount.interrupted_rewrite {
        defmt::info!("store: a cut-short compaction in the other bank, ignored");
    }
    let (log, restored) = LeaseLog::open(journal, table)
        .map_err(|e| defmt::warn!("store: replay failed ({}), leases in RAM only", e))
        .ok()?;
    let replay = restored.replay;
    if replay.torn_bytes > FRAME {
        // A cut tears at most the last frame; more means a bad frame mid-log.
        defmt::error!(
            "store: CORRUPT torn_bytes={} (more than one frame)",
            replay.torn_bytes
        );
    }
    defmt::info!(
        "store: mounted bank={} seq={} records={} torn_bytes={} compacted={} leases={} dropped={}",
        mount.bank,
        mount.seq,
        replay.records,
        replay.torn_bytes,
        restored.compacted,
        restored.leases,
        restored.dropped
    );
    for l in table.iter() {
        defmt::info!(
            "store: lease mac={} ip={} state={} expires={}",
            Display2Format(&l.mac),
            Display2Format(&l.ip),
            state_name(l.state),
            l.expires
        );
    }
    Some(log)
}

/// Persists `lease` (held by `table` already) before its reply goes out. A failure is
/// logged; the lease stays in RAM and the next compaction writes it.
pub fn record<F>(log: &mut Log<F>, lease: &Lease, table: &LeaseTable<'_>)
where
    F: NorFlash,
    F::Error: defmt::Format,
{
    let before = log.records();
    match log.record(lease, table) {
        Ok(()) if log.records() <= before => {
            defmt::info!("store: compacted leases={}", log.records())
        }
        Ok(()) => {}
        Err(e) => defmt::warn!("store: write failed ({})", e),
    }
}

fn state_name(state: LeaseState) -> &'static str {
    match state {
        LeaseState::Offered => "Offered",
        LeaseState::Bound => "Bound",
        LeaseState::Released => "Released",
        LeaseState::Declined => "Declined",
    }
}
